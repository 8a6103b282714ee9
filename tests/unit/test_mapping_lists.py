"""Lists in mapping files (`many = true`), the bool and number transforms, and target registration.

The models here stand in for the business registration schemas, which the engine must not know:
they reach it through `Mapping(..., targets=...)` or `register_target`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field, field_validator

from bus.errors import MappingError
from bus.identifiers import check_personal_id
from bus.schemas.citizen import CodedValue, PartialDate
from bus.schemas.common import Model, NFCStr
from mappings import Mapping, MappingFileError, engine

Phone = Annotated[str, Field(pattern=r"^0[0-9]{9}$")]


class Representative(Model):
    full_name: NFCStr
    personal_id: str | None = None
    birth_date: PartialDate | None = None
    phones: list[Phone] | None = None

    @field_validator("personal_id")
    @classmethod
    def _personal_id_form(cls, value: str | None) -> str | None:
        return None if value is None else check_personal_id(value)


class Activity(Model):
    code: CodedValue
    main: bool = False


class Enterprise(Model):
    enterprise_code: str
    name: NFCStr
    representatives: list[Representative] | None = None
    activities: list[Activity] = Field(default_factory=list)
    activity_names: list[str] | None = None
    capital: int | float | None = None
    foreign_owned: bool | None = None


TARGETS: dict[str, type[BaseModel]] = {
    "enterprise": Enterprise,
    "representative": Representative,
    "activity": Activity,
}

ENTERPRISE_MAPPING = """
target = "enterprise"

[fields.enterprise_code]
path = "ENTERPRISE_CODE"
required = true

[fields.name]
path = "NAME"
required = true

[fields.representatives]
model = "representative"
path = "DAI_DIEN"
many = true
shape = "person"

[fields.activities]
model = "activity"
path = "NGANH_NGHE"
many = true
fields.code = { path = "MA_NGANH", transform = "code", list = "vsic-2018", width = 4 }
fields.main = { path = "IS_MAIN", transform = "bool" }

[fields.activity_names]
path = "MA_NGANH_KHAC"
transform = "code"
list = "vsic-2018"
output = "label"
many = true

[fields.capital]
path = "CAPITAL_AMOUNT"
transform = "number"

[fields.foreign_owned]
path = "CO_VON_NUOC_NGOAI"
transform = "bool"
true = ["C", "Có"]
false = ["K", "Không"]

[shapes.person.full_name]
path = "HO_TEN"
transform = "name"
required = true

[shapes.person.personal_id]
path = "SO_DINH_DANH"

[shapes.person.birth_date]
path = "NGAY_SINH"
transform = "date"
formats = ["dd/MM/yyyy"]

[shapes.person.phones]
path = "DIEN_THOAI"
many = true
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "enterprise.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def mapping(tmp_path: Path) -> Mapping:
    return Mapping("enterprise", write(tmp_path, ENTERPRISE_MAPPING), targets=TARGETS)


def person(name: str, pid: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"HO_TEN": name, "SO_DINH_DANH": pid, **extra}


def enterprise(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"ENTERPRISE_CODE": "0100047516", "NAME": "Công ty cổ phần An Bình"}
    record.update(overrides)
    return record


def apply(mapping: Mapping, record: dict[str, Any]) -> Enterprise:
    result = mapping.apply(record)
    assert isinstance(result, Enterprise)
    return result


# --- lists of tables --------------------------------------------------------------------------


def test_a_list_of_tables_maps_to_a_list_of_models_in_order(mapping: Mapping) -> None:
    record = enterprise(
        DAI_DIEN=[
            person("NGUYỄN VĂN AN", "001085012345", NGAY_SINH="12/04/1985"),
            person("Trần Thị Bình", DIEN_THOAI=["0912345678", "0987654321"]),
        ]
    )
    reps = apply(mapping, record).representatives
    assert reps is not None
    assert [r.full_name for r in reps] == ["Nguyễn Văn An", "Trần Thị Bình"]
    assert reps[0].personal_id == "001085012345"
    assert reps[0].birth_date is not None and reps[0].birth_date.iso == "1985-04-12"
    assert reps[1].phones == ["0912345678", "0987654321"]


def test_a_single_table_is_a_list_of_one(mapping: Mapping) -> None:
    reps = apply(mapping, enterprise(DAI_DIEN=person("LÊ VĂN CƯỜNG"))).representatives
    assert reps is not None and [r.full_name for r in reps] == ["Lê Văn Cường"]


