"""The audit ledger: every event of `tthc.audit`, stored once, hash-chained, queryable by subject.

Rows are kept in chains (the consumer uses one per Kafka partition, `tthc.audit-3`), numbered
1, 2, 3... Each row holds `prev_hash`, the hash of the row before it (`GENESIS` for the first),
and `hash`, SHA-256 over `prev_hash` and a canonical serialization of every other column. A row
changed in the database (its agency, its time, anything) no longer matches its hash, a row
recomputed to match no longer links to the next, a row deleted leaves a gap in `seq`:
`Ledger.verify` names the first broken row of each chain. Rows cut from the end of a chain leave
no trace inside the ledger; `ChainReport.head_hash` is what to record elsewhere to detect that.

An event is stored once whatever the chain (`event_id` is unique): a redelivery after a crash is
skipped. Subject ids are pseudonyms (`bus.audit.pseudonym`); the ledger never sees a raw id.

Two backends behind one small interface: SQLite (the stdlib's `sqlite3`, the embedded default) and
PostgreSQL (psycopg 3). `Ledger.open(url)` picks one from the URL and creates the table if missing.
A `Ledger` may be used from any thread; its operations run one at a time.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import orjson
from pydantic import ValidationError

from bus.errors import BusError, SettingsError
from bus.schemas.audit import AuditedDataset, AuditEvent, AuditKind, AuditOutcome, Channel
from bus.schemas.common import Model
from bus.settings import PROJECT_ROOT

GENESIS = "0" * 64
TABLE = "audit_event"
EXPECTED_URL = (
    "sqlite:///PATH (a relative PATH is under the project root) or "
    "postgresql://user@host:port/dbname"
)
SETTING = "audit.ledger_url (env TTHC_BUS_AUDIT__LEDGER_URL)"
# How many times an append is tried again after another writer took the same seq or event id.
CONFLICT_ATTEMPTS = 3


class LedgerError(BusError):
    """The ledger refused an operation. Never carries a stored value: only what and where."""


class LedgerUnavailable(LedgerError):
    """The database cannot be reached or is busy now; trying again later may succeed."""


class _Conflict(Exception):
    """Another writer stored the same event id or took the same seq first."""


# -- rows and their hash ------------------------------------------------------------------------


def format_time(value: datetime) -> str:
    """The one text form of a time in the ledger: UTC, microseconds, `Z`. Fixed width, so text
    order is time order (SQLite compares it as text); a naive time is read as UTC."""
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 (text is NFC already): the same text for the same value, in
    any process. orjson: a fifth of the stdlib's cost, and the ledger hashes every row twice."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One stored event, column by column, as text and integers (the hash is computed over
    exactly this): `time` in `format_time`'s form, `datasets` as canonical JSON text."""

    chain: str
    seq: int
    event_id: str
    kind: str
    outcome: str
    channel: str
    time: str
    agency: str | None
    key_id: str | None
    system: str | None
    officer: str | None
    procedure_code: str | None
    dossier_id: str | None
    purpose: str | None
    legal_basis: str | None
    subject: str | None
    subject_kind: str | None
    request_id: str | None
    datasets: str
    reason: str | None
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, chain: str, seq: int, prev_hash: str, event: AuditEvent) -> LedgerRow:
        """The row of an event at a place in its chain, its hash computed."""
        datasets = canonical_json([item.model_dump(mode="json") for item in event.datasets])
        columns: dict[str, Any] = dict(
            chain=chain,
            seq=seq,
            event_id=event.message_id,
            kind=event.kind,
            outcome=event.outcome,
            channel=event.channel,
            time=format_time(event.time),
            agency=event.agency,
            key_id=event.key_id,
            system=event.system,
            officer=event.officer,
            procedure_code=event.procedure_code,
            dossier_id=event.dossier_id,
            purpose=event.purpose,
            legal_basis=event.legal_basis,
            subject=event.subject,
            subject_kind=event.subject_kind,
            request_id=event.request_id,
            datasets=datasets,
            reason=event.reason,
            prev_hash=prev_hash,
        )
        return cls(**columns, hash=hash_of(columns))


