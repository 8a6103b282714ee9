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


_RUN_COLUMNS = ("requests", "ok", "errors", "per s", "p50 ms", "p95 ms", "p99 ms", "gen CPU %")


def runs_table(runs: dict[str, dict[str, Any]]) -> Table:
    table = Table(
        title="load runs (same generator, same run)",
        caption="gen CPU %: the load generator's own CPU; near 100 it, not the target, limits",
    )
    table.add_column("run")
    table.add_column("load")
    for column in _RUN_COLUMNS:
        table.add_column(column, justify="right")
    for name, run in runs.items():
        load = (
            f"closed x{run['concurrency']}"
            if run["mode"] == "closed"
            else f"open {run['rate_per_s']:g}/s"
        )
        latency = run["latency_ms"]
        table.add_row(
            name,
            f"{load}, {run['duration_s']:g} s",
            _number(run["requests"]),
            _number(run["ok"]),
            _number(run["errors"]),
            _number(run["throughput_per_s"]),
            *(_number(latency[key], 2) for key in ("p50", "p95", "p99")),
            _number(run["loadgen_cpu_pct"], 0),
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
    if result.get("runs"):
        console.print(runs_table(result["runs"]))
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
