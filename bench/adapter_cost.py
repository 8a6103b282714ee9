"""CPU cost of one population lookup in the worker: the adapter's fetch, the mapping, both.

``python -m bench.adapter_cost [--calls N] [--ids K] [--count C]``

The sandbox runs as a subprocess (``python -m sandbox.server``), so every CPU second counted here
is the client's. Calls are sequential, in this thread; the figures are microseconds of this
thread's CPU (``time.thread_time``) per call, with the process's (``time.process_time``) beside
them as a check that no other thread of this process did work for us. The baseline is a plain
zeep client making the same call the way a user would (``zeep.Client(wsdl).service.<op>(...)``,
its default `requests` transport), measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import cycle, islice
from typing import Any

import zeep

from adapters.base import NativeRecord
from adapters.population import PopulationAdapter
from bus.schemas import Subject
from bus.settings import SourceSettings
from mappings import load_mapping

AGENCY = "000.00.00.H01"


@dataclass
class Cost:
    """CPU of one figure, per call, over several rounds."""

    name: str
    rounds: list[tuple[int, float, float, float]] = field(default_factory=list)

    def add(self, calls: int, thread_s: float, process_s: float, wall_s: float) -> None:
        self.rounds.append((calls, thread_s, process_s, wall_s))

    def _per_call(self, index: int) -> list[float]:
        return [r[index] / r[0] * 1e6 for r in self.rounds]

    @property
    def calls(self) -> int:
        return sum(r[0] for r in self.rounds)

    @property
    def thread_us(self) -> float:
        """The best round: the least disturbed by other work on the machine."""
        return min(self._per_call(1))

    @property
    def thread_mean_us(self) -> float:
        return sum(r[1] for r in self.rounds) / self.calls * 1e6

    @property
    def process_us(self) -> float:
        return min(self._per_call(2))

    @property
    def wall_us(self) -> float:
        return min(self._per_call(3))


def measure(cost: Cost, calls: int, step: Callable[[int], object]) -> None:
    """Run `step(i)` for i in 0..calls-1, counting this thread's and this process's CPU."""
    wall, thread, process = time.perf_counter(), time.thread_time(), time.process_time()
    for i in range(calls):
        step(i)
    cost.add(
        calls,
        time.thread_time() - thread,
        time.process_time() - process,
        time.perf_counter() - wall,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def sandbox_process(count: int) -> Iterator[str]:
    """The sandbox in its own process on a free loopback port; yields its base URL."""
    port = _free_port()
    command = [sys.executable, "-m", "sandbox.server", "--port", str(port), "--count", str(count)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_sandbox/health", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the sandbox did not start on port {port}") from None
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def sample_ids(base: str, n: int) -> list[str]:
    with urllib.request.urlopen(f"{base}/_sandbox/sample?n={n}&seed=5", timeout=5) as answer:
        ids: list[str] = json.load(answer)
        return ids


def run(calls: int, rounds: int, id_count: int, count: int, warmup: int) -> list[Cost]:
    """Every figure over `calls` calls, in `rounds` rounds taken in turn (so that other work on
    the machine disturbs them alike)."""
    mapping = load_mapping("population")
    dump_fast: Callable[[Any], dict[str, Any]] | None = getattr(mapping, "apply_dump", None)

    def dump(data: Any) -> dict[str, Any]:
        result: dict[str, Any] = mapping.apply(data).model_dump(mode="json", exclude_none=True)
        return result

    with sandbox_process(count) as base:
        url = f"{base}/dancu"
        ids = sample_ids(base, id_count)
        subjects = [Subject(personal_id=personal_id) for personal_id in ids]
        work = list(islice(cycle(range(len(ids))), max(calls, warmup)))
        settings = SourceSettings(
            adapter="adapters.population:PopulationAdapter",
            url=url,
            datasets=["identity"],
            timeout_s=5.0,
            concurrency=1,
        )
        adapter = PopulationAdapter("population", settings)
        client = zeep.Client(f"{url}?wsdl")  # type: ignore[no-untyped-call]

        def fetch(i: int) -> NativeRecord:
            return adapter.fetch(
                "identity",
                subjects[work[i]],
                timeout=5.0,
                request_id=f"bench-{i}",
                requester_agency=AGENCY,
            )

        def plain_zeep(i: int) -> object:
            return client.service.TraCuuThongTinCongDan(
                MaYeuCau=f"bench-{i}", MaDonViYeuCau=AGENCY, SoDinhDanh=ids[work[i]]
            )

        records = [fetch(i) for i in range(len(ids))]  # also loads the WSDL
        steps: dict[str, Callable[[int], object]] = {
            "(a) adapter.fetch": fetch,
            "(b) mapping apply + model_dump": lambda i: dump(records[work[i]].data),
            "(c) fetch + apply + model_dump": lambda i: dump(fetch(i).data),
        }
        if dump_fast is not None:
            fast = dump_fast
            steps["(b') mapping apply_dump"] = lambda i: fast(records[work[i]].data)
            steps["(c') fetch + apply_dump"] = lambda i: fast(fetch(i).data)
        steps["plain zeep client call"] = plain_zeep
        for step in steps.values():
            for i in range(warmup):
                step(i)
        costs = {name: Cost(name) for name in steps}
        per_round = max(1, calls // rounds)
        for _ in range(rounds):
            for name, step in steps.items():
                measure(costs[name], per_round, step)
        adapter.close()
    return list(costs.values())


def report(costs: list[Cost]) -> str:
    baseline = next(c for c in costs if c.name.startswith("plain zeep"))
    lines = [
        f"{'CPU per call, us':34} {'thread':>8} {'(mean)':>8} {'process':>8} {'wall':>8}"
        f" {'vs zeep':>8}"
    ]
    for cost in costs:
        ratio = cost.thread_us / baseline.thread_us
        lines.append(
            f"{cost.name:34} {cost.thread_us:8.1f} {cost.thread_mean_us:8.1f} "
            f"{cost.process_us:8.1f} {cost.wall_us:8.1f} {ratio:7.2f}x"
        )
    lines.append(
        f"{costs[0].calls} sequential calls per figure in {len(costs[0].rounds)} rounds; the best "
        "round's CPU of the calling thread (and its mean), the ratio to the plain zeep client."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.adapter_cost", description=__doc__)
    parser.add_argument("--calls", type=int, default=2000, help="measured calls per figure")
    parser.add_argument("--rounds", type=int, default=5, help="rounds the calls are split in")
    parser.add_argument("--ids", type=int, default=500, help="distinct citizens asked for")
    parser.add_argument("--count", type=int, default=10_000, help="citizens in the sandbox")
    parser.add_argument("--warmup", type=int, default=300, help="calls before measuring")
    args = parser.parse_args(argv)
    print(report(run(args.calls, args.rounds, args.ids, args.count, args.warmup)))


if __name__ == "__main__":
    main()