COLUMNS: tuple[str, ...] = tuple(item.name for item in fields(LedgerRow))
HASHED_COLUMNS = tuple(name for name in COLUMNS if name != "hash")


def content_hash(row: LedgerRow) -> str:
    """SHA-256 of the row's `prev_hash` and the canonical JSON of every column but `hash`."""
    return hash_of({name: getattr(row, name) for name in HASHED_COLUMNS})


def hash_of(columns: dict[str, Any]) -> str:
    """`content_hash` of the columns of a row not built yet (every column but `hash`)."""
    body = canonical_json(columns)
    return hashlib.sha256(f"{columns['prev_hash']}\n{body}".encode()).hexdigest()


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrokenRow:
    """The first row of a chain that fails verification, and why."""

    chain: str
    seq: int
    event_id: str
    problem: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    chain: str
    rows: int
    last_seq: int
    head_hash: str
    broken: BrokenRow | None

    @property
    def intact(self) -> bool:
        return self.broken is None


@dataclass(frozen=True, slots=True)
class VerifyReport:
    chains: tuple[ChainReport, ...]

    @property
    def intact(self) -> bool:
        return all(chain.intact for chain in self.chains)

    @property
    def rows(self) -> int:
        return sum(chain.rows for chain in self.chains)

    @property
    def broken(self) -> tuple[BrokenRow, ...]:
        return tuple(chain.broken for chain in self.chains if chain.broken is not None)


class AccessRecord(Model):
    """One access to a subject's data as the data subject is told of it (PDP Law 91/2025,
    the right to know): who, when, for which procedure and purpose, which fields."""

    time: datetime
    agency: str | None
    system: str | None
    officer: str | None
    procedure_code: str | None
    dossier_id: str | None
    purpose: str | None
    legal_basis: str | None
    kind: AuditKind
    outcome: AuditOutcome
    channel: Channel
    datasets: list[AuditedDataset]
    event_id: str


class _ChainWalk:
    """Verification of one chain, row by row in seq order; keeps the first problem."""

    def __init__(self, chain: str) -> None:
        self.chain = chain
        self.rows = 0
        self.seq = 0
        self.hash = GENESIS
        self.broken: BrokenRow | None = None

    def check(self, row: LedgerRow) -> None:
        self.rows += 1
        if self.broken is None:
            problem = self._problem(row)
            if problem is not None:
                self.broken = BrokenRow(row.chain, row.seq, row.event_id, problem)
        self.seq, self.hash = row.seq, row.hash

    def _problem(self, row: LedgerRow) -> str | None:
        expected = self.seq + 1
        if row.seq > expected + 1:
            return f"rows {expected}-{row.seq - 1} missing"
        if row.seq == expected + 1:
            return f"row {expected} missing"
        if row.seq != expected:
            return f"seq {row.seq} does not follow row {self.seq}"
        if row.prev_hash != self.hash:
            if row.seq == 1:
                return "prev_hash is not the genesis value"
            return f"prev_hash does not link to row {self.seq}"
        if content_hash(row) != row.hash:
            return "hash does not match its contents"
        return None

    def report(self) -> ChainReport:
        return ChainReport(self.chain, self.rows, self.seq, self.hash, self.broken)


# -- the ledger ---------------------------------------------------------------------------------


