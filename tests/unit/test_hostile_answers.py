"""Hostile answers: the sandbox's hostile faults as a caller meets them on the wire, and the bus's
refusals of each (adapters.http11, adapters.base.get_whole, the SOAP DTD refusal, zeep's own
settings), each with its own message that quotes nothing of the answer."""

from __future__ import annotations

import socket
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import zeep.exceptions
import zeep.loader
from lxml import etree
from requests.structures import CaseInsensitiveDict

from adapters.base import RawAnswer, get_whole
from adapters.http11 import (
    AnswerTooLarge,
    EncodedAnswer,
    ExchangeTimeout,
    OriginPool,
    coding_names,
)
from adapters.population import PopulationAdapter
from adapters.soap import doctype_refusal, has_doctype, parse_document
from adapters.soap_adapter import WsdlTransport, zeep_settings
from bus.errors import MalformedAnswer, SourceTimeout, UnsafeAnswer
from bus.settings import SourceSettings
from sandbox.faults import GZIP_BOMB_MIB, OVERSIZE_BYTES, XML_BOMB, Faults, gzip_bomb, xxe_answer
from tests.sandbox_server import RunningSandbox, served_sandbox

# --- a raw server: one scripted answer per connection, and the requests it saw -------------------


class RawServer:
    """A loopback server that reads a request head and sends `answer`, then `rest` a piece every
    `pause` seconds (or nothing more, holding the connection, when `hold`). `hits` counts
    connections: a server an XXE points at must see none."""

    def __init__(
        self, answer: bytes = b"", rest: bytes = b"", pause: float = 0.0, hold: float = 0.0
    ) -> None:
        self.answer, self.rest, self.pause, self.hold = answer, rest, pause, hold
        self.hits = 0
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/dancu"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.hits += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                request += chunk
            try:
                conn.sendall(self.answer)
                for start in range(0, len(self.rest), 4):
                    time.sleep(self.pause)
                    conn.sendall(self.rest[start : start + 4])
                time.sleep(self.hold)
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def servers() -> Iterator[list[RawServer]]:
    made: list[RawServer] = []
    yield made
    for server in made:
        server.close()


def raw(servers: list[RawServer], *args: Any, **kwargs: Any) -> RawServer:
    server = RawServer(*args, **kwargs)
    servers.append(server)
    return server


def head(*fields: str) -> bytes:
    return ("\r\n".join(["HTTP/1.1 200 OK", *fields]) + "\r\n\r\n").encode()


def post(server: RawServer, timeout: float = 2.0) -> Any:
    pool = OriginPool("http", "127.0.0.1", server.port, 1)
    try:
        return pool.post("/dancu", b"<x/>", {}, ends=time.monotonic() + timeout, max_bytes=1000)
    finally:
        pool.close()


# --- the lean POST: codings refused from the head, timeouts that say which ---------------------


def test_a_compressed_answer_is_refused_from_its_head_unread(servers: list[RawServer]) -> None:
    # A gigabyte announced and never sent: refused at once, not read, not waited for.
    server = raw(servers, head("Content-Encoding: gzip", "Content-Length: 1000000000"), hold=5)
    started = time.monotonic()
    with pytest.raises(EncodedAnswer) as info:
        post(server)
    assert time.monotonic() - started < 1.0
    assert (
        str(info.value)
        == "compressed answer refused: Content-Encoding gzip (we asked for identity)"
    )


def test_a_transfer_coding_besides_chunked_is_refused(servers: list[RawServer]) -> None:
    server = raw(servers, head("Transfer-Encoding: gzip, chunked") + b"4\r\nabcd\r\n0\r\n\r\n")
    with pytest.raises(EncodedAnswer, match="Transfer-Encoding gzip \\(only chunked is read\\)"):
        post(server)


def test_identity_is_read_as_no_coding(servers: list[RawServer]) -> None:
    server = raw(servers, head("Content-Encoding: identity", "Content-Length: 4") + b"<a/>")
    assert post(server).body == b"<a/>"


def test_coding_names_quote_only_known_codings() -> None:
    assert coding_names("gzip") == "gzip"
    assert coding_names("GZIP, br") == "gzip, br"
    assert coding_names("x-001085012345;q=1") == "an unknown coding"


