"""`tthc-bus datasets`: what the bus serves, or (`--agency`) what an agency may ask for, from the
catalogues and the policy of this bus's settings: the same answers as `GET /v1/datasets` and
`GET /v1/datasets/allowed`, and as a discovery request over Kafka (bus/discovery.py)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def datasets_command(
    agency: Annotated[
        str | None,
        typer.Option(help="What this agency may ask for, by procedure (its policy grants)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="The answer as the HTTP API gives it.")
    ] = False,
) -> None:
    """List the datasets the bus serves: source, subject, fields and the procedures that
    need them; with --agency, what that agency may ask for and for which procedures."""
    from bus.discovery import Discovery
    from bus.tooling.cli import catalog_or_exit, policy_or_exit, settings_or_exit

    settings = settings_or_exit()
    catalog = catalog_or_exit(settings)
    discovery = Discovery(policy_or_exit(settings, catalog))
    if agency is None:
        datasets = discovery.datasets()
        if as_json:
            typer.echo(json.dumps([d.model_dump(mode="json") for d in datasets], indent=2))
            return
        table = Table(title="Datasets the bus serves (GET /v1/datasets)")
        for column in ("dataset", "source", "subject"):
            table.add_column(column, no_wrap=True)  # names: whole, or they cannot be copied
        table.add_column("fields (? may be null)")
        table.add_column("procedures")
        for d in datasets:
            fields = ", ".join(f"{f.name}{'' if f.required else '?'}" for f in d.fields)
            table.add_row(d.name, d.source, d.subject, fields, ", ".join(d.procedures) or "-")
        console.print(table)
        return
    allowed = discovery.allowed(agency)
    if as_json:
        typer.echo(json.dumps(allowed.model_dump(mode="json"), indent=2))
        return
    table = Table(title=f"What agency {agency} may ask for (GET /v1/datasets/allowed)")
    for column in ("dataset", "subject", "procedure"):
        table.add_column(column, no_wrap=True)
    table.add_column("fields granted")
    for entry in allowed.datasets:
        for procedure in entry.procedures:
            chosen = procedure.fields
            granted = "every field" if chosen is None else ", ".join(chosen)
            table.add_row(entry.dataset, entry.subject, procedure.code, granted)
    console.print(table)
    if not allowed.datasets:
        console.print(f"no policy grant names agency {agency!r}")
