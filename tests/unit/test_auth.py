"""API keys stored hashed, checked over HTTP (cached scrypt) and as Kafka request signatures."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

import bus.auth
from bus.auth import (
    AGENCY_HEADER,
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    Authenticated,
    AuthError,
    AuthFailure,
    Keyring,
    RequestSigner,
    ScryptCost,
    append_key,
    derive_digest,
    generate_key,
    parse_key,
    verifier_digest,
)
from bus.errors import SettingsError
from bus.settings import ENV_PREFIX, AuthSettings, GatewaySettings, load_settings
from bus.tooling.keys_cli import keys_app

LOW_COST = 2**4  # microseconds per scrypt instead of ~50 ms; production keys use 2**14
BODY = b'{"message_id":"m-1","requester":{"agency_code":"H26.22"}}'


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The key ids scrypt ran for, in order."""
    calls: list[str] = []
    real = bus.auth.scrypt_digest

    def counting(secret: str, key_id: str, cost: ScryptCost) -> bytes:
        calls.append(key_id)
        return real(secret, key_id, cost)

    monkeypatch.setattr(bus.auth, "scrypt_digest", counting)
    return calls


def secret_of(key: str) -> str:
    return parse_key(key)[1]


def with_secret(key: str, secret: str) -> str:
    key_id, _ = parse_key(key)
    return f"tthc_{key_id}_{secret}"


# -- keys over HTTP ----------------------------------------------------------------------------


def test_generated_key_at_production_cost_authenticates_and_names_its_agency_and_roles() -> None:
    issued = generate_key("H26.22", ["lookup", "auditor"], "Sở Tư pháp Hà Nội")
    key_id, secret = parse_key(issued.key)
    assert issued.key == f"tthc_{key_id}_{secret}"
    assert len(key_id) == 16
    assert len(secret) == 43
    assert issued.record.hash.startswith("scrypt$16384$8$1$")
    assert secret not in issued.record.model_dump_json()

    found = Keyring([issued.record]).authenticate(issued.key)

    assert isinstance(found, Authenticated)
    assert found.agency == "H26.22"
    assert found.roles == ["lookup", "auditor"]
    assert found.key_id == key_id
    assert found.record.description == "Sở Tư pháp Hà Nội"


def test_wrong_secret_is_refused_naming_the_key_but_not_the_secret() -> None:
    issued = generate_key("H26.22", n=LOW_COST)
    wrong = with_secret(issued.key, "A" * 43)

    found = Keyring([issued.record]).authenticate(wrong)

    assert isinstance(found, AuthFailure)
    assert found.reason == f"wrong secret for key {issued.record.id}"
    assert "A" * 43 not in found.reason


def test_unknown_id_is_refused_at_once_without_scrypt(scrypt_calls: list[str]) -> None:
    stored = generate_key("H26.22", n=LOW_COST)
    stranger = generate_key("H26.22", n=LOW_COST)
    scrypt_calls.clear()

    found = Keyring([stored.record]).authenticate(stranger.key)

    assert found == AuthFailure(f"no key with id {stranger.record.id}", stranger.record.id)
    assert secret_of(stranger.key) not in found.reason
    assert scrypt_calls == []


SECRET = "s3cr3t-VALUE_of_43_chars_xxxxxxxxxxxxxxxxxx"


@pytest.mark.parametrize(
    ("presented", "expected"),
    [
        (f"Bearer_0123456789abcdef_{SECRET}", "must start with 'tthc_'"),
        (f"tthc_0123456789ABCDEF_{SECRET}", "an id of 16 lowercase hex characters"),
        (f"tthc_0123456789abcde_{SECRET}", "an id of 16 lowercase hex characters"),
        (f"tthc_0123456789abcdef_{SECRET[:-3]}", "its secret must be 43 characters, not 40"),
        (f"tthc_0123456789abcdef_{SECRET[:-1]}+", "its secret must be base64url"),
    ],
)
def test_malformed_key_says_which_part_is_wrong_without_echoing_it(
    presented: str, expected: str, scrypt_calls: list[str]
) -> None:
    keyring = Keyring([generate_key("H26.22", n=LOW_COST).record])
    scrypt_calls.clear()

    found = keyring.authenticate(presented)

    assert isinstance(found, AuthFailure)
    assert found.reason.startswith("malformed key")
    assert expected in found.reason
    assert SECRET[:20] not in found.reason
    assert scrypt_calls == []


