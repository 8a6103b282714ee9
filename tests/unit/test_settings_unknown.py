"""Unknown keys and sections, in settings.toml or in TTHC_BUS_* variables, stop the start: each
is named with the closest known key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bus.errors import SettingsError
from bus.settings import ENV_PREFIX, PROJECT_ROOT, load_settings
from connectors.catalog import load_sources


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees settings.toml and only the variables it sets itself."""
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


def error_with_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> str:
    toml = tmp_path / "settings.toml"
    toml.write_text(text, encoding="utf-8")
    monkeypatch.setenv("TTHC_BUS_SETTINGS_FILE", str(toml))
    with pytest.raises(SettingsError) as info:
        load_settings()
    return str(info.value)


def error_with_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    return str(info.value)


def test_a_misspelt_section_in_the_file_is_named_with_the_closest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = error_with_file(tmp_path, monkeypatch, "[lokup]\ndefault_deadline_ms = 100\n")
    assert 'settings.toml: unknown section "lokup"; did you mean "lookup"?' in message


def test_a_misspelt_key_of_a_section_is_named_with_the_closest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = error_with_file(tmp_path, monkeypatch, "[lookup]\ndefault_deadline = 100\n")
    assert (
        'settings.toml: unknown key "lookup.default_deadline"; '
        'did you mean "lookup.default_deadline_ms"?'
    ) in message


def test_a_misspelt_nested_key_is_named_with_its_whole_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = error_with_file(tmp_path, monkeypatch, "[kafka.local]\nprot = 19092\n")
    assert 'unknown key "kafka.local.prot"; did you mean "kafka.local.port"?' in message


def test_a_key_of_a_list_of_tables_is_named_with_its_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = '[[policy.grants]]\nagency = "X"\nprocedures = ["p"]\ndescripton = "d"\n'
    message = error_with_file(tmp_path, monkeypatch, text)
    assert 'unknown key "policy.grants[0].descripton"' in message
    assert 'did you mean "policy.grants[0].description"?' in message


