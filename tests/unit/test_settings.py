"""Settings: settings.toml, overridden key by key from TTHC_BUS_* variables, wrong values named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bus.errors import SettingsError
from bus.settings import ENV_PREFIX, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees settings.toml and only the variables it sets itself."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


def settings_error(**env: str) -> str:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        with pytest.raises(SettingsError) as info:
            load_settings()
    return str(info.value)


def test_defaults_come_from_settings_toml() -> None:
    settings = load_settings()
    assert settings.gateway.port == 8080
    assert settings.kafka.local.port == 19092
    population = settings.source("population")
    assert population.url == "http://127.0.0.1:8090/dancu"
    assert population.concurrency == 32  # the model's default is 16: this value is the TOML's


def test_local_broker_is_used_when_no_bootstrap_servers_are_set() -> None:
    assert load_settings().kafka.resolved_bootstrap() == "127.0.0.1:19092"


def test_environment_overrides_one_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTHC_BUS_GATEWAY__PORT", "9999")
    settings = load_settings()
    assert settings.gateway.port == 9999
    assert settings.gateway.host == "127.0.0.1"


def test_external_cluster_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTHC_BUS_KAFKA__BOOTSTRAP_SERVERS", "broker1:9092")
    settings = load_settings()
    assert settings.kafka.resolved_bootstrap() == "broker1:9092"
    assert settings.kafka.partitions == 6


def test_overriding_a_source_url_keeps_the_rest_of_that_source(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TTHC_BUS_SOURCES__POPULATION__URL", "http://x/dancu")
    population = load_settings().source("population")
    assert population.url == "http://x/dancu"
    assert population.adapter == "population"
    assert population.datasets is None  # all the adapter declares
    assert population.concurrency == 32


def test_port_that_is_not_a_number_is_refused_naming_key_variable_and_value() -> None:
    message = settings_error(TTHC_BUS_GATEWAY__PORT="abc")
    assert "gateway.port (env TTHC_BUS_GATEWAY__PORT) = 'abc'" in message
    assert "valid integer" in message


def test_heap_that_is_not_a_size_is_refused_naming_key_variable_and_value() -> None:
    message = settings_error(TTHC_BUS_KAFKA__LOCAL__HEAP="lots")
    assert "kafka.local.heap (env TTHC_BUS_KAFKA__LOCAL__HEAP) = 'lots'" in message
    assert "pattern" in message


def test_every_wrong_value_is_reported_at_once() -> None:
    message = settings_error(TTHC_BUS_GATEWAY__PORT="abc", TTHC_BUS_KAFKA__LOCAL__HEAP="lots")
    assert "gateway.port" in message
    assert "kafka.local.heap" in message


def test_port_out_of_range_is_refused() -> None:
    message = settings_error(TTHC_BUS_GATEWAY__PORT="70000")
    assert "gateway.port (env TTHC_BUS_GATEWAY__PORT) = '70000'" in message
    assert "65535" in message


def test_settings_file_from_the_environment_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = tmp_path / "settings.toml"
    toml.write_text("[gateway]\nport = 8181\n", encoding="utf-8")
    monkeypatch.setenv("TTHC_BUS_SETTINGS_FILE", str(toml))
    settings = load_settings()
    assert settings.gateway.port == 8181
    assert settings.sources == {}


def test_unknown_key_in_the_settings_file_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = tmp_path / "settings.toml"
    toml.write_text("[gateway]\nport = 8080\nprot = 8081\n", encoding="utf-8")
    monkeypatch.setenv("TTHC_BUS_SETTINGS_FILE", str(toml))
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "gateway.prot" in str(info.value)
    assert 'did you mean "gateway.port"' in str(info.value)


def test_unknown_section_in_the_settings_file_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = tmp_path / "settings.toml"
    toml.write_text("[gatway]\nport = 8080\n", encoding="utf-8")
    monkeypatch.setenv("TTHC_BUS_SETTINGS_FILE", str(toml))
    with pytest.raises(SettingsError, match="gatway"):
        load_settings()


def test_source_missing_its_url_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = tmp_path / "settings.toml"
    toml.write_text(
        '[sources.tax]\nadapter = "adapters.tax:TaxAdapter"\ndatasets = ["enterprise"]\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("TTHC_BUS_SETTINGS_FILE", str(toml))
    with pytest.raises(SettingsError, match=r"sources\.tax\.url .*Field required"):
        load_settings()


def test_asking_for_an_unconfigured_source_names_the_configured_ones() -> None:
    with pytest.raises(SettingsError, match=r"sources\.tax: no such source; .*'population'"):
        load_settings().source("tax")


def test_settings_file_that_does_not_exist_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-such-settings.toml"
    monkeypatch.setenv("TTHC_BUS_SETTINGS_FILE", str(missing))
    with pytest.raises(SettingsError, match=r"no-such-settings\.toml"):
        load_settings()
