"""Reading the native values of a change: dates, text, codes of a code list, identifiers.

Each reader takes the native field's name (for the error) and its value, and returns the
normalized value or raises `MappingError(field, value, expected)`, which names the field and what
was expected, never the value.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import date, datetime
from functools import cache
from typing import Any

from bus.errors import MappingError
from mappings.transforms import CodeList, load_code_list

_DATE_FORMS = {"dd/MM/yyyy": "%d/%m/%Y", "yyyyMMdd": "%Y%m%d"}


def native_date(data: Mapping[str, Any], field: str, form: str = "dd/MM/yyyy") -> date:
    """`data[field]`, a date in `form`, as a date."""
    value = data.get(field)
    try:
        if not isinstance(value, str) or len(value) != len(form) or not value.isascii():
            raise ValueError(form)
        return datetime.strptime(value, _DATE_FORMS[form]).date()
    except ValueError:
        raise MappingError(field, value, f"a date {form}") from None


def optional_date(data: Mapping[str, Any], field: str, form: str = "dd/MM/yyyy") -> date | None:
    """`native_date`, or None when the field is absent or null."""
    if data.get(field) in (None, ""):
        return None
    return native_date(data, field, form)


def text(data: Mapping[str, Any], field: str) -> str:
    """`data[field]`, non-empty text, in NFC and on one line."""
    value = data.get(field)
    if not isinstance(value, str) or not value.strip():
        raise MappingError(field, value, "non-empty text")
    return unicodedata.normalize("NFC", " ".join(value.split()))


def optional_text(data: Mapping[str, Any], field: str) -> str | None:
    if data.get(field) in (None, ""):
        return None
    return text(data, field)


def identifier(data: Mapping[str, Any], field: str, pattern: str, expected: str) -> str:
    """`data[field]`, text matching `pattern` whole."""
    value = data.get(field)
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise MappingError(field, value, expected)
    return value


@cache
def code_list(name: str) -> CodeList:
    return load_code_list(name)


def code(data: Mapping[str, Any], field: str, list_name: str) -> str:
    """`data[field]` (text or a number), a code of the code list `list_name`, as text."""
    value = data.get(field)
    codes = code_list(list_name).codes
    key = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
    if key is None or key not in codes:
        raise MappingError(field, value, f"a code of {list_name} ({', '.join(sorted(codes))})")
    return key


def optional_code(data: Mapping[str, Any], field: str, list_name: str) -> str | None:
    if data.get(field) in (None, ""):
        return None
    return code(data, field, list_name)


def label(list_name: str, key: str) -> str:
    """The (Vietnamese) name of a code."""
    return code_list(list_name).codes[key]
