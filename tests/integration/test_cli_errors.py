"""`tthc-bus` as a user runs it, a subprocess: what fails is one line on stderr (the traceback
only with --debug), and the exit code says what happened (bus/tooling/exits.py). First without
any broker (nothing listens on the address given), then against the running stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from bus import topics
from bus.auth import generate_key
from bus.tooling import exits
from bus.tooling.devstack import DEMO_AGENCY, DevStack
from bus.tooling.kafka_local import free_port
from sandbox.population.generator import PopulationGenerator

pytestmark = pytest.mark.integration

PROCEDURE = "1.004222"
PURPOSE = "Xác minh nhân thân khi giải quyết hồ sơ"


def cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bus.tooling.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def lookup_args(subject: str, *extra: str) -> list[str]:
    return ["lookup", "--subject", subject, "--procedure", PROCEDURE, "--purpose", PURPOSE, *extra]


@pytest.fixture
def nowhere() -> dict[str, str]:
    """The environment of a user whose broker is down: nothing listens on the address."""
    return dict(
        os.environ,
        TTHC_BUS_KAFKA__BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",
        TTHC_API_KEY=generate_key(DEMO_AGENCY, ["lookup"], "a test's key").key,
        TTHC_AGENCY=DEMO_AGENCY,
    )


# -- without a broker ------------------------------------------------------------------------


def test_a_lookup_with_no_broker_is_one_line_and_exit_7(nowhere: dict[str, str]) -> None:
    started = time.monotonic()
    done = cli(*lookup_args("001090012345", "--deadline-ms", "2000"), env=nowhere)
    assert done.returncode == exits.UNREACHABLE, done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("error: ") and nowhere["TTHC_BUS_KAFKA__BOOTSTRAP_SERVERS"] in line
    assert done.stdout == ""
    assert time.monotonic() - started < 30


def test_with_debug_the_traceback_is_shown(nowhere: dict[str, str]) -> None:
    done = cli("--debug", *lookup_args("001090012345", "--deadline-ms", "2000"), env=nowhere)
    assert done.returncode == exits.UNREACHABLE
    assert "Traceback (most recent call last)" in done.stderr
    assert "BusUnavailable" in done.stderr
    assert done.stderr.splitlines()[-1].startswith("error: ")
    # the environment's switch does the same
    done = cli(
        *lookup_args("001090012345", "--deadline-ms", "2000"), env=nowhere | {"TTHC_DEBUG": "1"}
    )
    assert done.returncode == exits.UNREACHABLE and "Traceback" in done.stderr


def test_a_deadline_of_zero_is_a_usage_error(nowhere: dict[str, str]) -> None:
    done = cli(*lookup_args("001090012345", "--deadline-ms", "0"), env=nowhere)
    assert done.returncode == exits.USAGE
    assert "--deadline-ms" in done.stderr and "Traceback" not in done.stderr


def test_a_malformed_key_is_a_usage_error(nowhere: dict[str, str]) -> None:
    done = cli(*lookup_args("001090012345"), env=nowhere | {"TTHC_API_KEY": "not-a-key"})
    assert done.returncode == exits.USAGE
    [line] = done.stderr.splitlines()
    assert line.startswith("error: --key: malformed key"), line


def test_kafka_status_json_with_no_broker_says_not_running_exit_7(nowhere: dict[str, str]) -> None:
    done = cli("kafka", "status", "--json", env=nowhere)
    assert done.returncode == exits.UNREACHABLE, done.stderr
    status = json.loads(done.stdout)
    assert status["mode"] == "external" and status["running"] is False
    assert status["bootstrap_servers"] == nowhere["TTHC_BUS_KAFKA__BOOTSTRAP_SERVERS"]
    assert len(done.stderr.splitlines()) == 1


def test_topics_list_json_has_every_topic_with_its_roles(nowhere: dict[str, str]) -> None:
    done = cli("topics", "list", "--json", env=nowhere)
    assert done.returncode == 0, done.stderr
    found = {topic["name"]: topic for topic in json.loads(done.stdout)}
    request = found[topics.LOOKUP_REQUEST]
    assert "LookupRequest" in request["messages"]
    assert request["consumers"] == ["lookup-router"]
    assert request["key"] == "request id" and request["cleanup_policy"] == "delete"
    assert found[topics.LOOKUP_REPLY]["partitions"] == topics.REPLY_PARTITIONS
    assert found[topics.STATUS]["cleanup_policy"] == "compact"
    assert "lookup-aggregator" in found[topics.SOURCE_RESULT]["consumers"]
    assert found[topics.source_request("population")]["consumers"] == [
        "lookup-connector-population"
    ]
    assert topics.agency_reply_topic(DEMO_AGENCY) in found
    assert all(
        topic["producers"] and topic["consumers"]
        for topic in found.values()
        if "dlq" in topic["name"]
    )


def test_an_unknown_topic_names_the_closest_one_exit_2(nowhere: dict[str, str]) -> None:
    done = cli("topics", "describe", "tthc.lookup.reqest", env=nowhere)
    assert done.returncode == exits.USAGE
    [line] = done.stderr.splitlines()
    assert "did you mean tthc.lookup.request?" in line


def test_describe_with_no_broker_shows_the_declaration_then_exit_7(nowhere: dict[str, str]) -> None:
    done = cli("topics", "describe", topics.LOOKUP_REQUEST, "--json", env=nowhere)
    assert done.returncode == exits.UNREACHABLE
    body = json.loads(done.stdout)
    assert body["name"] == topics.LOOKUP_REQUEST and body["live"] is None
    assert "cannot be reached" in body["live_error"]
    assert len(done.stderr.splitlines()) == 1


# -- against the running stack ---------------------------------------------------------------


@pytest.fixture
def user(stack: DevStack) -> dict[str, str]:
    """The environment of an agency's officer using the stack over Kafka."""
    return dict(
        os.environ,
        TTHC_BUS_KAFKA__BOOTSTRAP_SERVERS=stack.bootstrap_servers,
        TTHC_API_KEY=stack.keys.agencies[DEMO_AGENCY],
        TTHC_AGENCY=DEMO_AGENCY,
    )


