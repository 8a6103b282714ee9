"""The transforms a mapping file can name, and the code lists they use.

A transform is declared by what it reads (one value, a list of values, or named values), the
arguments it accepts, and a `build` function that turns the arguments into a converter once, when
the mapping file is loaded. Converters run per record: no parsing of arguments, no regex
compilation, no file access there.

A converter raises `TransformError(expected)` when a value cannot be converted; the engine adds
the native path and the value to make a `MappingError`. `expected` must not quote the value: it
ends up in logs and replies.
"""

from __future__ import annotations

import math
import re
import tomllib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, Literal, cast

from mappings.units import convert_unit

CODES_DIR = Path(__file__).parent / "codes"

Converter = Callable[[Any], Any]
InputKind = Literal["one", "many", "named"]


class TransformError(ValueError):
    """A value could not be converted; `expected` says what would have been accepted."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


class TransformArgumentError(ValueError):
    """A transform argument in a mapping file is wrong: `key` is the argument's name."""

    def __init__(self, key: str, expected: str) -> None:
        super().__init__(f"{key}: expected {expected}")
        self.key = key
        self.expected = expected


@dataclass(frozen=True)
class Param:
    kind: type
    required: bool = False
    item: type | None = None  # element type when kind is list
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Transform:
    inputs: InputKind
    build: Callable[[dict[str, Any]], Converter]
    params: dict[str, Param] = field(default_factory=dict)
    input_names: tuple[str, ...] = ()  # for "named" transforms


