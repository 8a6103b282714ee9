"""The mapping engine and the population mapping: native CongDan dicts -> Citizen."""

from __future__ import annotations

import copy
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from bus.errors import MappingError
from bus.schemas import Citizen
from mappings import Mapping, MappingFileError, load_mapping
from mappings.transforms import load_code_list


def congdan(**overrides: Any) -> dict[str, Any]:
    """A native CongDan record as the population database sends it."""
    record: dict[str, Any] = {
        "SoDinhDanh": "001085012345",
        "SoCMND": "012345678",
        "HoVaTen": {"Ho": "NGUYỄN", "ChuDem": "VĂN", "Ten": "ĐỨC"},
        "GioiTinh": 1,
        "DanToc": {"MaDanToc": "06"},
        "TonGiao": {"MaTonGiao": "02"},
        "QuocTich": "VN",
        "NgayThangNamSinh": {"NgayThangNam": "19850412"},
        "QueQuan": {"ChiTiet": "Thôn 1", "MaDonViHanhChinh": "12454", "MaTinh": "34",
                    "QuocGia": "VN"},
        "ThuongTru": {"ChiTiet": "Số 5 phố Hàng Bạc", "MaDonViHanhChinh": "00070",
                      "MaTinh": "01", "QuocGia": "VN"},
        "NoiOHienTai": {"ChiTiet": "Ấp 3", "MaDonViHanhChinh": "00001", "MaTinh": "77",
                        "QuocGia": "VN"},
        "Cha": {"HoVaTen": "NGUYỄN VĂN AN", "SoDinhDanh": "001055012345"},
        "Me": {"HoVaTen": "Trần Thị Hoà"},
        "ChuHo": {"HoVaTen": "NGUYỄN VĂN AN", "SoDinhDanh": "001055012345",
                  "QuanHeVoiChuHo": "Con"},
    }  # fmt: skip
    record.update(overrides)
    return record


@pytest.fixture(scope="module")
def population() -> Mapping:
    return load_mapping("population")


def apply(mapping: Mapping, record: dict[str, Any]) -> Citizen:
    citizen = mapping.apply(record)
    assert isinstance(citizen, Citizen)
    return citizen


# --- the whole record -----------------------------------------------------------------------


def test_population_record_maps_to_citizen(population: Mapping) -> None:
    c = apply(population, congdan())
    assert c.personal_id == "001085012345"
    assert c.old_id_number == "012345678"
    assert (c.full_name, c.family_name, c.middle_name, c.given_name) == (
        "Nguyễn Văn Đức", "Nguyễn", "Văn", "Đức",
    )  # fmt: skip
    assert c.birth_date is not None and c.birth_date.iso == "1985-04-12"
    assert c.sex == "male"
    assert c.ethnicity is not None
    assert (c.ethnicity.code, c.ethnicity.name, c.ethnicity.code_list) == (
        "06", "Hoa", "ethnicity-2008",
    )  # fmt: skip
    assert c.religion is not None and (c.religion.code, c.religion.name) == ("02", "Công giáo")
    assert c.nationality == "VN"
    assert c.father is not None and c.father.full_name == "Nguyễn Văn An"
    assert c.father.personal_id == "001055012345"
    assert c.mother is not None and c.mother.full_name == "Trần Thị Hoà"
    assert c.spouse is None
    assert c.household_head is not None and c.household_head.relation == "Con"


def test_addresses_are_converted_to_2025_units(population: Mapping) -> None:
    c = apply(population, congdan())
    assert c.hometown is not None and c.hometown.conversion == "exact"
    assert (c.hometown.province_code, c.hometown.commune_code) == ("33", "12454")
    assert c.hometown.commune_name == "Phường Trần Lãm"
    assert c.hometown.original is not None
    assert c.hometown.original.province_code == "34"
    assert c.hometown.original.scheme == "pre-2025"
    assert c.permanent_address is not None and c.permanent_address.detail == "Số 5 phố Hàng Bạc"
    current = c.current_address
    assert current is not None and current.conversion == "ambiguous"
    assert (current.province_code, current.commune_code) == ("79", None)
    assert current.original is not None and current.original.commune_code == "00001"


def test_foreign_address_is_left_unconverted(population: Mapping) -> None:
    record = congdan(NoiOHienTai={"ChiTiet": "12 Rue de Rivoli, Paris", "QuocGia": "FR"})
    current = apply(population, record).current_address
    assert current is not None
    assert (current.country, current.conversion, current.province_code) == ("FR", "unchanged", None)


def test_apply_does_not_change_the_native_record(population: Mapping) -> None:
    record = congdan()
    before = copy.deepcopy(record)
    population.apply(record)
    assert record == before


