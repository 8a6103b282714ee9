"""API keys of the agencies, stored hashed, and the signatures of Kafka-native requests.

A key, as given to an agency once, is `tthc_<id>_<secret>`: the id is 16 lowercase hex characters
(8 random bytes, public: it finds the stored record and may be logged), the secret 43 base64url
characters (32 random bytes from `secrets`). The bus never keeps the key. It keeps a verifier,
`scrypt$<n>$<r>$<p>$<base64 digest>`, where the digest is scrypt of the secret's 43 ASCII
characters salted with the id's 16 ASCII characters. The cost is read back from the string, so it
can be raised for new keys while old ones still verify.

Over HTTP the gateway recomputes that digest from the presented key (one scrypt, ~50 ms, then
cached) and compares it in constant time. Over Kafka the same digest is the HMAC-SHA256 key of
each request: a client holding the key derives the digest once (`RequestSigner`) and signs every
record with it; the worker holds only the verifiers and checks one HMAC per record (a few µs).
Three headers carry it: `tthc-key-id`, `tthc-agency` (the agency the request is made for) and
`tthc-signature`, the hex HMAC over `tthc-bus-v1\\n<key id>\\n<agency>\\n<record value>`. A key of
role `gateway` may sign for any agency (the gateway authenticated the agency over HTTP and sends
on its behalf); any other key only for its own agency.

What this means for the stored verifiers: whoever reads them can forge Kafka signatures of every
key, though not recover a key to use over HTTP (that takes the secret, which scrypt hides). Keep
the keys file (and TTHC_BUS_AUTH__KEYS) readable by the bus only: `append_key` creates it 0600.

No key, secret or digest ever appears in an error or a log: messages name the key id only.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
import threading
import time
import tomllib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bus.errors import BusError, SettingsError
from bus.settings import AGENCY_PATTERN, ApiKeyRecord, AuthSettings, GatewaySettings, Role

log = logging.getLogger(__name__)

KEY_PREFIX = "tthc_"
KEY_ID_HEADER = "tthc-key-id"
AGENCY_HEADER = "tthc-agency"
SIGNATURE_HEADER = "tthc-signature"
SIGNED_HEADERS = (KEY_ID_HEADER, AGENCY_HEADER, SIGNATURE_HEADER)
SIGNATURE_DOMAIN = b"tthc-bus-v1\n"

SCRYPT_N = 2**14  # ~50 ms and 16 MiB per derivation on a server core
SCRYPT_R = 8
SCRYPT_P = 1
DIGEST_BYTES = 32
ID_BYTES = 8
SECRET_BYTES = 32
SECRET_CHARS = 43  # base64url of 32 bytes, without padding

# Bounds on a cost read back from a verifier: a typo in the keys file must not make one
# verification take more than 1 GiB (hashlib refuses a memory bound of 2 GiB or more anyway).
MAX_SCRYPT_MEMORY = 2**30
MAX_SCRYPT_P = 16

ID_FORM = re.compile(r"[0-9a-f]{16}")
SECRET_FORM = re.compile(r"[A-Za-z0-9_-]{43}")
AGENCY_FORM = re.compile(AGENCY_PATTERN)


class AuthError(BusError):
    """A key or a verifier is not of the form this module makes. The message names what is wrong
    (the prefix, the id's form, the secret's length), never the secret itself."""


# -- keys and verifiers ------------------------------------------------------------------------


@dataclass(frozen=True)
class ScryptCost:
    """The scrypt parameters of one verifier."""

    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P

    @property
    def memory(self) -> int:
        """Bytes scrypt needs at this cost (its V array, 128 r n, and blocks of 128 r)."""
        return 128 * self.r * (self.n + self.p + 2)

    def check(self) -> None:
        if self.n < 2 or self.n & (self.n - 1):
            raise AuthError(f"scrypt n must be a power of 2, not {self.n}")
        if self.r < 1 or not 1 <= self.p <= MAX_SCRYPT_P:
            raise AuthError(f"scrypt r must be 1 or more and p from 1 to {MAX_SCRYPT_P}")
        if 128 * self.r * self.n > MAX_SCRYPT_MEMORY:
            raise AuthError(
                f"scrypt n={self.n}, r={self.r} needs more than the "
                f"{MAX_SCRYPT_MEMORY >> 20} MiB allowed"
            )


def scrypt_digest(secret: str, key_id: str, cost: ScryptCost) -> bytes:
    """The one place scrypt runs: the verifier's digest, which is also the HMAC key of Kafka
    signatures. Its memory bound is set from the cost, so a raised cost still runs."""
    return hashlib.scrypt(
        secret.encode("ascii"),
        salt=key_id.encode("ascii"),
        n=cost.n,
        r=cost.r,
        p=cost.p,
        dklen=DIGEST_BYTES,
        maxmem=cost.memory + (1 << 20),
    )


def format_verifier(cost: ScryptCost, digest: bytes) -> str:
    encoded = base64.b64encode(digest).decode("ascii")
    return f"scrypt${cost.n}${cost.r}${cost.p}${encoded}"


def parse_verifier(text: str) -> tuple[ScryptCost, bytes]:
    """The cost and digest of a stored verifier; AuthError naming the part that is wrong."""
    parts = text.split("$")
    if len(parts) != 5 or parts[0] != "scrypt":
        raise AuthError("the hash must be of the form scrypt$<n>$<r>$<p>$<base64 digest>")
    try:
        cost = ScryptCost(int(parts[1]), int(parts[2]), int(parts[3]))
    except ValueError:
        raise AuthError("the hash's n, r and p must be whole numbers") from None
    cost.check()
    try:
        digest = base64.b64decode(parts[4], validate=True)
    except binascii.Error:
        raise AuthError("the hash's digest is not valid base64") from None
    if len(digest) != DIGEST_BYTES:
        raise AuthError(f"the hash's digest must be {DIGEST_BYTES} bytes, not {len(digest)}")
    return cost, digest


def verifier_digest(record: ApiKeyRecord) -> bytes:
    """The digest stored in a record's verifier: the HMAC key its Kafka signatures are made with."""
    return parse_verifier(record.hash)[1]