def test_second_authentication_of_the_same_key_skips_scrypt(scrypt_calls: list[str]) -> None:
    issued = generate_key("H26.22", n=LOW_COST)
    keyring = Keyring([issued.record])
    scrypt_calls.clear()

    first = keyring.authenticate(issued.key)
    second = keyring.authenticate(issued.key)

    assert isinstance(first, Authenticated)
    assert second == first
    assert scrypt_calls == [issued.record.id]


def test_cache_of_verified_keys_is_bounded(scrypt_calls: list[str]) -> None:
    one, two = generate_key("H26.22", n=LOW_COST), generate_key("H01", n=LOW_COST)
    keyring = Keyring([one.record, two.record], cache_size=1)
    scrypt_calls.clear()

    for key in (one.key, two.key, one.key):
        assert isinstance(keyring.authenticate(key), Authenticated)

    assert scrypt_calls == [one.record.id, two.record.id, one.record.id]


def test_flood_of_the_same_wrong_key_runs_scrypt_once_per_window(
    scrypt_calls: list[str],
) -> None:
    issued = generate_key("H26.22", n=LOW_COST)
    now = [1000.0]
    keyring = Keyring([issued.record], failure_ttl_s=30.0, clock=lambda: now[0])
    wrong = with_secret(issued.key, "B" * 43)
    scrypt_calls.clear()

    refusals = [keyring.authenticate(wrong) for _ in range(500)]
    now[0] += 29.0
    refusals.append(keyring.authenticate(wrong))
    assert scrypt_calls == [issued.record.id]
    now[0] += 2.0  # the window is over: the key is checked again
    refusals.append(keyring.authenticate(wrong))

    assert scrypt_calls == [issued.record.id, issued.record.id]
    assert {failure.reason for failure in refusals if isinstance(failure, AuthFailure)} == {
        f"wrong secret for key {issued.record.id}"
    }
    assert isinstance(keyring.authenticate(issued.key), Authenticated)  # the right one still in


# -- signed Kafka requests ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def issued_keys() -> dict[str, bus.auth.IssuedKey]:
    return {
        "agency": generate_key("H26.22", ["lookup"], n=LOW_COST),
        "other": generate_key("H01", ["lookup"], n=LOW_COST),
        "gateway": generate_key("BUS", ["gateway"], n=LOW_COST),
    }


@pytest.fixture(scope="module")
def keyring(issued_keys: dict[str, bus.auth.IssuedKey]) -> Keyring:
    return Keyring(issued.record for issued in issued_keys.values())


def signer_of(issued: bus.auth.IssuedKey) -> RequestSigner:
    return RequestSigner(issued.key, issued.record.agency, n=LOW_COST)


def test_signature_of_request_signer_at_production_cost_verifies() -> None:
    issued = generate_key("H26.22")
    signer = RequestSigner(issued.key, "H26.22")
    headers = signer.headers("H26.22", BODY)

    found = Keyring([issued.record]).check_signature(headers, BODY)

    assert isinstance(found, Authenticated)
    assert (found.agency, found.key_id) == ("H26.22", issued.record.id)
    assert [name for name, _ in headers] == [KEY_ID_HEADER, AGENCY_HEADER, SIGNATURE_HEADER]
    assert signer.key_id == issued.record.id
    assert signer.agency == "H26.22"
    assert derive_digest(issued.key) == (issued.record.id, verifier_digest(issued.record))


def test_changed_value_byte_is_refused(
    keyring: Keyring, issued_keys: dict[str, bus.auth.IssuedKey]
) -> None:
    headers = signer_of(issued_keys["agency"]).headers("H26.22", BODY)
    changed = BODY.replace(b"m-1", b"m-2")

    found = keyring.check_signature(headers, changed)

    assert isinstance(found, AuthFailure)
    assert found.reason.startswith(f"bad signature for key {issued_keys['agency'].record.id}")


def test_changed_agency_header_is_refused(
    keyring: Keyring, issued_keys: dict[str, bus.auth.IssuedKey]
) -> None:
    headers = signer_of(issued_keys["gateway"]).headers("H26.22", BODY)
    forged = [(name, b"H01" if name == AGENCY_HEADER else value) for name, value in headers]

    found = keyring.check_signature(forged, BODY)

    assert isinstance(found, AuthFailure)
    assert found.reason.startswith("bad signature")


@pytest.mark.parametrize("dropped", [KEY_ID_HEADER, AGENCY_HEADER, SIGNATURE_HEADER])
def test_missing_header_is_refused_naming_it(
    dropped: str, keyring: Keyring, issued_keys: dict[str, bus.auth.IssuedKey]
) -> None:
    headers = signer_of(issued_keys["agency"]).headers("H26.22", BODY)
    kept = [("traceparent", b"00-abc"), *[item for item in headers if item[0] != dropped]]

    found = keyring.check_signature(kept, BODY)

    assert found == AuthFailure(f"unsigned request: missing header(s) {dropped}")


