"""The audit ledger on both of its backends, SQLite and a real PostgreSQL server; the `audit` CLI;
and the `LedgerWriter` consumer, in process and on the real Kafka broker.

Tampering is done the way someone with database access would do it: SQL straight on the table.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from bus import topics
from bus.audit.consumer import LedgerWriter
from bus.audit.ledger import (
    GENESIS,
    TABLE,
    Ledger,
    LedgerError,
    LedgerRow,
    LedgerUnavailable,
    content_hash,
)
from bus.audit.pseudonym import Pseudonymizer
from bus.codec import encode
from bus.errors import SettingsError
from bus.kafka import AsyncProducer
from bus.runtime import Inbound, KafkaRunner
from bus.schemas.audit import AuditedDataset, AuditEvent, AuditKind, audit_event_id
from bus.settings import get_settings
from bus.tooling.audit_cli import audit_app
from bus.tooling.kafka_local import free_port
from sandbox.population.generator import PopulationGenerator
from tests.unit.recording_outbox import RecordingOutbox

PSEUDONYM_KEY = "khoa-gia-danh-kiem-thu-2025"
PSEUDONYMIZE = Pseudonymizer(PSEUDONYM_KEY.encode())
CITIZENS = PopulationGenerator(count=50, seed=20250701)
BRIDE, GROOM = CITIZENS.personal_id(3), CITIZENS.personal_id(4)
T0 = datetime(2025, 7, 1, 1, 30, tzinfo=UTC)  # 08:30 in Hanoi
CHAIN = "tthc.audit-0"


# -- test data ----------------------------------------------------------------------------------


def access(
    n: int,
    citizen: str = BRIDE,
    *,
    kind: AuditKind = "release",
    minutes: int | None = None,
    agency: str = "H26.22",
) -> AuditEvent:
    """The audit event of lookup n of a marriage registration dossier, at T0 + n minutes."""
    request_id = f"9f1c2e7a0b3d4c5e8f60718293a4b5c{n % 10}-{n:04d}"
    return AuditEvent(
        message_id=audit_event_id(request_id, kind),
        kind=kind,
        outcome="released" if kind == "release" else "accepted",
        channel="http",
        time=T0 + timedelta(minutes=n if minutes is None else minutes),
        request_id=request_id,
        agency=agency,
        key_id="a1b2c3d4e5f60718",
        system="dvc-ha-noi",
        officer="can-bo-tu-phap-07",
        procedure_code="SB.KET-HON",
        dossier_id=f"HS-2025-{n:06d}",
        purpose="Đăng ký kết hôn",
        legal_basis="Luật Hộ tịch 2014",
        subject=PSEUDONYMIZE(citizen),
        subject_kind="personal_id",
        datasets=[
            AuditedDataset(
                dataset="population.identity",
                source="population",
                outcome="found" if kind == "release" else "granted",
                fields=["full_name", "date_of_birth", "permanent_address"],
            ),
            AuditedDataset(
                dataset="civil.marital_status",
                source="civil",
                outcome="found" if kind == "release" else "granted",
                fields=["marital_status"],
            ),
        ],
    )


# -- both backends ------------------------------------------------------------------------------


class Database:
    """Raw SQL on the ledger's database, bypassing the ledger: how tampering is done."""

    def __init__(self, url: str, backend: str, path: Path | None = None) -> None:
        self.url, self.backend, self.path = url, backend, path

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        if self.backend == "sqlite":
            assert self.path is not None
            with sqlite3.connect(self.path) as connection:
                return connection.execute(sql).fetchall()
        with psycopg.connect(self.url, autocommit=True) as connection:
            cursor = connection.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def shift_time(self, seq: int, chain: str = CHAIN) -> None:
        """Move one row's time by a second, in the backend's own type."""
        if self.backend == "sqlite":
            new = "2025-07-01T01:33:01.000000Z"
            self.execute(f"UPDATE {TABLE} SET \"time\" = '{new}' WHERE seq = {seq}")
        else:
            self.execute(
                f'UPDATE {TABLE} SET "time" = "time" + interval \'1 second\' '
                f"WHERE chain = '{chain}' AND seq = {seq}"
            )


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty ledger database: a file in tmp_path, or a schema of its own on the session's
    PostgreSQL server (the ledger's connections find it through search_path)."""
    if request.param == "sqlite":
        path = tmp_path / "audit.db"
        yield Database(f"sqlite:///{path}", "sqlite", path)
        return
    server_url: str = request.getfixturevalue("postgres_url")
    schema = f"ledger_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    yield Database(f"{server_url}?options=-csearch_path%3D{schema}", "postgresql")
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def ledger(database: Database) -> Iterator[Ledger]:
    with Ledger.open(database.url) as opened:
        yield opened


def filled(ledger: Ledger, count: int = 5, chain: str = CHAIN) -> list[AuditEvent]:
    events = [access(n) for n in range(1, count + 1)]
    assert ledger.append(chain, events) == count
    return events


# -- storing and asking -------------------------------------------------------------------------


def test_a_subject_s_accesses_come_back_newest_first_with_what_was_released(
    ledger: Ledger,
) -> None:
    ledger.append(CHAIN, [access(1), access(2, GROOM), access(3), access(4, kind="decision")])

    records = ledger.query(PSEUDONYMIZE(BRIDE))

    assert [r.dossier_id for r in records] == ["HS-2025-000004", "HS-2025-000003", "HS-2025-000001"]
    newest = records[1]
    assert newest.time == T0 + timedelta(minutes=3)
    assert (newest.agency, newest.system, newest.officer) == (
        "H26.22",
        "dvc-ha-noi",
        "can-bo-tu-phap-07",
    )
    assert (newest.procedure_code, newest.purpose, newest.legal_basis) == (
        "SB.KET-HON",
        "Đăng ký kết hôn",
        "Luật Hộ tịch 2014",
    )
    assert (newest.kind, newest.outcome) == ("release", "released")
    assert [(d.dataset, d.fields) for d in newest.datasets] == [
        ("population.identity", ["full_name", "date_of_birth", "permanent_address"]),
        ("civil.marital_status", ["marital_status"]),
    ]
    assert [r.dossier_id for r in ledger.query(PSEUDONYMIZE(GROOM))] == ["HS-2025-000002"]
    assert ledger.query(PSEUDONYMIZE(CITIZENS.personal_id(5))) == []


def test_since_is_inclusive_until_exclusive_and_limit_keeps_the_newest(ledger: Ledger) -> None:
    ledger.append(CHAIN, [access(n) for n in range(1, 7)])
    bride = PSEUDONYMIZE(BRIDE)
    hanoi = timezone(timedelta(hours=7))

    window = ledger.query(bride, since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=5))
    newest = ledger.query(bride, limit=2)
    since_08_35_in_hanoi = ledger.query(bride, since=datetime(2025, 7, 1, 8, 35, tzinfo=hanoi))

    assert [r.dossier_id for r in window] == ["HS-2025-000004", "HS-2025-000003", "HS-2025-000002"]
    assert [r.dossier_id for r in newest] == ["HS-2025-000006", "HS-2025-000005"]
    assert [r.dossier_id for r in since_08_35_in_hanoi] == ["HS-2025-000006", "HS-2025-000005"]


