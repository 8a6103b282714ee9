"""The operating pages of a process that serves no other HTTP (the audit ledger writer):
`/healthz` (alive), `/readyz` (its checks, bus/ops/health.py; 503 naming what fails) and
`/metrics` (its Prometheus exposition), on a port of their own. The worker serves the same
pages on faust's web server (bus/streams.py), the gateway on its own app."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bus.ops.health import Check, readiness


class OpsPages:
    def __init__(self, host: str, port: int, checks: Mapping[str, Check]) -> None:
        self.host = host
        self.port = port
        self._checks = checks
        self._runner: web.AppRunner | None = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        ready, results = await readiness(self._checks)
        body = {"status": "ready" if ready else "not ready", "checks": results}
        return web.json_response(body, status=200 if ready else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        # aiohttp refuses a charset in content_type: the exposition type goes as a header.
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
