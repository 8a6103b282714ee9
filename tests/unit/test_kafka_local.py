"""The Java check of the embedded broker: the major version read from `java -version`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bus.tooling import kafka_local
from bus.tooling.kafka_local import KafkaSetupError, java_major_version

JAVA_17 = """openjdk version "17.0.15" 2025-04-15
OpenJDK Runtime Environment (build 17.0.15+6-Debian-1deb12u1)
OpenJDK 64-Bit Server VM (build 17.0.15+6-Debian-1deb12u1, mixed mode, sharing)
"""
JAVA_11 = """openjdk version "11.0.2" 2019-01-15
OpenJDK Runtime Environment 18.9 (build 11.0.2+9)
OpenJDK 64-Bit Server VM 18.9 (build 11.0.2+9, mixed mode)
"""
JAVA_8 = """java version "1.8.0_392"
Java(TM) SE Runtime Environment (build 1.8.0_392-b08)
Java HotSpot(TM) 64-Bit Server VM (build 25.392-b08, mixed mode)
"""
JAVA_21 = """openjdk version "21" 2023-09-19
OpenJDK Runtime Environment (build 21+35-2513)
OpenJDK 64-Bit Server VM (build 21+35-2513, mixed mode, sharing)
"""
# JAVA_TOOL_OPTIONS makes the JVM print a line before the version.
JAVA_17_WITH_OPTIONS = 'Picked up JAVA_TOOL_OPTIONS: -Xss1m\nopenjdk version "17.0.9" 2023-10-17\n'


@pytest.mark.parametrize(
    ("output", "major"),
    [
        (JAVA_17, 17),
        (JAVA_11, 11),
        (JAVA_8, 8),
        (JAVA_21, 21),
        (JAVA_17_WITH_OPTIONS, 17),
        ('openjdk version "22-ea" 2024-03-19\n', 22),
        ("bash: java: command not found\n", None),
        ("", None),
    ],
)
def test_java_major_version(output: str, major: int | None) -> None:
    assert java_major_version(output) == major


def _fake_java(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version_output: str) -> None:
    java = tmp_path / "java"
    java.write_text(f"#!/bin/sh\ncat >&2 <<'OUT'\n{version_output}OUT\n")
    java.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin{os.pathsep}/bin")
    kafka_local.require_java.cache_clear()


def test_an_old_java_is_refused_saying_what_was_found_and_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_java(monkeypatch, tmp_path, JAVA_11)
    try:
        with pytest.raises(KafkaSetupError) as error:
            kafka_local.require_java()
    finally:
        kafka_local.require_java.cache_clear()
    assert "Java 11" in str(error.value)
    assert "apt-get install openjdk-17-jre-headless" in str(error.value)


def test_java_17_is_accepted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_java(monkeypatch, tmp_path, JAVA_17)
    try:
        assert kafka_local.require_java() == str(tmp_path / "java")
    finally:
        kafka_local.require_java.cache_clear()