def test_load_mapping_is_cached() -> None:
    assert load_mapping("population") is load_mapping("population")


# --- names ----------------------------------------------------------------------------------


def test_upper_case_names_are_title_cased_keeping_d_stroke(population: Mapping) -> None:
    c = apply(population, congdan(HoVaTen={"Ho": "ĐẶNG", "ChuDem": "THỊ", "Ten": "ĐÀO"}))
    assert c.full_name == "Đặng Thị Đào"
    assert c.full_name[0] == "\u0110" and "\u0111" not in c.full_name[1:4]


def test_tone_placement_is_kept_as_written(population: Mapping) -> None:
    old = apply(population, congdan(HoVaTen={"Ho": "LÊ", "ChuDem": "THỊ", "Ten": "HOÀ"}))
    new = apply(population, congdan(HoVaTen={"Ho": "Lê", "ChuDem": "Thị", "Ten": "Hòa"}))
    assert old.given_name == "Hoà"
    assert new.given_name == "Hòa"


def test_decomposed_names_are_stored_nfc(population: Mapping) -> None:
    decomposed = {k: unicodedata.normalize("NFD", v) for k, v in
                  {"Ho": "Nguyễn", "ChuDem": "Thị", "Ten": "Ánh"}.items()}  # fmt: skip
    assert decomposed["Ho"] != "Nguyễn"
    c = apply(population, congdan(HoVaTen=decomposed))
    assert c.full_name == "Nguyễn Thị Ánh"
    assert unicodedata.is_normalized("NFC", c.full_name)


def test_mixed_case_names_are_kept_and_spaces_collapsed(population: Mapping) -> None:
    c = apply(population, congdan(HoVaTen={"Ho": " Mai ", "Ten": "Phương  Thảo"}))
    assert c.full_name == "Mai Phương Thảo"
    assert c.middle_name is None


def test_eth_is_read_as_d_stroke(population: Mapping) -> None:
    c = apply(population, congdan(HoVaTen={"Ho": "\u00d0Ỗ", "ChuDem": "VĂN", "Ten": "HÙNG"}))
    assert c.full_name == "\u0110ỗ Văn Hùng"


# --- dates ----------------------------------------------------------------------------------


def test_year_only_birth_date(population: Mapping) -> None:
    c = apply(population, congdan(NgayThangNamSinh={"Nam": "1985"}))
    assert c.birth_date is not None
    assert (c.birth_date.year, c.birth_date.precision, c.birth_date.month) == (1985, "year", None)


def test_impossible_date_names_the_path(population: Mapping) -> None:
    with pytest.raises(MappingError) as info:
        population.apply(congdan(NgayThangNamSinh={"NgayThangNam": "19850231"}))
    assert info.value.path == "NgayThangNamSinh.NgayThangNam"
    assert info.value.value == "19850231"
    assert "calendar" in info.value.expected


def test_unparseable_date_says_which_formats(population: Mapping) -> None:
    with pytest.raises(MappingError) as info:
        population.apply(congdan(NgayThangNamSinh={"NgayThangNam": "12/04/1985"}))
    message = str(info.value)
    assert message.startswith("NgayThangNamSinh.NgayThangNam: expected a date")
    assert "yyyyMMdd" in message
    assert message.endswith("(got str of 10 chars)")
    assert "12/04/1985" not in message  # a birth date is personal data
    assert info.value.value == "12/04/1985"  # kept for code that needs it


MAPPING_HEADER = 'target = "relative"\n[fields.full_name]\npath = "Ten"\n'


def write_mapping(tmp_path: Path, body: str, header: str = MAPPING_HEADER) -> Path:
    path = tmp_path / "test.toml"
    path.write_text(header + body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("value", "iso"),
    [("12/04/1985", "1985-04-12"), ("198504121530", "1985-04-12"), ("1985", "1985")],
)
def test_other_date_formats(tmp_path: Path, value: str, iso: str) -> None:
    body = '[fields.relation]\npath = "Ngay"\ntransform = "date"\n'
    body += 'formats = ["dd/MM/yyyy", "yyyyMMddHHmm", "yyyy"]\n'
    mapping = Mapping("test", write_mapping(tmp_path, body))
    # Relative.relation is text: check the converter itself through a date-typed field instead.
    step = next(s for s in mapping.steps if s.target == "relation")
    result = step.convert(value)
    parts = [f"{result['year']:04d}"] + [
        f"{result[k]:02d}" for k in ("month", "day") if k in result
    ]
    assert "-".join(parts) == iso


