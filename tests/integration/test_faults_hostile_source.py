"""A hostile national database, through the whole bus: it answers slowly, trickles its answer,
sends over 8 MiB, an XML billion-laughs bomb, XXE, the wrong content type or a gzip bomb
(sandbox.faults). Each is refused with its own error, whose message names the attack and
quotes nothing of the answer; while it lasts, lookups of another source complete; once it is
over, the source answers again (after its circuit breaker, opened by the hostile answers,
closes). One row per case goes to .run/faults/hostile-source.jsonl for docs/reliability.md."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from bus.settings import PROJECT_ROOT, load_settings
from bus.tooling.devstack import DevStack, example_lookup

pytestmark = pytest.mark.integration

FAULTS = PROJECT_ROOT / ".run" / "faults" / "hostile-source.jsonl"
SETTINGS = load_settings()
DEADLINE_MS = 3000  # a refusal comes at once: a usual deadline


def timeout_deadline_ms(source: str) -> int:
    """A deadline past every attempt a slow or trickling source gets (each cut at the source's
    timeout, with the backoffs between them): the reply then carries the attempts' own error
    rather than racing the deadline, where the aggregator may answer `deadline_exceeded` first
    on a loaded machine."""
    configured = SETTINGS.source(source)
    attempts_s = (configured.retries + 1) * configured.timeout_s + configured.retries * 1.0
    return int((attempts_s + 1.5) * 1000)


OTHERS = 3  # lookups of another source while one is hostile
# The other source asked while one is hostile, and its dataset.
OTHER = {"population": "licence.driver", "licence": "population.identity"}
SECONDS = r"\d+\.\d s"
# Words of the hostile answers that must never reach a reply: entity names, the file an XXE
# points at, the oversize filler, the login page's text.
HOSTILE_WORDS = ("lol", "passwd", "AAAA", "log in", "DuLieu", "du_lieu")


@dataclass(frozen=True)
class Case:
    mode: str
    dataset: str  # of the hostile source
    faults: dict[str, Any]
    code: str
    message: str  # a pattern the whole message matches
    protocol: str = "SOAP"

    @property
    def source(self) -> str:
        return self.dataset.split(".", 1)[0]

    @property
    def deadline_ms(self) -> int:
        return timeout_deadline_ms(self.source) if self.code == "timeout" else DEADLINE_MS


SOAP_CASES = [
    Case(
        "slow",
        "population.identity",
        {"latency_ms": 6000},
        "timeout",
        f"no answer within {SECONDS}",
    ),
    Case(
        "trickle",
        "population.identity",
        {"trickle": True},
        "timeout",
        rf"the whole answer did not come within {SECONDS} \(\d+ bytes came\)",
    ),
    Case(
        "oversize",
        "population.identity",
        {"oversize": True},
        "unsafe_answer",
        r"answer too large: more than 8388608 bytes",
    ),
    Case(
        "xml_bomb",
        "population.identity",
        {"xml_bomb": True},
        "unsafe_answer",
        r"XML with a DTD refused: 10 entity declarations, 9 of them expanding others "
        r"\(an entity expansion bomb\); entity references refused",
    ),
    Case(
        "xxe",
        "population.identity",
        {"xxe": True},
        "unsafe_answer",
        r"XML with a DTD refused: it declares 2 external entities \(XXE\); "
        r"entity references refused, none resolved",
    ),
    Case(
        "wrong_content_type",
        "population.identity",
        {"wrong_content_type": True},
        "malformed_answer",
        r"unexpected content type text/html, not XML \(HTTP 200, text/html; charset=utf-8, "
        r"\d+ bytes\)",
    ),
    Case(
        "gzip_bomb",
        "population.identity",
        {"gzip_bomb": True},
        "unsafe_answer",
        r"compressed answer refused: Content-Encoding gzip \(we asked for identity\)",
    ),
]
# A REST/JSON source meets what makes sense for JSON (the XML bomb and XXE are SOAP's).
REST_CASES = [
    Case(case.mode, "licence.driver", case.faults, case.code, case.message, "REST")
    for case in SOAP_CASES
    if case.mode not in ("xml_bomb", "xxe", "wrong_content_type")
] + [
    Case(
        "wrong_content_type",
        "licence.driver",
        {"wrong_content_type": True},
        "malformed_answer",
        r"unexpected content type text/html, not JSON \(HTTP 200, text/html; charset=utf-8, "
        r"\d+ bytes\)",
        "REST",
    )
]


def lookup(
    stack: DevStack, dataset: str, subject: str, deadline_ms: int = DEADLINE_MS
) -> dict[str, Any]:
    body = example_lookup(subject) | {"datasets": [dataset], "deadline_ms": deadline_ms}
    answer = requests.post(
        f"{stack.gateway_url}/v1/lookups", json=body, headers=stack.keys.headers(), timeout=30
    )
    return dict(answer.json())


def sample(stack: DevStack, source: str, n: int) -> list[str]:
    answer = requests.get(
        f"{stack.sandbox_url}/_sandbox/sample", params={"source": source, "n": n}, timeout=10
    )
    return list(answer.json())


def set_faults(stack: DevStack, source: str, **values: Any) -> None:
    url = f"{stack.sandbox_url}/_sandbox/faults/{source}"
    requests.put(url, json=values, timeout=10).raise_for_status()


def answers_again(stack: DevStack, dataset: str, subject: str, within_s: float) -> float:
    """Seconds until a lookup of `dataset` comes back complete (its breaker closed)."""
    started = time.monotonic()
    while lookup(stack, dataset, subject)["status"] != "complete":
        assert time.monotonic() - started < within_s, f"{dataset} did not answer again"
        time.sleep(0.5)
    return time.monotonic() - started


def row(fault: str, load: str, measured: str) -> None:
    FAULTS.parent.mkdir(parents=True, exist_ok=True)
    line = {"fault": fault, "load": load, "measured": measured, "lost": 0, "duplicated": 0}
    with FAULTS.open("a", encoding="utf-8") as out:
        out.write(json.dumps(line, ensure_ascii=False) + "\n")


@pytest.fixture(scope="module", autouse=True)
def fresh_rows() -> None:
    """This file's rows are this run's (make faults clears them all; a run by hand too)."""
    FAULTS.unlink(missing_ok=True)


class HostileLookups:
    """Lookups of the hostile source one after another in a thread, until stopped: the hostile
    source stays under load while the other source is asked."""

    def __init__(self, stack: DevStack, dataset: str, subject: str, deadline_ms: int) -> None:
        self.stack, self.dataset, self.subject = stack, dataset, subject
        self.deadline_ms = deadline_ms
        self.replies: list[dict[str, Any]] = []
        self.failures: list[str] = []  # lookups without a reply (must stay empty)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.replies.append(
                    lookup(self.stack, self.dataset, self.subject, self.deadline_ms)
                )
            except (requests.RequestException, ValueError) as exc:
                self.failures.append(type(exc).__name__)

    def __enter__(self) -> HostileLookups:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


@pytest.mark.parametrize("case", SOAP_CASES + REST_CASES, ids=lambda c: f"{c.source}-{c.mode}")
def test_a_hostile_source_is_refused_with_its_own_error_while_the_others_answer(
    stack: DevStack, case: Case
) -> None:
    [subject] = sample(stack, case.source, 1)
    other = OTHER[case.source]
    other_subjects = sample(stack, other.split(".", 1)[0], OTHERS)
    reset_s = SETTINGS.source(case.source).breaker_reset_s
    answers_again(stack, case.dataset, subject, reset_s + 30)  # the last case's breaker closed

    set_faults(stack, case.source, **case.faults)
    try:
        with HostileLookups(stack, case.dataset, subject, case.deadline_ms) as hostile:
            time.sleep(0.3)  # the first hostile lookup is under way
            started = time.monotonic()
            meanwhile = [lookup(stack, other, person) for person in other_subjects]
            others_s = time.monotonic() - started
            while not hostile.replies and time.monotonic() - started < 60:
                time.sleep(0.1)
    finally:
        set_faults(stack, case.source)
        cleared = time.monotonic()

    assert hostile.replies and not hostile.failures, hostile.failures
    first = hostile.replies[0]
    assert first["status"] == "failed", first
    [error] = first["errors"]
    assert error["dataset"] == case.dataset and error["code"] == case.code, error
    assert re.fullmatch(case.message, error["message"]), error["message"]
    assert error["retryable"] is (case.code != "unsafe_answer")
    assert not any(word in json.dumps(first) for word in HOSTILE_WORDS), first
    codes = {e["code"] for reply in hostile.replies for e in reply["errors"]}
    assert codes <= {case.code, "circuit_open"}, codes  # each its own error, or the breaker
    assert [reply["status"] for reply in meanwhile] == ["complete"] * OTHERS, meanwhile

    back_s = time.monotonic() - cleared + answers_again(stack, case.dataset, subject, reset_s + 30)
    opened = "circuit_open" in codes
    row(
        f"hostile source: {case.mode} ({case.source}, {case.protocol})",
        f"{len(hostile.replies)} lookups of {case.dataset} one after another "
        f"({case.deadline_ms / 1000:.1f} s deadline) while {OTHERS} of {other} ran",
        f"refused with {case.code}: {error['message']}; the {OTHERS} lookups of {other} complete "
        f"meanwhile ({others_s * 1000:.0f} ms); "
        + ("breaker opened, " if opened else "")
        + f"{case.source} answered again {back_s:.1f} s after the fault was cleared",
    )
