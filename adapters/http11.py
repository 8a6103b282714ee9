"""A lean HTTP/1.1 POST over kept-alive connections: what an adapter call needs, nothing more.

urllib3 and http.client cost about 0.4 ms of CPU a call (header validation, an email-package
parse of the answer's headers, several layers of objects); a call needs one `sendall` of the
request and a few `recv`s of the answer. `OriginPool` keeps up to `maxsize` idle connections
to one origin (scheme, host, port), as urllib3's non-blocking pool does: a call takes an idle
connection (checking first that the source has not closed it) or opens a new one, and gives it
back only when the answer was read whole and both sides keep the connection alive.

An answer is read whole by `ends` (a monotonic time) and within `max_bytes`, or the connection
is dropped and the call fails: a half-read connection never goes back to the pool. Bodies are
framed by Content-Length, chunked transfer coding, or the end of the connection (RFC 9112 §6.3);
interim 1xx answers are skipped. We send `Accept-Encoding: identity`, and an answer in any
other content coding (or a transfer coding besides chunked) is refused from its head, its body
unread (`EncodedAnswer`): a small gzip body can inflate to gigabytes, and national databases'
answers are a few kilobytes, so inflating with a cap would buy nothing worth its code and CPU.
Plain HTTP, or HTTPS verified with the system's CAs (or the given SSL context); no proxies, no
client certificates.

Failures raise subclasses of `requests.ConnectionError` and `requests.Timeout` that name what went
wrong, never quoting the answer or the URL.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import requests

_CHUNK = 64 * 1024
_MAX_HEAD = 64 * 1024
_NO_BODY_STATUS = frozenset({204, 304})
# Codings named in an error; any other is "an unknown coding" (a header is the source's text).
_KNOWN_CODINGS = frozenset({"gzip", "x-gzip", "deflate", "br", "compress", "x-compress", "zstd"})


def coding_names(value: str) -> str:
    """The codings of a Content-Encoding or Transfer-Encoding value, as safe to quote."""
    names = []
    for part in value.lower().split(","):
        name = part.split(";", 1)[0].strip()
        names.append(name if name in _KNOWN_CODINGS else "an unknown coding")
    return ", ".join(names)


# `requests` exceptions, so that an adapter classifies them as it classifies `requests` calls.
class ConnectFailed(requests.ConnectionError):
    """No connection could be made (refused, unreachable, name not resolved, TLS refused)."""


class ExchangeTimeout(requests.Timeout):
    """The connection or the whole answer did not come by the deadline."""


class ConnectionBroken(requests.ConnectionError):
    """The connection failed or was closed during the exchange."""


class AnswerTooLarge(requests.ConnectionError):
    """The answer is larger than allowed."""


class EncodedAnswer(requests.ConnectionError):
    """The answer is in a content coding (gzip, ...) or transfer coding we did not ask for."""


class NotHttp(requests.ConnectionError):
    """What came back is not an HTTP/1.x answer, or frames its body in a way we cannot read."""


class Headers(Mapping[str, str]):
    """An answer's header fields, looked up whatever the case of the name (as sent: lower)."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, str]) -> None:
        self._fields = fields  # lower-case names

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Headers({self._fields!r})"


@dataclass(frozen=True)
class Answer:
    """An HTTP answer read in full."""

    status: int
    headers: Headers
    body: bytes


def _check_header(name: str, value: str) -> None:
    if "\n" in name or "\r" in name or ":" in name or "\n" in value or "\r" in value:
        raise ValueError(f"HTTP header {name!r}: no line breaks in names or values")


