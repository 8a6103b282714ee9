"""How the datasets' outcomes add up to one lookup status."""

from __future__ import annotations

from bus.schemas import DatasetError, DatasetResult, LookupStatus

# Refusals that make a lookup `denied` (HTTP 403) when they are all it got.
DENIAL_CODES = frozenset(
    {"not_granted", "unknown_procedure", "purpose_not_allowed", "unauthenticated", "forbidden"}
)


def lookup_status(results: list[DatasetResult], errors: list[DatasetError]) -> LookupStatus:
    if results:
        return "complete" if not errors else "partial"
    if errors and all(error.code == "not_found" for error in errors):
        return "not_found"
    if errors and all(error.code in DENIAL_CODES for error in errors):
        return "denied"
    return "failed"


def deadline_exceeded(dataset: str, message: str) -> DatasetError:
    """The error of a dataset that had no answer in time (one wording for the whole bus)."""
    return DatasetError(
        dataset=dataset,
        source=dataset.split(".", 1)[0],
        code="deadline_exceeded",
        message=message,
        retryable=True,
    )