def is_empty(value: Any) -> bool:
    """None, a blank string, or a container holding only empty values."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value or value.isspace()
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, list):
        return False
    return all(map(is_empty, value))  # map, not a generator: this runs for every field


# --- text and names -------------------------------------------------------------------------

# Eth (U+00D0/U+00F0) is never Vietnamese: it is the usual mis-encoding of Đ/đ (U+0110/U+0111).
_ETH_TO_D = str.maketrans({"\u00d0": "\u0110", "\u00f0": "\u0111"})


def to_text(value: Any) -> str:
    """NFC, surrounding blanks removed; numbers become their decimal text."""
    return unicodedata.normalize("NFC", str(value)).strip()


def _capitalize(word: str) -> str:
    return "-".join(part[:1].upper() + part[1:].lower() for part in word.split("-"))


def to_name(value: Any) -> str:
    """A person's name: NFC, single spaces, and title case when it arrived in UPPER CASE.

    Tone placement (hoà / hòa) is kept as written: it is the person's legal name.
    """
    text = " ".join(unicodedata.normalize("NFC", str(value)).split())
    if "\u00d0" in text or "\u00f0" in text:
        text = text.translate(_ETH_TO_D)
    if text.isupper():
        text = " ".join(_capitalize(word) for word in text.split(" "))
    return text


SIMPLE_TEXT: dict[str, Converter] = {"text": to_text, "name": to_name}


def _build_text(args: dict[str, Any]) -> Converter:
    return to_text


def _build_name(args: dict[str, Any]) -> Converter:
    return to_name


def _build_join(args: dict[str, Any]) -> Converter:
    separator: str = args.get("separator", " ")
    each = SIMPLE_TEXT[args.get("each", "text")]

    def join(values: list[Any]) -> str | None:
        parts = [each(v) for v in values if not is_empty(v)]
        return separator.join(parts) or None

    return join


# --- dates ----------------------------------------------------------------------------------

_DATE_TOKENS = {
    "yyyy": r"(?P<year>\d{4})",
    "MM": r"(?P<month>\d{2})",
    "dd": r"(?P<day>\d{2})",
    "HH": r"\d{2}",
    "mm": r"\d{2}",
    "ss": r"\d{2}",
}
_DATE_TOKEN_RE = re.compile(r"yyyy|MM|dd|HH|mm|ss|[A-Za-z]+|.", re.DOTALL)


def compile_date_format(fmt: str) -> tuple[re.Pattern[str], Literal["day", "month", "year"]]:
    """A format like `yyyyMMdd` or `dd/MM/yyyy` as a regex and the precision it gives.

    Tokens: yyyy year, MM month, dd day, HH hour, mm minute, ss second; anything else not a letter
    is literal. Raises ValueError naming the problem.
    """
    pattern = []
    for token in _DATE_TOKEN_RE.findall(fmt):
        if token in _DATE_TOKENS:
            pattern.append(_DATE_TOKENS[token])
        elif token.isalpha():
            raise ValueError(f"{fmt!r}: unknown token {token!r} (use yyyy, MM, dd, HH, mm, ss)")
        else:
            pattern.append(re.escape(token))
    has = {t: t in _DATE_TOKEN_RE.findall(fmt) for t in ("yyyy", "MM", "dd")}
    if not has["yyyy"]:
        raise ValueError(f"{fmt!r}: a date format needs yyyy")
    if has["dd"] and not has["MM"]:
        hint = " (mm is minutes; the month is MM)" if "mm" in fmt else ""
        raise ValueError(f"{fmt!r}: has a day but no month{hint}")
    precision: Literal["day", "month", "year"] = (
        "day" if has["dd"] else "month" if has["MM"] else "year"
    )
    return re.compile("".join(pattern)), precision


def _build_date(args: dict[str, Any]) -> Converter:
    formats: list[str] = args["formats"]
    if not formats:
        raise TransformArgumentError("formats", "at least one date format")
    compiled = []
    for fmt in formats:
        try:
            compiled.append(compile_date_format(fmt))
        except ValueError as exc:
            raise TransformArgumentError("formats", f"valid date formats: {exc}") from None
    expected = f"a date as one of {formats}"

    def parse_date(value: Any) -> dict[str, Any]:
        if isinstance(value, date):  # datetime is a date too
            return {"year": value.year, "month": value.month, "day": value.day, "precision": "day"}
        text = str(value).strip()
        for regex, precision in compiled:
            match = regex.fullmatch(text)
            if match is None:
                continue
            parts = match.groupdict()
            year, month, day = int(parts["year"]), parts.get("month"), parts.get("day")
            result: dict[str, Any] = {"year": year, "precision": precision}
            if month is not None:
                result["month"] = int(month)
            if day is not None:
                result["day"] = int(day)
            try:
                date(year, result.get("month", 1), result.get("day", 1))
            except ValueError:
                raise TransformError(f"{expected}, on the calendar") from None
            return result
        raise TransformError(expected)

    return parse_date


# --- code lists -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeList:
    """A named code list from `mappings/codes/<name>.toml`."""

    name: str
    title: str
    codes: dict[str, str]  # code -> label (the Vietnamese name)
    none: frozenset[str]  # codes that mean "nothing" (e.g. religion 00 = none)
    # code -> its other attributes (name_en, validity_years ...), for codes given as tables
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)


def _is_attribute_value(value: Any) -> bool:
    """TOML scalars and lists of strings: what a code's attribute may be."""
    if isinstance(value, list):
        return all(isinstance(v, str) for v in value)
    return isinstance(value, str | int | float | bool)


def _read_code(path: Path, code: str, entry: Any) -> tuple[str, dict[str, Any]]:
    """One `[codes]` entry: `code = "label"` or `[codes.<code>]` with `name` and attributes."""
    if isinstance(entry, dict):
        attributes = dict(entry)
        label = attributes.pop("name", None)
        for key, value in attributes.items():
            if not _is_attribute_value(value):
                raise ValueError(
                    f"{path}: codes.{code}.{key}: expected a string, number, boolean or "
                    f"list of strings, got {value!r}"
                )
    else:
        label, attributes = entry, {}
    if not isinstance(label, str):
        raise ValueError(
            f"{path}: codes.{code}: expected a string label or a table with a string name, "
            f"got {entry!r}"
        )
    if not unicodedata.is_normalized("NFC", label):
        raise ValueError(f"{path}: codes.{code}: the label must be NFC")
    return label, attributes


