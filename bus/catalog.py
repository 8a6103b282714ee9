"""The catalogue of datasets the bus serves: which source, asked by what, answering what.

Each adapter declares its datasets once (adapters/base.py `Dataset`); the composition root loads
the configured adapters, checks them against their settings and mapping files
(connectors/catalog.py) and hands the result to the gateway, the router and the CLI as a
`Catalog`. Nothing below the composition root reads datasets from anywhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from bus.schemas.lookup import Subject

SubjectKind = Literal["personal_id", "enterprise_code"]
SUBJECT_WORDS: dict[SubjectKind, str] = {
    "personal_id": "a personal id (subject.personal_id)",
    "enterprise_code": "an enterprise code (subject.enterprise_code)",
}


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
        if info is None:
            return None
        given: SubjectKind = "personal_id" if subject.personal_id is not None else "enterprise_code"
        if given == info.subject:
            return None
        wanted, got = SUBJECT_WORDS[info.subject], SUBJECT_WORDS[given]
        return f"dataset {dataset!r} is asked by {wanted}, not {got}"

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
