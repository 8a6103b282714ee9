"""The exit codes of `tthc-bus` (bus/tooling/exits.py): each outcome has its own, the
exceptions that end a command map to them, and README and `--help` list the same table.
(tests/integration/test_cli_errors.py runs the command line itself.)"""

from __future__ import annotations

import re

import confluent_kafka
import pytest

from bus.admission import Overloaded
from bus.auth import AuthError
from bus.client import BusUnavailable
from bus.errors import BusError, SettingsError
from bus.settings import PROJECT_ROOT
from bus.sync.offsets import OffsetsError
from bus.tooling import exits


def test_the_codes_are_distinct() -> None:
    codes = [code for code, _ in exits.TABLE]
    assert len(set(codes)) == len(codes)
    assert codes == [0, 1, 2, 3, 4, 5, 6, 7, 130]


@pytest.mark.parametrize(
    ("status", "errors", "code"),
    [
        ("complete", [], exits.OK),
        ("partial", ["not_found"], exits.OK),
        ("partial", ["deadline_exceeded"], exits.OK),
        ("not_found", ["not_found"], exits.NOT_FOUND),
        ("denied", ["purpose_not_allowed"], exits.DENIED),
        ("failed", ["unavailable"], exits.FAILED),
        ("failed", ["overloaded"], exits.FAILED),
        ("failed", ["deadline_exceeded", "unavailable"], exits.FAILED),
        ("failed", ["deadline_exceeded"], exits.DEADLINE),
        ("failed", ["deadline_exceeded", "timeout"], exits.DEADLINE),
        ("failed", [], exits.FAILED),
        (None, [], exits.DEADLINE),
    ],
)
def test_a_reply_status_maps_to_its_code(status: str | None, errors: list[str], code: int) -> None:
    assert exits.lookup_exit(status, errors) == code


def raised(exc: BaseException) -> BaseException:
    """`exc` with a traceback, as a command would let it go."""
    try:
        raise exc
    except BaseException as caught:
        return caught


@pytest.mark.parametrize(
    ("exc", "code", "words"),
    [
        (BusUnavailable("the broker at h:1 does not answer"), exits.UNREACHABLE, "h:1"),
        (OffsetsError("tthc.status: watermarks: timed out"), exits.UNREACHABLE, "tthc.status"),
        (ConnectionRefusedError(111, "Connection refused"), exits.UNREACHABLE, "refused"),
        (
            confluent_kafka.KafkaException(
                confluent_kafka.KafkaError(confluent_kafka.KafkaError._ALL_BROKERS_DOWN)
            ),
            exits.UNREACHABLE,
            "cannot be reached",
        ),
        (Overloaded("4 lookups in flight", 1.5), exits.FAILED, "ask again in 1.5 s"),
        (AuthError("malformed key"), exits.USAGE, "--key: malformed key"),
        (SettingsError("kafka.partitions: expected >= 1"), exits.USAGE, "kafka.partitions"),
        (BusError("something of ours"), exits.ERROR, "something of ours"),
        (KeyboardInterrupt(), exits.INTERRUPTED, "interrupted"),
    ],
)
def test_an_exception_maps_to_one_line_and_its_code(
    exc: BaseException, code: int, words: str
) -> None:
    got, message = exits.failure(raised(exc))
    assert got == code
    assert words in message and "\n" not in message


def test_an_unexpected_exception_names_its_type_and_site_but_not_its_text() -> None:
    code, message = exits.failure(raised(ValueError("personal id 001090012345")))
    assert code == exits.ERROR
    here = str(__file__).removeprefix(str(PROJECT_ROOT) + "/")
    assert re.fullmatch(
        rf"unexpected ValueError at {re.escape(here)}:\d+; run with --debug .*", message
    )
    assert "001090012345" not in message


def test_a_multi_line_message_is_one_line() -> None:
    assert exits.one_line("first\n  second\n") == "first (more with --debug)"
    assert exits.one_line("only") == "only"


def test_readme_and_help_list_the_same_codes() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    in_readme = [int(code) for code in re.findall(r"^\| (\d+) \| ", readme, re.MULTILINE)]
    in_help = [int(line.split()[0]) for line in exits.EPILOG.split("\n\n")[1:]]
    assert in_readme == in_help == [code for code, _ in exits.TABLE]