@cache
def load_code_list(name: str) -> CodeList:
    """Load and check a code list; raises ValueError naming the file and the problem.

    A code is `"01" = "Kinh"`, or a table when it carries more than its label::

        [codes.B]
        name = "Hạng B"
        name_en = "Class B"
        validity_years = 10
    """
    path = CODES_DIR / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in CODES_DIR.glob("*.toml"))
        raise ValueError(f"no code list {name!r} (in {CODES_DIR}: {known})")
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    if data.get("name") != name:
        raise ValueError(f"{path}: name must be {name!r}, got {data.get('name')!r}")
    entries = data.get("codes")
    if not isinstance(entries, dict) or not entries:
        raise ValueError(f"{path}: [codes] must be a non-empty table of code = label")
    codes: dict[str, str] = {}
    attributes: dict[str, dict[str, Any]] = {}
    for code, entry in entries.items():
        codes[code], extra = _read_code(path, code, entry)
        if extra:
            attributes[code] = extra
    none = data.get("none", [])
    return CodeList(name, str(data.get("title", name)), codes, frozenset(none), attributes)


def _build_code(args: dict[str, Any]) -> Converter:
    try:
        code_list = load_code_list(args["list"])
    except ValueError as exc:
        raise TransformArgumentError("list", f"an existing code list: {exc}") from None
    codes, none, list_name = code_list.codes, code_list.none, code_list.name
    width: int = args.get("width", 0)
    as_label = args.get("output", "coded") == "label"
    expected = f"a code of list {list_name!r} ({', '.join(sorted(codes)[:12])}...)"
    if len(codes) <= 12:
        expected = f"a code of list {list_name!r} ({', '.join(sorted(codes))})"

    def code(value: Any) -> Any:
        text = str(value).strip()
        if width:
            text = text.zfill(width)
        if text in none:
            return None
        label = codes.get(text)
        if label is None:
            raise TransformError(expected)
        if as_label:
            return label
        return {"code": text, "name": label, "code_list": list_name}

    return code


# --- booleans and numbers -----------------------------------------------------------------

_TRUE_TEXT = ["1", "true", "t", "y", "yes"]
_FALSE_TEXT = ["0", "false", "f", "n", "no"]


def _fold(value: Any) -> str:
    return to_text(value).casefold()


def _build_bool(args: dict[str, Any]) -> Converter:
    # A native boolean (JSON true/false) is always itself; text and numbers are looked up by
    # their text, case-insensitively: 1/0, "Y"/"N", "true"/"false" unless the file says otherwise.
    true_text: list[str] = args.get("true", _TRUE_TEXT)
    false_text: list[str] = args.get("false", _FALSE_TEXT)
    for key, values in (("true", true_text), ("false", false_text)):
        if not values:
            raise TransformArgumentError(key, "a non-empty list of native values")
    both = {_fold(v) for v in true_text} & {_fold(v) for v in false_text}
    if both:
        raise TransformArgumentError("false", f"values not also listed as true: {sorted(both)}")
    table = {_fold(v): True for v in true_text} | {_fold(v): False for v in false_text}
    expected = f"true or false as one of {true_text} or {false_text}"

    def to_bool(value: Any) -> bool:
        if value is True or value is False:
            return value
        result = table.get(_fold(value))
        if result is None:
            raise TransformError(expected)
        return result

    return to_bool


def _number_pattern(thousands: str | None) -> tuple[re.Pattern[str], str]:
    """The regex for a decimal number written with `thousands` grouping, and its decimal mark."""
    if thousands is None:
        return re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?"), "."
    decimal = "," if thousands == "." else "."
    group, mark = re.escape(thousands), re.escape(decimal)
    return re.compile(
        rf"[+-]?(?:[0-9]{{1,3}}(?:{group}[0-9]{{3}})+|[0-9]+)(?:{mark}[0-9]+)?"
    ), decimal