def test_an_event_delivered_again_is_stored_once(ledger: Ledger, database: Database) -> None:
    first, second, third = access(1), access(2), access(3)

    assert ledger.append(CHAIN, [first, second, first]) == 2  # twice in one batch
    assert ledger.append(CHAIN, [second, third, third]) == 1  # again, and twice in one batch
    assert ledger.append("tthc.audit-1", [first]) == 0  # the same event id in another chain
    assert ledger.append(CHAIN, []) == 0

    ids = database.execute(f"SELECT event_id FROM {TABLE} ORDER BY chain, seq")
    assert [row[0] for row in ids] == [first.message_id, second.message_id, third.message_id]
    assert ledger.verify().intact


def test_rows_are_numbered_and_each_links_to_the_one_before(
    ledger: Ledger, database: Database
) -> None:
    filled(ledger, 3)

    rows = database.execute(f"SELECT seq, prev_hash, hash FROM {TABLE} ORDER BY seq")

    assert [row[0] for row in rows] == [1, 2, 3]
    assert rows[0][1] == GENESIS
    assert rows[1][1] == rows[0][2] and rows[2][1] == rows[1][2]
    assert len({row[2] for row in rows}) == 3


# -- verification -------------------------------------------------------------------------------


def test_an_intact_ledger_verifies_clean(ledger: Ledger) -> None:
    filled(ledger, 5)
    ledger.append("tthc.audit-1", [access(10), access(11)])

    report = ledger.verify()

    assert report.intact and report.broken == ()
    assert [(c.chain, c.rows, c.last_seq) for c in report.chains] == [
        ("tthc.audit-0", 5, 5),
        ("tthc.audit-1", 2, 2),
    ]
    assert report.rows == 7


