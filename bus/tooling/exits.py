"""Exit codes of `tthc-bus`, and the one place exceptions become one line and a code.

Scripts branch on the code, so every command uses these constants and each outcome has a code
of its own; the table is in README.md ("Command line") and in the epilog of `tthc-bus --help`.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OK = 0
# Something else went wrong: an unexpected error, or a check that found a problem (`status`:
# unhealthy, `audit verify`: a broken chain, `dlq replay`: letters that failed again).
ERROR = 1
USAGE = 2  # a wrong option (click's own code), an invalid request, a bad --key, a bad setting
NOT_FOUND = 3
DENIED = 4
FAILED = 5
DEADLINE = 6
UNREACHABLE = 7
INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C

TABLE: tuple[tuple[int, str], ...] = (
    (OK, "done; a lookup complete or partial"),
    (
        ERROR,
        "a check found a problem (status: unhealthy, audit verify: a broken chain), or an "
        "unexpected error",
    ),
    (USAGE, "usage: a wrong option, an invalid request, a bad --key or setting, an unknown topic"),
    (NOT_FOUND, "lookup: the subject is not found"),
    (DENIED, "lookup or policy check: denied by policy"),
    (FAILED, "lookup: failed (a database's error, or the bus refused it: overloaded)"),
    (DEADLINE, "lookup: no reply before the deadline, or only deadline errors (timeout)"),
    (UNREACHABLE, "the Kafka broker cannot be reached"),
    (INTERRUPTED, "interrupted (Ctrl-C)"),
)

# click's rich help joins single line breaks: blank lines keep one code per line.
EPILOG = "Exit codes:\n\n" + "\n\n".join(f"{code:<4} {text}" for code, text in TABLE)

# Codes of librdkafka's KafkaError that mean the broker could not be talked to.
_UNREACHABLE_KAFKA = frozenset(
    {"_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT", "_RESOLVE", "_MSG_TIMED_OUT"}
)


@dataclass
class Options:
    """The global options (`tthc-bus --debug ...`), read when a command fails."""

    debug: bool = False


options = Options()


def lookup_exit(status: str | None, error_codes: Iterable[str]) -> int:
    """The exit code of a lookup's reply (None: no reply before the deadline).

    A `failed` reply is a deadline miss when every error is one: `deadline_exceeded` (no answer
    came back in time) or `timeout` (the database did not answer in time), the codes the gateway
    answers 504 for and the SLA report counts as deadline misses."""
    from bus.ops.sla import DEADLINE_CODES

    codes = set(error_codes)
    if status is None:
        return DEADLINE
    if status in ("complete", "partial"):
        return OK
    if status == "not_found":
        return NOT_FOUND
    if status == "denied":
        return DENIED
    if status == "failed" and codes and codes <= DEADLINE_CODES:
        return DEADLINE
    return FAILED


def one_line(text: str) -> str:
    """A message as one line: a wrapped or multi-line message breaks scripts reading stderr."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[0] if len(lines) == 1 else f"{lines[0]} (more with --debug)"


def kafka_text(exc: BaseException) -> str:
    """What a confluent-kafka exception says (its KafkaError's text, not its repr)."""
    error: Any = exc.args[0] if exc.args else None
    text = error.str() if hasattr(error, "str") else str(exc)
    return one_line(str(text))


def failure(exc: BaseException) -> tuple[int, str]:
    """The exit code of an exception that ended a command, and its one-line message."""
    # Imported here: the mapping needs the classes, the other commands need none of it.
    import confluent_kafka

    from bus.admission import Overloaded
    from bus.auth import AuthError
    from bus.client import BusUnavailable, DiscoveryRefused, InvalidLookup, NoReply
    from bus.errors import BusError, SettingsError
    from bus.sync.offsets import OffsetsError
    from bus.topics import TopicMismatch

    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED, "interrupted"
    if isinstance(exc, BusUnavailable | OffsetsError):
        return UNREACHABLE, f"the bus cannot be reached: {one_line(str(exc))}"
    if isinstance(exc, ConnectionRefusedError):
        return UNREACHABLE, f"connection refused: {one_line(str(exc))}"
    if isinstance(exc, confluent_kafka.KafkaException):
        error: Any = exc.args[0] if exc.args else None
        name = str(error.name()) if hasattr(error, "name") else ""
        if name in _UNREACHABLE_KAFKA:
            return UNREACHABLE, f"the Kafka broker cannot be reached: {kafka_text(exc)}"
        return ERROR, f"Kafka: {kafka_text(exc)} ({name or 'no code'})"
    if _kafka_python_unreachable(exc):
        text = one_line(str(exc)) or type(exc).__name__
        return UNREACHABLE, f"the Kafka broker cannot be reached: {text}"
    # The Python client's own outcomes (bus/client.py): said as they are.
    for kind, code in ((InvalidLookup, USAGE), (NoReply, DEADLINE), (DiscoveryRefused, DENIED)):
        if isinstance(exc, kind):
            return code, one_line(str(exc))
    if isinstance(exc, Overloaded):
        retry = f"; ask again in {exc.retry_after_s:g} s" if exc.retry_after_s else ""
        return FAILED, f"refused: {one_line(str(exc))}{retry}"
    if isinstance(exc, AuthError):
        return USAGE, f"--key: {one_line(str(exc))}"
    if isinstance(exc, SettingsError | TopicMismatch):
        return USAGE, one_line(str(exc))
    if isinstance(exc, BusError):
        return ERROR, one_line(str(exc))
    # Not one of ours: its text may quote data (bus/errors.py), its type and place never do.
    hint = "" if options.debug else "; run with --debug for the traceback"
    return ERROR, f"unexpected {site(exc)}{hint}"


def site(exc: BaseException) -> str:
    """The exception's type and the project's line that led to it (then where it was raised,
    when that is in a library): `FileNotFoundError at bus/tooling/cli.py:730 (pathlib.py:1116)`."""
    from bus.settings import PROJECT_ROOT

    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    root = str(PROJECT_ROOT) + "/"
    ours = [f for f in frames if f.filename.startswith(root) and "/.venv/" not in f.filename]
    last = frames[-1]
    where = f"{Path(last.filename).name}:{last.lineno}"
    if not ours:
        return f"{type(exc).__name__} at {where}"
    mine = ours[-1]
    text = f"{type(exc).__name__} at {mine.filename.removeprefix(root)}:{mine.lineno}"
    return text if mine is last else f"{text} ({where})"


def _kafka_python_unreachable(exc: BaseException) -> bool:
    """kafka-python's admin client (`topics create`, the worker's start) could not connect."""
    from kafka import errors

    # By name: kafka-python 3 has no NoBrokersAvailable any more (a bootstrap times out).
    names = ("NoBrokersAvailable", "KafkaConnectionError", "KafkaTimeoutError")
    kinds = tuple(kind for name in names if isinstance(kind := getattr(errors, name, None), type))
    return isinstance(exc, kinds)


def report(exc: BaseException, write: Any) -> int:
    """Write what ended the command (with --debug, its traceback first); return its code."""
    code, message = failure(exc)
    if options.debug:
        write("".join(traceback.format_exception(exc)))
    write(f"error: {message}\n")
    return code
