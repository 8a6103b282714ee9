"""Subject pseudonyms: a keyed hash of the personal id or enterprise code, never the id itself.

The same key gives the same pseudonym, so "who looked at my data" is answered by hashing the
asker's id and looking the pseudonym up; without the key a pseudonym cannot be reversed by trying
every 12-digit id.
"""

from __future__ import annotations

import hashlib
import hmac

from bus.errors import SettingsError
from bus.settings import AuditSettings


class Pseudonymizer:
    def __init__(self, key: bytes) -> None:
        if not key:
            raise SettingsError("audit.pseudonym_key is empty")
        self._key = key

    @classmethod
    def from_settings(cls, settings: AuditSettings) -> Pseudonymizer:
        if settings.pseudonym_key is None:
            raise SettingsError(
                "audit.pseudonym_key is not set (env TTHC_BUS_AUDIT__PSEUDONYM_KEY): subject ids "
                "cannot be pseudonymized in the audit ledger"
            )
        return cls(settings.pseudonym_key.get_secret_value().encode())

    def __call__(self, subject_id: str) -> str:
        return hmac.new(self._key, subject_id.encode(), hashlib.sha256).hexdigest()
