"""``python -m bench SCENARIO [--quick] [--duration S] [--concurrency N] [--rate R] [--soak M]
[--profile]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.runner import run_scenario
from bench.scenarios import SCENARIOS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="tthc-bus benchmarks")
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--quick", action="store_true", help="a few seconds; indicative only")
    parser.add_argument(
        "--duration",
        type=float,
        dest="duration_s",
        help="measured seconds of each run (overload: of the overload)",
    )
    parser.add_argument("--concurrency", type=int, help="closed-loop clients")
    parser.add_argument(
        "--rate",
        type=float,
        help="open-loop requests per second (lookup-overhead: instead of half the measured "
        "capacity; overload: instead of twice it)",
    )
    parser.add_argument("--soak", type=float, dest="soak_minutes", help="memory soak minutes")
    parser.add_argument("--events", type=int, help="sync backlog size")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the worker and gateway during the bus run (lookup-*, overload, memory; "
        "prefill-throughput: its prefill run)",
    )
    parser.add_argument(
        "--bootstrap-servers", help="existing Kafka for sync-throughput (no stack started)"
    )
    parser.add_argument("--results-dir", type=Path, help="default: bench/results/")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = vars(parse_args(argv))
    run_scenario(args.pop("scenario"), **args)


if __name__ == "__main__":
    main()
