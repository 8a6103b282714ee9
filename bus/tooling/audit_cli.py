"""`tthc-bus audit`: check the ledger's hash chains, and tell a person who accessed their data.

`verify` exits 0 when every chain is intact and 1 when one is broken, naming the first broken row
of each. `query` answers the data subject's right to know (PDP Law 91/2025): the raw id typed is
pseudonymized with the ledger's key before the ledger is asked, and never printed back.
Any `BusError` (a bad ledger URL, an unreachable database, no pseudonym key) is one line on
stderr and exit 2.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bus.audit.ledger import AccessRecord, Ledger, VerifyReport
from bus.audit.pseudonym import Pseudonymizer
from bus.errors import BusError
from bus.settings import ALL_FIELDS, get_settings
from bus.tooling import exits

# What a time without an offset means on this command line, and how times are shown: the
# people asking are in Vietnam.
VIETNAM_TIME = timezone(timedelta(hours=7), "ICT")
# A decision that grants a dataset without a field list grants all of its fields.
EXIT_BROKEN = exits.ERROR
EXIT_ERROR = exits.USAGE

audit_app = typer.Typer(
    help="The audit ledger: verify its hash chains, ask who accessed a person's data.",
    no_args_is_help=True,
)


@contextmanager
def _ledger() -> Iterator[Ledger]:
    """The configured ledger; a `BusError` on the way is one line and exit 2."""
    with _one_line_errors():
        ledger = Ledger.open(get_settings().audit.ledger_url)
    try:
        with _one_line_errors():
            yield ledger
    finally:
        ledger.close()


@contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except BusError as exc:
        Console(stderr=True).print(Text(f"error: {exc}", "red"), soft_wrap=True)
        raise typer.Exit(EXIT_ERROR) from None


@audit_app.command()
def verify() -> None:
    """Check every chain: each row's hash, its link to the row before, no row missing."""
    with _ledger() as ledger:
        report = ledger.verify()
    _print_report(report)
    if not report.intact:
        raise typer.Exit(EXIT_BROKEN)


def _print_report(report: VerifyReport) -> None:
    console = Console()
    if not report.chains:
        console.print("The ledger is empty: nothing to verify.")
        return
    table = Table(title="Audit ledger chains")
    for column in ("chain", "rows", "last seq", "head hash", "state"):
        table.add_column(column, overflow="fold")
    for chain in report.chains:
        state = Text("intact", "green") if chain.intact else Text("BROKEN", "red")
        table.add_row(
            Text(chain.chain), str(chain.rows), str(chain.last_seq), chain.head_hash, state
        )
    console.print(table)
    for broken in report.broken:
        line = f"{broken.chain}: first broken row seq {broken.seq} (event {broken.event_id}): "
        console.print(Text(line + broken.problem, "red"), soft_wrap=True)
    verdict = "every chain is intact" if report.intact else f"{len(report.broken)} chain(s) broken"
    console.print(f"{report.rows} rows in {len(report.chains)} chain(s): {verdict}.")


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"expected an ISO 8601 date or time, e.g. 2025-07-01 or 2025-07-01T08:00+07:00; "
            f"got {value!r}",
            param_hint=option,
        ) from None
    return parsed.replace(tzinfo=VIETNAM_TIME) if parsed.tzinfo is None else parsed


@audit_app.command()
def query(
    subject: Annotated[
        str,
        typer.Option(
            help="The person's personal id (or an enterprise code), as written on their "
            "papers; it is pseudonymized before the ledger is asked and never printed."
        ),
    ],
    since: Annotated[
        str | None,
        typer.Option(help="From this time on (ISO 8601; without an offset, Vietnam time)."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Before this time (ISO 8601; without an offset, Vietnam time)."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 100,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON (times in UTC) instead of a table.")
    ] = False,
) -> None:
    """Who accessed a person's data: when, which agency and officer, for which procedure and
    purpose, which datasets and fields."""
    start, end = _time(since, "--since"), _time(until, "--until")
    with _one_line_errors():
        pseudonym = Pseudonymizer.from_settings(get_settings().audit)(subject)
    with _ledger() as ledger:
        records = ledger.query(pseudonym, start, end, limit)
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in records], ensure_ascii=False))
    else:
        _print_accesses(records)