def test_repeated_signature_header_is_refused(
    keyring: Keyring, issued_keys: dict[str, bus.auth.IssuedKey]
) -> None:
    headers = signer_of(issued_keys["agency"]).headers("H26.22", BODY)

    found = keyring.check_signature([*headers, (AGENCY_HEADER, b"H01")], BODY)

    assert found == AuthFailure(f"header {AGENCY_HEADER} appears more than once")


def test_unknown_key_id_is_refused(keyring: Keyring) -> None:
    stranger = generate_key("H26.22", n=LOW_COST)
    headers = RequestSigner(stranger.key, n=LOW_COST).headers("H26.22", BODY)

    found = keyring.check_signature(headers, BODY)

    assert found == AuthFailure(f"no key with id {stranger.record.id}", stranger.record.id)


def test_lookup_key_may_not_sign_for_another_agency(
    keyring: Keyring, issued_keys: dict[str, bus.auth.IssuedKey]
) -> None:
    issued = issued_keys["agency"]
    headers = signer_of(issued).headers("H01", BODY)

    found = keyring.check_signature(headers, BODY)

    assert found == AuthFailure(
        f"key {issued.record.id} of agency 'H26.22' may not sign for agency 'H01'", issued.record.id
    )


@pytest.mark.parametrize("agency", ["H26.22", "H01", "000.00.01.H26"])
def test_gateway_key_may_sign_for_any_agency(
    agency: str, keyring: Keyring, issued_keys: dict[str, bus.auth.IssuedKey]
) -> None:
    headers = signer_of(issued_keys["gateway"]).headers(agency, BODY)

    found = keyring.check_signature(headers, BODY)

    assert isinstance(found, Authenticated)
    assert found.agency == agency
    assert found.record.agency == "BUS"
    assert found.roles == ["gateway"]


def test_record_without_value_is_refused(
    keyring: Keyring, issued_keys: dict[str, bus.auth.IssuedKey]
) -> None:
    issued = issued_keys["agency"]
    headers = signer_of(issued).headers("H26.22", b"")

    found = keyring.check_signature(headers, None)

    assert found == AuthFailure("the record has no value to verify", issued.record.id)


def test_signer_made_without_an_agency_says_so(issued_keys: dict[str, bus.auth.IssuedKey]) -> None:
    signer = RequestSigner(issued_keys["agency"].key, n=LOW_COST)

    with pytest.raises(AuthError, match="made without its agency"):
        _ = signer.agency
    with pytest.raises(AuthError, match="agency code 'H26 22' must match"):
        signer.headers("H26 22", BODY)


# -- the keys file and settings -----------------------------------------------------------------