def test_a_slow_source_and_a_trickling_one_are_told_apart(servers: list[RawServer]) -> None:
    slow = raw(servers, hold=3)
    with pytest.raises(ExchangeTimeout, match=r"^no answer within 0\.[45] s$"):
        post(slow, timeout=0.5)
    body = b"<Envelope>" + b"x" * 200 + b"</Envelope>"
    trickling = raw(servers, head(f"Content-Length: {len(body)}"), body, pause=0.1)
    with pytest.raises(ExchangeTimeout) as info:
        post(trickling, timeout=0.5)
    message = str(info.value)
    assert message.startswith("the whole answer did not come within 0.")
    assert message.endswith(" bytes came)")


def test_the_adapter_base_classifies_each(servers: list[RawServer]) -> None:
    adapter = PopulationAdapter("population", settings("http://127.0.0.1:1/dancu"))
    too_large = adapter.classify(AnswerTooLarge("answer too large: more than 8 bytes"))
    assert isinstance(too_large, UnsafeAnswer) and not too_large.retryable
    assert too_large.code == "unsafe_answer"
    assert too_large.detail == "answer too large: more than 8 bytes"
    encoded = adapter.classify(EncodedAnswer("compressed answer refused: Content-Encoding gzip"))
    assert isinstance(encoded, UnsafeAnswer)
    late = adapter.classify(ExchangeTimeout("the whole answer did not come within 1.0 s"))
    assert isinstance(late, SourceTimeout) and late.retryable
    assert late.detail == "the whole answer did not come within 1.0 s"
    adapter.close()


# --- GET on the session (WSDLs, feed pages): as capped as the lean POST ------------------------


def settings(url: str) -> SourceSettings:
    return SourceSettings(
        adapter="adapters.population:PopulationAdapter", url=url, datasets=["identity"]
    )


def test_get_whole_refuses_what_requests_would_inflate(servers: list[RawServer]) -> None:
    bomb = gzip_bomb()
    server = raw(servers, head("Content-Encoding: gzip", f"Content-Length: {len(bomb)}") + bomb)
    with requests.Session() as session, pytest.raises(EncodedAnswer):
        get_whole(session, server.url, 2.0)


