"""Errors shared by every layer of the bus.

Adapters raise the `SourceError` family; the lookup connector turns each into a dataset error in
the reply. `code` is stable and machine-readable, `retryable` tells the connector (and the caller)
whether asking again may help.
"""

from __future__ import annotations


class BusError(Exception):
    """Base of every error the bus raises on purpose."""


class SettingsError(BusError):
    """A setting has a wrong value: the message names the key, the value and what was expected."""


class SourceError(BusError):
    """A national database could not give an answer.

    The message goes into the reply (`DatasetError.message`) whatever fields the requester was
    granted, and into logs, so it must never carry the source's answer: no body text, no field
    values, no URL with a query in it. Say the kind of problem, the element path, the HTTP status,
    the content type and the body length. The source's own error words (a SOAP faultstring, a
    result description) may be passed on, cut short (~200 characters).
    """

    code = "source_error"
    retryable = False

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.detail = message


class SourceNotFound(SourceError):
    """The source answered and holds no record for the subject."""

    code = "not_found"


class SourceUnavailable(SourceError):
    """Connection refused, reset, or HTTP 5xx without a usable answer."""

    code = "unavailable"
    retryable = True


class SourceRefused(SourceUnavailable):
    """The bus did not call the source, to protect it or itself: its circuit breaker is open,
    its rate limit is spent, or too many calls already wait for it. Asking again later may help
    (`retryable` for the caller); the connector does not retry it at once."""

    code = "refused"

    def __init__(self, source: str, message: str, code: str) -> None:
        super().__init__(source, message)
        self.code = code


class SourceTimeout(SourceError):
    """The source did not answer within the time it was given."""

    code = "timeout"
    retryable = True


class SourceFault(SourceError):
    """The source answered with an error of its own (a SOAP fault, an error result code)."""

    code = "source_fault"
    retryable = True


class SourceRejected(SourceError):
    """The source refused the query as invalid; asking again will not help."""

    code = "rejected"


class MalformedAnswer(SourceError):
    """The answer could not be read (not XML/JSON, or missing what the protocol promises)."""

    code = "malformed_answer"
    retryable = True


class UnsafeAnswer(MalformedAnswer):
    """The answer was refused unread, as reading it could hurt the bus: larger than it reads, XML
    with a DTD (entity expansion, external entities), compressed although none was asked for.
    Not retried at once (the source would send the same again); as a MalformedAnswer it counts
    against the source's circuit breaker."""

    code = "unsafe_answer"
    retryable = False


class MappingError(BusError):
    """A native record could not be turned into the normalized schema.

    `str()` names the native field path and what was expected, and of the value only its type
    and length (e.g. `NgayThangNam: expected a date yyyyMMdd (got str of 8 chars)`): the value
    may be a personal id or a name, and messages end up in logs and replies. The value itself is
    kept in `.value` for code that needs it; never log or send it.
    """

    def __init__(self, path: str, value: object, expected: str) -> None:
        super().__init__(f"{path}: expected {expected} (got {self.describe(value)})")
        self.path = path
        self.value = value
        self.expected = expected

    @staticmethod
    def describe(value: object) -> str:
        """The type of a value and its length, never its content."""
        if value is None:
            return "nothing"
        kind = type(value).__name__
        if isinstance(value, str):
            return f"{kind} of {len(value)} chars"
        if isinstance(value, bytes | bytearray):
            return f"{kind} of {len(value)} bytes"
        if isinstance(value, list | tuple | dict | set | frozenset):
            return f"{kind} of {len(value)} items"
        return kind


def exception_site(exc: BaseException) -> str:
    """An exception's type and where it was raised, without its message.

    For logs: an exception's text (a pydantic error's `input_value`, an answer quoted in a
    parser error) may carry personal data; its type and place never do.
    """
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    return f"{type(exc).__name__} at {frames[-1].filename}:{frames[-1].lineno}"
