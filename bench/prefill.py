"""The prefill-throughput scenario: a dossier prefill of 4 sources beside a single-source lookup.

Two closed loops through the gateway, one after the other, at the same concurrency and on the
same subjects (personal ids the insurance database holds, so that every source may answer):

1. single: population.identity for procedure 1.004222 (the lookup of every other scenario);
2. prefill: ``POST /v1/lookups`` without ``datasets`` for procedure ``SB.LT-KT-XTT-MT``, so the
   gateway asks every dataset the procedure needs (4, one per source: population twice); the
   worker fans it out and answers once.

A prefill is a success when it is complete, or partial / not_found because a source has no
record of the subject (every error ``not_found``): such answers are counted in the status mix,
not among the errors. Anything else (a timeout, a failed source, a denial) is an error.
"""

from __future__ import annotations

from typing import Any

from bench import goals
from bench.common import (
    ScenarioOptions,
    StackEndpoints,
    cpu_goal_reason,
    error_notes,
    fetch_subjects,
    load_spec,
    params,
    profiled_run,
    run_load,
    with_profile,
)
from bench.stats import ratio
from bus.procedures import Procedure, ProcedureCatalogue
from bus.settings import get_settings

PREFILL_PROCEDURE = "SB.LT-KT-XTT-MT"
PREFILL_PURPOSE = "Đăng ký khai tử"
# Subjects from the insurance database: citizens, of whom insurance.participation has a record.
SUBJECT_SOURCE = "insurance"
PREFILL_STATUSES = ("complete", "partial", "not_found")


def prefill_procedure(code: str = PREFILL_PROCEDURE, purpose: str = PREFILL_PURPOSE) -> Procedure:
    """The procedure of the catalogue (procedures.toml), checked to allow ``purpose``."""
    catalogue = ProcedureCatalogue.load(get_settings().lookup.procedures_path())
    procedure = catalogue.get(code)
    if procedure is None:
        raise ValueError(f"prefill-throughput: procedure {code!r} is not in the catalogue")
    if purpose not in procedure.purposes:
        raise ValueError(
            f"prefill-throughput: procedure {code!r} does not allow the purpose {purpose!r}; "
            f"it allows {procedure.purposes}"
        )
    return procedure


def _cpu(run: dict[str, Any]) -> float | None:
    cpu = run.get("cpu")
    return None if cpu is None else cpu["bus_ms_per_lookup"]


def prefill_throughput(stack: StackEndpoints, options: ScenarioOptions) -> dict[str, Any]:
    procedure = prefill_procedure()
    datasets = len(procedure.datasets)
    subjects = fetch_subjects(stack.need("sandbox_url"), source=SUBJECT_SOURCE)
    runs: dict[str, dict[str, Any]] = {}
    runs["single"] = run_load(load_spec(stack, "bus", "closed", options, subjects=subjects))
    runs["prefill"], profile = profiled_run(
        stack,
        load_spec(
            stack,
            "bus",
            "closed",
            options,
            subjects=subjects,
            procedure=procedure.code,
            purpose=PREFILL_PURPOSE,
            prefill=True,
            missing_ok=True,
        ),
        options,
    )
    single, prefill = runs["single"], runs["prefill"]
    prefill_cpu = _cpu(prefill)
    per_dataset = None if prefill_cpu is None else round(prefill_cpu / datasets, 3)
    rates = (prefill["throughput_per_s"], single["throughput_per_s"])
    mix = prefill["status_mix"]
    figures: dict[str, Any] = {
        "single_lookups_per_s": single["throughput_per_s"],
        "prefill_lookups_per_s": prefill["throughput_per_s"],
        "prefill_vs_single": _rounded(ratio(*rates)),
        "prefill_datasets_per_s": round(prefill["throughput_per_s"] * datasets, 2),
        "single_cpu_ms_per_lookup": _cpu(single),
        "prefill_cpu_ms_per_lookup": prefill_cpu,
        "prefill_cpu_ms_per_dataset": per_dataset,
        "single_errors": single["errors"],
        "prefill_errors": prefill["errors"],
        **{f"prefill_{status}": mix.get(status, 0) for status in PREFILL_STATUSES},
        "prefill_p50_ms": prefill["latency_ms"]["p50"],
        "single_p50_ms": single["latency_ms"]["p50"],
    }
    outcome = {
        "params": {
            **params(options, "warmup_s", "duration_s", "concurrency"),
            "procedure": procedure.code,
            "purpose": PREFILL_PURPOSE,
            "datasets": procedure.datasets,
            "subject_source": SUBJECT_SOURCE,
        },
        "runs": runs,
        "figures": figures,
        "goals": [
            goals.PREFILL_RATIO.evaluate(figures),
            goals.SINGLE_ZERO_ERRORS.evaluate(figures),
            goals.PREFILL_ZERO_ERRORS.evaluate(figures),
            goals.recorded_only(
                "bus CPU per prefill, gateway + workers + broker + ledger",
                "prefill_cpu_ms_per_lookup",
                figures,
                cpu_goal_reason(prefill) or f"no target: a prefill is {datasets} source lookups",
            ),
        ],
        "notes": [
            f"closed loop x{options.concurrency} through the gateway, single then prefill, on "
            f"the same {len(subjects)} subjects of the {SUBJECT_SOURCE} database",
            f"single: population.identity for procedure 1.004222; prefill: no datasets, "
            f"procedure {procedure.code} asks {', '.join(procedure.datasets)} in one request",
            "prefill successes: complete, or partial / not_found where every error is "
            "not_found (a source holds no record of the subject); counted by status, not as "
            f"errors. The prefill's CPU per lookup is per request ({datasets} datasets)",
            *error_notes(runs),
        ],
    }
    return with_profile(outcome, profile)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