def test_get_whole_caps_the_size_and_the_whole_time(
    servers: list[RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("adapters.base.MAX_ANSWER_BYTES", 1000)
    declared = raw(servers, head("Content-Length: 2000") + b"x" * 2000)
    chunks = b"".join(b"258\r\n" + b"y" * 600 + b"\r\n" for _ in range(2)) + b"0\r\n\r\n"
    counted = raw(servers, head("Transfer-Encoding: chunked") + chunks)
    body = b"z" * 400
    trickling = raw(servers, head(f"Content-Length: {len(body)}"), body, pause=0.05)
    plain = raw(servers, head("Content-Length: 4") + b"<a/>")
    small = raw(servers, head("Transfer-Encoding: chunked") + b"2\r\n<a\r\n2\r\n/>\r\n0\r\n\r\n")
    with requests.Session() as session:
        for server in (declared, counted):
            with pytest.raises(AnswerTooLarge, match="more than 1000 bytes"):
                get_whole(session, server.url, 2.0)
        started = time.monotonic()
        with pytest.raises(ExchangeTimeout, match=r"the whole answer did not come within 0\.5 s"):
            get_whole(session, trickling.url, 0.5)
        assert time.monotonic() - started < 1.5
        answers = [get_whole(session, server.url, 2.0) for server in (plain, small)]
    assert [(answer.status_code, answer.content) for answer in answers] == [(200, b"<a/>")] * 2


# --- XML with a DTD: refused, named, nothing resolved ------------------------------------------


def test_billion_laughs_is_named_a_bomb_by_counting_its_declarations() -> None:
    assert has_doctype(XML_BOMB)
    assert doctype_refusal(XML_BOMB) == (
        "XML with a DTD refused: 10 entity declarations, 9 of them expanding others "
        "(an entity expansion bomb); entity references refused"
    )


def test_external_entities_and_dtds_are_named_xxe() -> None:
    assert doctype_refusal(xxe_answer("http://127.0.0.1:9/x")) == (
        "XML with a DTD refused: it declares 2 external entities (XXE); "
        "entity references refused, none resolved"
    )
    parameter = b'<!DOCTYPE x [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd"> %remote;]><x/>'
    assert "1 external entity (XXE)" in doctype_refusal(parameter)
    external_dtd = b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://127.0.0.1:9/e.dtd"><x/>'
    assert "it declares an external DTD (XXE)" in doctype_refusal(external_dtd)


def test_other_doctypes_are_refused_plainly_and_none_is_quoted() -> None:
    secret = b'<!DOCTYPE x [<!ENTITY ten "001085012345">]><x>&ten;</x>'
    message = doctype_refusal(secret)
    assert message == "XML with a DTD refused: 1 entity declaration; entity references refused"
    assert doctype_refusal(b"<!DOCTYPE html><html/>") == "XML with a DTD refused"
    assert doctype_refusal(None) == "XML with a DTD refused"
    assert not has_doctype(b"<x>no doctype</x>") and not has_doctype(None)


class CountingServer(RawServer):
    """An http URL an XXE points at: it answers an entity's text, and counts who came."""

    def __init__(self) -> None:
        text = b"LEAKED"
        super().__init__(head(f"Content-Length: {len(text)}") + text)


def xxe_documents(url: str) -> list[bytes]:
    parameter = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY % remote SYSTEM "'
        + url.encode()
        + b'"> %remote;]><x/>'
    )
    external_dtd = b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "' + url.encode() + b'"><x/>'
    return [xxe_answer(url), parameter, external_dtd]


def test_our_parser_resolves_no_entity_and_fetches_nothing(servers: list[RawServer]) -> None:
    target = CountingServer()
    servers.append(target)
    for document in xxe_documents(target.url):
        with pytest.raises(zeep.exceptions.DTDForbidden):
            parse_document(document)
    with pytest.raises(zeep.exceptions.XMLSyntaxError):  # libxml2 stops the bomb itself
        parse_document(XML_BOMB)
    assert target.hits == 0


def test_zeep_with_our_settings_refuses_them_too_and_fetches_nothing(
    servers: list[RawServer],
) -> None:
    target = CountingServer()
    servers.append(target)
    with requests.Session() as session:
        transport = WsdlTransport(session=session)  # type: ignore[no-untyped-call]
        for document in xxe_documents(target.url):
            with pytest.raises(zeep.exceptions.DTDForbidden):
                zeep.loader.parse_xml(document, transport, settings=zeep_settings())  # type: ignore[no-untyped-call]
        with pytest.raises(zeep.exceptions.XMLSyntaxError):
            zeep.loader.parse_xml(XML_BOMB, transport, settings=zeep_settings())  # type: ignore[no-untyped-call]
    assert target.hits == 0


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            zeep.exceptions.DTDForbidden("soap:Envelope", None, None),
            "XML with a DTD refused: it declares 2 external entities (XXE); "
            "entity references refused, none resolved",
        ),
        (
            zeep.exceptions.XMLSyntaxError("amplification", content=XML_BOMB),
            "XML with a DTD refused: 10 entity declarations, 9 of them expanding others "
            "(an entity expansion bomb); entity references refused",
        ),
        (
            zeep.exceptions.EntitiesForbidden("e", "001085012345"),
            "XML entity declarations refused",
        ),
        (
            zeep.exceptions.ExternalReferenceForbidden("http://127.0.0.1:9/x?id=001085012345"),
            "XML with an external reference refused (XXE)",
        ),
    ],
    ids=["dtd-in-an-answer", "bomb-stopped-by-libxml2", "zeep-entities", "zeep-external"],
)
def test_the_soap_adapter_names_each_refusal(error: zeep.exceptions.Error, message: str) -> None:
    adapter = PopulationAdapter("population", settings("http://127.0.0.1:1/dancu"))
    xxe = xxe_answer("http://127.0.0.1:9/x")
    answer = RawAnswer(200, xxe, CaseInsensitiveDict({"Content-Type": "text/xml"}))
    given = answer if isinstance(error, zeep.exceptions.DTDForbidden) else None
    refused = adapter.classify_zeep(error, given)
    assert isinstance(refused, UnsafeAnswer) and refused.detail == message
    assert "001085012345" not in str(refused) and "passwd" not in str(refused)
    adapter.close()


def test_a_soap_answer_that_is_not_xml_is_refused_by_its_content_type() -> None:
    adapter = PopulationAdapter("population", settings("http://127.0.0.1:1/dancu"))
    page = b"<!DOCTYPE html><html><body>log in</body></html>"
    for declared in ("text/xml; charset=utf-8", "application/soap+xml", None):
        fields = {} if declared is None else {"Content-Type": declared}
        adapter.check_content_type(RawAnswer(200, page, CaseInsensitiveDict(fields)))
    answer = RawAnswer(200, page, CaseInsensitiveDict({"Content-Type": "text/html"}))
    with pytest.raises(MalformedAnswer) as info:
        adapter.check_content_type(answer)
    assert info.value.detail == (
        f"unexpected content type text/html, not XML (HTTP 200, text/html, {len(page)} bytes)"
    )
    adapter.close()