def _print_accesses(records: list[AccessRecord]) -> None:
    """One row per access, each cell folded rather than cut: nothing the person is owed is
    hidden by a narrow terminal."""
    console = Console()
    if not records:
        console.print("No access to this person's data is recorded (in that period).")
        return
    table = Table(title=f"Accesses to this person's data, newest first ({len(records)})")
    for column in ("when (UTC+7)", "who: agency, system, officer"):
        table.add_column(column, overflow="fold")
    for column in ("why: procedure, dossier, purpose, legal basis", "what: datasets and fields"):
        table.add_column(column, overflow="fold")
    for record in records:
        cells = (
            record.time.astimezone(VIETNAM_TIME).strftime("%Y-%m-%d %H:%M:%S"),
            _lines(record.agency, record.system, record.officer),
            _lines(
                record.procedure_code,
                record.dossier_id and f"dossier {record.dossier_id}",
                record.purpose,
                record.legal_basis,
            ),
            "\n".join([f"{record.kind}: {record.outcome}", *_datasets(record)]),
        )
        table.add_row(*(Text(cell) for cell in cells))  # as text: a purpose is not markup
    console.print(table)


def _lines(*values: str | None) -> str:
    return "\n".join(value for value in values if value) or "-"


def _datasets(record: AccessRecord) -> list[str]:
    """One line per dataset: its outcome, the fields granted or released, those withheld."""
    lines = []
    for item in record.datasets:
        fields = ", ".join(item.fields) if item.fields else "no fields"
        if item.fields == [ALL_FIELDS]:
            fields = "all fields"
        withheld = f"; withheld: {', '.join(item.withheld)}" if item.withheld else ""
        lines.append(f"{item.dataset} ({item.outcome}): {fields}{withheld}")
    return lines


# -- report ----------------------------------------------------------------------------------------

report_app = typer.Typer(help="Reports from the audit ledger.", no_args_is_help=True)


@report_app.command("sla")
def report_sla(
    since: Annotated[
        str, typer.Option(help="From this time on (ISO 8601; without an offset, Vietnam time).")
    ],
    until: Annotated[
        str | None,
        typer.Option(help="Before this time (ISO 8601; default: now)."),
    ] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV instead of a table.")] = False,
) -> None:
    """The service quality per national database and agency: datasets asked, found, not found,
    errors, deadline misses, and the source's p50/p95/p99 latency (bus/ops/sla.py)."""
    from bus.ops.sla import as_csv as to_csv
    from bus.ops.sla import sla_rows

    start = _time(since, "--since")
    end = _time(until, "--until") or datetime.now(VIETNAM_TIME)
    assert start is not None
    if end <= start:
        raise typer.BadParameter("must be after --since", param_hint="--until")
    with _ledger() as ledger, _one_line_errors():
        rows = sla_rows(ledger.released(start, end))
    if as_csv:
        typer.echo(to_csv(rows), nl=False)
        return
    console = Console()
    table = Table(title=f"Service quality {start.isoformat()} .. {end.isoformat()}")
    columns = ("source", "agency", "requests", "found", "not found", "errors", "deadline misses")
    for column in (*columns, "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row.source,
            row.agency,
            str(row.requests),
            str(row.found),
            str(row.not_found),
            str(row.errors),
            str(row.deadline_misses),
            *("-" if v is None else f"{v:g}" for v in (row.p50_ms, row.p95_ms, row.p99_ms)),
        )
    console.print(table)
    if not rows:
        console.print("No lookup in that period.")