def test_names_under_tables_of_free_names_are_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = tmp_path / "settings.toml"
    toml.write_text(
        '[sources.tax]\nadapter = "population"\nurl = "http://x"\n'
        "[sandbox.faults.tax]\nlatency_ms = 200\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("TTHC_BUS_SETTINGS_FILE", str(toml))
    settings = load_settings()
    assert settings.source("tax").url == "http://x"
    assert settings.sandbox.faults == {"tax": {"latency_ms": 200}}


def test_a_misspelt_section_in_a_variable_is_named_with_the_closest_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = error_with_env(monkeypatch, TTHC_BUS_LOKUP__DEFAULT_DEADLINE_MS="100")
    assert (
        "TTHC_BUS_LOKUP__DEFAULT_DEADLINE_MS: no such setting; "
        "did you mean TTHC_BUS_LOOKUP__DEFAULT_DEADLINE_MS?"
    ) in message


def test_a_misspelt_key_in_a_variable_is_named_with_the_closest_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = error_with_env(monkeypatch, TTHC_BUS_KAFKA__LOCAL__PROT="19092")
    assert (
        "TTHC_BUS_KAFKA__LOCAL__PROT: no such setting; did you mean TTHC_BUS_KAFKA__LOCAL__PORT?"
    ) in message


def test_variables_are_matched_whatever_their_case(monkeypatch: pytest.MonkeyPatch) -> None:
    message = error_with_env(monkeypatch, tthc_bus_gateway__prot="8081")
    assert (
        "tthc_bus_gateway__prot: no such setting; did you mean TTHC_BUS_GATEWAY__PORT?" in message
    )


def test_a_level_run_together_is_found_by_the_whole_name(monkeypatch: pytest.MonkeyPatch) -> None:
    message = error_with_env(monkeypatch, TTHC_BUS_GATEWAY_PORT="8081")
    assert "did you mean TTHC_BUS_GATEWAY__PORT?" in message


def test_nothing_close_lists_the_known_keys_of_that_level(monkeypatch: pytest.MonkeyPatch) -> None:
    message = error_with_env(monkeypatch, TTHC_BUS_LOOKUP__QQQ="1")
    assert "known under TTHC_BUS_LOOKUP__: DEFAULT_DEADLINE_MS, MAX_DEADLINE_MS" in message


def test_a_variable_addressing_into_a_table_of_names_is_a_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TTHC_BUS_SOURCES__POPULATION__URL", "http://x/dancu")
    monkeypatch.setenv("TTHC_BUS_SANDBOX__FAULTS__INSURANCE__LATENCY_MS", "200")
    monkeypatch.setenv("TTHC_BUS_SYNC__FEEDS__SOURCES", '["population"]')  # JSON still works
    settings = load_settings()
    assert settings.source("population").url == "http://x/dancu"
    assert settings.sandbox.faults["insurance"] == {"latency_ms": "200"}
    assert settings.sync.feeds.sources == ["population"]


def test_a_misspelt_key_of_a_source_is_refused_by_its_adapter_with_the_closest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A source's keys beyond SourceSettings are its adapter's (e.g. insurance's password), so
    # settings keep them and the start-up check of the sources refuses the unknown ones.
    monkeypatch.setenv("TTHC_BUS_SOURCES__POPULATION__TIMOT_S", "1")
    settings = load_settings()
    with pytest.raises(SettingsError) as info:
        load_sources(settings, ["population"])
    message = str(info.value)
    assert "sources.population: unknown keys ['timot_s']" in message
    assert "did you mean 'timeout_s', env TTHC_BUS_SOURCES__POPULATION__TIMEOUT_S?" in message


def test_a_variable_below_a_plain_value_names_that_value(monkeypatch: pytest.MonkeyPatch) -> None:
    message = error_with_env(monkeypatch, TTHC_BUS_AUTH__KEYS__0__ID="x")
    assert (
        "TTHC_BUS_AUTH__KEYS__0__ID: no such setting; did you mean TTHC_BUS_AUTH__KEYS?" in message
    )


def test_every_unknown_key_is_named_at_once_one_a_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTHC_BUS_GATEWAY__PROT", "8081")
    monkeypatch.setenv("TTHC_BUS_WROKER__CONCURRENCY", "8")
    message = error_with_file(tmp_path, monkeypatch, "[lokup]\n[kafka]\npartition = 3\n")
    lines = message.splitlines()
    assert lines[0] == "unknown settings:"
    expected = [
        'settings.toml: unknown section "lokup"; did you mean "lookup"?',
        'settings.toml: unknown key "kafka.partition"; did you mean "kafka.partitions"?',
        "TTHC_BUS_GATEWAY__PROT: no such setting; did you mean TTHC_BUS_GATEWAY__PORT?",
        "TTHC_BUS_WROKER__CONCURRENCY: no such setting; did you mean TTHC_BUS_WORKER__CONCURRENCY?",
    ]
    assert len(lines) == 1 + len(expected)
    for problem in expected:
        assert sum(problem in line for line in lines) == 1, (problem, message)


def test_the_cli_stops_on_a_misspelt_variable_naming_it() -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith(ENV_PREFIX)}
    env["TTHC_BUS_LOKUP__DEFAULT_DEADLINE_MS"] = "100"
    env["COLUMNS"] = "300"  # the message on one line, as the terminal would not wrap it
    done = subprocess.run(
        [sys.executable, "-m", "bus.tooling.cli", "kafka", "status"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "TTHC_BUS_LOKUP__DEFAULT_DEADLINE_MS: no such setting" in done.stderr
    assert "did you mean TTHC_BUS_LOOKUP__DEFAULT_DEADLINE_MS?" in done.stderr
    assert "Traceback" not in done.stderr
