"""How fast the sandbox makes its synthetic records: ``python -m bench.generation [COUNT]``.

A fresh `World` of COUNT citizens (default 1,000,000, the most the personal ids allow), then for
each kind of record, the time to make N of them cold (no cache hit): the population database's
native record, and each simulated source's own facts about a citizen or an enterprise (what its
`holds` builds). CPU time of this process, so other jobs on the machine do not move it much.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable

from sandbox.registry import discover
from sandbox.world import World

SAMPLE = 3000


def rate(make: Callable[[int], object], indices: list[int]) -> float:
    started = time.process_time()
    for index in indices:
        make(index)
    return len(indices) / max(time.process_time() - started, 1e-9)


def main(count: int = 1_000_000) -> None:
    world = World(count=count)
    rng = random.Random(5)
    people = rng.sample(range(count), SAMPLE)
    print(f"World of {count:,} citizens, {world.enterprise_count:,} enterprises; {SAMPLE} each")
    print(f"  citizen facts (PersonFacts)      {rate(world.person, people):>10,.0f} /s")
    fresh = World(count=count)
    print(
        f"  population native records       {rate(fresh.population.get_shared, people):>10,.0f} /s"
    )
    firms = rng.sample(range(world.enterprise_count), min(SAMPLE, world.enterprise_count))
    firm_rate = rate(World(count=count).enterprise, firms)
    print(f"  enterprise facts (EnterpriseFacts){firm_rate:>9,.0f} /s")
    # Sources whose `holds` builds the citizen's record facts (population and enterprise hold
    # everyone: their `holds` builds nothing, so they are measured above).
    for name, cls in discover().items():
        if name in ("population", "enterprise"):
            continue
        source = cls(World(count=count))
        print(f"  {name:<12} records (holds)      {rate(source.holds, people):>10,.0f} /s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
