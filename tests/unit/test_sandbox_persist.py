"""A restarted sandbox keeps what changed while it ran, as a database keeps its data: the changes
recorded and the updates applied (with their idempotency keys) come back, and its change logs go
on from where they were; a file of another world is set aside, not read."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import httpx
from lxml import etree

from tests.sandbox_server import serve_sandbox

COUNT, SEED, BACKLOG = 1_000, 11, 30
POPULATION = ("/dancu", "urn:tthc-sandbox:csdl-dan-cu:v1")
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"


def soap_field(http: httpx.Client, operation: str, wanted: str, **fields: str) -> str:
    """The text of element `wanted` in the population database's answer to `operation`."""
    path, namespace = POPULATION
    inner = "".join(f"<n:{name}>{value}</n:{name}>" for name, value in fields.items())
    body = (
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:n="{namespace}"><soap:Body>'
        f"<n:{operation}>{inner}</n:{operation}></soap:Body></soap:Envelope>"
    )
    answer = http.post(path, content=unicodedata.normalize("NFC", body).encode())
    assert answer.status_code == 200, answer.text
    found = [e.text for e in etree.fromstring(answer.content).iter(f"{{*}}{wanted}")]
    assert len(found) == 1, answer.text
    return found[0] or ""


def log_of(http: httpx.Client, source: str) -> dict[str, Any]:
    answer = http.get(f"/_sandbox/changes/{source}", params={"after": BACKLOG, "limit": 100})
    answer.raise_for_status()
    return dict(answer.json())


def test_a_restarted_sandbox_keeps_recorded_changes_and_applied_updates(tmp_path: Path) -> None:
    state = tmp_path / "sandbox-state.pickle"
    first = serve_sandbox(COUNT, SEED, changes_backlog=BACKLOG, state_file=state)
    world = first.world
    index = next(i for i in range(COUNT) if world.death(i) is None and world.person(i).birth_date)
    dead, moved_out = world.population.personal_id(index), world.population.personal_id(7)
    removal = {
        "MaYeuCau": "t",
        "MaDonViYeuCau": "x",
        "MaGiaoDich": "rm-7",
        "SoDinhDanh": moved_out,
        "NgayHieuLuc": "20261120",
    }
    try:
        with httpx.Client(base_url=first.base_url, timeout=10) as http:
            death = {"personal_id": dead, "date_of_death": "2026-11-20"}
            assert http.post("/_sandbox/record/civil/death", json=death).status_code == 201
            done_before = soap_field(http, "XoaDangKyThuongTru", "DaXuLyTruocDo", **removal)
            assert done_before == "false"
            civil, population = log_of(http, "civil"), log_of(http, "population")
    finally:
        first.stop()
    assert state.exists()
    assert (civil["head"], population["head"]) == (BACKLOG + 1, BACKLOG + 1)

    second = serve_sandbox(COUNT, SEED, changes_backlog=BACKLOG, state_file=state)
    try:
        with httpx.Client(base_url=second.base_url, timeout=10) as http:
            assert log_of(http, "civil") == civil  # the same changes, under the same sequences
            assert log_of(http, "population") == population
            # The update's idempotency key is remembered: applied once, not again.
            assert soap_field(http, "XoaDangKyThuongTru", "DaXuLyTruocDo", **removal) == "true"
            # The recorded death still shows: a second one for the same person is refused.
            again = http.post("/_sandbox/record/civil/death", json={"personal_id": dead})
            assert again.status_code == 400 and "personal_id" in again.json()["error"]
            # What is recorded now comes after what was recorded before the restart.
            other = next(
                i
                for i in range(index + 1, COUNT)
                if world.death(i) is None and world.person(i).birth_date
            )
            body = {"personal_id": world.population.personal_id(other)}
            recorded = http.post("/_sandbox/record/civil/death", json=body)
            assert recorded.status_code == 201, recorded.text
            assert recorded.json()["sequence"] == BACKLOG + 2
    finally:
        second.stop()


def test_a_state_file_of_another_world_is_set_aside(tmp_path: Path) -> None:
    state = tmp_path / "sandbox-state.pickle"
    first = serve_sandbox(COUNT, SEED, changes_backlog=BACKLOG, state_file=state)
    try:
        with httpx.Client(base_url=first.base_url, timeout=10) as http:
            world = first.world
            index = next(i for i in range(COUNT) if world.death(i) is None)
            death = {"personal_id": world.population.personal_id(index)}
            assert http.post("/_sandbox/record/civil/death", json=death).status_code == 201
    finally:
        first.stop()
    other = serve_sandbox(COUNT, SEED + 1, changes_backlog=BACKLOG, state_file=state)
    try:
        with httpx.Client(base_url=other.base_url, timeout=10) as http:
            assert log_of(http, "civil")["head"] == BACKLOG  # nothing of the other world
    finally:
        other.stop()
    assert (tmp_path / "sandbox-state.pickle.old").exists()
