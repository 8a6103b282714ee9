"""Run every simulated national database as one ASGI app over one `World`.

Besides each source's native routes (see its package), the app serves the sandbox's own admin
endpoints:

- ``GET /_sandbox/health``: the seed, the count and the sources;
- ``GET /_sandbox/sample?source=NAME&n=5&seed=S``: subjects that source holds (personal ids, or
  enterprise codes for business registration); the source defaults to population;
- ``GET/PUT /_sandbox/faults/NAME``: one source's faults (``sandbox.faults.Faults``, the
  hostile answers among them: every route of a source is wrapped for them);
  ``GET /_sandbox/faults`` shows all, ``PUT /_sandbox/faults`` sets the same faults on all;
- ``POST /_sandbox/record/NAME/KIND``: record a change as that database's officer would (a JSON
  body; civil records ``death``, ``birth``, ``marriage``, ``divorce``, population
  ``residence``; each source's ``recordable``): 201 with what was recorded (its ``sequence``
  among it), 400 naming the wrong field;
- ``GET /_sandbox/changes/NAME?after=0&limit=100``: a debug view of that database's change log
  in JSON (its native feed is the source's own operation).

With ``changes_rate`` above 0, `LiveChanges` records that many live changes a second, over the
databases that make them, from a background thread.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import threading
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from sandbox.changes import SandboxState
from sandbox.faults import FaultInjector, Faults, hostile_route
from sandbox.persist import StateFile, WorldKey
from sandbox.registry import SimulatedSource, discover
from sandbox.world import World


class SandboxAdmin:
    """The admin endpoints over the running sources."""

    def __init__(self, world: World, sources: Mapping[str, SimulatedSource]) -> None:
        self.world = world
        self.sources = dict(sources)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/_sandbox/health", self._health, methods=["GET"]),
            Route("/_sandbox/sample", self._sample, methods=["GET"]),
            Route("/_sandbox/faults", self._all_faults, methods=["GET", "PUT"]),
            Route("/_sandbox/faults/{source}", self._faults, methods=["GET", "PUT"]),
            Route("/_sandbox/record/{source}/{kind}", self._record, methods=["POST"]),
            Route("/_sandbox/changes/{source}", self._changes, methods=["GET"]),
        ]

    async def _record(self, request: Request) -> JSONResponse:
        name, kind = request.path_params["source"], request.path_params["kind"]
        source = self.sources.get(name)
        if source is None:
            return self._unknown(name)
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            recorded = source.record(kind, body)
        except ValueError as error:  # JSONDecodeError is a ValueError
            return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(recorded, status_code=201)

    async def _changes(self, request: Request) -> JSONResponse:
        name = request.path_params["source"]
        source = self.sources.get(name)
        if source is None:
            return self._unknown(name)
        after, limit = (
            request.query_params.get("after", "0"),
            request.query_params.get("limit", "100"),
        )
        if not after.isdigit() or not limit.isdigit() or not 1 <= int(limit) <= 1000:
            return JSONResponse(
                {"error": f"after must be >= 0 and limit 1..1000, got {after!r}, {limit!r}"},
                status_code=400,
            )
        changes, more = source.changes.page(int(after), int(limit))
        return JSONResponse(
            {
                "source": name,
                "head": source.changes.head,
                "backlog": source.changes.backlog,
                "more": more,
                "changes": [
                    {
                        "sequence": c.sequence,
                        "kind": c.kind,
                        "entity": c.entity,
                        "occurred_at": c.occurred_at.isoformat(),
                        "data": c.data,
                    }
                    for c in changes
                ],
            }
        )

    def _unknown(self, name: str) -> JSONResponse:
        return JSONResponse(
            {"error": f"no simulated source {name!r}; known: {sorted(self.sources)}"},
            status_code=404,
        )

    async def _health(self, request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "count": self.world.count,
                "seed": self.world.seed,
                "enterprises": self.world.enterprise_count,
                "sources": sorted(self.sources),
            }
        )

    async def _sample(self, request: Request) -> JSONResponse:
        name = request.query_params.get("source", "population")
        raw_n = request.query_params.get("n", "5")
        raw_seed = request.query_params.get("seed")
        if not raw_n.isdigit() or (raw_seed is not None and not raw_seed.lstrip("-").isdigit()):
            return JSONResponse(
                {"error": f"n must be a non-negative integer and seed an integer, got n={raw_n!r}"},
                status_code=400,
            )
        source = self.sources.get(name)
        if source is None:
            return self._unknown(name)
        seed = int(raw_seed) if raw_seed is not None else None
        return JSONResponse(source.sample(int(raw_n), seed))

    async def _faults(self, request: Request) -> JSONResponse:
        name = request.path_params["source"]
        source = self.sources.get(name)
        if source is None:
            return self._unknown(name)
        if request.method == "PUT":
            problem = await _update(request, [source.faults])
            if problem is not None:
                return problem
        return JSONResponse(source.faults.faults.to_dict())

    async def _all_faults(self, request: Request) -> JSONResponse:
        if request.method == "PUT":
            problem = await _update(request, [s.faults for s in self.sources.values()])
            if problem is not None:
                return problem
        return JSONResponse({name: s.faults.faults.to_dict() for name, s in self.sources.items()})


async def _update(request: Request, injectors: list[FaultInjector]) -> JSONResponse | None:
    try:
        data = await request.json()
        faults = Faults.from_mapping(data)
    except (ValueError, TypeError) as error:  # JSONDecodeError is a ValueError
        return JSONResponse({"error": str(error)}, status_code=400)
    for injector in injectors:
        injector.faults = faults
    return None


class LiveChanges:
    """Records `rate` live changes a second over `sources` (those that make them), in a
    daemon thread, until stopped."""

    def __init__(self, sources: Mapping[str, SimulatedSource], rate: float, seed: int) -> None:
        self.sources = list(sources.values())
        self.rate = rate
        self.rng = random.Random(seed)
        self.recorded = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-live-changes", daemon=True)

    def start(self) -> LiveChanges:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def record_one(self) -> bool:
        """Record one live change of a source picked at random; False if none made one."""
        for source in self.rng.sample(self.sources, len(self.sources)):
            with source.changes.lock:  # its sequence is the next one: nothing in between
                try:
                    change = source.live_change(self.rng)
                except LookupError:  # no case drawn this time: another source's turn
                    continue
                if change is not None:
                    source.changes.append(
                        change.kind, change.entity, change.data, change.occurred_at
                    )
                    self.recorded += 1
                    return True
        return False

    def _run(self) -> None:
        interval = 1.0 / self.rate
        due = time.monotonic()
        while not self._stop.is_set():
            if not self.record_one():
                return  # no source makes live changes
            due += interval
            pause = due - time.monotonic()
            if pause > 0:
                self._stop.wait(pause)
            elif pause < -1.0:
                due = time.monotonic()  # fell behind by a second: do not burst to catch up


def build_app(
    count: int,
    seed: int,
    faults: Mapping[str, Mapping[str, Any]] | None = None,
    changes_backlog: int = 0,
    changes_rate: float = 0.0,
    state_file: Path | None = None,
) -> Starlette:
    """The sandbox app: every registered source over ``count`` citizens from ``seed``, with
    ``faults`` (source name -> `Faults` fields) set from the start, the others faultless,
    ``changes_backlog`` changes in each database's change feed from the start, and
    ``changes_rate`` live changes a second recorded while the app runs (its lifespan). With a
    ``state_file``, what changed is kept there across restarts (`sandbox.persist`)."""
    faults = faults or {}
    classes = discover()
    unknown = sorted(set(faults) - set(classes))
    if unknown:
        raise ValueError(f"faults for unknown sources {unknown}; known: {sorted(classes)}")
    world = World(count=count, seed=seed)
    sources = {
        name: cls(world, FaultInjector(Faults.from_mapping(dict(faults.get(name, {})))))
        for name, cls in classes.items()
    }
    state = SandboxState()
    stored = StateFile(state_file, WorldKey(count, seed, changes_backlog)) if state_file else None
    saved = stored.read() if stored is not None else None
    if saved is not None:
        StateFile.restore_state(saved, state)
    for source in sources.values():
        source.enable_changes(changes_backlog, state)
    if saved is not None:
        StateFile.restore_logs(saved, sources)
    # Every route of a source can answer in a hostile form (sandbox.faults.HostileAnswers).
    routes: list[BaseRoute] = [
        hostile_route(route, source.faults)
        for source in sources.values()
        for route in source.routes()
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if stored is not None:
            stored.start(state, sources)
        live = LiveChanges(sources, changes_rate, seed).start() if changes_rate > 0 else None
        app.state.live_changes = live
        try:
            yield
        finally:
            if live is not None:
                live.stop()
            if stored is not None:
                stored.stop()

    app = Starlette(routes=[*routes, *SandboxAdmin(world, sources).routes()], lifespan=lifespan)
    app.state.world = world
    app.state.sources = sources
    app.state.sandbox_state = state
    app.state.changes_rate = changes_rate
    return app


def serve(
    host: str,
    port: int,
    count: int,
    seed: int,
    faults: Mapping[str, Mapping[str, Any]] | None = None,
    changes_backlog: int = 0,
    changes_rate: float = 0.0,
    state_file: Path | None = None,
) -> None:
    """Serve the sandbox with uvicorn until interrupted; with a live change generator of
    ``changes_rate`` changes a second (over all databases) when it is above 0, and what changed
    kept in ``state_file`` across restarts when one is given."""
    app = build_app(count, seed, faults, changes_backlog, changes_rate, state_file)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20250701)
    parser.add_argument("--faults", type=json.loads, default={}, help='{"insurance": {...}}')
    parser.add_argument("--changes-backlog", type=int, default=0)
    parser.add_argument("--changes-rate", type=float, default=0.0)
    parser.add_argument("--state-file", type=Path, default=None)
    args = parser.parse_args()
    serve(
        args.host,
        args.port,
        args.count,
        args.seed,
        args.faults,
        args.changes_backlog,
        args.changes_rate,
        args.state_file,
    )


if __name__ == "__main__":
    main()