def test_an_empty_ledger_verifies_clean(ledger: Ledger) -> None:
    report = ledger.verify()
    assert report.intact and report.chains == ()


@pytest.mark.parametrize(
    "change",
    [
        "agency = 'X'",
        "officer = NULL",
        "purpose = 'Tra cứu cá nhân'",
        "datasets = '[]'",
        "subject = 'aa'",
        "outcome = 'withheld'",
    ],
)
def test_a_column_changed_in_the_database_breaks_verification_at_that_row(
    ledger: Ledger, database: Database, change: str
) -> None:
    events = filled(ledger, 5)

    database.execute(f"UPDATE {TABLE} SET {change} WHERE seq = 3")
    broken = ledger.verify().broken

    assert [(b.chain, b.seq, b.event_id, b.problem) for b in broken] == [
        (CHAIN, 3, events[2].message_id, "hash does not match its contents")
    ]


def test_a_row_whose_time_was_moved_breaks_verification(ledger: Ledger, database: Database) -> None:
    filled(ledger, 5)

    database.shift_time(3)

    assert [(b.seq, b.problem) for b in ledger.verify().broken] == [
        (3, "hash does not match its contents")
    ]


def test_a_row_rewritten_with_a_matching_hash_no_longer_links_to_the_next(
    ledger: Ledger, database: Database
) -> None:
    events = filled(ledger, 5)
    stored = database.execute(f"SELECT hash, prev_hash FROM {TABLE} WHERE seq = 3")[0]
    forged = LedgerRow.of(CHAIN, 3, stored[1], access(3, agency="G09.15"))
    assert forged.hash != stored[0]

    database.execute(f"UPDATE {TABLE} SET agency = 'G09.15', hash = '{forged.hash}' WHERE seq = 3")
    broken = ledger.verify().broken

    assert [(b.seq, b.event_id, b.problem) for b in broken] == [
        (4, events[3].message_id, "prev_hash does not link to row 3")
    ]


def test_a_deleted_row_is_named_as_the_gap(ledger: Ledger, database: Database) -> None:
    events = filled(ledger, 5)

    database.execute(f"DELETE FROM {TABLE} WHERE seq = 2")
    report = ledger.verify()

    assert [(b.seq, b.event_id, b.problem) for b in report.broken] == [
        (3, events[2].message_id, "row 2 missing")
    ]
    assert report.chains[0].rows == 4


def test_deleted_first_rows_are_named(ledger: Ledger, database: Database) -> None:
    filled(ledger, 5)

    database.execute(f"DELETE FROM {TABLE} WHERE seq <= 2")

    assert [(b.seq, b.problem) for b in ledger.verify().broken] == [(3, "rows 1-2 missing")]


def test_a_broken_chain_does_not_hide_the_state_of_another(
    ledger: Ledger, database: Database
) -> None:
    filled(ledger, 4, chain="tthc.audit-0")
    ledger.append("tthc.audit-1", [access(n) for n in range(10, 13)])
    ledger.append("tthc.audit-2", [access(n) for n in range(20, 25)])

    database.execute(f"UPDATE {TABLE} SET agency = 'X' WHERE chain = 'tthc.audit-1' AND seq = 2")
    report = ledger.verify()

    assert [(c.chain, c.rows, c.intact) for c in report.chains] == [
        ("tthc.audit-0", 4, True),
        ("tthc.audit-1", 3, False),
        ("tthc.audit-2", 5, True),
    ]
    assert [(b.chain, b.seq) for b in report.broken] == [("tthc.audit-1", 2)]


# -- continuing a chain -------------------------------------------------------------------------


def test_a_reopened_ledger_continues_the_chain(database: Database) -> None:
    with Ledger.open(database.url) as first:
        filled(first, 3)
        head = first.verify().chains[0].head_hash

    with Ledger.open(database.url) as again:
        assert again.append(CHAIN, [access(4), access(5)]) == 2
        report = again.verify()

    rows = database.execute(f"SELECT seq, prev_hash FROM {TABLE} WHERE seq = 4")
    assert rows == [(4, head)]
    assert report.intact and report.chains[0].rows == 5


