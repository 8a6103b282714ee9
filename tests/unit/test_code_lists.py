"""Every code list under mappings/codes loads, and says what DOMAIN.md says."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from mappings.transforms import CODES_DIR, load_code_list

# provinces-2025 is the old -> new province table, read by mappings/units.py (test_units.py).
CODE_LISTS = sorted(p.stem for p in CODES_DIR.glob("*.toml") if p.stem != "provinces-2025")


def test_the_new_lists_are_there() -> None:
    new = {
        "licence-class-2025", "licence-class-pre2025", "enterprise-type", "enterprise-status",
        "insurance-beneficiary-group", "civil-event", "marital-status", "vsic-sections",
        "vsic-2018",
    }  # fmt: skip
    assert new <= set(CODE_LISTS)


@pytest.mark.parametrize("name", CODE_LISTS)
def test_every_code_list_loads_with_nfc_labels_and_attributes(name: str) -> None:
    code_list = load_code_list(name)
    assert code_list.name == name and code_list.codes
    for code, label in code_list.codes.items():
        assert label.strip() == label and unicodedata.is_normalized("NFC", label), code
    assert set(code_list.attributes) <= set(code_list.codes)
    for attributes in code_list.attributes.values():
        for value in attributes.values():
            if isinstance(value, str):
                assert unicodedata.is_normalized("NFC", value)


def test_the_old_lists_are_unchanged_by_the_table_form() -> None:
    assert load_code_list("ethnicity-1979").codes["04"] == "Hoa"
    assert load_code_list("ethnicity-2008").codes["06"] == "Hoa"
    assert load_code_list("religion").none == frozenset({"00"})
    assert load_code_list("sex-insurance").attributes == {}


# --- driver licences --------------------------------------------------------------------------

LAW_36_CLASSES = ["A1", "A", "B1", "B", "C1", "C", "D1", "D2", "D", "BE", "C1E", "CE", "D1E",
                  "D2E", "DE"]  # fmt: skip


def test_licence_classes_since_2025_and_their_terms() -> None:
    classes = load_code_list("licence-class-2025")
    assert list(classes.codes) == LAW_36_CLASSES
    terms = {code: attrs.get("validity_years") for code, attrs in classes.attributes.items()}
    assert terms["B"] == terms["C1"] == 10
    assert {terms[c] for c in ("C", "D1", "D2", "D", "BE", "C1E", "CE", "D1E", "D2E", "DE")} == {5}
    for code in ("A1", "A", "B1"):
        assert terms[code] is None and classes.attributes[code]["expires"] is False


@pytest.mark.parametrize(
    ("age", "classes"),
    [(18, ["A1", "A", "B1", "B", "C1"]), (24, ["D1", "D2", "C1E", "CE"]),
     (27, ["D", "D1E", "D2E", "DE"])],
)  # fmt: skip
def test_licence_minimum_ages_of_domain(age: int, classes: list[str]) -> None:
    attributes = load_code_list("licence-class-2025").attributes
    assert [attributes[c]["minimum_age"] for c in classes] == [age] * len(classes)


def test_old_licence_classes_exchange_to_classes_that_exist() -> None:
    old = load_code_list("licence-class-pre2025")
    new = set(load_code_list("licence-class-2025").codes)
    assert list(old.codes) == [
        "A1", "A2", "A3", "A4", "B1", "B2", "C", "D", "E", "FB2", "FC", "FD", "FE",
    ]  # fmt: skip
    for code, attributes in old.attributes.items():
        assert set(attributes["exchange_to"]) <= new, code
    exchange = {code: old.attributes[code]["exchange_to"] for code in old.codes}
    assert exchange["B1"] == exchange["B2"] == ["B", "C1"]
    assert (exchange["A2"], exchange["A3"], exchange["E"]) == (["A"], ["B1"], ["D"])
    assert exchange["A4"] == []  # a special-use vehicle certificate, not a licence


# --- enterprises ------------------------------------------------------------------------------


def test_enterprise_types_of_the_law_on_enterprises() -> None:
    types = load_code_list("enterprise-type")
    kinds = {code: attrs["kind"] for code, attrs in types.attributes.items()}
    enterprises = [types.codes[c] for c, kind in kinds.items() if kind == "enterprise"]
    assert enterprises == [
        "Công ty trách nhiệm hữu hạn một thành viên",
        "Công ty trách nhiệm hữu hạn hai thành viên trở lên",
        "Công ty cổ phần",
        "Công ty hợp danh",
        "Doanh nghiệp tư nhân",
    ]
    assert types.codes["11"] == "Chi nhánh"


def test_enterprise_status_has_the_seven_legal_statuses() -> None:
    statuses = load_code_list("enterprise-status")
    assert list(statuses.codes) == [str(n) for n in range(1, 8)]
    assert statuses.codes["1"] == "Đang hoạt động"
    ceased = [c for c, attrs in statuses.attributes.items() if not attrs["exists"]]
    assert ceased == ["7"]


def test_vsic_sections_cover_every_division_once() -> None:
    sections = load_code_list("vsic-sections")
    assert list(sections.codes) == [chr(c) for c in range(ord("A"), ord("U") + 1)]
    bounds = [sections.attributes[s]["divisions"] for s in sections.codes]
    starts = [int(first) for first, _ in bounds]
    ends = [int(last) for _, last in bounds]
    assert starts == sorted(starts) and all(e < s for e, s in zip(ends, starts[1:], strict=False))
    assert (starts[0], ends[-1]) == (1, 99)


def section_of(code: str) -> str:
    sections = load_code_list("vsic-sections")
    division = code[:2]
    return next(
        s
        for s, attrs in sections.attributes.items()
        if attrs["divisions"][0] <= division <= attrs["divisions"][1]
    )


def test_vsic_classes_are_four_digits_each_in_a_section() -> None:
    classes = load_code_list("vsic-2018")
    assert len(classes.codes) >= 40
    assert all(len(code) == 4 and code.isdigit() for code in classes.codes)
    assert classes.codes["6201"] == "Lập trình máy vi tính"
    assert classes.codes["5610"] == "Nhà hàng và các dịch vụ ăn uống phục vụ lưu động"
    assert section_of("4620") == "G" and section_of("0111") == "A" and section_of("6201") == "J"
    assert {section_of(code) for code in classes.codes} >= {"A", "C", "F", "G", "I", "J", "M"}


# --- people -----------------------------------------------------------------------------------


def test_health_card_groups_of_domain_are_known() -> None:
    groups = load_code_list("insurance-beneficiary-group")
    assert {"DN", "HC", "HT", "TE", "HS", "HN", "CN"} <= set(groups.codes)
    assert all(len(code) == 2 and code.isupper() for code in groups.codes)
    assert groups.codes["TE"] == "Trẻ em dưới 6 tuổi"
    payers = {attrs["payer"] for attrs in groups.attributes.values()}
    assert payers == {"employer", "social-insurance", "state-budget", "state-budget-support",
                      "household"}  # fmt: skip


def test_civil_events_registered_and_recorded() -> None:
    events = load_code_list("civil-event")
    by_name = {name: code for code, name in events.codes.items()}
    assert (by_name["Khai sinh"], by_name["Kết hôn"], by_name["Khai tử"]) == ("01", "02", "08")
    assert by_name["Ly hôn"] == "16" and by_name["Nuôi con nuôi"] == "14"
    kinds = {code: attrs["kind"] for code, attrs in events.attributes.items()}
    assert kinds["08"] == "registered" and kinds["16"] == "recorded"


def test_marital_statuses() -> None:
    assert load_code_list("marital-status").codes == {
        "1": "Chưa kết hôn",
        "2": "Đang có vợ hoặc chồng",
        "3": "Đã ly hôn",
        "4": "Góa vợ hoặc góa chồng",
    }


# --- the table form is checked ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[codes.X]\nname_en = "x"\n', "a table with a string name"),
        ('[codes.X]\nname = "x"\nvalid = { years = 5 }\n', "codes.X.valid"),
        ('[codes]\nX = "Hoa\\u0300"\n', "must be NFC"),
    ],
)
def test_a_malformed_code_list_names_file_and_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, message: str
) -> None:
    (tmp_path / "broken.toml").write_text(f'name = "broken"\n{body}', encoding="utf-8")
    monkeypatch.setattr("mappings.transforms.CODES_DIR", tmp_path)
    load_code_list.cache_clear()
    try:
        with pytest.raises(ValueError, match=message) as info:
            load_code_list("broken")
        assert "broken.toml" in str(info.value)
    finally:
        load_code_list.cache_clear()
