"""The catalogue of datasets the bus serves: which source, asked by what, answering what.

Each adapter declares its datasets once (adapters/base.py `Dataset`); the composition root loads
the configured adapters, checks them against their settings and mapping files
(connectors/catalog.py) and hands the result to the gateway, the router and the CLI as a
`Catalog`. Nothing below the composition root reads datasets from anywhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pydantic import BaseModel

from bus.schemas.lookup import Subject, SubjectKind
from bus.validation import wrong_subject

__all__ = ["Catalog", "DatasetInfo", "SubjectKind"]


@dataclass(frozen=True)
class DatasetInfo:
    name: str  # "<source>.<dataset>"
    source: str
    subject: SubjectKind
    schema: type[BaseModel]
    description: str = ""

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.schema.model_fields)


class Catalog:
    def __init__(self, datasets: Iterable[DatasetInfo]) -> None:
        self.datasets: dict[str, DatasetInfo] = {info.name: info for info in datasets}

    def __contains__(self, name: object) -> bool:
        return name in self.datasets

    def names(self) -> list[str]:
        return sorted(self.datasets)

    def sources(self) -> list[str]:
        return sorted({info.source for info in self.datasets.values()})

    def dataset_sources(self) -> dict[str, str]:
        return {name: info.source for name, info in self.datasets.items()}

    def subject_problem(self, dataset: str, subject: Subject) -> str | None:
        """Why `subject` cannot be asked of `dataset` (the wrong kind of id), or None."""
        info = self.datasets.get(dataset)
        return None if info is None else wrong_subject(dataset, info.subject, subject)

    @classmethod
    def of(
        cls, sources: Mapping[str, Iterable[tuple[str, SubjectKind, type[BaseModel]]]]
    ) -> Catalog:
        """A catalogue from source -> (dataset, subject kind, schema): for tests and tools."""
        return cls(
            DatasetInfo(f"{source}.{name}", source, subject, schema)
            for source, entries in sources.items()
            for name, subject, schema in entries
        )