def parse_key(text: str) -> tuple[str, str]:
    """A key's (id, secret). Surrounding whitespace (a pasted newline) is ignored; anything else
    out of form is an AuthError saying which part, without quoting the text."""
    key = text.strip()
    if not key.startswith(KEY_PREFIX):
        raise AuthError(f"malformed key: it must start with {KEY_PREFIX!r}")
    key_id = key[len(KEY_PREFIX) : len(KEY_PREFIX) + 16]
    rest = key[len(KEY_PREFIX) + 16 :]
    if not ID_FORM.fullmatch(key_id) or not rest.startswith("_"):
        raise AuthError(
            f"malformed key: {KEY_PREFIX!r} must be followed by an id of 16 lowercase hex "
            "characters and '_'"
        )
    secret = rest[1:]
    if len(secret) != SECRET_CHARS:
        raise AuthError(
            f"malformed key {key_id}: its secret must be {SECRET_CHARS} characters, "
            f"not {len(secret)}"
        )
    if not SECRET_FORM.fullmatch(secret):
        raise AuthError(
            f"malformed key {key_id}: its secret must be base64url (A-Z a-z 0-9 - _) only"
        )
    return key_id, secret


def derive_digest(key: str, *, n: int = SCRYPT_N) -> tuple[str, bytes]:
    """A key's (id, digest), as its verifier stores it: one scrypt (~50 ms), done once by a
    client that signs Kafka requests. `n` is the cost the key was generated with (the bus's own
    keys: the default)."""
    key_id, secret = parse_key(key)
    cost = ScryptCost(n=n)
    cost.check()
    return key_id, scrypt_digest(secret, key_id, cost)


@dataclass(frozen=True)
class IssuedKey:
    """A new key: the full text, shown once and never kept, and the record that is stored."""

    key: str
    record: ApiKeyRecord


