"""Change mappings: a national database's native change -> the bus's normalized change.

One module per source (`mappings/changes/<source>.py`) registers its mapper with
`@change_mapper("<source>")`. A mapper gets the change's native kind, the entity id as the
source gave it and the native fields, and returns a `NormalizedChange` (the connector adds the
ids, the source, the sequence and the time), or None for a kind the bus does not carry. A native
value it cannot read raises `bus.errors.MappingError` naming the field and what was
expected, never the value (it may be personal data).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bus.schemas.change import ChangeType, EntityKind


@dataclass(frozen=True)
class NormalizedChange:
    event_type: ChangeType
    entity: str
    entity_kind: EntityKind
    data: dict[str, Any]  # normalized names; checked against the type's model by ChangeEvent


ChangeMapper = Callable[[str, str, Mapping[str, Any]], NormalizedChange | None]
_MAPPERS: dict[str, ChangeMapper] = {}


def change_mapper(source: str) -> Callable[[ChangeMapper], ChangeMapper]:
    """Decorator: register the change mapper of `source`."""

    def register(mapper: ChangeMapper) -> ChangeMapper:
        _MAPPERS[source] = mapper
        return mapper

    return register


def mapper_for(source: str) -> ChangeMapper | None:
    """The change mapper of `source` (importing `mappings.changes.<source>`), or None."""
    if source not in _MAPPERS:
        try:
            importlib.import_module(f"mappings.changes.{source}")
        except ModuleNotFoundError as error:
            if error.name != f"mappings.changes.{source}":
                raise
    return _MAPPERS.get(source)
