"""Every national database's adapter against its own sandbox source turned hostile, over real
HTTP: each hostile answer (sandbox.faults) is refused with its own error, whose message names
what was wrong and quotes nothing of the answer, and the source answers again once it is off."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.base import Adapter
from adapters.registry import load_adapter
from bus.errors import SourceError
from bus.schemas import Subject
from bus.settings import load_settings
from tests.sandbox_server import RunningSandbox, served_sandbox

COUNT, SEED = 300, 11
TIMEOUT_S = 1.0  # the adapters' own timeout: the slow and trickling cases wait this long
SOAP_SOURCES = ("population", "civil")
SOURCES = ("population", "civil", "enterprise", "insurance", "licence")
SLOW_MS = 2500  # past TIMEOUT_S

# mode -> the faults, the error code, the message (SOAP source, REST source) as a pattern
CASES: dict[str, tuple[dict[str, Any], tuple[str, str], tuple[str, str]]] = {
    "slow": (
        {"latency_ms": SLOW_MS},
        ("timeout", "timeout"),
        (r"no answer within 1\.0 s",) * 2,
    ),
    "trickle": (
        {"trickle": True},
        ("timeout", "timeout"),
        (r"the whole answer did not come within 1\.0 s \(\d+ bytes came\)",) * 2,
    ),
    "oversize": (
        {"oversize": True},
        ("unsafe_answer", "unsafe_answer"),
        (r"answer too large: more than 8388608 bytes",) * 2,
    ),
    "xml_bomb": (
        {"xml_bomb": True},
        ("unsafe_answer", "malformed_answer"),
        (
            r"XML with a DTD refused: 10 entity declarations, 9 of them expanding others "
            r"\(an entity expansion bomb\); entity references refused",
            r"unexpected content type text/xml, not JSON \(HTTP 200, .*\)",
        ),
    ),
    "xxe": (
        {"xxe": True},
        ("unsafe_answer", "malformed_answer"),
        (
            r"XML with a DTD refused: it declares 2 external entities \(XXE\); "
            r"entity references refused, none resolved",
            r"unexpected content type text/xml, not JSON \(HTTP 200, .*\)",
        ),
    ),
    "wrong_content_type": (
        {"wrong_content_type": True},
        ("malformed_answer", "malformed_answer"),
        (
            r"unexpected content type text/html, not XML \(HTTP 200, .*\)",
            r"unexpected content type text/html, not JSON \(HTTP 200, .*\)",
        ),
    ),
    "gzip_bomb": (
        {"gzip_bomb": True},
        ("unsafe_answer", "unsafe_answer"),
        (r"compressed answer refused: Content-Encoding gzip \(we asked for identity\)",) * 2,
    ),
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with served_sandbox(COUNT, SEED) as running:
        yield running


@pytest.fixture(scope="module")
def adapters(sandbox: RunningSandbox) -> Iterator[dict[str, Adapter]]:
    """Each source's adapter as the bus configures it (settings.toml), on this sandbox."""
    settings = load_settings()
    made: dict[str, Adapter] = {}
    for name in SOURCES:
        configured = settings.source(name)
        path = configured.url.split("/", 3)[3]
        url = f"{sandbox.base_url}/{path}"
        made[name] = load_adapter(
            name, configured.model_copy(update={"url": url, "timeout_s": TIMEOUT_S})
        )
    yield made
    for adapter in made.values():
        adapter.close()


def ask(adapter: Adapter, sandbox: RunningSandbox) -> Any:
    dataset = type(adapter).datasets[0]
    subject = Subject(**{dataset.subject: sandbox.source(adapter.source).sample(1, 3)[0]})
    return adapter.fetch(
        dataset.name, subject, timeout=5.0, request_id="hostile-1", requester_agency="H26.22"
    )


@pytest.mark.parametrize("mode", list(CASES))
@pytest.mark.parametrize("source", SOURCES)
def test_a_hostile_answer_is_refused_with_its_own_error(
    adapters: dict[str, Adapter], sandbox: RunningSandbox, source: str, mode: str
) -> None:
    adapter = adapters[source]
    record = ask(adapter, sandbox)  # warm: the WSDL or the login is read before the fault
    faults, codes, messages = CASES[mode]
    which = 0 if source in SOAP_SOURCES else 1
    sandbox.set_faults(source, **faults)
    try:
        started = time.monotonic()
        with pytest.raises(SourceError) as info:
            ask(adapter, sandbox)
        took = time.monotonic() - started
    finally:
        sandbox.set_faults(source)
    error = info.value
    assert error.code == codes[which], error
    assert re.fullmatch(messages[which], error.detail), error.detail
    assert error.retryable is (error.code != "unsafe_answer")
    assert took < TIMEOUT_S + 1.0, f"{mode} held the call {took:.1f} s"
    # Nothing of the answer is quoted: no entity names, no filler, no page text, no file path.
    for word in ("lol", "passwd", "AAAA", "log in", "DuLieu", "du_lieu"):
        assert word not in str(error)
    assert ask(adapter, sandbox).data == record.data  # the source is itself again
