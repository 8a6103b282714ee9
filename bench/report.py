"""Print a result as rich tables and save it as JSON under bench/results/."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_STATUS_STYLE = {"met": "green", "not met": "red", "n/a": "yellow"}


def _number(value: Any, digits: int | None = None) -> str:
    """Thousands separated; floats to ``digits`` places (default: 3 below 10, else 1)."""
    if value is None:
        return "—"
    if isinstance(value, float):
        places = digits if digits is not None else (3 if abs(value) < 10 else 1)
        return f"{value:,.{places}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


_RUN_COLUMNS = (
    "requests",
    "ok",
    "errors",
    "refused",
    "ok per s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "gen CPU %",
)
BUS_TARGETS = frozenset({"bus", "kafka"})
TARGET_LABELS = {
    "bus": "bus: HTTP gateway",
    "kafka": "bus: Kafka-native client",
    "direct": "sandbox: raw HTTP",
    "zeep": "sandbox: zeep client",
}


def _load(run: dict[str, Any]) -> str:
    if run["mode"] == "closed":
        load = f"closed x{run['concurrency']}"
    else:
        load = f"open {run['rate_per_s']:g}/s"
    return f"{load}, {run['duration_s']:g} s"


def runs_table(runs: dict[str, dict[str, Any]]) -> Table:
    table = Table(
        title="load runs (same generator, same run)",
        caption="gen CPU %: the load generator's own CPU; near 100 it, not the target, limits. "
        "refused: overload refusals, also counted in errors. Open loop: latency from the "
        "scheduled start",
    )
    table.add_column("run")
    table.add_column("target")
    table.add_column("load")
    for column in _RUN_COLUMNS:
        table.add_column(column, justify="right")
    for name, run in runs.items():
        latency = run["latency_ms"]
        table.add_row(
            name,
            TARGET_LABELS.get(run["target"], run["target"]),
            _load(run),
            _number(run["requests"]),
            _number(run["ok"]),
            _number(run["errors"]),
            _number(run.get("refused")),
            _number(run["throughput_per_s"]),
            *(_number(latency[key], 2) for key in ("p50", "p95", "p99")),
            _number(run["loadgen_cpu_pct"], 0),
        )
    return table


def cpu_table(runs: dict[str, dict[str, Any]]) -> Table | None:
    """ms of CPU per successful lookup of each process (rows) in each run's window (columns)."""
    measured = {name: run["cpu"] for name, run in runs.items() if run.get("cpu")}
    if not measured:
        return None
    # The CPU goal is per single-source lookup: not a dossier prefill's (several sources).
    goal_cells = [
        "(baseline)"
        if runs[name]["target"] not in BUS_TARGETS
        else "none (prefill)"
        if runs[name].get("prefill")
        else "<= 2.5 ms"
        for name in measured
    ]
    table = Table(
        title="CPU per lookup: ms of CPU (share of one core) in the measured window",
        caption="/proc/<pid>/stat utime+stime at the window's edges / successful lookups in it; "
        "— : pid not known. Other processes: /proc/stat busy time minus the processes above; "
        "where it is high, another job shared the cores and the throughputs are low",
    )
    table.add_column("process")
    for name in measured:
        table.add_column(name, justify="right")
    processes: list[str] = []
    for cpu in measured.values():
        processes += [p for p in cpu["processes"] if p not in processes]
    for process in processes:
        cells = []
        for cpu in measured.values():
            entry = cpu["processes"].get(process)
            if entry is None or entry["ms_per_lookup"] is None:
                cells.append("—")
            else:
                cells.append(f"{entry['ms_per_lookup']:.3f} ({entry['core_pct']:.0f} %)")
        table.add_row(process, *cells)
    table.add_row(
        "[bold]gateway + workers + broker + ledger[/bold]",
        *(_number(cpu["bus_ms_per_lookup"]) for cpu in measured.values()),
    )
    table.add_row("goal", *goal_cells)
    table.add_row(
        "[dim]other processes on the machine (core %)[/dim]",
        *(_pct_cell(cpu.get("others_core_pct")) for cpu in measured.values()),
    )
    return table


def _pct_cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} %"


OVERLOAD_ROWS = (
    ("capacity (closed loop), lookups/s", "capacity_per_s"),
    ("offered, requests/s", "offered_per_s"),
    ("goodput, lookups/s", "goodput_per_s"),
    ("goodput / capacity", "goodput_ratio"),
    ("refused", "refused"),
    ("refused share", "refused_share"),
    ("refusal latency p50 ms", "refusal_p50_ms"),
    ("refusal latency p99 ms", "refusal_p99_ms"),
    ("  p99 from the actual send, ms", "refusal_p99_from_send_ms"),
    ("refusals without Retry-After", "refusals_without_retry_after"),
    ("refusals not problem+json", "refusals_not_problem_json"),
    ("replies after their deadline", "late_replies"),
    ("other errors", "other_errors"),
    ("load generator send lag p99 ms", "send_lag_p99_ms"),
)


def overload_table(figures: dict[str, Any]) -> Table:
    table = Table(title="overload: gateway (HTTP) and Kafka-native client")
    table.add_column("figure")
    table.add_column("gateway", justify="right")
    table.add_column("Kafka-native", justify="right")
    for label, key in OVERLOAD_ROWS:
        table.add_row(label, _number(figures.get(key)), _number(figures.get(f"kafka_{key}")))
    return table