@pytest.mark.parametrize("value", [None, [], [None, {"HO_TEN": " ", "SO_DINH_DANH": ""}]])
def test_a_missing_or_empty_list_leaves_the_field_absent(mapping: Mapping, value: Any) -> None:
    assert apply(mapping, enterprise(DAI_DIEN=value)).representatives is None
    assert apply(mapping, enterprise()).representatives is None


def test_empty_elements_are_left_out(mapping: Mapping) -> None:
    record = enterprise(DAI_DIEN=[None, person("Phạm An"), {}, person("Vũ Bình")])
    reps = apply(mapping, record).representatives
    assert reps is not None and [r.full_name for r in reps] == ["Phạm An", "Vũ Bình"]


def test_nested_tables_with_their_own_transforms(mapping: Mapping) -> None:
    record = enterprise(
        NGANH_NGHE=[{"MA_NGANH": "4620", "IS_MAIN": 1}, {"MA_NGANH": 6201, "IS_MAIN": "0"}]
    )
    activities = apply(mapping, record).activities
    assert [(a.code.code, a.main) for a in activities] == [("4620", True), ("6201", False)]
    assert activities[1].code.name == "Lập trình máy vi tính"


def test_an_element_failing_a_transform_is_named_by_its_index(mapping: Mapping) -> None:
    birth = "31/02/1985"
    record = enterprise(DAI_DIEN=[person("An"), person("Bình"), person("Cường", NGAY_SINH=birth)])
    with pytest.raises(MappingError) as info:
        mapping.apply(record)
    assert info.value.path == "DAI_DIEN[2].NGAY_SINH"
    assert "calendar" in info.value.expected
    assert birth not in str(info.value) and "Cường" not in str(info.value)


def test_an_element_missing_a_required_value_is_named_by_its_index(mapping: Mapping) -> None:
    record = enterprise(DAI_DIEN=[person("An"), {"SO_DINH_DANH": "001085012345"}])
    with pytest.raises(MappingError) as info:
        mapping.apply(record)
    assert info.value.path == "DAI_DIEN[1].HO_TEN"
    assert "required" in info.value.expected


def test_an_element_failing_validation_names_target_and_native_index(mapping: Mapping) -> None:
    bad_id = "00108501234"  # 11 digits
    record = enterprise(DAI_DIEN=[person("An"), person("Bình"), person("Cường", bad_id)])
    with pytest.raises(MappingError) as info:
        mapping.apply(record)
    assert info.value.path == "representatives[2].personal_id (from DAI_DIEN[2].SO_DINH_DANH)"
    assert "12 digits" in info.value.expected
    assert bad_id not in str(info.value) and bad_id not in repr(info.value)


def test_validation_error_index_is_the_native_one_when_empty_elements_were_left_out(
    mapping: Mapping,
) -> None:
    record = enterprise(DAI_DIEN=[None, person("Cường", "123")])
    with pytest.raises(MappingError) as info:
        mapping.apply(record)
    assert info.value.path == "representatives[0].personal_id (from DAI_DIEN[1].SO_DINH_DANH)"


def test_a_list_inside_a_list_element_names_both_indices(mapping: Mapping) -> None:
    phones = ["", "0912345678", "12345"]
    record = enterprise(DAI_DIEN=[person("An"), person("Bình", DIEN_THOAI=phones)])
    with pytest.raises(MappingError) as info:
        mapping.apply(record)
    assert info.value.path == ("representatives[1].phones[1] (from DAI_DIEN[1].DIEN_THOAI[2])")
    assert "12345" not in str(info.value)


def test_a_scalar_where_tables_are_expected_is_refused(mapping: Mapping) -> None:
    with pytest.raises(MappingError) as info:
        mapping.apply(enterprise(DAI_DIEN="Nguyễn Văn An"))
    assert info.value.path == "DAI_DIEN"
    assert info.value.expected == "a table or a list of tables"
    with pytest.raises(MappingError) as element:
        mapping.apply(enterprise(DAI_DIEN=[person("An"), "Nguyễn Văn An"]))
    assert (element.value.path, element.value.expected) == ("DAI_DIEN[1]", "a table")


# --- lists of values ----------------------------------------------------------------------------


def test_a_list_of_codes_maps_each_to_its_label(mapping: Mapping) -> None:
    names = apply(mapping, enterprise(MA_NGANH_KHAC=["4620", "6201"])).activity_names
    assert names == [
        "Bán buôn nông, lâm sản nguyên liệu (trừ gỗ, tre, nứa) và động vật sống",
        "Lập trình máy vi tính",
    ]
    assert apply(mapping, enterprise(MA_NGANH_KHAC="5610")).activity_names == [
        "Nhà hàng và các dịch vụ ăn uống phục vụ lưu động"
    ]


