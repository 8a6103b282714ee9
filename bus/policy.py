"""Who may see what, and why: deny by default.

The skeleton policy grants every configured dataset to every agency when
`policy.allow_all_agencies` is on; a request still needs a purpose, a legal basis and a procedure
code (the schema refuses it otherwise). Per-agency, per-procedure grants come with the policy issue.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bus.catalog import Catalog
from bus.schemas import DatasetError, LookupRequest


@dataclass(frozen=True)
class Decision:
    granted: dict[str, list[str] | None] = field(default_factory=dict)
    """Dataset -> fields granted (None: the whole dataset)."""
    refused: list[DatasetError] = field(default_factory=list)

    @property
    def denied(self) -> bool:
        return not self.granted


class Policy:
    def __init__(self, catalog: Catalog, allow_all_agencies: bool) -> None:
        self._catalog = catalog
        self._dataset_sources = catalog.dataset_sources()
        self._allow_all = allow_all_agencies

    def sources(self) -> list[str]:
        return sorted(set(self._dataset_sources.values()))

    def source_of(self, dataset: str) -> str:
        return self._dataset_sources[dataset]

    def decide(self, request: LookupRequest) -> Decision:
        granted: dict[str, list[str] | None] = {}
        refused: list[DatasetError] = []
        for dataset in request.datasets:
            source = self._dataset_sources.get(dataset)
            if source is None:
                refused.append(
                    DatasetError(
                        dataset=dataset,
                        source=dataset.split(".", 1)[0],
                        code="unknown_dataset",
                        message=f"no source serves {dataset!r}; known: "
                        f"{sorted(self._dataset_sources)}",
                        retryable=False,
                    )
                )
            elif (problem := self._catalog.subject_problem(dataset, request.subject)) is not None:
                refused.append(
                    DatasetError(
                        dataset=dataset,
                        source=source,
                        code="invalid_request",
                        message=problem,
                        retryable=False,
                    )
                )
            elif self._allow_all:
                granted[dataset] = None
            else:
                refused.append(
                    DatasetError(
                        dataset=dataset,
                        source=source,
                        code="not_granted",
                        message=f"no policy grants agency {request.requester.agency_code!r} "
                        f"dataset {dataset!r} for procedure {request.procedure_code!r}",
                        retryable=False,
                    )
                )
        return Decision(granted=granted, refused=refused)
