"""The sandbox app: every registered source, faults set at start and changed at run time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from sandbox.registry import discover
from sandbox.server import build_app


class Client:
    """A blocking client of the ASGI app in this process (no server, no port)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def _run(self, call: Callable[[httpx.AsyncClient], Any]) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
                response: httpx.Response = await call(http)
                return response

        return asyncio.run(go())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self._run(lambda http: http.get(path, **kwargs))

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self._run(lambda http: http.put(path, **kwargs))


def test_every_national_database_is_discovered() -> None:
    assert {"population", "insurance", "enterprise", "civil", "licence"} <= set(discover())


def test_faults_set_at_start_apply_to_their_source_only() -> None:
    client = Client(build_app(200, 7, faults={"licence": {"latency_ms": 20, "error_rate": 0.5}}))
    assert client.get("/_sandbox/faults/licence").json()["error_rate"] == 0.5
    assert client.get("/_sandbox/faults/population").json()["error_rate"] == 0
    assert set(client.get("/_sandbox/faults").json()) >= {"population", "licence"}


def test_faults_changed_at_run_time_for_one_source_or_all() -> None:
    client = Client(build_app(200, 7))
    assert client.put("/_sandbox/faults/civil", json={"outage": True}).status_code == 200
    assert client.get("/_sandbox/faults/civil").json()["outage"] is True
    assert client.get("/_sandbox/faults/population").json()["outage"] is False
    client.put("/_sandbox/faults", json={"latency_ms": 5})
    assert {f["latency_ms"] for f in client.get("/_sandbox/faults").json().values()} == {5}


def test_a_wrong_fault_is_refused_naming_the_field() -> None:
    client = Client(build_app(200, 7))
    answer = client.put("/_sandbox/faults/licence", json={"error_status": 404})
    assert answer.status_code == 400
    assert "error_status must be one of [500, 502, 503]" in answer.json()["error"]
    assert client.get("/_sandbox/faults/nope").status_code == 404


def test_faults_for_an_unknown_source_stop_the_start() -> None:
    with pytest.raises(ValueError, match="faults for unknown sources \\['nope'\\]"):
        build_app(200, 7, faults={"nope": {}})


def test_sample_lists_subjects_of_the_source_asked() -> None:
    client = Client(build_app(500, 7))
    codes = client.get("/_sandbox/sample", params={"source": "enterprise", "n": 3}).json()
    ids = client.get("/_sandbox/sample", params={"source": "licence", "n": 3}).json()
    assert len(codes) == 3 and all(len(code) == 10 for code in codes)
    assert len(ids) == 3 and all(len(pid) == 12 for pid in ids)