def test_a_value_of_a_list_failing_its_transform_is_named_by_its_index(mapping: Mapping) -> None:
    with pytest.raises(MappingError) as info:
        mapping.apply(enterprise(MA_NGANH_KHAC=["4620", "9999"]))
    assert info.value.path == "MA_NGANH_KHAC[1]"
    assert info.value.expected.startswith("a code of list 'vsic-2018'")


def test_a_table_inside_a_list_of_values_is_refused(mapping: Mapping) -> None:
    with pytest.raises(MappingError) as info:
        mapping.apply(enterprise(MA_NGANH_KHAC=["4620", {"MA": "6201"}]))
    assert info.value.path == "MA_NGANH_KHAC[1]"
    assert "not a table or a list" in info.value.expected


# --- bool and number ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("native", "expected"),
    [(1, True), ("1", True), (True, True), ("Y", True), ("yes", True), ("TRUE", True),
     (0, False), ("0", False), (False, False), ("n", False), ("false", False)],
)  # fmt: skip
def test_bool_reads_the_usual_native_spellings(
    mapping: Mapping, native: Any, expected: bool
) -> None:
    record = enterprise(NGANH_NGHE={"MA_NGANH": "4620", "IS_MAIN": native})
    assert apply(mapping, record).activities[0].main is expected


@pytest.mark.parametrize("native", [2, "maybe", "có", 0.5])
def test_bool_refuses_other_values_saying_what_it_accepts(mapping: Mapping, native: Any) -> None:
    with pytest.raises(MappingError) as info:
        mapping.apply(enterprise(NGANH_NGHE={"MA_NGANH": "4620", "IS_MAIN": native}))
    assert info.value.path == "NGANH_NGHE[0].IS_MAIN"
    assert info.value.expected.startswith("true or false as one of ['1', 'true'")


@pytest.mark.parametrize(("native", "expected"), [("C", True), ("có", True), ("Không", False),
                                                  (True, True)])  # fmt: skip
def test_bool_with_the_files_own_values(mapping: Mapping, native: Any, expected: bool) -> None:
    assert apply(mapping, enterprise(CO_VON_NUOC_NGOAI=native)).foreign_owned is expected


def test_bool_with_the_files_own_values_refuses_the_defaults(mapping: Mapping) -> None:
    with pytest.raises(MappingError) as info:
        mapping.apply(enterprise(CO_VON_NUOC_NGOAI="1"))
    assert "['C', 'Có'] or ['K', 'Không']" in info.value.expected


@pytest.mark.parametrize(
    ("native", "expected"),
    [("1500000000", 1_500_000_000), (1_500_000_000, 1_500_000_000), (" 250000 ", 250_000),
     ("2500000.50", 2_500_000.5), (2.5e6, 2.5e6), ("-3", -3)],
)  # fmt: skip
def test_number_reads_integers_and_decimals(mapping: Mapping, native: Any, expected: Any) -> None:
    capital = apply(mapping, enterprise(CAPITAL_AMOUNT=native)).capital
    assert capital == expected and type(capital) is type(expected)


@pytest.mark.parametrize("native", ["1.500.000.000", "1,5e9", "15 tỷ", True, float("nan")])
def test_number_refuses_other_text_without_quoting_it(mapping: Mapping, native: Any) -> None:
    with pytest.raises(MappingError) as info:
        mapping.apply(enterprise(CAPITAL_AMOUNT=native))
    assert info.value.path == "CAPITAL_AMOUNT"
    assert info.value.expected.startswith("a number written like 1500000000")
    assert str(native) not in str(info.value)


def number_mapping(tmp_path: Path, args: str) -> Mapping:
    text = ENTERPRISE_MAPPING.replace(
        'path = "CAPITAL_AMOUNT"\ntransform = "number"\n',
        f'path = "CAPITAL_AMOUNT"\ntransform = "number"\n{args}\n',
    )
    return Mapping("enterprise", write(tmp_path, text), targets=TARGETS)


def test_number_with_vietnamese_grouping(tmp_path: Path) -> None:
    mapping = number_mapping(tmp_path, 'thousands = "."')
    assert apply(mapping, enterprise(CAPITAL_AMOUNT="1.500.000.000")).capital == 1_500_000_000
    assert apply(mapping, enterprise(CAPITAL_AMOUNT="2.500,5")).capital == 2500.5
    with pytest.raises(MappingError, match=r"expected a number written like 1\.500\.000\.000"):
        mapping.apply(enterprise(CAPITAL_AMOUNT="1.50.000"))