def rss_table(rss: dict[str, dict[str, Any]]) -> Table:
    table = Table(title="RSS over the overload (MB)", caption="growth: peak - start")
    for column in ("process", "start", "peak", "end", "growth"):
        table.add_column(column, justify="left" if column == "process" else "right")
    for name, entry in rss.items():
        table.add_row(
            name,
            *(_number(entry[key], 1) for key in ("start_mb", "peak_mb", "end_mb", "growth_mb")),
        )
    return table


def figures_table(figures: dict[str, Any]) -> Table:
    table = Table(title="figures")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in figures.items():
        table.add_row(name, _number(value))
    return table


def goals_table(goals: list[dict[str, Any]]) -> Table:
    table = Table(title="goals")
    for column in ("goal", "target", "value", "status"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for goal in goals:
        style = _STATUS_STYLE[goal["status"]]
        status = goal["status"] + (f": {goal['reason']}" if goal["reason"] else "")
        table.add_row(
            goal["goal"], goal["target"], _number(goal["value"]), f"[{style}]{status}[/{style}]"
        )
    return table


def _pct(share: float) -> str:
    return f"{100.0 * share:.1f}"


def profile_tables(name: str, entry: dict[str, Any], window_s: Any) -> list[Table]:
    """Per-bucket shares and the top frames of one process's py-spy samples."""
    title = (
        f"profile: {name} (pid {entry['pid']}), {entry['samples']:,} samples "
        f"holding the GIL over {window_s} s"
    )
    buckets = Table(
        title=title,
        caption="incl: a sample counts once in every bucket it has a frame in (sum > 100%); "
        "self: only in the bucket of its innermost bucketed frame",
    )
    buckets.add_column("bucket")
    buckets.add_column("samples", justify="right")
    buckets.add_column("incl %", justify="right")
    buckets.add_column("self %", justify="right")
    for bucket, value in entry["buckets"].items():
        buckets.add_row(
            bucket, _number(value["samples"]), _pct(value["share"]), _pct(value["self_share"])
        )
    frames = Table(title=f"profile: {name}, top frames by inclusive share")
    for column in ("frame", "bucket", "incl %", "self %"):
        frames.add_column(column, justify="right" if column.endswith("%") else "left")
    for frame in entry["top_frames"]:
        frames.add_row(
            frame["frame"],
            frame["bucket"],
            _pct(frame["inclusive_share"]),
            _pct(frame["self_share"]),
        )
    return [buckets, frames]


def render_profile(profile: dict[str, Any], console: Console) -> None:
    for name, entry in profile["processes"].items():
        if entry["status"] != "recorded":
            console.print(f"[yellow]profile: {name} not recorded: {entry['reason']}[/yellow]")
            continue
        if not entry["samples"]:
            console.print(
                f"[yellow]profile: {name} (pid {entry['pid']}) never held the GIL in the window: "
                f"idle, no sample[/yellow] ({entry['raw_file']})"
            )
            continue
        for table in profile_tables(name, entry, profile["window_s"]):
            console.print(table)
        console.print(f"profile: {name} raw collapsed stacks: {entry['raw_file']}")


def render(result: dict[str, Any], console: Console | None = None) -> None:
    """Print the scenario's header, its load runs, figures, goals and notes."""
    # Piped into make or CI, rich would squeeze the tables into 80 columns.
    console = console or Console(width=None if sys.stdout.isatty() else 132)
    machine = result["machine"]
    console.rule(f"[bold]{result['scenario']}[/bold]" + (" (quick)" if result["quick"] else ""))
    console.print(
        f"commit {result['git_commit']} · {machine['cores']} cores · Python {machine['python']} · "
        f"Kafka {machine['kafka_version']} · {machine['platform']}"
    )
    if machine.get("load_avg_1m"):
        before, after = machine["load_avg_1m"]
        console.print(f"load average (1 min) before the run {before}, after {after}")
    if result.get("runs"):
        console.print(runs_table(result["runs"]))
        cpu = cpu_table(result["runs"])
        if cpu is not None:
            console.print(cpu)
    if result["scenario"] == "overload":
        console.print(overload_table(result["figures"]))
        if result.get("rss"):
            console.print(rss_table(result["rss"]))
    console.print(figures_table(result["figures"]))
    console.print(goals_table(result["goals"]))
    if result.get("profile"):
        render_profile(result["profile"], console)
    if result["quick"]:
        console.print("[dim]quick run: a few seconds, figures are indicative only[/dim]")
    for note in result["notes"]:
        console.print(f"note: {note}")
    if result.get("result_file"):
        console.print(f"saved {result['result_file']}")


def stamp_of(started_at: datetime) -> str:
    """The results' file-name prefix: ``20250701T093000Z``."""
    return started_at.strftime("%Y%m%dT%H%M%SZ")


def write_json(result: dict[str, Any], results_dir: Path | None = None) -> Path:
    """Write ``<timestamp>-<scenario>.json``; never overwrites an earlier result."""
    directory = results_dir or RESULTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    stamp = stamp_of(datetime.fromisoformat(result["started_at"]))
    path = directory / f"{stamp}-{result['scenario']}.json"
    suffix = 1
    while path.exists():
        suffix += 1
        path = directory / f"{stamp}-{result['scenario']}-{suffix}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