def test_keys_file_round_trips_beside_settings_keys(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "keys.toml"
    in_settings = generate_key("H01", n=LOW_COST)
    tricky = 'Sở "Tư pháp" \\ C:\\keys\nline two\ttab \x7f end'
    in_file = [
        generate_key("H26.22", ["lookup", "auditor"], tricky, n=LOW_COST),
        generate_key("BUS", ["gateway"], n=LOW_COST),
    ]
    for issued in in_file:
        append_key(path, issued.record)

    auth = AuthSettings(keys=[in_settings.record], keys_file=path)
    keyring = Keyring.from_settings(auth)

    assert keyring.records == [in_settings.record, *(issued.record for issued in in_file)]
    for issued in (in_settings, *in_file):
        found = keyring.authenticate(issued.key)
        assert isinstance(found, Authenticated), found
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert text.startswith("# API keys of tthc-bus, stored hashed")
    assert text.count("[[keys]]") == 2
    assert not any(secret_of(issued.key) in text for issued in in_file)


def test_missing_keys_file_is_an_empty_set(tmp_path: Path) -> None:
    keyring = Keyring.from_settings(AuthSettings(keys_file=tmp_path / "absent.toml"))
    assert len(keyring) == 0


def test_key_id_in_settings_and_in_the_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    issued = generate_key("H26.22", n=LOW_COST)
    append_key(path, issued.record)

    with pytest.raises(SettingsError) as info:
        Keyring.from_settings(AuthSettings(keys=[issued.record], keys_file=path))

    assert str(info.value) == (
        f"{path}: keys[0]: key id {issued.record.id} is already used by auth.keys[0]"
    )


def test_key_id_twice_in_the_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    issued = generate_key("H26.22", n=LOW_COST)
    append_key(path, issued.record)
    path.write_text(path.read_text() * 2)

    with pytest.raises(SettingsError) as info:
        Keyring.from_settings(AuthSettings(keys_file=path))

    assert str(info.value).startswith(f"{path}: keys[1] (id '{issued.record.id}'): ")
    assert "used twice" in str(info.value)
    with pytest.raises(SettingsError, match="used twice in this file"):
        append_key(path, generate_key("H01", n=LOW_COST).record)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[keys]\nid = 1", ": not valid TOML: "),
        (
            '[[keys]]\nid = "0123456789abcdef"\nagency = "H01"\nroles = ["admin"]\nhash = "x"\n',
            ": keys[0] (id '0123456789abcdef'): roles.0: Input should be",
        ),
        (
            '[[keys]]\nid = "0123456789abcdef"\nagency = "H01"\nhash = "md5$abc"\n',
            ": keys[0] (id '0123456789abcdef'): the hash must be of the form scrypt$",
        ),
        ('[key]\nid = "0123456789abcdef"\n', ": unknown top-level key(s) ['key']"),
    ],
)
def test_malformed_keys_file_is_refused_naming_the_file_and_entry(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(text)

    with pytest.raises(SettingsError) as info:
        Keyring.from_settings(AuthSettings(keys_file=path))

    assert str(info.value).startswith(str(path))
    assert expected in str(info.value)


def test_keys_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    issued = generate_key("H26.22", ["lookup"], "from the environment", n=LOW_COST)
    monkeypatch.setenv("TTHC_BUS_AUTH__KEYS", json.dumps([issued.record.model_dump()]))
    monkeypatch.setenv("TTHC_BUS_AUTH__KEYS_FILE", str(tmp_path / "none.toml"))

    settings = load_settings()
    found = Keyring.from_settings(settings.auth).authenticate(issued.key)

    assert settings.auth.keys == [issued.record]
    assert isinstance(found, Authenticated)
    assert found.agency == "H26.22"


def test_gateway_key_is_checked_at_start(tmp_path: Path) -> None:
    gateway = generate_key("BUS", ["gateway"], n=LOW_COST)
    agency = generate_key("H26.22", ["lookup"], n=LOW_COST)
    auth = AuthSettings(keys=[gateway.record, agency.record], keys_file=tmp_path / "k.toml")

    def start(key: str) -> Callable[[], Keyring]:
        return lambda: Keyring.from_settings(auth, GatewaySettings(key=SecretStr(key)))

    assert len(start(gateway.key)()) == 2
    with pytest.raises(SettingsError, match=r"has roles \['lookup'\], not 'gateway'"):
        start(agency.key)()
    with pytest.raises(SettingsError, match=f"wrong secret for key {gateway.record.id}"):
        start(with_secret(gateway.key, "C" * 43))()


# -- the command line ---------------------------------------------------------------------------


def test_keys_new_prints_the_key_once_and_the_file_then_authenticates_it(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"

    result = CliRunner().invoke(
        keys_app, ["new", "H26.22", "--role", "lookup", "--role", "auditor", "--file", str(path)]
    )

    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert result.stdout == key + "\n"
    assert key not in result.stderr
    assert f"store it now: it is not kept; its hash is in {path}" in result.stderr
    assert secret_of(key) not in path.read_text()
    found = Keyring.from_settings(AuthSettings(keys_file=path)).authenticate(key)
    assert isinstance(found, Authenticated)
    assert (found.agency, found.roles) == ("H26.22", ["lookup", "auditor"])


def test_keys_list_shows_ids_and_agencies_but_no_hash(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    issued = generate_key("H26.22", ["lookup"], "[bold]hệ thống một cửa[/bold]", n=LOW_COST)
    append_key(path, issued.record)
    runner = CliRunner()

    table = runner.invoke(keys_app, ["list", "--file", str(path)])
    as_json = runner.invoke(keys_app, ["list", "--json", "--file", str(path)])

    assert table.exit_code == 0, table.output
    assert issued.record.id in table.stdout
    assert "H26.22" in table.stdout
    assert "[bold]hệ thống một cửa[/bold]" in table.stdout
    assert json.loads(as_json.stdout) == [
        {
            "id": issued.record.id,
            "agency": "H26.22",
            "roles": ["lookup"],
            "description": "[bold]hệ thống một cửa[/bold]",
        }
    ]
    for output in (table.output, as_json.output):
        assert "scrypt" not in output
        assert verifier_digest(issued.record).hex() not in output


def test_keys_new_with_a_wrong_agency_code_fails_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"

    result = CliRunner().invoke(keys_app, ["new", "H26 22", "--file", str(path)])

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "agency code 'H26 22' must match" in result.stderr
    assert not path.exists()
