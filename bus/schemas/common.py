"""Building blocks shared by the message schemas."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


def to_nfc(value: str) -> str:
    """Vietnamese text is stored and compared in Unicode NFC."""
    return unicodedata.normalize("NFC", value)


NFCStr = Annotated[str, AfterValidator(to_nfc)]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Model(BaseModel):
    """Base of every schema: unknown fields are errors, so typos are caught at the edge."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
