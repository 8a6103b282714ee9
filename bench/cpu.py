"""CPU time of processes over a measured window, from ``/proc/<pid>/stat``.

The load generator reads ``utime + stime`` (clock ticks, all threads of the process) of every
process it is given at the start and at the end of its measured window, in the same event-loop
callbacks that open and close the window, so the figures cover exactly the window the lookups
are counted in. ``cpu_per_lookup`` turns the two readings into milliseconds of CPU per lookup.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
LOADGEN = "load generator"
# Busy ticks of every CPU of the machine (/proc/stat), to tell what other processes took.
MACHINE = "machine"
# The processes of the bus itself (not the sandbox standing in for a national database, not the
# client): their sum is what the CPU goal is about.
BUS_PROCESSES = ("gateway", "worker", "broker", "ledger")


def proc_cpu_ticks(pid: int | str) -> int | None:
    """``utime + stime`` of ``pid`` (or ``"self"``) in clock ticks; None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15: utime, stime


def machine_busy_ticks() -> int | None:
    """Busy ticks (user, nice, system, irq, softirq, steal) summed over every CPU."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return user + nice + system + irq + softirq + steal


def read_ticks(pids: Mapping[str, int]) -> dict[str, int | None]:
    """Ticks of every named pid, of this process as ``LOADGEN``, of the machine as ``MACHINE``."""
    ticks = {name: proc_cpu_ticks(pid) for name, pid in pids.items()}
    ticks[LOADGEN] = proc_cpu_ticks("self")
    ticks[MACHINE] = machine_busy_ticks()
    return ticks


def is_bus_process(name: str) -> bool:
    """gateway, worker, worker-2 ..., broker, ledger (the audit ledger writer)."""
    return name in BUS_PROCESSES or name.startswith("worker-")


def cpu_per_lookup(
    start: Mapping[str, int | None],
    end: Mapping[str, int | None],
    lookups: int,
    window_s: float,
    missing: Iterable[str] = (),
) -> dict[str, Any]:
    """Per process: CPU seconds in the window, ms per lookup, share of one core.

    ``missing`` names processes whose pid was not known (an external broker): they appear with
    None and make the bus sum None too, rather than a sum that silently leaves one out.
    """
    processes: dict[str, dict[str, float | None]] = {}
    names = [name for name in start if name != MACHINE]
    for name in [*names, *(m for m in missing if m not in start)]:
        before, after = start.get(name), end.get(name)
        if before is None or after is None:
            processes[name] = {"cpu_s": None, "ms_per_lookup": None, "core_pct": None}
            continue
        cpu_s = (after - before) / CLK_TCK
        processes[name] = {
            "cpu_s": round(cpu_s, 3),
            "ms_per_lookup": round(1000.0 * cpu_s / lookups, 3) if lookups else None,
            "core_pct": round(100.0 * cpu_s / window_s, 1) if window_s > 0 else None,
        }
    bus_sum, unknown = _bus_sum(processes)
    machine_pct = others_pct = None
    before, after = start.get(MACHINE), end.get(MACHINE)
    if before is not None and after is not None and window_s > 0:
        machine_s = (after - before) / CLK_TCK
        ours_s = sum(entry["cpu_s"] or 0.0 for entry in processes.values())
        machine_pct = round(100.0 * machine_s / window_s, 1)
        others_pct = round(100.0 * max(machine_s - ours_s, 0.0) / window_s, 1)
    return {
        "clock_ticks_per_s": CLK_TCK,
        "window_s": round(window_s, 3),
        "lookups": lookups,
        "processes": processes,
        # Core-% of the whole machine, and of the processes not listed (other work on it).
        "machine_core_pct": machine_pct,
        "others_core_pct": others_pct,
        "bus_ms_per_lookup": bus_sum,
        "bus_sum_unknown": unknown,
    }


def _bus_sum(processes: Mapping[str, Mapping[str, float | None]]) -> tuple[float | None, list[str]]:
    """gateway + workers + broker + ledger in ms per lookup, and the bus processes lacking one."""
    wanted = [name for name in processes if is_bus_process(name)]
    unknown = [name for name in wanted if processes[name]["ms_per_lookup"] is None]
    unknown += [name for name in ("gateway", "broker") if name not in processes]
    if not any(name.startswith("worker") for name in processes):
        unknown.append("worker")
    if unknown:
        return None, unknown
    return round(sum(processes[name]["ms_per_lookup"] or 0.0 for name in wanted), 3), []
