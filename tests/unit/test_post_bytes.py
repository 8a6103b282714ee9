"""The adapter base's lean POST: the whole answer within the time given, on a real socket."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from adapters.base import Adapter, error_chain
from adapters.http11 import OriginPool
from adapters.population import PopulationAdapter
from bus.settings import SourceSettings


def serve_once(trickle_s: float, body_chunks: int) -> tuple[int, threading.Thread, list[bytes]]:
    """A one-shot HTTP server that sends its body a chunk every `trickle_s` seconds."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    seen: list[bytes] = []

    def run() -> None:
        conn, _ = listener.accept()
        with conn:
            request = b""
            while not request.endswith(b"<x/>"):  # the whole request, or closing resets it
                chunk = conn.recv(65536)
                if not chunk:
                    break
                request += chunk
            seen.append(request)
            size = body_chunks * 10
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n"
                + f"Content-Length: {size}\r\n\r\n".encode()
            )
            for _ in range(body_chunks):
                time.sleep(trickle_s)
                try:
                    conn.sendall(b"0123456789")
                except OSError:
                    return
        listener.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread, seen


def settings_for(url: str) -> SourceSettings:
    return SourceSettings(
        adapter="adapters.population:PopulationAdapter", url=url, datasets=["identity"]
    )


@pytest.fixture
def adapter() -> Iterator[Adapter]:
    with PopulationAdapter("population", settings_for("http://127.0.0.1:1/dancu")) as made:
        yield made


def test_a_trickling_answer_is_cut_at_the_deadline(adapter: Adapter) -> None:
    port, _, _ = serve_once(trickle_s=0.2, body_chunks=20)  # 4 s in all
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        adapter.post_bytes(f"http://127.0.0.1:{port}/dancu", b"<x/>", {}, timeout=0.5)
    assert time.monotonic() - started < 1.0


def test_a_prompt_answer_is_read_whole_and_the_request_line_has_only_the_path(
    adapter: Adapter,
) -> None:
    port, thread, seen = serve_once(trickle_s=0.0, body_chunks=3)
    answer = adapter.post_bytes(f"http://127.0.0.1:{port}/dancu?x=1", b"<x/>", {}, timeout=2)
    thread.join(2)
    assert (answer.status_code, answer.content) == (200, b"0123456789" * 3)
    assert answer.headers["content-type"] == "text/xml"
    assert seen[0].startswith(b"POST /dancu?x=1 HTTP/1.1\r\n")


# --- the exchange: framing, keep-alive, limits ------------------------------------------------


class ScriptedServer:
    """A loopback HTTP server that answers each request it reads with the next scripted answer.

    An answer is raw bytes; `CLOSE` after one closes that connection. `connections` counts the
    connections accepted, `requests` keeps every request read.
    """

    CLOSE = b""

    def __init__(self, script: list[bytes]) -> None:
        # (answer, close the connection after it), taken whole so that connections don't race
        self.script = [
            (answer, index + 1 < len(script) and script[index + 1] == self.CLOSE)
            for index, answer in enumerate(script)
            if answer != self.CLOSE
        ]
        self.lock = threading.Lock()
        self.connections = 0
        self.requests: list[bytes] = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/dancu"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.script:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                with self.lock:
                    self.requests.append(head + b"\r\n\r\n" + buffer[:length])
                    answer, close = self.script.pop(0)
                buffer = buffer[length:]
                conn.sendall(answer)
                if close:
                    return

    def close(self) -> None:
        self.listener.close()


def ok(body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", "Content-Type: text/xml", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def chunked(*parts: bytes) -> bytes:
    chunks = b"".join(f"{len(p):x};ext=1\r\n".encode() + p + b"\r\n" for p in parts)
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunks
        + b"0\r\nX-Trailer: t\r\n\r\n"
    )


@pytest.fixture
def scripted() -> Iterator[list[ScriptedServer]]:
    servers: list[ScriptedServer] = []
    yield servers
    for server in servers:
        server.close()


def serve(scripted: list[ScriptedServer], *answers: bytes) -> ScriptedServer:
    server = ScriptedServer(list(answers))
    scripted.append(server)
    return server


def post(adapter: Adapter, server: ScriptedServer, body: bytes = b"<x/>") -> Any:
    return adapter.post_bytes(server.url, body, {"SOAPAction": '"a"'}, timeout=2)


def test_answers_come_one_after_another_on_one_connection(
    adapter: Adapter, scripted: list[ScriptedServer]
) -> None:
    server = serve(scripted, ok(b"<a/>"), ok(b"<b/>"), ok(b""))
    assert [post(adapter, server).content for _ in range(3)] == [b"<a/>", b"<b/>", b""]
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /dancu HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b'\r\nSOAPAction: "a"\r\n' in first and first.endswith(b"\r\n\r\n<x/>")
    assert b"\r\nUser-Agent: tthc-bus/" in first and b"\r\nContent-Length: 4\r\n" in first


