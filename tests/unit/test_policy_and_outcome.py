"""Who may see which dataset (deny by default), and how the datasets' outcomes add up."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

import pytest

from bus.catalog import Catalog
from bus.errors import SettingsError
from bus.outcome import lookup_status
from bus.policy import Policy
from bus.procedures import Procedure, ProcedureCatalogue
from bus.schemas import DatasetError, DatasetResult, LookupRequest, Provenance
from bus.schemas.citizen import Citizen
from bus.settings import Grant

CATALOG = Catalog.of(
    {
        "population": [("identity", "personal_id", Citizen)],
        "insurance": [("card", "personal_id", Citizen)],
    }
)
NOW = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
MARRIAGE = "SB.KET-HON"
PROCEDURES = ProcedureCatalogue(
    [
        Procedure(
            code=MARRIAGE,
            name="Đăng ký kết hôn",
            legal_basis="Luật Hộ tịch 2014",
            datasets=["population.identity"],
            purposes=["Đăng ký kết hôn"],
        ),
        Procedure(
            code="SB.OTHER",
            name="Thủ tục khác",
            legal_basis="Luật",
            datasets=["insurance.card"],
            purposes=["Mục đích khác"],
        ),
    ]
)
WHOLE = Grant(
    agency="H26.22",
    procedures=[MARRIAGE],
    datasets={"population.identity": "*", "insurance.card": "*"},
    description="the portal",
)
NARROW = Grant(
    agency="H26.30",
    procedures=[MARRIAGE],
    datasets={"population.identity": ["personal_id", "full_name"]},
)
WIDER = Grant(
    agency="H26.30",
    procedures=[MARRIAGE],
    datasets={"population.identity": ["birth_date"]},
)


def policy(*grants: Grant) -> Policy:
    return Policy(CATALOG, PROCEDURES, list(grants or (WHOLE, NARROW)))


def lookup_request(
    *datasets: str,
    agency: str = "H26.22",
    procedure: str = MARRIAGE,
    purpose: str = "Đăng ký kết hôn",
) -> LookupRequest:
    return LookupRequest(
        requester={"agency_code": agency, "system": "dvc-hanoi", "officer": "Phạm D"},
        procedure_code=procedure,
        dossier_id="HS-1",
        purpose=purpose,
        legal_basis="Nghị định 194/2025/NĐ-CP",
        subject={"personal_id": "001090000001"},
        datasets=list(datasets),
        deadline=NOW,
    )


# -- policy ---------------------------------------------------------------------------------


def test_a_whole_grant_gives_every_field_of_its_datasets() -> None:
    decision = policy().decide(lookup_request("population.identity", "insurance.card"))
    assert decision.granted == {"population.identity": None, "insurance.card": None}
    assert decision.refused == []


def test_a_field_grant_gives_only_those_fields_and_grants_add_up() -> None:
    decision = policy(NARROW, WIDER).decide(lookup_request("population.identity", agency="H26.30"))
    assert decision.granted == {"population.identity": ["birth_date", "full_name", "personal_id"]}
    withheld = policy(NARROW).withheld("population.identity", ["personal_id", "full_name"])
    assert "ethnicity" in withheld and "full_name" not in withheld


def test_an_agency_without_a_grant_is_denied_by_default() -> None:
    decision = policy().decide(lookup_request("population.identity", agency="UBND-X"))
    assert decision.denied
    [refused] = decision.refused
    assert (refused.code, refused.retryable) == ("not_granted", False)
    assert refused.message == "no policy grants agency 'UBND-X' anything"


def test_a_dataset_outside_the_grant_is_refused_beside_the_granted_one() -> None:
    decision = policy().decide(
        lookup_request("population.identity", "insurance.card", agency="H26.30")
    )
    assert list(decision.granted) == ["population.identity"]
    [refused] = decision.refused
    assert refused.message == (
        "no policy grants agency 'H26.30' dataset 'insurance.card' for procedure 'SB.KET-HON'"
    )


def test_a_grant_covers_only_its_procedures() -> None:
    decision = policy().decide(
        lookup_request("insurance.card", procedure="SB.OTHER", purpose="Mục đích khác")
    )
    [refused] = decision.refused
    assert refused.code == "not_granted"
    assert "do not cover procedure 'SB.OTHER'" in refused.message


def test_a_purpose_the_procedure_does_not_allow_denies_the_whole_request() -> None:
    decision = policy().decide(lookup_request("population.identity", purpose="Tò mò"))
    assert decision.denied
    [refused] = decision.refused
    assert refused.code == "purpose_not_allowed"
    assert "'Tò mò'" in refused.message and "Đăng ký kết hôn" in refused.message


def test_purposes_compare_in_nfc_whatever_the_case_and_spacing() -> None:
    decomposed = unicodedata.normalize("NFD", "đăng  ký KẾT hôn")
    decision = policy().decide(lookup_request("population.identity", purpose=decomposed))
    assert decision.granted == {"population.identity": None}


def test_a_procedure_outside_the_catalogue_is_denied() -> None:
    decision = policy().decide(lookup_request("population.identity", procedure="9.999999"))
    assert [e.code for e in decision.refused] == ["unknown_procedure"]


def test_unknown_dataset_is_unknown_even_when_nothing_is_granted() -> None:
    decision = policy().decide(lookup_request("land.parcel", agency="UBND-X"))
    assert [e.code for e in decision.refused] == ["unknown_dataset"]
    assert "population.identity" in decision.refused[0].message  # the known datasets are listed


def test_policy_knows_which_source_serves_a_dataset() -> None:
    assert policy().source_of("insurance.card") == "insurance"


def test_explain_names_the_grant_and_what_is_withheld() -> None:
    answer = policy(WHOLE, NARROW).explain(
        "H26.30", MARRIAGE, "population.identity", "Đăng ký kết hôn"
    )
    assert answer.allowed and answer.fields == ["full_name", "personal_id"]
    assert "ethnicity" in answer.withheld
    assert any("withheld" in reason for reason in answer.reasons)


def test_explain_says_why_not() -> None:
    answer = policy().explain("H26.30", MARRIAGE, "insurance.card")
    assert (answer.allowed, answer.code) == (False, "not_granted")
    wrong_purpose = policy().explain("H26.22", MARRIAGE, "population.identity", "Tò mò")
    assert wrong_purpose.code == "purpose_not_allowed"


def test_grants_naming_unknown_things_are_found_at_start_up() -> None:
    wrong = Grant(
        agency="H26.22",
        procedures=["9.999999"],
        datasets={"land.parcel": "*", "population.identity": ["shoe_size"]},
    )
    problems = Policy(CATALOG, PROCEDURES, [wrong]).problems()
    assert any("procedure '9.999999'" in p for p in problems)
    assert any("'land.parcel'" in p for p in problems)
    assert any("no field 'shoe_size'" in p for p in problems)
    with pytest.raises(SettingsError, match="shoe_size"):
        Policy(CATALOG, PROCEDURES, [wrong]).check()
    assert policy().check().problems() == []


def test_the_shipped_settings_grants_fit_the_shipped_catalogues() -> None:
    from bus.procedures import load_procedures
    from bus.settings import load_settings
    from connectors.catalog import load_catalog

    settings = load_settings()
    catalog = load_catalog(settings)
    Policy(catalog, load_procedures(settings.lookup, catalog), settings.policy.grants).check()


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


@pytest.mark.parametrize(
    "codes",
    [
        ["not_granted", "not_granted"],
        ["purpose_not_allowed"],
        ["unknown_procedure"],
        ["unauthenticated"],
        ["forbidden"],
        ["not_granted", "purpose_not_allowed"],
    ],
)
def test_nothing_granted_is_denied(codes: list[str]) -> None:
    errors = [error(code, f"source{i}.data") for i, code in enumerate(codes)]
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