def test_a_writer_whose_remembered_tail_is_stale_reads_the_chain_again(database: Database) -> None:
    """A partition moved to another process and back (a rebalance): the chain went on meanwhile."""
    with Ledger.open(database.url) as here, Ledger.open(database.url) as there:
        here.append(CHAIN, [access(1), access(2)])
        there.append(CHAIN, [access(3)])  # reads the tail from the database: seq 3

        assert here.append(CHAIN, [access(4), access(3)]) == 1  # remembered seq 2: conflict
        report = here.verify()

    assert report.intact and report.chains[0].last_seq == 4


# -- opening ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["mysql://audit@db.example.vn/audit", "sqlite://relative.db", "sqlite:///", "audit.db"],
)
def test_a_url_of_another_form_names_the_setting_and_the_forms_expected(url: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Ledger.open(url)

    message = str(raised.value)
    assert "audit.ledger_url" in message and "TTHC_BUS_AUDIT__LEDGER_URL" in message
    assert "sqlite:///PATH" in message and "postgresql://user@host:port/dbname" in message


def test_an_unreachable_postgresql_is_one_clear_line_without_the_password() -> None:
    url = f"postgresql://audit:mat-khau-bi-mat@127.0.0.1:{free_port()}/audit"

    with pytest.raises(SettingsError) as raised:
        Ledger.open(url)

    message = str(raised.value)
    assert "cannot connect to PostgreSQL at postgresql://audit:***@127.0.0.1" in message
    assert "mat-khau-bi-mat" not in message and "\n" not in message


def test_a_file_that_is_not_a_database_is_a_settings_error(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    path.write_text("not a database, a note\n" * 100)

    with pytest.raises(SettingsError, match=r"audit\.ledger_url"):
        Ledger.open(f"sqlite:///{path}")


def test_a_relative_sqlite_path_is_under_the_project_root() -> None:
    from bus.audit.ledger import _SqliteBackend
    from bus.settings import PROJECT_ROOT

    assert _SqliteBackend.path_of("sqlite:///.run/audit.db") == PROJECT_ROOT / ".run/audit.db"
    assert _SqliteBackend.path_of("sqlite:////var/lib/tthc/audit.db") == Path(
        "/var/lib/tthc/audit.db"
    )


def test_a_row_changed_to_unreadable_content_is_a_ledger_error_in_a_query(
    ledger: Ledger, database: Database
) -> None:
    filled(ledger, 2)
    database.execute(f"UPDATE {TABLE} SET datasets = 'not json' WHERE seq = 1")

    with pytest.raises(LedgerError, match="run `tthc-bus audit verify`"):
        ledger.query(PSEUDONYMIZE(BRIDE))


def test_the_hash_covers_every_column() -> None:
    row = LedgerRow.of(CHAIN, 1, GENESIS, access(1))
    for item in dataclasses.fields(row):
        if item.name == "hash":
            continue
        value = getattr(row, item.name)
        changed = dataclasses.replace(row, **{item.name: value + 1 if item.name == "seq" else "x"})
        assert content_hash(changed) != row.hash, item.name


# -- the command line ---------------------------------------------------------------------------


@pytest.fixture
def cli(database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("TTHC_BUS_AUDIT__LEDGER_URL", database.url)
    monkeypatch.setenv("TTHC_BUS_AUDIT__PSEUDONYM_KEY", PSEUDONYM_KEY)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_audit_verify_exits_0_on_an_intact_ledger_and_1_naming_the_broken_row(
    cli: CliRunner, ledger: Ledger, database: Database
) -> None:
    events = filled(ledger, 4)

    intact = cli.invoke(audit_app, ["verify"])
    database.execute(f"UPDATE {TABLE} SET agency = 'X' WHERE seq = 3")
    broken = cli.invoke(audit_app, ["verify"])

    assert intact.exit_code == 0, intact.output
    assert "tthc.audit-0" in intact.output and "intact" in intact.output
    assert "every chain is intact" in intact.output
    assert broken.exit_code == 1, broken.output
    assert (
        f"tthc.audit-0: first broken row seq 3 (event {events[2].message_id}): "
        "hash does not match its contents"
    ) in broken.output


def test_audit_query_tells_who_accessed_a_person_s_data(cli: CliRunner, ledger: Ledger) -> None:
    ledger.append(CHAIN, [access(1), access(2, GROOM), access(3, kind="decision")])

    shown = cli.invoke(audit_app, ["query", "--subject", BRIDE])
    none = cli.invoke(audit_app, ["query", "--subject", CITIZENS.personal_id(9)])

    assert shown.exit_code == 0, shown.output
    for expected in (
        "2025-07-01 08:31:00",  # T0 + 1 min, in Vietnam time
        "H26.22",
        "can-bo-tu-phap-07",
        "SB.KET-HON",
        "Đăng ký kết hôn",
        "population.identity (found): full_name, date_of_birth, permanent_address",
        "decision: accepted",
    ):
        assert expected in shown.output, expected
    assert "HS-2025-000002" not in shown.output  # the groom's
    assert BRIDE not in shown.output and PSEUDONYMIZE(BRIDE) not in shown.output
    assert none.exit_code == 0 and "No access" in none.output


def test_audit_query_as_json_with_a_period_in_vietnam_time(cli: CliRunner, ledger: Ledger) -> None:
    ledger.append(CHAIN, [access(n) for n in range(1, 5)])

    result = cli.invoke(
        audit_app,
        ["query", "--subject", BRIDE, "--since", "2025-07-01T08:32", "--until", "2025-07-01T08:34",
         "--json"],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    assert [r["dossier_id"] for r in records] == ["HS-2025-000003", "HS-2025-000002"]
    assert records[0]["time"] == "2025-07-01T01:33:00Z"
    assert records[0]["datasets"][1] == {
        "dataset": "civil.marital_status",
        "source": "civil",
        "outcome": "found",
        "fields": ["marital_status"],
        "withheld": [],
    }


def test_audit_commands_report_a_bad_ledger_url_in_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TTHC_BUS_AUDIT__LEDGER_URL", "mysql://audit@db.example.vn/audit")
    monkeypatch.setenv("TTHC_BUS_AUDIT__PSEUDONYM_KEY", PSEUDONYM_KEY)
    get_settings.cache_clear()
    try:
        verify = CliRunner().invoke(audit_app, ["verify"])
        query = CliRunner().invoke(audit_app, ["query", "--subject", BRIDE])
    finally:
        get_settings.cache_clear()

    for result in (verify, query):
        assert result.exit_code == 2
        assert result.output.startswith("error: audit.ledger_url")
        assert result.output.count("\n") == 1 and "Traceback" not in result.output


def test_audit_query_without_a_pseudonym_key_says_which_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text(f'[audit]\nledger_url = "sqlite:///{tmp_path}/audit.db"\n')
    monkeypatch.setenv("TTHC_BUS_SETTINGS_FILE", str(settings))  # the sandbox's key left out
    monkeypatch.delenv("TTHC_BUS_AUDIT__PSEUDONYM_KEY", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(audit_app, ["query", "--subject", BRIDE])
    finally:
        get_settings.cache_clear()

    assert result.exit_code == 2
    assert "TTHC_BUS_AUDIT__PSEUDONYM_KEY" in result.output and BRIDE not in result.output


# -- the consumer, in process -------------------------------------------------------------------


def inbound(chain_partition: int, offset: int) -> Inbound:
    return Inbound(topics.AUDIT, chain_partition, offset, None, None, (), 0)


class FlakyLedger:
    """A real ledger whose database is unavailable for the first `outages` appends, and that
    refuses one event for good (as PostgreSQL refuses a NUL character in text)."""

    def __init__(self, ledger: Ledger, outages: int = 0, refuse: str | None = None) -> None:
        self.ledger = ledger
        self.outages = outages
        self.refuse = refuse
        self.attempts = 0

    def append(self, chain: str, events: Sequence[AuditEvent]) -> int:
        self.attempts += 1
        if self.outages > 0:
            self.outages -= 1
            raise LedgerUnavailable("PostgreSQL ledger: connection refused")
        if any(event.message_id == self.refuse for event in events):
            raise LedgerError("PostgreSQL ledger: DataError (SQLSTATE 22021)")
        return self.ledger.append(chain, events)


async def test_the_writer_stores_a_partition_s_events_in_offset_order(ledger: Ledger) -> None:
    writer = LedgerWriter(ledger)
    await writer.start()
    events = [access(n) for n in range(1, 9)]
    try:
        handled = [
            asyncio.create_task(writer.on_event(event, inbound(n % 2, n // 2)))
            for n, event in enumerate(events)
        ]
        await asyncio.wait_for(asyncio.gather(*handled), 10)
    finally:
        await writer.stop()

    report = ledger.verify()
    assert report.intact
    assert [(c.chain, c.rows) for c in report.chains] == [("tthc.audit-0", 4), ("tthc.audit-1", 4)]
    newest_first = [r.event_id for r in ledger.query(PSEUDONYMIZE(BRIDE))]
    assert newest_first == [event.message_id for event in reversed(events)]


async def test_while_the_ledger_is_unavailable_no_handler_returns(ledger: Ledger) -> None:
    flaky = FlakyLedger(ledger, outages=3)
    writer = LedgerWriter(flaky, retry_first_s=0.05)
    await writer.start()
    try:
        handled = asyncio.gather(*(writer.on_event(access(n), inbound(0, n)) for n in range(3)))
        await asyncio.sleep(0.06)
        assert not handled.done()  # not stored: the offsets must not be committed yet
        await asyncio.wait_for(handled, 10)
    finally:
        await writer.stop()

    assert flaky.attempts >= 4
    assert ledger.verify().chains[0].rows == 3


async def test_an_event_the_ledger_refuses_fails_only_its_own_handler(ledger: Ledger) -> None:
    refused = access(2)
    writer = LedgerWriter(FlakyLedger(ledger, refuse=refused.message_id))
    await writer.start()
    try:
        results = await asyncio.wait_for(
            asyncio.gather(
                *(writer.on_event(access(n), inbound(0, n)) for n in range(1, 5)),
                return_exceptions=True,
            ),
            10,
        )
    finally:
        await writer.stop()

    assert [type(r).__name__ for r in results] == [
        "NoneType",
        "LedgerError",
        "NoneType",
        "NoneType",
    ]
    assert writer.refused == 1 and ledger.verify().chains[0].rows == 3


# -- the consumer on the real broker ------------------------------------------------------------


@pytest.mark.integration
async def test_the_ledger_writer_stores_tthc_audit_hash_chained_per_partition(
    kafka_broker: Any, database: Database
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    topic = f"{topics.AUDIT}.test-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(topics.ensure_topics, bootstrap, [topics.TopicSpec(topic, 2)])
    group = f"test-ledger-{uuid.uuid4().hex[:8]}"
    producer = AsyncProducer(bootstrap, "test-audit-producer")
    await producer.start()

    async def produce(events: list[tuple[int, AuditEvent]]) -> None:
        for partition, event in events:
            body, headers = encode(event)
            key = (event.request_id or "").encode()
            await producer.send(topic, body, key=key, partition=partition, headers=headers)

    async def run_writer_until(processed: int) -> LedgerWriter:
        """A worker's ledger writer, until it has taken `processed` events; then stopped."""
        ledger = Ledger.open(database.url)
        writer = LedgerWriter(ledger, topic=topic)
        runner = KafkaRunner(bootstrap, group, RecordingOutbox(), [writer.subscriber()])
        await writer.start()
        await runner.start()
        try:
            async with asyncio.timeout(60):
                while writer.stored + writer.duplicates < processed:
                    await asyncio.sleep(0.05)
        finally:
            await runner.stop()
            await writer.stop()
            ledger.close()
        return writer

    first = [access(n) for n in range(1, 6)]
    try:
        await produce([(0, e) for e in first] + [(1, access(10)), (0, first[1])])
        writer = await run_writer_until(7)
        # A restart on the same group: the chain goes on, an event seen before is skipped.
        await produce([(0, access(6)), (0, first[0]), (1, access(11))])
        again = await run_writer_until(3)
    finally:
        await producer.stop()

    chain0 = database.execute(
        f"SELECT event_id FROM {TABLE} WHERE chain = '{topic}-0' ORDER BY seq"
    )
    assert [row[0] for row in chain0] == [e.message_id for e in [*first, access(6)]]
    with Ledger.open(database.url) as ledger:
        report = ledger.verify()
    assert report.intact
    assert [(c.chain, c.rows) for c in report.chains] == [(f"{topic}-0", 6), (f"{topic}-1", 2)]
    assert (writer.stored, writer.duplicates) == (6, 1)
    assert (again.stored, again.duplicates) == (2, 1)
