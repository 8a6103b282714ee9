"""The adapter base's lean POST: the whole answer within the time given, on a real socket."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from adapters.base import Adapter
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


@pytest.fixture
def adapter() -> Iterator[Adapter]:
    settings = SourceSettings(
        adapter="adapters.population:PopulationAdapter",
        url="http://127.0.0.1:1/dancu",
        datasets=["identity"],
    )
    with PopulationAdapter("population", settings) as made:
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