# --- codes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("native", "sex"), [(0, "unknown"), (1, "male"), (2, "female")])
def test_sex_codes_of_the_population_database(population: Mapping, native: int, sex: str) -> None:
    pid = "001085012345" if sex != "female" else "001185012345"
    assert apply(population, congdan(SoDinhDanh=pid, GioiTinh=native)).sex == sex


def test_code_not_in_its_list_names_path_value_and_list(population: Mapping) -> None:
    with pytest.raises(MappingError) as info:
        population.apply(congdan(DanToc={"MaDanToc": "99"}))
    message = str(info.value)
    assert info.value.path == "DanToc.MaDanToc"
    assert info.value.value == "99"
    assert message.startswith("DanToc.MaDanToc: expected a code of list 'ethnicity-2008'")
    assert message.endswith("(got str of 2 chars)")


def test_religion_none_code_means_no_religion(population: Mapping) -> None:
    assert apply(population, congdan(TonGiao={"MaTonGiao": "00"})).religion is None


def test_numeric_codes_are_zero_padded(population: Mapping) -> None:
    c = apply(population, congdan(DanToc={"MaDanToc": 4}))
    assert c.ethnicity is not None and (c.ethnicity.code, c.ethnicity.name) == ("04", "Mường")


def test_the_two_ethnicity_lists_differ_where_domain_says() -> None:
    new, old = load_code_list("ethnicity-2008").codes, load_code_list("ethnicity-1979").codes
    assert len(new) == len(old) == 54
    assert (new["06"], old["04"]) == ("Hoa", "Hoa")
    assert (new["04"], old["06"]) == ("Mường", "Mường")
    assert (new["11"], old["12"]) == ("Ê Đê", "Ê Đê")
    assert new["01"] == old["01"] == "Kinh"


def test_sex_lists_of_other_sources() -> None:
    assert load_code_list("sex-insurance").codes == {"1": "male", "2": "female"}
    assert load_code_list("sex-health").codes["3"] == "unknown"


# --- required fields and validation -----------------------------------------------------------


def test_missing_required_field_names_the_native_path(population: Mapping) -> None:
    record = congdan()
    del record["SoDinhDanh"]
    with pytest.raises(MappingError) as info:
        population.apply(record)
    assert info.value.path == "SoDinhDanh"
    assert "required" in info.value.expected


def test_missing_name_of_a_relative_names_the_nested_path(population: Mapping) -> None:
    with pytest.raises(MappingError) as info:
        population.apply(congdan(Cha={"SoDinhDanh": "001055012345"}))
    assert info.value.path == "Cha.HoVaTen"


def test_optional_missing_parts_are_left_out(population: Mapping) -> None:
    record = congdan()
    for key in ("SoCMND", "Cha", "Me", "QueQuan"):
        del record[key]
    c = apply(population, record)
    assert (c.old_id_number, c.father, c.mother, c.hometown) == (None, None, None, None)


def test_blank_and_absent_parts_are_missing_as_zeep_gives_them(population: Mapping) -> None:
    # zeep's plain dicts name every element of a type, None when absent.
    record = congdan(
        HoVaTen={"Ho": "NGUYỄN", "ChuDem": " \u3000\t", "Ten": "ĐỨC"},
        Cha={"HoVaTen": None, "SoDinhDanh": None},
        Me={"HoVaTen": "  ", "SoDinhDanh": ""},
        VoChong=None,
        SoCMND=None,
    )
    c = apply(population, record)
    assert (c.full_name, c.middle_name) == ("Nguyễn Đức", None)
    assert (c.father, c.mother, c.spouse, c.old_id_number) == (None, None, None, None)


def test_address_codes_read_as_numbers_convert_as_text(population: Mapping) -> None:
    as_text = apply(population, congdan()).hometown
    numbers = {"ChiTiet": "Thôn 1", "MaDonViHanhChinh": 12454, "MaTinh": 34, "QuocGia": None}
    as_numbers = apply(population, congdan(QueQuan=numbers)).hometown
    assert as_numbers == as_text
    again = apply(population, congdan()).hometown  # converted units are remembered
    assert again == as_text


def test_personal_id_disagreeing_with_birth_year_is_a_mapping_error(population: Mapping) -> None:
    with pytest.raises(MappingError) as info:
        population.apply(congdan(NgayThangNamSinh={"NgayThangNam": "19900412"}))
    assert info.value.path == "citizen"
    assert "birth year" in info.value.expected


def test_field_validation_failure_names_target_and_native_field(population: Mapping) -> None:
    with pytest.raises(MappingError) as info:
        population.apply(congdan(SoCMND="12345"))
    assert info.value.path == "old_id_number (from SoCMND)"
    assert info.value.value == "12345"
    assert "12345" not in str(info.value)