class OriginPool:
    """Kept-alive connections to one origin; thread-safe. See the module doc."""

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int | None,
        maxsize: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if scheme not in ("http", "https"):
            raise ValueError(f"scheme must be http or https, got {scheme!r}")
        self.scheme, self.host = scheme, host
        self.port = port or (443 if scheme == "https" else 80)
        self.maxsize = maxsize
        self._ssl = ssl_context or (ssl.create_default_context() if scheme == "https" else None)
        authority = f"[{host}]" if ":" in host else host
        default_port = self.port == (443 if scheme == "https" else 80)
        self.host_header = authority if default_port else f"{authority}:{self.port}"
        self._idle: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False

    # -- connections -------------------------------------------------------------------------
    def _connect(self, ends: float) -> socket.socket:
        timeout = ends - time.monotonic()
        if timeout <= 0:
            raise ExchangeTimeout("no time left to connect")
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        except TimeoutError:
            raise ExchangeTimeout("connect timed out") from None
        except OSError as exc:  # its name is in the chain; its message has no URL
            raise ConnectFailed("cannot connect") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl is not None:
                sock = self._ssl.wrap_socket(sock, server_hostname=self.host)
        except TimeoutError:
            sock.close()
            raise ExchangeTimeout("TLS handshake timed out") from None
        except OSError as exc:  # ssl.SSLError is an OSError
            sock.close()
            raise ConnectFailed("TLS handshake failed") from exc
        return sock

    def _take(self, ends: float) -> socket.socket:
        while True:
            with self._lock:
                sock = self._idle.pop() if self._idle else None
            if sock is None:
                return self._connect(ends)
            if not _dropped(sock):
                return sock
            sock.close()

    def _give_back(self, sock: socket.socket) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.maxsize:
                self._idle.append(sock)
                return
        sock.close()

    def close(self) -> None:
        """Close the idle connections; connections in use are closed when given back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()

    # -- one exchange ------------------------------------------------------------------------
    def post(
        self,
        target: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        ends: float,
        max_bytes: int,
    ) -> Answer:
        """POST `body` to `target` (path and query) and read the whole answer by `ends`."""
        lines = [
            f"POST {target} HTTP/1.1",
            f"Host: {self.host_header}",
            "Accept-Encoding: identity",
            "Connection: keep-alive",
        ]
        for name, value in headers.items():
            _check_header(name, value)
            lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        window = ends - time.monotonic()  # for the timeout's message: how long it had
        sock = self._take(ends)
        try:
            reader = _Reader(sock, ends, max_bytes, window)
            _send(sock, request, ends)
            answer, reusable = reader.answer()
        except BaseException:
            sock.close()
            raise
        if reusable:
            self._give_back(sock)
        else:
            sock.close()
        return answer


def _dropped(sock: socket.socket) -> bool:
    """An idle kept-alive connection the other side closed (or wrote to): not to be reused."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    try:
        return bool(poller.poll(0))
    except OSError:
        return True


def _send(sock: socket.socket, data: bytes, ends: float) -> None:
    timeout = ends - time.monotonic()
    if timeout <= 0:
        raise ExchangeTimeout("no time left to send the request")
    sock.settimeout(timeout)
    try:
        sock.sendall(data)
    except TimeoutError:
        raise ExchangeTimeout("sending the request timed out") from None
    except OSError as exc:
        raise ConnectionBroken(f"sending the request failed ({type(exc).__name__})") from None


