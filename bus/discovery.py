"""The answers of discovery (bus/schemas/discovery.py), from the catalogues the bus runs on:
the datasets (bus/catalog.py), the procedures that need them (bus/procedures.py) and the policy
grants (bus/policy.py). The gateway, the worker's router and the CLI all answer from here."""

from __future__ import annotations

from typing import Any

from bus.catalog import DatasetInfo
from bus.policy import Policy
from bus.schemas.discovery import (
    AllowedDataset,
    AllowedDatasets,
    AllowedProcedure,
    DatasetDescription,
    FieldDescription,
)


class Discovery:
    def __init__(self, policy: Policy) -> None:
        catalog, procedures = policy.catalog, policy.procedures
        self._catalog = catalog
        self._procedures = procedures
        self._policy = policy
        needed: dict[str, list[str]] = {}
        for procedure in procedures.all():
            for dataset in procedure.datasets:
                needed.setdefault(dataset, []).append(procedure.code)
        self._datasets = [
            describe(catalog.datasets[name], needed.get(name, [])) for name in catalog.names()
        ]

    def datasets(self) -> list[DatasetDescription]:
        """Every dataset the bus serves (the same for every caller: no personal data)."""
        return self._datasets

    def allowed(self, agency: str) -> AllowedDatasets:
        """What `agency` may ask for, per dataset and procedure, with the fields granted."""
        by_dataset: dict[str, list[AllowedProcedure]] = {}
        for (code, dataset), fields in sorted(self._policy.granted_to(agency).items()):
            procedure = self._procedures.get(code)
            if procedure is None or dataset not in self._catalog:
                continue  # a grant the start-up check refuses; never shown as allowed
            by_dataset.setdefault(dataset, []).append(
                AllowedProcedure(
                    code=code, name=procedure.name, purposes=procedure.purposes, fields=fields
                )
            )
        return AllowedDatasets(
            agency=agency,
            datasets=[
                AllowedDataset(
                    dataset=name,
                    source=self._catalog.datasets[name].source,
                    subject=self._catalog.datasets[name].subject,
                    procedures=procedures,
                )
                for name, procedures in sorted(by_dataset.items())
            ],
        )


def describe(info: DatasetInfo, procedures: list[str]) -> DatasetDescription:
    schema = info.schema.model_json_schema()
    definitions = schema.get("$defs", {})
    required = set(schema.get("required", ()))
    fields = [
        FieldDescription(
            name=name,
            type=type_of(prop, definitions),
            required=name in required,
            description=prop.get("description") or None,
        )
        for name, prop in schema.get("properties", {}).items()
    ]
    description = info.description or (info.schema.__doc__ or "").strip().split("\n\n")[0]
    return DatasetDescription(
        name=info.name,
        source=info.source,
        subject=info.subject,
        description=" ".join(description.split()),
        fields=fields,
        procedures=sorted(procedures),
    )


def type_of(prop: dict[str, Any], definitions: dict[str, Any]) -> str:
    """A JSON Schema property's type, in a word or three (see FieldDescription.type)."""
    if "$ref" in prop:
        target = definitions.get(prop["$ref"].rsplit("/", 1)[-1], {})
        return type_of(target, definitions) if "$ref" not in target else "object"
    for union in ("anyOf", "oneOf"):
        if union in prop:
            kinds = [type_of(p, definitions) for p in prop[union] if p.get("type") != "null"]
            unique = list(dict.fromkeys(kinds))
            return " or ".join(unique) if unique else "null"
    if "enum" in prop:
        return "string (one of " + ", ".join(str(v) for v in prop["enum"]) + ")"
    kind = prop.get("type", "object")
    if isinstance(kind, list):
        kind = " or ".join(k for k in kind if k != "null")
    if kind == "array":
        return f"array of {type_of(prop.get('items', {}), definitions)}"
    if kind == "string" and "format" in prop:
        return f"string ({prop['format']})"
    return str(kind)