def test_a_chunked_answer_is_read_whole(adapter: Adapter, scripted: list[ScriptedServer]) -> None:
    server = serve(scripted, chunked(b"<Envelope>", b"x" * 70_000, b"</Envelope>"), ok(b"<z/>"))
    answer = post(adapter, server)
    assert answer.content == b"<Envelope>" + b"x" * 70_000 + b"</Envelope>"
    assert answer.headers["transfer-encoding"] == "chunked"
    assert post(adapter, server).content == b"<z/>"
    assert server.connections == 1


def test_interim_answers_are_skipped(adapter: Adapter, scripted: list[ScriptedServer]) -> None:
    server = serve(scripted, b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"<a/>"))
    answer = post(adapter, server)
    assert (answer.status_code, answer.content) == (200, b"<a/>")


def test_connection_close_is_honoured(adapter: Adapter, scripted: list[ScriptedServer]) -> None:
    server = serve(
        scripted, ok(b"<a/>", "Connection: close"), ScriptedServer.CLOSE, ok(b"<b/>"), ok(b"<c/>")
    )
    assert [post(adapter, server).content for _ in range(3)] == [b"<a/>", b"<b/>", b"<c/>"]
    assert server.connections == 2


def test_an_answer_without_length_ends_with_the_connection(
    adapter: Adapter, scripted: list[ScriptedServer]
) -> None:
    server = serve(
        scripted,
        b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n<a/>",
        ScriptedServer.CLOSE,
        ok(b"<b/>"),
    )
    assert post(adapter, server).content == b"<a/>"
    assert post(adapter, server).content == b"<b/>"
    assert server.connections == 2


def test_a_connection_the_source_closed_while_idle_is_not_reused(
    adapter: Adapter, scripted: list[ScriptedServer]
) -> None:
    server = serve(scripted, ok(b"<a/>"), ScriptedServer.CLOSE, ok(b"<b/>"))
    assert post(adapter, server).content == b"<a/>"
    time.sleep(0.1)  # the server closes the idle connection meanwhile
    assert post(adapter, server).content == b"<b/>"
    assert server.connections == 2


def test_an_answer_too_large_is_refused(
    adapter: Adapter, scripted: list[ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("adapters.base.MAX_ANSWER_BYTES", 1000)
    server = serve(scripted, ok(b"x" * 2000), chunked(b"y" * 600, b"y" * 600))
    for _ in range(2):  # said by Content-Length, and found while reading chunks
        with pytest.raises(
            requests.ConnectionError, match="answer too large: more than 1000 bytes"
        ):
            post(adapter, server)


@pytest.mark.parametrize(
    "garbage",
    [
        b"<html>502 Bad Gateway</html>\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabcd",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["not-http", "bad-status", "bad-header", "two-lengths", "not-chunked", "bad-chunk"],
)
def test_what_is_not_http_is_refused(
    adapter: Adapter, scripted: list[ScriptedServer], garbage: bytes
) -> None:
    server = serve(scripted, garbage, ScriptedServer.CLOSE)
    with pytest.raises(requests.ConnectionError) as info:
        post(adapter, server)
    assert type(info.value).__name__ == "NotHttp"


def test_an_answer_cut_short_breaks_the_call(
    adapter: Adapter, scripted: list[ScriptedServer]
) -> None:
    server = serve(scripted, ok(b"<Envelope/>")[:-4], ScriptedServer.CLOSE)
    with pytest.raises(requests.ConnectionError, match="closed before the end of the body"):
        post(adapter, server)


def test_a_refused_connection_names_the_cause_not_the_url() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    adapter = PopulationAdapter("population", settings_for(f"http://127.0.0.1:{port}/dancu"))
    with pytest.raises(requests.ConnectionError) as info:
        adapter.post_bytes(f"http://127.0.0.1:{port}/dancu?id=001085012345", b"", {}, timeout=1)
    assert error_chain(info.value) == "ConnectFailed <- ConnectionRefusedError"
    classified = adapter.classify(info.value)
    assert classified is not None and "001085012345" not in str(classified)
    adapter.close()


def test_https_with_a_certificate_the_context_trusts(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.fail(
            "openssl is needed to make a test certificate (Debian: apt-get install openssl)"
        )
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    listener = server_context.wrap_socket(socket.socket(), server_side=True)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            for body in (b"<a/>", b"<b/>"):
                request = b""
                while not request.endswith(b"<x/>"):
                    request += conn.recv(65536)
                conn.sendall(ok(body))
        with contextlib.suppress(OSError):  # ssl.SSLError too
            listener.accept()  # a client that does not trust the certificate

    threading.Thread(target=answer, daemon=True).start()
    client_context = ssl.create_default_context(cafile=str(cert))
    pool = OriginPool("https", "localhost", listener.getsockname()[1], 1, client_context)
    try:
        ends = time.monotonic() + 5
        answers = [pool.post("/dancu", b"<x/>", {}, ends=ends, max_bytes=10_000) for _ in "ab"]
        assert [a.body for a in answers] == [b"<a/>", b"<b/>"]  # the second on the same connection
        untrusting = OriginPool("https", "localhost", listener.getsockname()[1], 1)
        with pytest.raises(requests.ConnectionError):
            untrusting.post("/dancu", b"<x/>", {}, ends=ends, max_bytes=10_000)
    finally:
        pool.close()
        listener.close()