def generate_key(
    agency: str,
    roles: Sequence[Role] = ("lookup",),
    description: str | None = None,
    *,
    n: int = SCRYPT_N,
) -> IssuedKey:
    """A new random key and its record. `n` is the scrypt cost: keep the default (2**14) for real
    keys; tests pass a low one so that each verification takes microseconds, not 50 ms.
    A wrong agency code or role is a SettingsError from the record's own validation."""
    key_id = secrets.token_hex(ID_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    cost = ScryptCost(n=n)
    cost.check()
    try:
        record = ApiKeyRecord(
            id=key_id,
            agency=agency,
            roles=list(roles),
            hash=format_verifier(cost, scrypt_digest(secret, key_id, cost)),
            description=description,
        )
    except ValidationError as exc:
        raise SettingsError(f"new key: {validation_summary(exc)}") from None
    return IssuedKey(key=f"{KEY_PREFIX}{key_id}_{secret}", record=record)


def validation_summary(error: ValidationError) -> str:
    """The fields and what was expected, without the values (a verifier is among them)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or '(entry)'}: {item['msg']}"
        for item in error.errors()
    )


# -- outcomes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Authenticated:
    """A key that proved itself. `agency` is the agency the request is made for: the key's own
    over HTTP; over Kafka the signed `tthc-agency`, which for a gateway key may be any agency."""

    record: ApiKeyRecord
    agency: str

    @property
    def key_id(self) -> str:
        return self.record.id

    @property
    def roles(self) -> list[Role]:
        return self.record.roles


@dataclass(frozen=True)
class AuthFailure:
    """Why a key or a signature was refused, fit for a 401 body and a log: never the secret."""

    reason: str
    key_id: str | None = None


# -- the keyring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _StoredKey:
    record: ApiKeyRecord
    cost: ScryptCost
    digest: bytes
    signer: hmac.HMAC  # keyed with the digest, copied per check (saves the key schedule)


class Keyring:
    """The stored keys, and the two checks made with them (HTTP keys, Kafka signatures).

    `authenticate` runs per HTTP request, and scrypt costs ~50 ms: a verified key is remembered
    (by the SHA-256 of the presented text, at most `cache_size`), and so is a wrong secret, for
    `failure_ttl_s`, so that a flood of the same wrong key costs one scrypt per window. An unknown
    id or a malformed key fails before any scrypt. A flood of *different* wrong secrets for a
    known id still costs one scrypt each; nothing here limits that (a rate limit per client in
    front of the gateway would). The scrypt runs in the caller's thread.
    """

    def __init__(
        self,
        records: Iterable[ApiKeyRecord],
        *,
        cache_size: int = 4096,
        failure_cache_size: int = 1024,
        failure_ttl_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys: dict[str, _StoredKey] = {}
        for index, record in enumerate(records):
            if record.id in self._keys:
                raise SettingsError(f"keys[{index}]: key id {record.id} is used twice")
            self._keys[record.id] = stored_key(record, f"keys[{index}] (id {record.id})")
        self._cache_size = cache_size
        self._failure_cache_size = failure_cache_size
        self._failure_ttl_s = failure_ttl_s
        self._clock = clock
        self._verified: OrderedDict[bytes, str] = OrderedDict()
        self._refused: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, auth: AuthSettings, gateway: GatewaySettings | None = None) -> Keyring:
        """The keys of settings (auth.keys, TTHC_BUS_AUTH__KEYS) and of the keys file. Given the
        gateway's settings, its own key is checked too (one scrypt): it must verify and have role
        gateway, or every request the gateway signs would be refused by the workers."""
        keyring = cls(load_records(auth))
        if gateway is not None and gateway.key is not None:
            keyring.check_gateway_key(gateway.key.get_secret_value(), auth.keys_path())
        return keyring

    def check_gateway_key(self, key: str, keys_path: Path) -> None:
        found = self.authenticate(key)
        if isinstance(found, AuthFailure):
            raise SettingsError(f"gateway.key (env TTHC_BUS_GATEWAY__KEY): {found.reason}")
        if "gateway" not in found.roles:
            raise SettingsError(
                f"gateway.key (env TTHC_BUS_GATEWAY__KEY): key {found.key_id} in auth.keys or "
                f"{keys_path} has roles {found.roles}, not 'gateway'"
            )

    def record(self, key_id: str) -> ApiKeyRecord | None:
        stored = self._keys.get(key_id)
        return None if stored is None else stored.record

    @property
    def records(self) -> list[ApiKeyRecord]:
        return [stored.record for stored in self._keys.values()]

    def __len__(self) -> int:
        return len(self._keys)

    # -- HTTP --------------------------------------------------------------------------------

    def authenticate_cached(self, presented: str) -> Authenticated | AuthFailure | None:
        """`authenticate` when it needs no scrypt (a known answer, or a malformed or unknown
        key); None when it does, so that the caller can run that in a thread."""
        try:
            key_id, _ = parse_key(presented)
        except AuthError as exc:
            return AuthFailure(str(exc))
        if key_id not in self._keys:
            return AuthFailure(f"no key with id {key_id}", key_id)
        fingerprint = hashlib.sha256(presented.strip().encode()).digest()
        if self._cached(fingerprint) is None:
            return None
        return self.authenticate(presented)

    def authenticate(self, presented: str) -> Authenticated | AuthFailure:
        """An HTTP request's key: its record, or why it is refused."""
        try:
            key_id, secret = parse_key(presented)
        except AuthError as exc:
            return AuthFailure(str(exc))
        stored = self._keys.get(key_id)
        if stored is None:
            return AuthFailure(f"no key with id {key_id}", key_id)
        fingerprint = hashlib.sha256(presented.strip().encode()).digest()
        cached = self._cached(fingerprint)
        if cached is None:
            computed = scrypt_digest(secret, key_id, stored.cost)
            cached = hmac.compare_digest(computed, stored.digest)
            self._remember(fingerprint, key_id, cached)
        if not cached:
            return AuthFailure(f"wrong secret for key {key_id}", key_id)
        return Authenticated(stored.record, stored.record.agency)

    def _cached(self, fingerprint: bytes) -> bool | None:
        """True or False if this exact key was verified or refused lately, else None."""
        with self._lock:
            if fingerprint in self._verified:
                self._verified.move_to_end(fingerprint)
                return True
            until = self._refused.get(fingerprint)
            if until is None:
                return None
            if self._clock() < until:
                return False
            del self._refused[fingerprint]
            return None

    def _remember(self, fingerprint: bytes, key_id: str, verified: bool) -> None:
        with self._lock:
            if verified:
                self._verified[fingerprint] = key_id
                if len(self._verified) > self._cache_size:
                    self._verified.popitem(last=False)
            else:
                self._refused[fingerprint] = self._clock() + self._failure_ttl_s
                self._refused.move_to_end(fingerprint)
                if len(self._refused) > self._failure_cache_size:
                    self._refused.popitem(last=False)

    # -- Kafka -------------------------------------------------------------------------------

    def check_signature(
        self, headers: Sequence[tuple[str, bytes | None]], value: bytes | None
    ) -> Authenticated | AuthFailure:
        """A Kafka record's signature: the key and the agency it was signed for, or why not."""
        found = signed_headers(headers)
        if isinstance(found, AuthFailure):
            return found
        raw_id, raw_agency, raw_signature = found
        key_id = raw_id.decode("ascii", "replace")
        if not ID_FORM.fullmatch(key_id):
            return AuthFailure(
                f"header {KEY_ID_HEADER} is not an id of 16 lowercase hex characters"
            )
        agency = raw_agency.decode("utf-8", "replace")
        if not AGENCY_FORM.fullmatch(agency):
            return AuthFailure(f"header {AGENCY_HEADER} is not an agency code ({AGENCY_PATTERN})")
        stored = self._keys.get(key_id)
        if stored is None:
            return AuthFailure(f"no key with id {key_id}", key_id)
        if value is None:
            return AuthFailure("the record has no value to verify", key_id)
        mac = stored.signer.copy()
        mac.update(signed_message(raw_id, raw_agency, value))
        if not hmac.compare_digest(mac.hexdigest().encode("ascii"), raw_signature.lower()):
            return AuthFailure(
                f"bad signature for key {key_id}: the record or its {AGENCY_HEADER} header was "
                "changed, or it was signed with another key",
                key_id,
            )
        record = stored.record
        if agency != record.agency and "gateway" not in record.roles:
            return AuthFailure(
                f"key {key_id} of agency {record.agency!r} may not sign for agency {agency!r}",
                key_id,
            )
        return Authenticated(record, agency)


def stored_key(record: ApiKeyRecord, where: str) -> _StoredKey:
    """A record with its verifier read once, so that a signature check is one HMAC."""
    try:
        cost, digest = parse_verifier(record.hash)
    except AuthError as exc:
        raise SettingsError(f"{where}: {exc}") from None
    return _StoredKey(record, cost, digest, hmac.new(digest, digestmod=hashlib.sha256))


def signed_headers(
    headers: Sequence[tuple[str, bytes | None]],
) -> tuple[bytes, bytes, bytes] | AuthFailure:
    """The three signature headers, each present once (a repeated one is ambiguous: refused)."""
    found: dict[str, bytes] = {}
    for name, value in headers:
        if name not in SIGNED_HEADERS:
            continue
        if name in found:
            return AuthFailure(f"header {name} appears more than once")
        found[name] = value or b""
    missing = [name for name in SIGNED_HEADERS if not found.get(name)]
    if missing:
        return AuthFailure(f"unsigned request: missing header(s) {', '.join(missing)}")
    return found[KEY_ID_HEADER], found[AGENCY_HEADER], found[SIGNATURE_HEADER]


def signed_message(key_id: bytes, agency: bytes, value: bytes) -> bytes:
    """What a signature covers. Neither an id nor an agency code can hold a newline, so the
    fields cannot be shifted into one another."""
    return SIGNATURE_DOMAIN + key_id + b"\n" + agency + b"\n" + value


# -- signing -------------------------------------------------------------------------------------


class RequestSigner:
    """Signs the Kafka records of one key's holder (an agency's system, or the gateway).

    The key does not name its agency: pass `agency` for a client that needs `.agency` (the
    topic of its replies). `n` is the scrypt cost the key was generated with (the default for
    every real key).
    """

    def __init__(self, key: str, agency: str | None = None, *, n: int = SCRYPT_N) -> None:
        self._key_id, digest = derive_digest(key, n=n)
        self._raw_id = self._key_id.encode("ascii")
        self._mac = hmac.new(digest, digestmod=hashlib.sha256)
        self._agency = None if agency is None else checked_agency(agency)

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def agency(self) -> str:
        """The agency this signer was made for; AuthError if none was given."""
        if self._agency is None:
            raise AuthError(
                f"the signer of key {self._key_id} was made without its agency: "
                "RequestSigner(key, agency=...)"
            )
        return self._agency

    def headers(self, agency: str, value: bytes) -> list[tuple[str, bytes]]:
        """The three headers that sign `value` for `agency`."""
        raw_agency = checked_agency(agency).encode()
        mac = self._mac.copy()
        mac.update(signed_message(self._raw_id, raw_agency, value))
        return [
            (KEY_ID_HEADER, self._raw_id),
            (AGENCY_HEADER, raw_agency),
            (SIGNATURE_HEADER, mac.hexdigest().encode("ascii")),
        ]


def checked_agency(agency: str) -> str:
    if not AGENCY_FORM.fullmatch(agency):
        raise AuthError(f"agency code {agency!r} must match {AGENCY_PATTERN}")
    return agency


# -- the keys file ------------------------------------------------------------------------------

KEYS_FILE_HEADER = """\
# API keys of tthc-bus, stored hashed: never the keys themselves (bus/auth.py).
# Keep this file readable by the bus only: whoever reads these verifiers can forge the
# signatures of Kafka requests. `tthc-bus keys new AGENCY` appends to it.
"""


def load_records(auth: AuthSettings) -> list[ApiKeyRecord]:
    """Settings keys, then the keys file's; a key id used twice is a SettingsError naming both."""
    seen: dict[str, str] = {}
    for index, record in enumerate(auth.keys):
        where = f"auth.keys[{index}] (id {record.id})"
        stored_key(record, where)
        if record.id in seen:
            raise SettingsError(f"{where}: key id {record.id} is already used by {seen[record.id]}")
        seen[record.id] = f"auth.keys[{index}]"
    path = auth.keys_path()
    from_file = read_keys_file(path)
    for index, record in enumerate(from_file):
        if record.id in seen:
            raise SettingsError(
                f"{path}: keys[{index}]: key id {record.id} is already used by {seen[record.id]}"
            )
    return [*auth.keys, *from_file]


def read_keys_file(path: Path) -> list[ApiKeyRecord]:
    """The `[[keys]]` of a keys file; a missing file holds none. Malformed: SettingsError naming
    the file and the entry."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot be read ({type(exc).__name__})") from None
    warn_if_readable_by_others(path)
    return records_of(parse_keys_toml(text, path), path)


def parse_keys_toml(text: str, path: Path) -> list[Any]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(document) - {"keys"})
    if unknown:
        raise SettingsError(f"{path}: unknown top-level key(s) {unknown}; expected [[keys]] tables")
    entries = document.get("keys", [])
    if not isinstance(entries, list):
        raise SettingsError(f"{path}: 'keys' must be [[keys]] tables")
    return entries


def records_of(entries: list[Any], path: Path) -> list[ApiKeyRecord]:
    records: list[ApiKeyRecord] = []
    for index, entry in enumerate(entries):
        name = entry.get("id") if isinstance(entry, dict) else None
        where = f"{path}: keys[{index}]" + (f" (id {name!r})" if isinstance(name, str) else "")
        try:
            record = ApiKeyRecord.model_validate(entry)
        except ValidationError as exc:
            raise SettingsError(f"{where}: {validation_summary(exc)}") from None
        stored_key(record, where)
        if any(earlier.id == record.id for earlier in records):
            raise SettingsError(f"{where}: key id {record.id} is used twice in this file")
        records.append(record)
    return records


def warn_if_readable_by_others(path: Path) -> None:
    with contextlib.suppress(OSError):
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning(
                "keys file %s has mode %o: whoever reads it can forge Kafka request signatures; "
                "chmod 600 it",
                path,
                stat.S_IMODE(mode),
            )


def append_key(path: Path, record: ApiKeyRecord) -> None:
    """Append a record to the keys file, creating it (mode 0600, with a comment header).

    The file is locked while it is read, checked (valid TOML, the id not already there) and
    appended to, so that two `keys new` at once cannot interleave or duplicate an id.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "r+b") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        text = file.read().decode("utf-8")
        existing = records_of(parse_keys_toml(text, path), path)
        if any(earlier.id == record.id for earlier in existing):
            raise SettingsError(f"{path}: key id {record.id} is already there")
        prefix = KEYS_FILE_HEADER if not text.strip() else ("" if text.endswith("\n") else "\n")
        file.write((prefix + key_table(record)).encode("utf-8"))
        file.flush()
        os.fsync(file.fileno())


def key_table(record: ApiKeyRecord) -> str:
    """One `[[keys]]` table of a record, every string escaped for TOML."""
    added = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [
        "",
        f"# added {added}",
        "[[keys]]",
        f"id = {toml_string(record.id)}",
        f"agency = {toml_string(record.agency)}",
        f"roles = [{', '.join(toml_string(role) for role in record.roles)}]",
        f"hash = {toml_string(record.hash)}",
    ]
    if record.description is not None:
        lines.append(f"description = {toml_string(record.description)}")
    return "\n".join(lines) + "\n"


TOML_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for char in value:
        code = ord(char)
        if char in TOML_ESCAPES:
            out.append(TOML_ESCAPES[char])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        elif 0xD800 <= code <= 0xDFFF:
            raise SettingsError(
                f"character {len(out) + 1} is not Unicode text (a lone surrogate): not writable "
                "to TOML"
            )
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
