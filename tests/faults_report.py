"""docs/reliability.md from the fault suite's figures: every test in
tests/integration/test_faults_*.py appends one row per fault to .run/faults/*.jsonl (fault, load,
what was measured, lost, duplicated); `make faults` clears them, runs the suite and calls this.

    python -m tests.faults_report [--out docs/reliability.md]
"""

from __future__ import annotations

import argparse
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROWS = ROOT / ".run" / "faults"
COLUMNS = ("fault", "load", "measured", "lost", "duplicated")

HEAD = """# Reliability: what a bad day loses

The fault suite (`tests/integration/test_faults_*.py`, part of `make test`) kills things under
load and feeds the bus hostile input, then counts. Each test asserts its figures (nothing lost,
nothing duplicated, an explicit answer for every request); the table is what the last
`make faults` run measured, on this machine (2 shared cores), at the commit below. Timings are
as measured there and vary from run to run; the counts do not.

"""


def cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render(rows: list[dict[str, object]], commit: str, when: datetime) -> str:
    lines = [
        HEAD,
        f"Generated {when:%Y-%m-%d %H:%M} UTC at commit `{commit}`, {len(rows)} faults.\n\n",
        "| " + " | ".join(COLUMNS) + " |\n",
        "|" + "---|" * len(COLUMNS) + "\n",
    ]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in COLUMNS) + " |\n" for row in rows]
    return "".join(lines)


def read_rows(folder: Path = ROWS) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for path in sorted(folder.glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    out = parser.parse_args().out
    rows = read_rows()
    if not rows:
        raise SystemExit(f"no fault figures in {ROWS}: run the fault suite first (make faults)")
    commit = (
        subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        ).stdout.strip()
        or "unknown"
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    ).stdout.strip()
    out.write_text(
        render(rows, commit + (" (with uncommitted changes)" if dirty else ""), datetime.now(UTC)),
        encoding="utf-8",
    )
    print(f"wrote {out} ({len(rows)} faults)")


if __name__ == "__main__":
    main()