class Ledger:
    """The hash-chained store of audit events, over one backend."""

    def __init__(self, backend: _Backend) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        # chain -> (last seq, last hash), as this process last wrote or read them.
        self._tails: dict[str, tuple[int, str]] = {}

    @classmethod
    def open(cls, url: str) -> Ledger:
        """The ledger at `url` (see `EXPECTED_URL`), its table created if missing.

        Raises `SettingsError` naming the setting for a URL of another form or a database that
        cannot be opened or reached.
        """
        backend: _Backend
        if url.startswith("sqlite:"):
            backend = _SqliteBackend.connect(url)
        elif url.startswith(("postgresql://", "postgres://")):
            backend = _PostgresBackend.connect(url)
        else:
            raise SettingsError(f"{SETTING} = {redact(url)!r}: expected {EXPECTED_URL}")
        try:
            backend.create_schema()
        except BaseException:
            backend.close()
            raise
        return cls(backend)

    @property
    def backend(self) -> str:
        return self._backend.name

    def close(self) -> None:
        with self._lock:
            self._backend.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writing --------------------------------------------------------------------------------

    def append(self, chain: str, events: Sequence[AuditEvent]) -> int:
        """Append the events not stored yet (in any chain) to `chain`, in order, in one
        transaction; return how many were stored. An event id seen twice is stored once."""
        first_of_each: dict[str, AuditEvent] = {}
        for event in events:
            first_of_each.setdefault(event.message_id, event)
        unique = list(first_of_each.values())
        if not unique:
            return 0
        for _ in range(CONFLICT_ATTEMPTS):
            with self._lock:
                try:
                    return self._append_once(chain, unique)
                except BaseException as exc:
                    # The remembered tail may be wrong now (another writer moved the chain, or a
                    # commit failed without saying whether it happened): read it again next time.
                    self._tails.pop(chain, None)
                    if not isinstance(exc, _Conflict):
                        raise
        raise LedgerUnavailable(
            f"chain {chain}: {CONFLICT_ATTEMPTS} conflicting appends in a row; "
            "is another writer appending to the same chain?"
        )

    def _append_once(self, chain: str, events: list[AuditEvent]) -> int:
        backend = self._backend
        with backend.transaction():
            stored = backend.stored_ids([event.message_id for event in events])
            fresh = [event for event in events if event.message_id not in stored]
            if not fresh:
                return 0
            seq, last = self._tails.get(chain) or backend.tail(chain) or (0, GENESIS)
            rows = []
            for event in fresh:
                seq += 1
                rows.append(LedgerRow.of(chain, seq, last, event))
                last = rows[-1].hash
            backend.insert(rows)
        self._tails[chain] = (seq, last)
        return len(rows)

    # -- reading --------------------------------------------------------------------------------

    def verify(self) -> VerifyReport:
        """Walk every chain in seq order: each row's hash, its link to the row before, no gap
        in seq. Reports, per chain, the rows checked and the first broken row."""
        reports: list[ChainReport] = []
        walk: _ChainWalk | None = None
        with self._lock:
            for row in self._backend.all_rows():
                if walk is None or walk.chain != row.chain:
                    if walk is not None:
                        reports.append(walk.report())
                    walk = _ChainWalk(row.chain)
                walk.check(row)
        if walk is not None:
            reports.append(walk.report())
        return VerifyReport(tuple(reports))

    def query(
        self,
        subject: str,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[AccessRecord]:
        """The accesses to a pseudonymized subject with `since <= time < until`, newest first.

        Naive times are read as UTC.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        with self._lock:
            rows = self._backend.accesses(
                subject,
                None if since is None else format_time(since),
                None if until is None else format_time(until),
                limit,
            )
        return [_access_record(row) for row in rows]

    def released(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """Every dataset of every release with `since <= time < until`: its source, outcome
        and latency, with the release's agency and time (what `tthc-bus report sla` counts)."""
        with self._lock:
            rows = self._backend.of_kind("release", format_time(since), format_time(until))
        found = []
        for row in rows:
            try:
                datasets = orjson.loads(row.datasets)
            except ValueError:
                raise LedgerError(
                    f"chain {row.chain} row {row.seq} cannot be read; it was changed outside "
                    "the ledger: run `tthc-bus audit verify`"
                ) from None
            found += [{"time": row.time, "agency": row.agency, **item} for item in datasets]
        return found


def _access_record(row: LedgerRow) -> AccessRecord:
    try:
        return AccessRecord(
            time=datetime.fromisoformat(row.time),
            agency=row.agency,
            system=row.system,
            officer=row.officer,
            procedure_code=row.procedure_code,
            dossier_id=row.dossier_id,
            purpose=row.purpose,
            legal_basis=row.legal_basis,
            kind=row.kind,
            outcome=row.outcome,
            channel=row.channel,
            datasets=orjson.loads(row.datasets),
            event_id=row.event_id,
        )
    except (ValueError, ValidationError) as exc:  # changed in the database: say where, not what
        raise LedgerError(
            f"chain {row.chain} row {row.seq} cannot be read ({type(exc).__name__}); "
            "it was changed outside the ledger: run `tthc-bus audit verify`"
        ) from None


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


# -- backends -----------------------------------------------------------------------------------


COLUMN_LIST = ", ".join(f'"{name}"' for name in COLUMNS)  # quoted: "time" is a type name


class _Backend(ABC):
    """What differs between databases: connecting, types, placeholders, errors, transactions.
    The SQL is written once, with `?` placeholders (`sql` turns them into the backend's)."""

    name: ClassVar[str]
    placeholder: ClassVar[str]
    seq_type: ClassVar[str]
    time_type: ClassVar[str]

    def sql(self, text: str) -> str:
        return text.replace("?", self.placeholder)

    def ddl(self) -> list[str]:
        text = "TEXT"
        return [
            f"""CREATE TABLE IF NOT EXISTS {TABLE} (
                "chain" {text} NOT NULL, "seq" {self.seq_type} NOT NULL,
                "event_id" {text} NOT NULL UNIQUE,
                "kind" {text} NOT NULL, "outcome" {text} NOT NULL, "channel" {text} NOT NULL,
                "time" {self.time_type} NOT NULL,
                "agency" {text}, "key_id" {text}, "system" {text}, "officer" {text},
                "procedure_code" {text}, "dossier_id" {text}, "purpose" {text},
                "legal_basis" {text}, "subject" {text}, "subject_kind" {text},
                "request_id" {text}, "datasets" {text} NOT NULL, "reason" {text},
                "prev_hash" {text} NOT NULL, "hash" {text} NOT NULL,
                PRIMARY KEY ("chain", "seq"))""",
            f'CREATE INDEX IF NOT EXISTS {TABLE}_subject_time ON {TABLE} ("subject", "time")',
            f'CREATE INDEX IF NOT EXISTS {TABLE}_kind_time ON {TABLE} ("kind", "time")',
        ]

    # Time: the row holds `format_time` text; each backend stores it in its own type.
    def time_param(self, text: str) -> object:
        return text

    def time_text(self, value: Any) -> str:
        return str(value)

    def to_params(self, row: LedgerRow) -> tuple[object, ...]:
        return tuple(
            self.time_param(row.time) if name == "time" else getattr(row, name) for name in COLUMNS
        )

    def from_db(self, values: Sequence[Any]) -> LedgerRow:
        named = dict(zip(COLUMNS, values, strict=True))
        named["time"] = self.time_text(named["time"])
        return LedgerRow(**named)

    # The operations of the ledger.
    @abstractmethod
    def create_schema(self) -> None: ...

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]: ...

    @abstractmethod
    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def stream(self, sql: str) -> Iterator[Sequence[Any]]: ...

    @abstractmethod
    def stored_ids(self, ids: Sequence[str]) -> set[str]: ...

    @abstractmethod
    def insert(self, rows: Sequence[LedgerRow]) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def tail(self, chain: str) -> tuple[int, str] | None:
        sql = f'SELECT "seq", "hash" FROM {TABLE} WHERE "chain" = ? ORDER BY "seq" DESC LIMIT 1'
        found = self.execute(self.sql(sql), (chain,))
        return (int(found[0][0]), str(found[0][1])) if found else None

    def insert_sql(self) -> str:
        marks = ", ".join("?" for _ in COLUMNS)
        return self.sql(f"INSERT INTO {TABLE} ({COLUMN_LIST}) VALUES ({marks})")

    def all_rows(self) -> Iterator[LedgerRow]:
        sql = f'SELECT {COLUMN_LIST} FROM {TABLE} ORDER BY "chain", "seq"'
        for values in self.stream(sql):
            yield self.from_db(values)

    def of_kind(self, kind: str, since: str, until: str) -> list[LedgerRow]:
        sql = (
            f'SELECT {COLUMN_LIST} FROM {TABLE} WHERE "kind" = ? AND "time" >= ? AND "time" < ? '
            'ORDER BY "time", "chain", "seq"'
        )
        params = [kind, self.time_param(since), self.time_param(until)]
        return [self.from_db(values) for values in self.execute(self.sql(sql), params)]

    def accesses(
        self, subject: str, since: str | None, until: str | None, limit: int
    ) -> list[LedgerRow]:
        where: list[str] = ['"subject" = ?']
        params: list[object] = [subject]
        if since is not None:
            where.append('"time" >= ?')
            params.append(self.time_param(since))
        if until is not None:
            where.append('"time" < ?')
            params.append(self.time_param(until))
        sql = (
            f"SELECT {COLUMN_LIST} FROM {TABLE} WHERE {' AND '.join(where)} "
            f'ORDER BY "time" DESC, "chain", "seq" DESC LIMIT {int(limit)}'
        )
        return [self.from_db(values) for values in self.execute(self.sql(sql), params)]