# --- messages never carry the native value ----------------------------------------------------


def test_message_of_a_bad_personal_id_names_field_and_rule_but_not_the_id(
    population: Mapping,
) -> None:
    with pytest.raises(MappingError) as info:
        population.apply(congdan(SoDinhDanh="0010850123456"))  # 13 digits
    message = str(info.value)
    assert "SoDinhDanh" in message and "12 digits" in message
    assert "0010850123456" not in message and "001085012345" not in message
    assert "0010850123456" not in repr(info.value)
    assert info.value.value == "0010850123456"


@pytest.mark.parametrize(
    ("field", "path"),
    [("QuocTich", "nationality (from QuocTich)"), ("DanToc", "DanToc.MaDanToc")],
)
def test_message_of_a_name_in_the_wrong_field_does_not_quote_it(
    population: Mapping, field: str, path: str
) -> None:
    name = "NGUYỄN VĂN ĐỨC"  # a shifted column: the name where a code was expected
    value: Any = name if field == "QuocTich" else {"MaDanToc": name}
    with pytest.raises(MappingError) as info:
        population.apply(congdan(**{field: value}))
    message = str(info.value)
    assert message.startswith(f"{path}: expected ")
    assert message.endswith(f"(got str of {len(name)} chars)")
    for part in name.split():
        assert part not in message and part not in repr(info.value)
    assert info.value.value == name


@pytest.mark.parametrize(
    ("value", "described"),
    [
        ("001085012345", "str of 12 chars"),
        ("Nguyễn Văn An", "str of 13 chars"),
        (b"\x00\x01", "bytes of 2 bytes"),
        ({"Ho": "Nguyễn", "Ten": "An"}, "dict of 2 items"),
        (["Nguyễn", "An"], "list of 2 items"),
        (1085012345, "int"),
        (None, "nothing"),
    ],
)
def test_mapping_error_str_has_type_and_length_only(value: object, described: str) -> None:
    error = MappingError("HoVaTen.Ten", value, "a name")
    assert str(error) == f"HoVaTen.Ten: expected a name (got {described})"
    assert error.value is value
    for secret in ("001085012345", "Nguyễn", "An", "1085012345"):
        if secret in repr(value):
            assert secret not in str(error) and secret not in repr(error)


# --- bad mapping files fail at load -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "key", "expected"),
    [
        ('[fields.nickname]\npath = "X"\n', "fields.nickname", "a field of Relative"),
        ('[fields.relation]\npath = "X"\ntransform = "upper"\n', "fields.relation.transform",
         "one of"),
        ('[fields.relation]\npath = "X"\ntransform = "date"\n', "fields.relation.formats",
         "required"),
        ('[fields.relation]\npath = "X"\ntransform = "date"\nformats = ["dd/mm/yyyy"]\n',
         "fields.relation.formats", "the month is MM"),
        ('[fields.relation]\npath = "X"\ntransform = "code"\nlist = "nope"\n',
         "fields.relation.list", "no code list 'nope'"),
        ('[fields.relation]\npath = "X"\ncolour = "red"\n', "fields.relation.colour", "one of"),
        ('[fields.relation]\npath = "X."\n', "fields.relation.path", "dotted native path"),
        ('[fields.relation]\npaths = ["X"]\n', "fields.relation.paths", "for transform 'text'"),
        ('[fields.relation]\npath = "X"\nrequired = "yes"\n', "fields.relation.required",
         "true or false"),
    ],
)  # fmt: skip
def test_bad_mapping_file_fails_at_load(tmp_path: Path, body: str, key: str, expected: str) -> None:
    path = write_mapping(tmp_path, body)
    with pytest.raises(MappingFileError) as info:
        Mapping("test", path)
    assert info.value.key == key
    assert expected in info.value.expected
    assert str(path) in str(info.value)


def test_mapping_must_cover_required_fields_of_the_target(tmp_path: Path) -> None:
    path = write_mapping(tmp_path, "", header='target = "relative"\n[fields.relation]\npath="R"\n')
    with pytest.raises(MappingFileError, match="full_name"):
        Mapping("test", path)


def test_unknown_target_and_broken_toml(tmp_path: Path) -> None:
    with pytest.raises(MappingFileError, match="target"):
        Mapping("test", write_mapping(tmp_path, "", header='target = "person"\n'))
    with pytest.raises(MappingFileError, match="TOML"):
        Mapping("test", write_mapping(tmp_path, "", header="target = \n"))
    with pytest.raises(MappingFileError, match="known"):
        load_mapping("no-such-mapping")