# --- the sandbox's hostile faults --------------------------------------------------------------


def test_one_hostile_answer_at_a_time_and_each_true_or_false() -> None:
    assert Faults(trickle=True).hostile == "trickle" and Faults().hostile is None
    assert Faults(gzip_bomb=True).active
    with pytest.raises(ValueError, match="one hostile answer at a time"):
        Faults(xml_bomb=True, xxe=True)
    with pytest.raises(ValueError, match="oversize must be true or false"):
        Faults.from_mapping({"oversize": 1})


def test_the_gzip_bomb_is_small_and_inflates_to_hundreds_of_mib() -> None:
    bomb = gzip_bomb()
    assert len(bomb) < 300_000
    inflate, total, data = zlib.decompressobj(31), 0, bomb
    while data:  # a piece at a time, as a careful reader would
        total += len(inflate.decompress(data, 1 << 24))
        data = inflate.unconsumed_tail
    assert inflate.eof and total == GZIP_BOMB_MIB << 20


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with served_sandbox(200, 5) as running:
        yield running


def lookup_raw(sandbox: RunningSandbox, source: str, **faults: Any) -> requests.Response:
    """A lookup of `source` on the wire, its body unread (stream) and not decoded."""
    paths = {"population": "/dancu", "licence": "/gplx/api/v1/tra-cuu"}
    body = (
        b"<x/>"
        if source == "population"
        else b'{"so_dinh_danh": "001085012345", "don_vi_yeu_cau": "a", "ma_yeu_cau": "r"}'
    )
    sandbox.set_faults(source, **faults)
    return requests.post(
        sandbox.base_url + paths[source],
        data=body,
        headers={"Content-Type": "application/json", "Accept-Encoding": "identity"},
        stream=True,
        timeout=10,
    )


@pytest.fixture
def clean(sandbox: RunningSandbox) -> Iterator[RunningSandbox]:
    yield sandbox
    for source in ("population", "licence"):
        sandbox.set_faults(source)


def test_an_oversize_answer_is_well_formed_unannounced_and_over_8_mib(
    clean: RunningSandbox,
) -> None:
    soap = lookup_raw(clean, "population", oversize=True)
    assert "content-length" not in soap.headers and soap.headers["content-type"].startswith(
        "text/xml"
    )
    envelope = soap.raw.read(decode_content=False)
    assert len(envelope) > OVERSIZE_BYTES > 8 * 1024 * 1024
    root = etree.fromstring(envelope, etree.XMLParser(huge_tree=True))
    assert root.tag.endswith("Envelope")
    rest = lookup_raw(clean, "licence", oversize=True)
    assert rest.headers["content-type"] == "application/json"
    assert len(rest.raw.read(decode_content=False)) > OVERSIZE_BYTES


def test_bombs_pages_and_gzip_are_sent_as_described(clean: RunningSandbox) -> None:
    bomb = lookup_raw(clean, "population", xml_bomb=True)
    assert bomb.status_code == 200 and bomb.raw.read() == XML_BOMB
    xxe = lookup_raw(clean, "population", xxe=True).raw.read()
    assert b'SYSTEM "file:///etc/passwd"' in xxe
    assert f'SYSTEM "http://127.0.0.1:{clean.port}/_sandbox/health"'.encode() in xxe
    page = lookup_raw(clean, "licence", wrong_content_type=True)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for source, media_type in (("population", "text/xml"), ("licence", "application/json")):
        gzipped = lookup_raw(clean, source, gzip_bomb=True)
        assert gzipped.headers["content-encoding"] == "gzip"
        assert gzipped.headers["content-type"].startswith(media_type)
        assert gzipped.raw.read(decode_content=False) == gzip_bomb()


def test_a_trickle_sends_the_head_at_once_and_the_body_a_few_bytes_at_a_time(
    clean: RunningSandbox,
) -> None:
    started = time.monotonic()
    answer = lookup_raw(clean, "licence", trickle=True)
    assert time.monotonic() - started < 1.0  # the head came at once
    length = int(answer.headers["content-length"])
    came = b""
    while time.monotonic() - started < 1.0:
        came += answer.raw.read(1)
    assert 0 < len(came) < min(length, 100)  # 8 bytes every 0.2 s
    answer.close()  # hang up: the sandbox stops trickling


def test_without_a_hostile_fault_answers_are_untouched(clean: RunningSandbox) -> None:
    answer = lookup_raw(clean, "licence")
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["ma_loi"] in (0, 404)