def _build_number(args: dict[str, Any]) -> Converter:
    # Amounts such as charter capital arrive as JSON numbers or as text ("1500000000", and with
    # `thousands = "."` the Vietnamese "1.500.000.000"). Text without a fractional part gives an
    # int, so large amounts stay exact; `integer = true` refuses a fraction that is not zero.
    thousands: str | None = args.get("thousands")
    integer: bool = args.get("integer", False)
    regex, decimal = _number_pattern(thousands)
    example = "1500000000" if thousands is None else thousands.join(("1", "500", "000", "000"))
    if integer:
        expected = f"a whole number written like {example}"
    else:
        expected = f"a number written like {example} or {example}{decimal}5"

    def to_number(value: Any) -> int | float:
        if isinstance(value, bool):
            raise TransformError(f"{expected}, not true or false")
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            if not math.isfinite(value) or (integer and not value.is_integer()):
                raise TransformError(expected)
            return int(value) if integer else value
        text = str(value).strip()
        if regex.fullmatch(text) is None:
            raise TransformError(expected)
        if thousands is not None:
            text = text.replace(thousands, "").replace(decimal, ".")
        whole, _, fraction = text.partition(".")
        if not fraction or (integer and not fraction.strip("0")):
            return int(whole)
        if integer:
            raise TransformError(expected)
        return float(text)

    return to_number


# --- addresses ------------------------------------------------------------------------------


def _build_address(args: dict[str, Any]) -> Converter:
    default_country: str = args.get("default_country", "VN")

    def address(values: dict[str, Any]) -> dict[str, Any]:
        country = values.get("country")
        country = default_country if is_empty(country) else to_text(country) or default_country
        detail = values.get("detail")
        detail = None if is_empty(detail) else to_text(detail)
        if country != "VN":
            return {"detail": detail, "country": country, "conversion": "unchanged"}
        unit = convert_unit(values.get("province"), values.get("commune"))
        result: dict[str, Any] = {
            "detail": detail,
            "country": country,
            "province_code": unit.province_code,
            "province_name": unit.province_name,
            "commune_code": unit.commune_code,
            "commune_name": unit.commune_name,
            "conversion": unit.conversion,
        }
        if unit.original_province_code or unit.original_commune_code:
            result["original"] = {
                "province_code": unit.original_province_code,
                "commune_code": unit.original_commune_code,
                "scheme": "pre-2025",
            }
        return result

    return address


TRANSFORMS: dict[str, Transform] = {
    "text": Transform("one", _build_text),
    "name": Transform("one", _build_name),
    "join": Transform(
        "many",
        _build_join,
        {"separator": Param(str), "each": Param(str, choices=tuple(SIMPLE_TEXT))},
    ),
    "date": Transform("one", _build_date, {"formats": Param(list, required=True, item=str)}),
    "code": Transform(
        "one",
        _build_code,
        {
            "list": Param(str, required=True),
            "output": Param(str, choices=("coded", "label")),
            "width": Param(int),
        },
    ),
    "bool": Transform(
        "one", _build_bool, {"true": Param(list, item=str), "false": Param(list, item=str)}
    ),
    "number": Transform(
        "one",
        _build_number,
        {"thousands": Param(str, choices=(".", ",", " ")), "integer": Param(bool)},
    ),
    "address": Transform(
        "named",
        _build_address,
        {"default_country": Param(str)},
        input_names=("detail", "province", "commune", "country"),
    ),
}


def build_converter(transform: Transform, args: dict[str, Any]) -> Converter:
    """Check `args` against the transform's parameters and build its converter."""
    for key, value in args.items():
        param = transform.params.get(key)
        if param is None:
            known = sorted(transform.params) or ["no arguments"]
            raise TransformArgumentError(key, f"one of {known}")
        if not isinstance(value, param.kind) or isinstance(value, bool) != (param.kind is bool):
            raise TransformArgumentError(key, f"a {param.kind.__name__}, got {value!r}")
        if param.item is not None and not all(
            isinstance(v, param.item) for v in cast(list[Any], value)
        ):
            raise TransformArgumentError(key, f"a list of {param.item.__name__}, got {value!r}")
        if param.choices and value not in param.choices:
            raise TransformArgumentError(key, f"one of {list(param.choices)}, got {value!r}")
    for key, param in transform.params.items():
        if param.required and key not in args:
            raise TransformArgumentError(key, "a value (required by this transform)")
    return transform.build(args)
