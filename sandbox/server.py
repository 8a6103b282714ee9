"""Run the sandbox national databases as one ASGI app (today: the population database)."""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette

from sandbox.faults import FaultInjector
from sandbox.population.generator import PopulationGenerator
from sandbox.population.service import PopulationService


def build_app(count: int, seed: int) -> Starlette:
    """The sandbox app: ``count`` synthetic citizens from ``seed``, faults off."""
    service = PopulationService(PopulationGenerator(count=count, seed=seed), FaultInjector())
    app = Starlette(routes=service.routes())
    app.state.population = service
    return app


def serve(host: str, port: int, count: int, seed: int) -> None:
    """Serve the sandbox with uvicorn until interrupted."""
    uvicorn.run(build_app(count, seed), host=host, port=port, log_level="warning", access_log=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20250701)
    args = parser.parse_args()
    serve(args.host, args.port, args.count, args.seed)


if __name__ == "__main__":
    main()
