"""Who may see which dataset (deny by default), and how the datasets' outcomes add up."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bus.catalog import Catalog
from bus.outcome import lookup_status
from bus.policy import Policy
from bus.schemas import DatasetError, DatasetResult, LookupRequest, Provenance
from bus.schemas.citizen import Citizen

CATALOG = Catalog.of(
    {
        "population": [("identity", "personal_id", Citizen)],
        "insurance": [("card", "personal_id", Citizen)],
    }
)
NOW = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def lookup_request(*datasets: str) -> LookupRequest:
    return LookupRequest(
        requester={"agency_code": "UBND-HN", "system": "dvc-hanoi", "officer": "Phạm D"},
        procedure_code="1.001234",
        dossier_id="HS-1",
        purpose="Xác minh nhân thân",
        legal_basis="Nghị định 194/2025/NĐ-CP",
        subject={"personal_id": "001090000001"},
        datasets=list(datasets),
        deadline=NOW,
    )


# -- policy ---------------------------------------------------------------------------------


def test_allow_all_grants_every_configured_dataset_whole() -> None:
    decision = Policy(CATALOG, allow_all_agencies=True).decide(
        lookup_request("population.identity", "insurance.card")
    )
    assert decision.granted == {"population.identity": None, "insurance.card": None}
    assert decision.refused == []
    assert not decision.denied


def test_allow_all_still_refuses_a_dataset_no_source_serves() -> None:
    decision = Policy(CATALOG, allow_all_agencies=True).decide(
        lookup_request("population.identity", "land.parcel")
    )
    assert decision.granted == {"population.identity": None}
    [refused] = decision.refused
    assert (refused.dataset, refused.source, refused.code) == (
        "land.parcel",
        "land",
        "unknown_dataset",
    )
    assert "'land.parcel'" in refused.message
    assert "population.identity" in refused.message  # the known datasets are listed
    assert refused.retryable is False


def test_without_allow_all_every_dataset_is_refused() -> None:
    decision = Policy(CATALOG, allow_all_agencies=False).decide(
        lookup_request("population.identity", "insurance.card")
    )
    assert decision.granted == {}
    assert decision.denied
    assert [(e.dataset, e.source, e.code) for e in decision.refused] == [
        ("population.identity", "population", "not_granted"),
        ("insurance.card", "insurance", "not_granted"),
    ]


def test_refusal_names_the_agency_the_dataset_and_the_procedure() -> None:
    decision = Policy(CATALOG, allow_all_agencies=False).decide(
        lookup_request("population.identity")
    )
    [refused] = decision.refused
    assert refused.message == (
        "no policy grants agency 'UBND-HN' dataset 'population.identity' for procedure '1.001234'"
    )
    assert refused.retryable is False


def test_unknown_dataset_is_unknown_even_when_nothing_is_granted() -> None:
    decision = Policy(CATALOG, allow_all_agencies=False).decide(lookup_request("land.parcel"))
    assert [e.code for e in decision.refused] == ["unknown_dataset"]


def test_policy_knows_which_source_serves_a_dataset() -> None:
    assert Policy(CATALOG, allow_all_agencies=True).source_of("insurance.card") == "insurance"


# -- outcome --------------------------------------------------------------------------------


def found(dataset: str = "population.identity") -> DatasetResult:
    provenance = Provenance(source=dataset.partition(".")[0], fetched_at=NOW, latency_ms=12.5)
    return DatasetResult(dataset=dataset, data={"full_name": "Phạm D"}, provenance=provenance)


def error(code: str, dataset: str = "insurance.card") -> DatasetError:
    return DatasetError(
        dataset=dataset,
        source=dataset.partition(".")[0],
        code=code,
        message=code,
        retryable=code == "timeout",
    )


def test_all_datasets_found_is_complete() -> None:
    assert lookup_status([found(), found("insurance.card")], []) == "complete"


@pytest.mark.parametrize("code", ["timeout", "not_found", "not_granted", "unavailable"])
def test_some_found_and_some_not_is_partial(code: str) -> None:
    assert lookup_status([found()], [error(code)]) == "partial"


def test_nothing_found_anywhere_is_not_found() -> None:
    errors = [error("not_found"), error("not_found", "population.identity")]
    assert lookup_status([], errors) == "not_found"


def test_nothing_granted_is_denied() -> None:
    errors = [error("not_granted"), error("not_granted", "population.identity")]
    assert lookup_status([], errors) == "denied"


@pytest.mark.parametrize(
    "codes",
    [
        ["timeout"],
        ["unknown_dataset"],
        ["not_found", "timeout"],
        ["not_found", "not_granted"],
        ["not_granted", "unavailable"],
    ],
)
def test_anything_else_without_results_is_failed(codes: list[str]) -> None:
    errors = [error(code, f"source{i}.data") for i, code in enumerate(codes)]
    assert lookup_status([], errors) == "failed"


def test_no_results_and_no_errors_is_failed() -> None:
    assert lookup_status([], []) == "failed"
