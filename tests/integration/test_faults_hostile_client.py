"""A hostile client against the running gateway: a body past the limit is refused before it is
read whole, every 4xx is problem+json (an unparsable body, invalid UTF-8, an unknown route, a
wrong method), and clients trickling their headers do not hold up the others."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from bus.settings import PROJECT_ROOT
from bus.tooling.devstack import DevStack, example_lookup

pytestmark = pytest.mark.integration

FAULTS = PROJECT_ROOT / ".run" / "faults" / "clients.jsonl"
PROBLEM = "application/problem+json"


def row(fault: str, load: str, measured: str) -> None:
    FAULTS.parent.mkdir(parents=True, exist_ok=True)
    line = {"fault": fault, "load": load, "measured": measured, "lost": 0, "duplicated": 0}
    with Path(FAULTS).open("a", encoding="utf-8") as out:
        out.write(json.dumps(line, ensure_ascii=False) + "\n")


def address(stack: DevStack) -> tuple[str, int]:
    parts = urlsplit(stack.gateway_url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def raw_exchange(stack: DevStack, head: bytes, body: bytes = b"", wait_s: float = 10) -> bytes:
    """Send `head` and `body` on one connection; what came back within `wait_s`."""
    with socket.create_connection(address(stack), timeout=wait_s) as sock:
        sock.sendall(head + body)
        got = b""
        ends = time.monotonic() + wait_s
        while time.monotonic() < ends and b"\r\n\r\n" not in got:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def test_a_30_mb_body_is_refused_413_before_it_is_read(stack: DevStack) -> None:
    size = 30 * 1024 * 1024
    key = stack.keys.headers()["Authorization"]
    head = (
        f"POST /v1/lookups HTTP/1.1\r\nHost: gateway\r\nAuthorization: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    # Only the first kilobyte is ever sent: an answer means the rest was never waited for.
    answer = raw_exchange(stack, head, b"{" + b" " * 1023)
    took = time.monotonic() - started
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 413"), answer[:300]
    assert PROBLEM.encode() in answer
    row(
        "client sends a 30 MB body",
        "one POST /v1/lookups, 1 kB of its body sent",
        f"413 problem+json after {took * 1000:.0f} ms, the body never read",
    )


def test_every_4xx_is_problem_json(stack: DevStack) -> None:
    url, headers = f"{stack.gateway_url}/v1/lookups", stack.keys.headers()
    cases: dict[str, requests.Response] = {
        "invalid UTF-8": requests.post(
            url,
            data=b'{"subject": "\xff\xfe"}',
            headers=headers | {"Content-Type": "application/json"},
            timeout=10,
        ),
        "not JSON": requests.post(url, data=b"{not json", headers=headers, timeout=10),
        "a JSON array": requests.post(url, json=[1, 2], headers=headers, timeout=10),
        "unknown route": requests.get(f"{stack.gateway_url}/v1/nothing", timeout=10),
        "wrong method": requests.delete(url, headers=headers, timeout=10),
        "no key": requests.post(url, json=example_lookup("001090012345"), timeout=10),
        "bad audit query": requests.get(
            f"{stack.gateway_url}/v1/audit?limit=0", headers=headers, timeout=10
        ),
    }
    for name, answer in cases.items():
        assert 400 <= answer.status_code < 500, (name, answer.status_code)
        assert answer.headers["content-type"].startswith(PROBLEM), (name, answer.text)
        body = answer.json()
        assert body["status"] == answer.status_code and body["title"] and body["detail"], name
    assert cases["invalid UTF-8"].status_code == 400
    # Refused for its bytes, naming them: not for a missing field further on.
    assert "invalid unicode code point" in cases["invalid UTF-8"].json()["detail"]
    assert cases["unknown route"].status_code == 404
    assert cases["wrong method"].status_code == 405
    row(
        "client sends unparsable bodies, unknown routes, wrong methods",
        f"{len(cases)} requests",
        "each a 4xx problem+json: "
        + ", ".join(f"{name} {answer.status_code}" for name, answer in cases.items()),
    )


@pytest.fixture
def tricklers(stack: DevStack) -> Iterator[list[socket.socket]]:
    """Forty connections each sending its request's headers a byte a second, never ending."""
    socks: list[socket.socket] = []
    stop = threading.Event()
    for _ in range(40):
        sock = socket.create_connection(address(stack), timeout=5)
        sock.sendall(b"POST /v1/lookups HTTP/1.1\r\nHost: gateway\r\n")
        socks.append(sock)

    def trickle() -> None:
        while not stop.wait(1.0):
            for sock in socks:
                with contextlib.suppress(OSError):  # the gateway may have closed it
                    sock.sendall(b"X")

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        yield socks
    finally:
        stop.set()
        thread.join(timeout=5)
        for sock in socks:
            sock.close()


def test_clients_trickling_their_headers_do_not_hold_up_the_others(
    stack: DevStack, tricklers: list[socket.socket]
) -> None:
    subjects: list[Any] = requests.get(
        f"{stack.sandbox_url}/_sandbox/sample?n=20", timeout=10
    ).json()
    took = []
    for subject in subjects:
        started = time.monotonic()
        answer = requests.post(
            f"{stack.gateway_url}/v1/lookups",
            json=example_lookup(subject),
            headers=stack.keys.headers(),
            timeout=10,
        )
        took.append(time.monotonic() - started)
        assert answer.status_code == 200 and answer.json()["status"] == "complete", answer.text
    slowest = max(took)
    # Not a timing claim: each answered well within its deadline while the others trickled.
    assert slowest < 5.0
    row(
        "40 clients trickle their headers (a byte a second)",
        f"{len(subjects)} lookups meanwhile",
        f"all {len(subjects)} complete; slowest {slowest * 1000:.0f} ms",
    )