UNIQUE_ERRORS = ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")


class _SqliteBackend(_Backend):
    """SQLite, one file: WAL (a reader never blocks the writer), synchronous=FULL (a stored
    event survives a power cut before its offset is committed), BEGIN IMMEDIATE (two processes
    appending to the file take turns instead of both reading the same tail)."""

    name = "sqlite"
    placeholder = "?"
    seq_type = "INTEGER"
    time_type = "TEXT"  # format_time's fixed-width text: compared as text, in time order
    PREFIX = "sqlite:///"
    BUSY_TIMEOUT_S = 30.0
    IN_CHUNK = 500  # event ids per IN (...) list, below SQLite's bound on parameters

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._connection = connection
        self.path = path

    @classmethod
    def connect(cls, url: str) -> _SqliteBackend:
        path = cls.path_of(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                path, timeout=cls.BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
        except (OSError, sqlite3.Error) as exc:
            raise SettingsError(
                f"{SETTING}: cannot open the SQLite database {path}: {exc}"
            ) from None
        return cls(connection, path)

    @classmethod
    def path_of(cls, url: str) -> Path:
        if not url.startswith(cls.PREFIX) or len(url) == len(cls.PREFIX):
            raise SettingsError(
                f"{SETTING} = {url!r}: expected {EXPECTED_URL} "
                "(three slashes, then the path; four for an absolute path)"
            )
        path = Path(url.removeprefix(cls.PREFIX))
        return path if path.is_absolute() else PROJECT_ROOT / path

    def create_schema(self) -> None:
        try:
            for statement in self.ddl():
                self._connection.execute(statement)
        except sqlite3.Error as exc:
            raise SettingsError(
                f"{SETTING}: cannot create the ledger's table in {self.path}: {exc}"
            ) from None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._errors():
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                with suppress(sqlite3.Error):  # SQLite may have rolled back itself already
                    self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.IntegrityError as exc:
            if exc.sqlite_errorname in UNIQUE_ERRORS:
                raise _Conflict from None
            raise LedgerError(f"SQLite ledger {self.path}: {exc.sqlite_errorname}") from None
        except sqlite3.OperationalError as exc:  # locked, busy, disk I/O, read-only file
            raise LedgerUnavailable(f"SQLite ledger {self.path}: {exc}") from None
        except sqlite3.Error as exc:
            raise LedgerError(f"SQLite ledger {self.path}: {type(exc).__name__}") from None

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._errors():
            return self._connection.execute(sql, params).fetchall()

    def stream(self, sql: str) -> Iterator[Sequence[Any]]:
        with self._errors():
            yield from self._connection.execute(sql)

    def stored_ids(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for at in range(0, len(ids), self.IN_CHUNK):
            chunk = ids[at : at + self.IN_CHUNK]
            marks = ", ".join("?" for _ in chunk)
            sql = f'SELECT "event_id" FROM {TABLE} WHERE "event_id" IN ({marks})'
            found.update(str(row[0]) for row in self.execute(sql, chunk))
        return found

    def insert(self, rows: Sequence[LedgerRow]) -> None:
        with self._errors():
            self._connection.executemany(self.insert_sql(), [self.to_params(r) for r in rows])

    def close(self) -> None:
        self._connection.close()


class _PostgresBackend(_Backend):
    """PostgreSQL through psycopg 3, one connection, reconnected after it broke. Autocommit,
    with an explicit transaction per append; `(chain, seq)` and `event_id` being unique is what
    keeps two writers of one chain (a rebalance in progress) from forking it."""

    name = "postgresql"
    placeholder = "%s"
    seq_type = "BIGINT"
    time_type = "TIMESTAMPTZ"
    CONNECT_TIMEOUT_S = 10
    VERIFY_FETCH = 2000

    def __init__(self, url: str, connection: Any) -> None:
        self._url = url
        self._connection = connection

    @classmethod
    def connect(cls, url: str) -> _PostgresBackend:
        return cls(url, cls._connect(url, SettingsError))

    @classmethod
    def _connect(cls, url: str, error: type[BusError]) -> Any:
        import psycopg

        try:
            return psycopg.connect(url, autocommit=True, connect_timeout=cls.CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise error(
                f"{SETTING}: cannot connect to PostgreSQL at {redact(url)}: {reason}"
            ) from None

    def _live(self) -> Any:
        if self._connection.closed or self._connection.broken:
            self._connection = self._connect(self._url, LedgerUnavailable)
        return self._connection

    def time_param(self, text: str) -> object:
        return datetime.fromisoformat(text)

    def time_text(self, value: Any) -> str:
        return format_time(value) if isinstance(value, datetime) else str(value)

    def create_schema(self) -> None:
        import psycopg

        try:
            with self._connection.transaction():
                # Two processes creating the table at once would race in the catalogue.
                self._connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (TABLE,))
                for statement in self.ddl():
                    self._connection.execute(statement)
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise SettingsError(
                f"{SETTING}: cannot create the ledger's table at {redact(self._url)}: {reason}"
            ) from None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._errors(), self._live().transaction():
            yield

    @contextmanager
    def _errors(self) -> Iterator[None]:
        import psycopg
        from psycopg import errors

        try:
            yield
        except errors.UniqueViolation:
            raise _Conflict from None
        except psycopg.OperationalError as exc:  # the server went away, or is shutting down
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise LedgerUnavailable(f"PostgreSQL ledger {redact(self._url)}: {reason}") from None
        except psycopg.Error as exc:  # its text may quote a value: say only its kind and state
            raise LedgerError(
                f"PostgreSQL ledger: {type(exc).__name__} (SQLSTATE {exc.sqlstate})"
            ) from None

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._errors():
            return list(self._live().execute(sql, params).fetchall())

    def stream(self, sql: str) -> Iterator[Sequence[Any]]:
        """Rows through a server-side cursor: a large ledger is never all in memory."""
        with self._errors():
            connection = self._live()
            with connection.transaction(), connection.cursor(name="ledger_verify") as cursor:
                cursor.itersize = self.VERIFY_FETCH
                cursor.execute(sql)
                yield from cursor

    def stored_ids(self, ids: Sequence[str]) -> set[str]:
        sql = f'SELECT "event_id" FROM {TABLE} WHERE "event_id" = ANY(%s)'
        return {str(row[0]) for row in self.execute(sql, (list(ids),))}

    def insert(self, rows: Sequence[LedgerRow]) -> None:
        with self._errors(), self._live().cursor() as cursor:
            cursor.executemany(self.insert_sql(), [self.to_params(r) for r in rows])

    def close(self) -> None:
        self._connection.close()
