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
    """A national database could not give an answer."""

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


class MappingError(BusError):
    """A native record could not be turned into the normalized schema.

    The message names the native field path, the value and what was expected.
    """

    def __init__(self, path: str, value: object, expected: str) -> None:
        super().__init__(f"{path}: got {value!r}, expected {expected}")
        self.path = path
        self.value = value
        self.expected = expected