class _Reader:
    """Reads one answer from a connection, within a deadline and a size."""

    def __init__(self, sock: socket.socket, ends: float, max_bytes: int, window: float) -> None:
        self.sock, self.ends, self.max_bytes, self.window = sock, ends, max_bytes, window
        self.buffer = b""
        self.total = 0

    def _late(self) -> ExchangeTimeout:
        """The timeout: nothing came (a slow source), or not all of it (a trickling one)."""
        if not self.total:
            return ExchangeTimeout(f"no answer within {self.window:.1f} s")
        return ExchangeTimeout(
            f"the whole answer did not come within {self.window:.1f} s ({self.total} bytes came)"
        )

    def _more(self) -> bytes:
        timeout = self.ends - time.monotonic()
        if timeout <= 0:
            raise self._late()
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(_CHUNK)
        except TimeoutError:
            raise self._late() from None
        except OSError as exc:
            raise ConnectionBroken(f"reading the answer failed ({type(exc).__name__})") from None
        self.total += len(chunk)
        if self.total > self.max_bytes:
            raise AnswerTooLarge(f"answer too large: more than {self.max_bytes} bytes")
        return chunk

    def _until(self, marker: bytes, limit: int, what: str) -> bytes:
        """The bytes up to `marker` (consumed, not returned)."""
        while True:
            end = self.buffer.find(marker)
            if end >= 0:
                found, self.buffer = self.buffer[:end], self.buffer[end + len(marker) :]
                return found
            if len(self.buffer) > limit:
                raise NotHttp(f"{what} longer than {limit} bytes")
            chunk = self._more()
            if not chunk:
                raise ConnectionBroken(f"connection closed before the end of the {what}")
            self.buffer += chunk

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self._more()
            if not chunk:
                raise ConnectionBroken("connection closed before the end of the body")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _to_close(self) -> bytes:
        chunks = [self.buffer]
        while chunk := self._more():
            chunks.append(chunk)
        self.buffer = b""
        return b"".join(chunks)

    def _chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size_line = self._until(b"\r\n", 1024, "chunk size line")
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise NotHttp("a chunk size is not hexadecimal") from None
            if size == 0:
                # Trailer fields, up to the blank line that ends them: read so that the
                # connection is left at the next answer, and dropped (nothing here uses them).
                while self._until(b"\r\n", _MAX_HEAD, "trailer"):
                    continue
                return b"".join(chunks)
            chunks.append(self._exactly(size))
            if self._exactly(2) != b"\r\n":
                raise NotHttp("a chunk does not end with CRLF")

    def _head(self) -> tuple[int, bytes, dict[str, str]]:
        head = self._until(b"\r\n\r\n", _MAX_HEAD, "answer head")
        status_line, _, fields = head.partition(b"\r\n")
        version, _, rest = status_line.partition(b" ")
        code = rest[:3]
        if not version.startswith(b"HTTP/1.") or not code.isdigit() or rest[3:4] not in (b"", b" "):
            raise NotHttp("not an HTTP/1.x status line")
        headers: dict[str, str] = {}  # lower-case names
        for line in fields.split(b"\r\n") if fields else ():
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise NotHttp("a header line is not 'name: value'")
            key, text = name.decode("latin-1").lower(), value.strip().decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        return int(code), version, headers

    def answer(self) -> tuple[Answer, bool]:
        """The answer, and whether the connection may carry another exchange."""
        status, version, headers = self._head()
        while 100 <= status < 200 and status != 101:  # interim answers
            status, version, headers = self._head()
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection and (
            version != b"HTTP/1.0" or "keep-alive" in connection
        )
        coding = headers.get("transfer-encoding")
        length = headers.get("content-length")
        content_coding = headers.get("content-encoding")
        if status in _NO_BODY_STATUS or status == 101:
            body = b""
            keep_alive = keep_alive and status != 101
        elif content_coding is not None and content_coding.strip().lower() not in ("", "identity"):
            # Refused from the head, before a byte of it is read (a gzip bomb stays small).
            raise EncodedAnswer(
                f"compressed answer refused: Content-Encoding {coding_names(content_coding)} "
                "(we asked for identity)"
            )
        elif coding is not None:
            codings = coding.replace(" ", "").lower().split(",")
            if codings[-1] != "chunked":
                raise NotHttp(f"transfer coding {coding[:40]!r} without chunked last")
            if len(codings) > 1:
                names = coding_names(",".join(codings[:-1]))
                raise EncodedAnswer(
                    f"compressed answer refused: Transfer-Encoding {names} (only chunked is read)"
                )
            body = self._chunked()
        elif length is not None:
            sizes = {part.strip() for part in length.split(",")}
            if len(sizes) != 1 or not next(iter(sizes)).isdigit():
                raise NotHttp("Content-Length is not one number")
            size = int(next(iter(sizes)))
            if size > self.max_bytes:
                raise AnswerTooLarge(
                    f"answer too large: more than {self.max_bytes} bytes (Content-Length {size})"
                )
            body = self._exactly(size)
        else:
            body, keep_alive = self._to_close(), False
        answer = Answer(status, Headers(headers), body)
        return answer, keep_alive and not self.buffer