def known_subject(stack: DevStack) -> str:
    answer = requests.get(f"{stack.sandbox_url}/_sandbox/sample", params={"n": 1}, timeout=10)
    answer.raise_for_status()
    [subject] = answer.json()
    return str(subject)


def unknown_subject(known: str, population: PopulationGenerator) -> str:
    """A well-formed personal id nobody has: the known one with its last digits changed."""
    for n in range(1, 100_000):
        candidate = f"{known[:7]}{(int(known[7:]) + n) % 100_000:05d}"
        if population.find(candidate) is None:
            return candidate
    raise AssertionError("no unknown id near a known one")


def test_kafka_status_of_the_running_broker_is_exit_0(user: dict[str, str]) -> None:
    done = cli("kafka", "status", "--json", env=user)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["running"] is True


def test_a_known_subject_is_exit_0(stack: DevStack, user: dict[str, str]) -> None:
    subject = known_subject(stack)
    done = cli(*lookup_args(subject, "--dataset", "population.identity"), env=user)
    assert done.returncode == exits.OK, done.stderr
    reply = json.loads(done.stdout)
    assert reply["status"] == "complete"
    assert reply["results"][0]["data"]["personal_id"] == subject
    assert done.stderr == ""


def test_an_unknown_subject_is_exit_3(
    stack: DevStack, user: dict[str, str], population: PopulationGenerator
) -> None:
    subject = unknown_subject(known_subject(stack), population)
    done = cli(*lookup_args(subject, "--dataset", "population.identity"), env=user)
    assert done.returncode == exits.NOT_FOUND, done.stderr
    assert json.loads(done.stdout)["status"] == "not_found"
    [line] = done.stderr.splitlines()
    assert line.startswith("not_found: population.identity: not_found")


def test_a_purpose_the_procedure_does_not_allow_is_denied_exit_4(
    stack: DevStack, user: dict[str, str]
) -> None:
    # policy check agrees: the procedure's purposes are procedures.toml's, and this is none.
    purpose = "Tiếp thị sản phẩm"
    check = cli(
        "policy", "check", "--agency", DEMO_AGENCY, "--procedure", PROCEDURE,
        "--dataset", "population.identity", "--purpose", purpose,
        env=user,
    )  # fmt: skip
    assert check.returncode == exits.DENIED, check.stdout + check.stderr
    args = lookup_args(known_subject(stack), "--dataset", "population.identity")
    args[args.index(PURPOSE)] = purpose
    done = cli(*args, env=user)
    assert done.returncode == exits.DENIED, done.stderr
    reply = json.loads(done.stdout)
    assert reply["status"] == "denied"
    assert [error["code"] for error in reply["errors"]] == ["purpose_not_allowed"]
    [line] = done.stderr.splitlines()
    assert line.startswith("denied: population.identity: purpose_not_allowed")


def test_describe_shows_the_live_partitions(stack: DevStack, user: dict[str, str]) -> None:
    looked_up = cli(
        *lookup_args(known_subject(stack), "--dataset", "population.identity"), env=user
    )
    assert looked_up.returncode == exits.OK, looked_up.stderr
    done = cli("topics", "describe", topics.LOOKUP_REQUEST, "--json", env=user)
    assert done.returncode == 0, done.stderr
    live = json.loads(done.stdout)["live"]
    assert live["exists"] is True
    partitions = live["partitions"]
    assert [p["partition"] for p in partitions] == list(range(stack.settings.kafka.partitions))
    assert all(p["end_offset"] >= p["start_offset"] >= 0 for p in partitions)
    assert sum(p["end_offset"] for p in partitions) > 0  # the lookup above went through it
    assert live["configs"]["retention.ms"] == str(24 * 3600 * 1000)
    text = cli("topics", "describe", topics.LOOKUP_REQUEST, env=user | {"COLUMNS": "200"})
    assert text.returncode == 0, text.stderr
    assert f"{stack.settings.kafka.partitions} partitions" in text.stdout


@contextmanager
def slow(stack: DevStack, source: str, latency_ms: int) -> Iterator[None]:
    url = f"{stack.sandbox_url}/_sandbox/faults/{source}"
    requests.put(url, json={"latency_ms": latency_ms}, timeout=10).raise_for_status()
    try:
        yield
    finally:
        requests.put(url, json={}, timeout=10).raise_for_status()


def test_a_database_too_slow_for_the_deadline_is_exit_6(
    stack: DevStack, user: dict[str, str]
) -> None:
    subject = known_subject(stack)
    args = lookup_args(subject, "--dataset", "population.identity", "--deadline-ms", "1500")
    with slow(stack, "population", 4000):
        done = cli(*args, env=user)
    assert done.returncode == exits.DEADLINE, done.stdout + done.stderr
    [line] = done.stderr.splitlines()
    if done.stdout:  # the worker answered just before the deadline: the source timed out
        reply = json.loads(done.stdout)
        assert reply["status"] == "failed"
        assert {error["code"] for error in reply["errors"]} <= {"timeout", "deadline_exceeded"}
        assert line.startswith("failed: population.identity: ")
    else:  # nothing came back in time
        assert "no reply within the deadline" in line
