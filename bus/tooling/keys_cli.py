"""`tthc-bus keys`: issue an agency's API key (shown once, stored hashed) and list the keys.

`keys new` prints the key alone on stdout, so that `KEY=$(tthc-bus keys new H26.22)` keeps it,
and says on stderr where its hash went; the key itself is never written anywhere by the bus.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bus.auth import append_key, generate_key, load_records, read_keys_file
from bus.errors import BusError
from bus.settings import AGENCY_PATTERN, ApiKeyRecord, Role, get_settings
from bus.tooling import exits

keys_app = typer.Typer(help="API keys of the agencies (stored hashed).", no_args_is_help=True)


class KeyRole(StrEnum):
    lookup = "lookup"
    auditor = "auditor"
    gateway = "gateway"


def fail(message: str) -> NoReturn:
    """The error on one line of stderr, exit 2."""
    typer.echo(" ".join(message.split()), err=True)
    raise typer.Exit(exits.USAGE)


def configured_keys_path() -> Path:
    try:
        return get_settings().auth.keys_path()
    except BusError as exc:
        fail(str(exc))


@keys_app.command("new")
def new_key(
    agency: Annotated[
        str, typer.Argument(metavar="AGENCY", help="The agency's code, e.g. H26.22.")
    ],
    role: Annotated[
        list[KeyRole] | None,
        typer.Option(help="A role of the key (repeatable; default: lookup).", case_sensitive=False),
    ] = None,
    description: Annotated[str | None, typer.Option(help="What the key is for.")] = None,
    file: Annotated[
        Path | None, typer.Option(help="The keys file (default: settings auth.keys_file).")
    ] = None,
) -> None:
    """Issue a key: printed once on stdout, its hash appended to the keys file."""
    if not re.fullmatch(AGENCY_PATTERN, agency):
        fail(f"agency code {agency!r} must match {AGENCY_PATTERN}")
    path = file or configured_keys_path()
    roles: list[Role] = list(dict.fromkeys(item.value for item in role or [KeyRole.lookup]))
    try:
        issued = generate_key(agency, roles, description)
        append_key(path, issued.record)
    except BusError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write the keys file {path}: {exc.strerror}")
    typer.echo(issued.key)
    typer.echo(
        f"key {issued.record.id} of {agency} ({', '.join(issued.record.roles)}): store it now: "
        f"it is not kept; its hash is in {path}",
        err=True,
    )


@keys_app.command("list")
def list_keys(
    as_json: Annotated[bool, typer.Option("--json", help="JSON, for scripts.")] = False,
    file: Annotated[
        Path | None,
        typer.Option(help="Read this keys file alone instead of settings and their keys file."),
    ] = None,
) -> None:
    """The stored keys: id, agency, roles, description (never their hashes)."""
    try:
        records = read_keys_file(file) if file else load_records(get_settings().auth)
    except BusError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps([public_view(record) for record in records], ensure_ascii=False))
        return
    if not records:
        typer.echo("no keys: `tthc-bus keys new AGENCY` issues one", err=True)
        return
    table = Table("id", "agency", "roles", "description")
    for record in records:
        # Text, not markup: a description is free text and may hold brackets.
        table.add_row(
            record.id, record.agency, ", ".join(record.roles), Text(record.description or "")
        )
    Console().print(table)


def public_view(record: ApiKeyRecord) -> dict[str, object]:
    """What may be shown of a key: everything but its verifier."""
    return record.model_dump(include={"id", "agency", "roles", "description"})
