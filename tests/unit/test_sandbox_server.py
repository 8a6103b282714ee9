"""The sandbox app: every registered source, faults set at start and changed at run time."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from sandbox.registry import discover
from sandbox.server import build_app


def test_every_national_database_is_discovered() -> None:
    assert {"population", "insurance", "enterprise", "civil", "licence"} <= set(discover())


def test_faults_set_at_start_apply_to_their_source_only() -> None:
    app = build_app(200, 7, faults={"licence": {"latency_ms": 20, "error_rate": 0.5}})
    with TestClient(app) as client:
        assert client.get("/_sandbox/faults/licence").json()["error_rate"] == 0.5
        assert client.get("/_sandbox/faults/population").json()["error_rate"] == 0
        every = client.get("/_sandbox/faults").json()
        assert set(every) >= {"population", "licence"}


def test_faults_changed_at_run_time_for_one_source_or_all() -> None:
    with TestClient(build_app(200, 7)) as client:
        assert client.put("/_sandbox/faults/civil", json={"outage": True}).status_code == 200
        assert client.get("/_sandbox/faults/civil").json()["outage"] is True
        assert client.get("/_sandbox/faults/population").json()["outage"] is False
        client.put("/_sandbox/faults", json={"latency_ms": 5})
        assert {f["latency_ms"] for f in client.get("/_sandbox/faults").json().values()} == {5}


def test_a_wrong_fault_is_refused_naming_the_field() -> None:
    with TestClient(build_app(200, 7)) as client:
        answer = client.put("/_sandbox/faults/licence", json={"error_status": 404})
        assert answer.status_code == 400
        assert "error_status must be one of [500, 502, 503]" in answer.json()["error"]
        assert client.get("/_sandbox/faults/nope").status_code == 404


def test_faults_for_an_unknown_source_stop_the_start() -> None:
    with pytest.raises(ValueError, match="faults for unknown sources \\['nope'\\]"):
        build_app(200, 7, faults={"nope": {}})


def test_sample_lists_subjects_of_the_source_asked() -> None:
    with TestClient(build_app(500, 7)) as client:
        codes = client.get("/_sandbox/sample", params={"source": "enterprise", "n": 3}).json()
        ids = client.get("/_sandbox/sample", params={"source": "licence", "n": 3}).json()
    assert len(codes) == 3 and all(len(code) == 10 for code in codes)
    assert len(ids) == 3 and all(len(pid) == 12 for pid in ids)