def test_number_that_must_be_whole(tmp_path: Path) -> None:
    mapping = number_mapping(tmp_path, "integer = true")
    assert apply(mapping, enterprise(CAPITAL_AMOUNT="10.00")).capital == 10
    assert apply(mapping, enterprise(CAPITAL_AMOUNT=10.0)).capital == 10
    for native in ("10.5", 10.5):
        with pytest.raises(MappingError, match="expected a whole number"):
            mapping.apply(enterprise(CAPITAL_AMOUNT=native))


# --- bad files fail at load, naming file and key --------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "key", "expected"),
    [
        ('path = "DAI_DIEN"\nmany = true', 'path = "DAI_DIEN"\nmany = "yes"',
         "fields.representatives.many", "true or false, got 'yes'"),
        ('path = "DAI_DIEN"\nmany = true', 'path = "DAI_DIEN"',
         "fields.representatives.many", "true: Enterprise.representatives is a list"),
        ('path = "CAPITAL_AMOUNT"\n', 'path = "CAPITAL_AMOUNT"\nmany = true\n',
         "fields.capital.many", "a list field: Enterprise.capital is not a list"),
        ('path = "MA_NGANH_KHAC"\ntransform = "code"\nlist = "vsic-2018"\noutput = "label"\n',
         'transform = "join"\npaths = ["A", "B"]\n',
         "fields.activity_names.many", "a transform reading one value, not 'join'"),
        ('transform = "bool"\ntrue = ["C", "Có"]', 'transform = "bool"\ntrue = ["C", "K"]',
         "fields.foreign_owned.false", "values not also listed as true: ['k']"),
        ('true = ["C", "Có"]', "true = [1]", "fields.foreign_owned.true", "a list of str"),
        ('transform = "number"\n', 'transform = "number"\nthousands = "_"\n',
         "fields.capital.thousands", "one of ['.', ',', ' ']"),
        ('model = "representative"', 'model = "nobody"', "fields.representatives.model",
         "'module:Class' or one of ['activity', 'enterprise', 'representative']"),
    ],
)  # fmt: skip
def test_bad_list_or_transform_fails_at_load_naming_file_and_key(
    tmp_path: Path, old: str, new: str, key: str, expected: str
) -> None:
    assert old in ENTERPRISE_MAPPING
    path = write(tmp_path, ENTERPRISE_MAPPING.replace(old, new, 1))
    with pytest.raises(MappingFileError) as info:
        Mapping("enterprise", path, targets=TARGETS)
    assert info.value.key == key
    assert expected in info.value.expected
    assert str(path) in str(info.value)


# --- targets ------------------------------------------------------------------------------------


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, type[BaseModel]]:
    """A copy of the engine's registry, so registrations here do not outlive the test (and
    without any real schema registered under this module's names)."""
    targets = {name: model for name, model in engine.TARGETS.items() if name not in TARGETS}
    monkeypatch.setattr(engine, "TARGETS", targets)
    return targets


def test_a_registered_target_is_found_when_a_file_is_loaded(
    tmp_path: Path, registry: dict[str, type[BaseModel]]
) -> None:
    path = write(tmp_path, ENTERPRISE_MAPPING)
    with pytest.raises(MappingFileError, match="target: expected 'module:Class' or one of"):
        Mapping("enterprise", path)
    for name, model in TARGETS.items():
        engine.register_target(name, model)
    assert apply(Mapping("enterprise", path), enterprise()).name == "Công ty cổ phần An Bình"


def test_registering_the_same_model_again_is_harmless_another_is_refused(
    registry: dict[str, type[BaseModel]],
) -> None:
    engine.register_target("enterprise", Enterprise)
    engine.register_target("enterprise", Enterprise)
    assert registry["enterprise"] is Enterprise
    with pytest.raises(ValueError, match="target 'enterprise' is already"):
        engine.register_target("enterprise", Activity)
    with pytest.raises(ValueError, match="without ':'"):
        engine.register_target("bus.schemas:Enterprise", Enterprise)
    with pytest.raises(TypeError, match="a pydantic model class"):
        engine.register_target("thing", dict)  # type: ignore[arg-type]


def test_targets_given_to_a_mapping_do_not_change_the_registry(mapping: Mapping) -> None:
    assert mapping.model is Enterprise
    assert engine.TARGETS.get("enterprise") is not Enterprise
