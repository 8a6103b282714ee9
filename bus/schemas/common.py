"""Building blocks shared by the message schemas."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict


def to_nfc(value: str) -> str:
    """Vietnamese text is stored and compared in Unicode NFC."""
    return unicodedata.normalize("NFC", value)


NFCStr = Annotated[str, AfterValidator(to_nfc)]

# What `str_strip_whitespace` cuts from both ends of a string: Unicode White_Space, as pydantic-core
# (Rust's `str::trim`) reads it; Python's `str.strip` would also cut U+001C-U+001F.
# Spelled as regex escapes, which Python's re, ECMA-262 and Rust's regex (jsonschema-rs) all read.
WHITE_SPACE = r"\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# A JSON Schema `pattern` (a search, not a full match): one character that is not White_Space.
NOT_BLANK = f"[^{WHITE_SPACE}]"


def utc_now() -> datetime:
    return datetime.now(UTC)


def document_stripping(schema: dict[str, Any], cls: type[Any]) -> None:
    """Say in a model's JSON Schema (`json_schema_extra`) what stripping does to a minimum length.

    Lengths count after surrounding whitespace is cut, so `"   "` is empty: a string with a
    minimum length must hold a character that is not whitespace. A maximum counts the stripped
    value too, so padding past it is let through; `maxLength` stays what a client keeps within.
    """
    if not cls.model_config.get("str_strip_whitespace"):
        return
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return
    for prop in properties.values():
        options = [prop, *prop.get("anyOf", ())] if isinstance(prop, dict) else []
        for option in options:
            if (
                option.get("type") == "string"
                and option.get("minLength", 0) >= 1
                and "pattern" not in option
            ):
                option["pattern"] = NOT_BLANK


class Model(BaseModel):
    """Base of every schema: unknown fields are errors, so typos are caught at the edge.

    Strings are stripped of surrounding whitespace before their rules apply.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
        json_schema_extra=document_stripping,
    )
