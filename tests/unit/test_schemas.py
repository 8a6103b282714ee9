"""The v1 message schemas: what a request must carry, how text is stored, what goes on the wire."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from bus.schemas import Citizen, LookupRequest, PartialDate
from bus.tooling.cli import app

DEADLINE = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def request_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "requester": {"agency_code": "UBND-HN", "system": "dvc-hanoi", "officer": "Trần Thị B"},
        "procedure_code": "1.001234",
        "dossier_id": "HS-2025-000001",
        "purpose": "Xác minh nhân thân khi đăng ký khai sinh",
        "legal_basis": "Nghị định 194/2025/NĐ-CP",
        "subject": {"personal_id": "001090000001"},
        "datasets": ["population.identity"],
        "deadline": DEADLINE,
    }
    return fields | overrides


def refusal(**overrides: Any) -> str:
    """The validation message a caller would see for a request built with these overrides."""
    with pytest.raises(ValidationError) as info:
        LookupRequest(**request_fields(**overrides))
    return str(info.value)


# -- LookupRequest ----------------------------------------------------------------------------


def test_complete_request_is_accepted() -> None:
    request = LookupRequest(**request_fields())
    assert request.subject.key == "001090000001"
    assert request.datasets == ["population.identity"]


@pytest.mark.parametrize("field", ["purpose", "legal_basis", "procedure_code", "datasets"])
def test_request_without_a_required_field_is_refused_naming_it(field: str) -> None:
    fields = request_fields()
    del fields[field]
    with pytest.raises(ValidationError) as info:
        LookupRequest(**fields)
    assert f"{field}\n  Field required" in str(info.value)


@pytest.mark.parametrize("field", ["purpose", "legal_basis", "procedure_code"])
def test_blank_purpose_basis_or_procedure_is_refused(field: str) -> None:
    message = refusal(**{field: "   "})
    assert field in message
    assert "at least 1 character" in message


def test_empty_dataset_list_is_refused() -> None:
    message = refusal(datasets=[])
    assert "datasets" in message
    assert "at least 1 item" in message


def test_dataset_not_of_source_dot_dataset_form_is_refused_naming_it() -> None:
    message = refusal(datasets=["identity"])
    assert "'identity' must look like 'source.dataset'" in message


def test_repeated_dataset_is_refused() -> None:
    assert "must not repeat" in refusal(datasets=["population.identity"] * 2)


def test_deadline_without_time_zone_is_refused() -> None:
    message = refusal(deadline=datetime(2026, 1, 1, 10, 0))
    assert "deadline" in message
    assert "time zone" in message


def test_deadline_in_another_time_zone_is_accepted() -> None:
    hanoi = timezone(timedelta(hours=7))
    request = LookupRequest(**request_fields(deadline=datetime(2026, 1, 1, 17, 0, tzinfo=hanoi)))
    assert request.deadline == DEADLINE


@pytest.mark.parametrize(
    "subject", [{}, {"personal_id": "001090000001", "enterprise_code": "0100047516"}]
)
def test_subject_needs_exactly_one_identifier(subject: dict[str, str]) -> None:
    assert "exactly one of personal_id or enterprise_code" in refusal(subject=subject)


def test_enterprise_subject_is_accepted() -> None:
    request = LookupRequest(**request_fields(subject={"enterprise_code": "0100047516-001"}))
    assert request.subject.key == "0100047516-001"


def test_subject_with_a_bad_personal_id_is_refused_naming_the_field() -> None:
    message = refusal(subject={"personal_id": "00109000000"})
    assert "subject.personal_id" in message
    assert "12 digits" in message


def test_subject_with_a_bad_enterprise_code_is_refused() -> None:
    message = refusal(subject={"enterprise_code": "0100047517"})
    assert "subject.enterprise_code" in message
    assert "check digit" in message


def test_unknown_field_is_refused_naming_it() -> None:
    message = refusal(purpse="typo")
    assert "purpse" in message
    assert "Extra inputs are not permitted" in message


def test_unknown_nested_field_is_refused_naming_its_path() -> None:
    message = refusal(subject={"personal_id": "001090000001", "tax_code": "x"})
    assert "subject.tax_code" in message


def test_purpose_given_decomposed_is_stored_composed() -> None:
    purpose = "Đăng ký thường trú cho công dân"
    decomposed = unicodedata.normalize("NFD", purpose)
    assert decomposed != purpose
    request = LookupRequest(**request_fields(purpose=decomposed))
    assert request.purpose == purpose
    assert unicodedata.is_normalized("NFC", request.purpose)


# -- envelope -------------------------------------------------------------------------------


def test_envelope_fields_are_filled_in() -> None:
    before = datetime.now(UTC)
    request = LookupRequest(**request_fields())
    assert request.type == "lookup.request"
    assert request.schema_version == 1
    assert len(request.message_id) == 32
    assert request.time.utcoffset() == timedelta(0)
    assert before <= request.time <= datetime.now(UTC)


def test_each_request_gets_its_own_message_id() -> None:
    assert (
        LookupRequest(**request_fields()).message_id != LookupRequest(**request_fields()).message_id
    )


def test_request_claiming_another_type_is_refused() -> None:
    assert "lookup.request" in refusal(type="lookup.response")


def test_request_survives_a_json_round_trip() -> None:
    request = LookupRequest(
        **request_fields(reply_to={"topic": "tthc.lookup.reply", "partition": 3})
    )
    assert LookupRequest.model_validate_json(request.model_dump_json()) == request


# -- Citizen --------------------------------------------------------------------------------


def citizen(**overrides: Any) -> Citizen:
    fields: dict[str, Any] = {
        "personal_id": "001090000001",
        "full_name": "Nguyễn Văn Đức",
        "sex": "male",
        "birth_date": {"year": 1990, "month": 5, "day": 17, "precision": "day"},
    }
    return Citizen(**(fields | overrides))


def test_citizen_names_given_decomposed_are_stored_composed() -> None:
    name = "Nguyễn Thị Ánh Đào"
    person = citizen(
        full_name=unicodedata.normalize("NFD", name),
        family_name=unicodedata.normalize("NFD", "Nguyễn"),
        given_name=unicodedata.normalize("NFD", "Đào"),
        sex="female",
        personal_id="001190000001",
    )
    assert person.full_name == name
    assert person.family_name == "Nguyễn"
    assert person.given_name == "Đào"


def test_d_with_stroke_stays_itself() -> None:
    # U+0110 has no decomposition: NFD and NFC must both leave it as one character.
    assert unicodedata.normalize("NFD", "Đ") == "\u0110"
    person = citizen(full_name=unicodedata.normalize("NFD", "Đỗ Đức"))
    assert person.full_name == "\u0110\u1ed7 \u0110\u1ee9c"


def test_citizen_whose_id_disagrees_with_sex_is_refused() -> None:
    with pytest.raises(ValidationError, match="disagrees with the sex"):
        citizen(sex="female")


def test_citizen_whose_id_disagrees_with_birth_year_is_refused() -> None:
    with pytest.raises(ValidationError, match="disagrees with the birth year"):
        citizen(birth_date={"year": 2090, "precision": "year"})


def test_citizen_with_an_eleven_digit_id_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        citizen(personal_id="00109000000")
    assert "personal_id" in str(info.value)
    assert "12 digits" in str(info.value)


def test_citizen_old_id_number_must_be_9_or_12_ascii_digits() -> None:
    assert citizen(old_id_number="012345678").old_id_number == "012345678"
    for bad in ["01234567", "０１２３４５６７８"]:
        with pytest.raises(ValidationError, match="old_id_number"):
            citizen(old_id_number=bad)


# -- PartialDate ----------------------------------------------------------------------------


def test_year_only_birth_date_is_accepted() -> None:
    assert PartialDate(year=1990, precision="year").iso == "1990"


def test_month_precision_birth_date_is_accepted() -> None:
    assert PartialDate(year=1990, month=5, precision="month").iso == "1990-05"


def test_day_precision_needs_month_and_day() -> None:
    with pytest.raises(ValidationError, match="precision 'day' does not match the parts given"):
        PartialDate(year=1990, month=5, precision="day")


def test_year_precision_with_a_day_is_refused() -> None:
    with pytest.raises(ValidationError, match="precision 'year' does not match"):
        PartialDate(year=1990, month=5, day=1, precision="year")


def test_thirty_first_of_february_is_refused() -> None:
    with pytest.raises(ValidationError, match="day is out of range for month"):
        PartialDate(year=1990, month=2, day=31, precision="day")


def test_twenty_ninth_of_february_needs_a_leap_year() -> None:
    assert PartialDate(year=2000, month=2, day=29, precision="day").iso == "2000-02-29"
    with pytest.raises(ValidationError):
        PartialDate(year=1900, month=2, day=29, precision="day")


def test_a_full_date_is_a_day_and_a_year_or_month_is_refused_naming_the_field() -> None:
    assert PartialDate(year=2025, month=6, day=30, precision="day").as_date() == date(2025, 6, 30)
    with pytest.raises(ValueError, match=r"^valid_to must be a full date"):
        PartialDate(year=2025, month=6, precision="month").as_date("valid_to")


# -- `tthc-bus schemas export` --------------------------------------------------------------


EXPORTED_FIELDS = {
    "LookupRequest": {
        "message_id",
        "type",
        "schema_version",
        "purpose",
        "legal_basis",
        "procedure_code",
        "subject",
        "datasets",
        "deadline",
    },
    "LookupResponse": {"message_id", "type", "request_id", "status", "results", "errors"},
    "Citizen": {"personal_id", "full_name", "birth_date", "sex", "permanent_address"},
}


def refs(node: Any) -> list[str]:
    """Every `$ref` target in a JSON Schema document."""
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("schemas") / "out"
    result = CliRunner().invoke(app, ["schemas", "export", str(directory)])
    assert result.exit_code == 0, result.output
    return directory


@pytest.mark.parametrize("name", sorted(EXPORTED_FIELDS))
def test_schemas_export_writes_a_json_schema_per_model(exported: Path, name: str) -> None:
    schema = json.loads((exported / f"{name}.schema.json").read_text(encoding="utf-8"))
    assert schema["title"] == name
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert EXPORTED_FIELDS[name] <= set(schema["properties"])
    for ref in refs(schema):
        assert ref.removeprefix("#/$defs/") in schema.get("$defs", {}), ref


def test_exported_lookup_request_schema_requires_what_the_model_requires(exported: Path) -> None:
    schema = json.loads((exported / "LookupRequest.schema.json").read_text(encoding="utf-8"))
    required = {"purpose", "legal_basis", "procedure_code", "subject", "datasets", "deadline"}
    assert required <= set(schema["required"])
    assert schema["properties"]["deadline"]["format"] == "date-time"
