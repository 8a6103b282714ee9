"""The shared base of SOAP adapters: the WSDL read once with zeep, lean calls, zeep's errors sorted.

An adapter module names the WSDL operations it calls (`operation_names`), fills in their request
fields and reads the answer; this base does the rest:

- The WSDL is read from `<url>?wsdl` on first use (again on the next call if that failed), with
  zeep's protections against DTDs, entities and external references on, by one call while the
  others wait for it, each no longer than its own timeout. Every operation the adapter names is
  taken from that one reading.
- A call does not go through zeep's per-call machinery (it cost about a millisecond of CPU):
  `adapters.soap.SoapOperation` fills the request into the envelope zeep rendered once,
  `post_bytes` sends it on the adapter's kept-alive connections within the call's own timeout,
  and `SoapOperation` reads the answer with a hardened lxml parser into the plain dicts zeep
  would have given, raising zeep's exceptions where zeep would. Calls go to the configured URL
  whatever the WSDL's soap:address says.
- The national SOAP services answer a result code `MaKetQua` (00 found, 01 not found, 02 invalid
  input) with its description `MoTaKetQua` and the data's time `ThoiDiemDuLieu`
  (yyyyMMddHHmmss, Vietnam time); `found` and `data_time` read them.
- The change feeds (`LayDanhSachThayDoi`: changes after the cursor `SauSoThuTu`, at most
  `SoLuongToiDa`, answering `SoThuTuCuoi`, `ConNua` and `DanhSachThayDoi`) are read by
  `read_changes`; `changes` and `update` ask through `classified_call`, as `fetch` asks.
- zeep's errors become `SourceError`s (`classify_zeep`): a SOAP fault is the source's own words
  (soap:Client: SourceRejected, else SourceFault), an HTTP error status without a SOAP answer is
  classified as the base classifies statuses, XML with a DTD (an entity bomb, external
  entities: in an answer or in the WSDL) is an UnsafeAnswer naming the attack, anything else
  unreadable is a MalformedAnswer that says what and where, never what the answer held. A 200
  answer whose content type is not XML (a proxy's HTML page) is a MalformedAnswer naming the
  type, before it is parsed.

The source's own words (result descriptions, fault strings) pass through `words`, which a source
whose text is not NFC overrides. Nothing logs request or answer bodies (they hold personal data).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import zeep
import zeep.exceptions
from zeep.transports import Transport

from adapters.base import (
    SOURCE_WORDS_MAX,
    VIETNAM_TIME,
    Adapter,
    ChangePage,
    NativeChange,
    RawAnswer,
    describe_body,
    get_whole,
    source_words,
)
from adapters.soap import (
    UNKNOWN_FAULT,
    RequestValueError,
    SchemaNotSupported,
    SoapOperation,
    doctype_refusal,
    has_doctype,
)
from bus.errors import (
    MalformedAnswer,
    SourceError,
    SourceFault,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
    UnsafeAnswer,
)
from bus.settings import SourceSettings

FOUND, NOT_FOUND, INVALID_INPUT = "00", "01", "02"
LIST_CHANGES = "LayDanhSachThayDoi"
# The fields of a feed's ThayDoi that every change has; the rest are its native data.
_CHANGE_HEADER = ("SoThuTu", "LoaiThayDoi", "ThoiDiemGhiNhan")
SYNC_AGENCY = "TTHC-BUS"  # MaDonViYeuCau of the bus's own calls (feeds, updates)
# zeep's own refusals while reading a WSDL (forbid_dtd, forbid_entities, forbid_external).
_ZEEP_REFUSALS = {
    zeep.exceptions.EntitiesForbidden: "XML entity declarations refused",
    zeep.exceptions.ExternalReferenceForbidden: "XML with an external reference refused (XXE)",
}


class WsdlTransport(Transport):
    """zeep's transport for reading the WSDL on the adapter's session; it never posts (calls go
    through `SoapOperation`, and zeep's own `post` logs whole bodies at DEBUG)."""

    def post(self, address: str, message: Any, headers: Any) -> Any:
        raise RuntimeError("SOAP adapters post through SoapOperation, not zeep")

    def _load_remote_data(self, url: str) -> bytes:
        # As a call's answer is read: zeep's own read inflates any gzip whole, has no size cap
        # and lets a trickling WSDL run past the load timeout.
        content = get_whole(self.session, url, self.load_timeout, raise_for_status=True).content
        if has_doctype(content):  # zeep would refuse it too, but without saying what it held
            raise zeep.exceptions.XMLSyntaxError(  # type: ignore[no-untyped-call]
                "a DOCTYPE in the WSDL", content=content
            )
        return content


def describe_answer(answer: RawAnswer) -> str:
    """HTTP status, content type and length of an answer, never its content."""
    return describe_body(answer.status_code, answer.headers.get("Content-Type"), answer.content)


def describe_zeep_error(exc: zeep.exceptions.Error) -> str:
    """The kind of a zeep error and where it was, never its message (it may quote the answer)."""
    kind = type(exc).__name__
    if isinstance(exc, zeep.exceptions.TransportError | zeep.exceptions.XMLSyntaxError):
        kind = f"not well-formed XML ({kind})"
    path = getattr(exc, "path", None)
    if path:  # ValidationError: the element path
        return f"{kind} at {'.'.join(str(part) for part in path)}"
    line = getattr(exc, "sourceline", None)
    if line:  # XMLParseError
        return f"{kind} at line {line}"
    return kind


def zeep_settings() -> zeep.Settings:
    """Strict parsing, and no DTDs, entities, external references or huge trees from outside."""
    return zeep.Settings(
        strict=True,
        xml_huge_tree=False,
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )


class SoapAdapter(Adapter):
    """An adapter whose source speaks SOAP 1.1 described by its WSDL (see the module doc).

    Subclasses set `operation_names` (the WSDL operations they call) and implement `ask` with
    `call` and `found`.
    """

    operation_names: ClassVar[tuple[str, ...]]

    def __init__(self, name: str, settings: SourceSettings) -> None:
        super().__init__(name, settings)
        self.transport = WsdlTransport(session=self.session)  # type: ignore[no-untyped-call]
        self._operations: Mapping[str, SoapOperation] | None = None
        self._operations_lock = threading.Lock()

    # -- the operations, loaded lazily from the WSDL ---------------------------------------------
    def operations(self, timeout: float) -> Mapping[str, SoapOperation]:
        """The operations as the WSDL declares them, by name, loading the WSDL if needed.

        One call loads the WSDL; the others wait for it, but no longer than `timeout` seconds
        (SourceTimeout), so a slow WSDL cannot hold them past their deadline.
        """
        operations = self._operations
        if operations is not None:
            return operations
        started = time.monotonic()
        if not self._operations_lock.acquire(timeout=max(timeout, 0.0)):
            raise SourceTimeout(
                self.source,
                f"the WSDL was still being loaded by another call after {timeout:.3g} s",
            )
        try:
            if self._operations is None:
                remaining = timeout - (time.monotonic() - started)
                if remaining <= 0:
                    raise SourceTimeout(self.source, "no time left to load the WSDL")
                self._operations = self._load_operations(remaining)
            return self._operations
        finally:
            self._operations_lock.release()

    def _load_operations(self, timeout: float) -> Mapping[str, SoapOperation]:
        """Every operation of `operation_names`, from one reading of the WSDL."""
        self.transport.load_timeout = timeout
        client = zeep.Client(  # type: ignore[no-untyped-call]
            wsdl=f"{self.settings.url}?wsdl", transport=self.transport, settings=zeep_settings()
        )
        try:
            return {name: SoapOperation.from_client(client, name) for name in self.operation_names}
        except SchemaNotSupported as exc:
            raise MalformedAnswer(self.source, str(exc)) from None

    # -- asking ----------------------------------------------------------------------------------
    def call(self, operation: str, values: Mapping[str, str], timeout: float) -> Any:
        """Ask `operation` with the request fields `values`, within `timeout` seconds (the WSDL
        loaded first if needed): the answer in zeep's plain-dict shape."""
        deadline = time.monotonic() + timeout
        soap_operation = self.operations(timeout)[operation]
        remaining = deadline - time.monotonic()  # loading the WSDL took some of it
        if remaining <= 0:
            raise SourceTimeout(self.source, "no time left after loading the WSDL")
        body = soap_operation.render(values)
        answer = self.post_bytes(self.settings.url, body, soap_operation.headers, remaining)
        if answer.status_code == 200:
            self.check_content_type(answer)
        try:
            return soap_operation.read(answer)
        except zeep.exceptions.Error as exc:
            # Not `from exc`: a zeep error may carry the answer, and a logged traceback would
            # show it. The classified error says what can be said.
            raise self.classify_zeep(exc, answer) from None

    def check_content_type(self, answer: RawAnswer) -> None:
        """Refuse a 200 answer declared as something else than XML (text/xml for SOAP 1.1,
        application/soap+xml for 1.2): a proxy's or a portal's page, not the service."""
        content_type = answer.headers.get("Content-Type")
        if content_type is None:  # undeclared: the parser decides
            return
        media_type = content_type.split(";", 1)[0].strip().lower()
        if not media_type.endswith(("/xml", "+xml")):
            raise MalformedAnswer(
                self.source,
                f"unexpected content type {source_words(media_type, 60) or '(empty)'}, not XML "
                f"({describe_answer(answer)})",
            )

    def found(self, data: Any) -> dict[str, Any]:
        """The answer (plain dicts) when its MaKetQua says found; else what the code says."""
        if not isinstance(data, dict):
            raise MalformedAnswer(
                self.source, f"no MaKetQua in the answer: a {type(data).__name__}, not a record"
            )
        if "MaKetQua" not in data:
            elements = ", ".join(source_words(key, 40) for key in list(data)[:10]) or "none"
            raise MalformedAnswer(self.source, f"no MaKetQua in the answer (elements: {elements})")
        # The result code and its description are the source's own words, not personal data.
        code = source_words("" if data["MaKetQua"] is None else data["MaKetQua"], 10)
        description = self.words(data.get("MoTaKetQua") or "")
        self.check_result_code(
            code, description, found=FOUND, not_found=NOT_FOUND, invalid_input=INVALID_INPUT
        )
        return data

    def list_changes(
        self, cursor: str | None, limit: int, timeout: float, entity_field: str
    ) -> ChangePage:
        """Ask LIST_CHANGES for `limit` changes after `cursor` and read the page; each change's
        entity is its `entity_field`."""
        if cursor and not cursor.isdigit():  # None or "": from the start
            raise SourceRejected(self.source, "the cursor must be the last SoThuTu read")
        values = {
            "MaYeuCau": f"feed-{cursor or 0}",
            "MaDonViYeuCau": SYNC_AGENCY,
            "SauSoThuTu": cursor or "",
            "SoLuongToiDa": str(limit),
        }
        return self.read_changes(self.call(LIST_CHANGES, values, timeout), cursor, entity_field)

    def read_changes(self, data: Any, cursor: str | None, entity_field: str) -> ChangePage:
        """A feed's answer (plain dicts) as a ChangePage, or what its result code says."""
        found = self.found(data)
        listed = found.get("DanhSachThayDoi")  # None: an empty list (no ThayDoi in it)
        items = (
            listed.get("ThayDoi") if isinstance(listed, dict) else [] if listed is None else None
        )
        if not isinstance(items, list):
            raise MalformedAnswer(self.source, "MaKetQua 00 without a DanhSachThayDoi list")
        changes = [self._native_change(item, entity_field) for item in items]
        last = found.get("SoThuTuCuoi")
        if changes:
            last = changes[-1].sequence
        elif not isinstance(last, int):
            last = int(cursor or 0)
        previous = int(cursor or 0)
        for change in changes:
            if change.sequence <= previous:
                raise MalformedAnswer(self.source, "the feed's SoThuTu do not increase")
            previous = change.sequence
        return ChangePage(changes, str(last), bool(found.get("ConNua")))

    def _native_change(self, item: Any, entity_field: str) -> NativeChange:
        if not isinstance(item, dict):
            raise MalformedAnswer(self.source, "a ThayDoi of the feed is not a record")
        sequence, kind, entity = (
            item.get("SoThuTu"),
            item.get("LoaiThayDoi"),
            item.get(entity_field),
        )
        if not isinstance(sequence, int) or sequence < 1 or not kind or not entity:
            raise MalformedAnswer(
                self.source, f"a ThayDoi without SoThuTu, LoaiThayDoi or {entity_field}"
            )
        occurred_at = self.data_time(item.get("ThoiDiemGhiNhan"), "ThoiDiemGhiNhan")
        if occurred_at is None:
            raise MalformedAnswer(self.source, f"ThayDoi {sequence} without ThoiDiemGhiNhan")
        header = (*_CHANGE_HEADER, entity_field)
        data = {
            key: value for key, value in item.items() if key not in header and value is not None
        }
        return NativeChange(self.source, sequence, str(kind), str(entity), occurred_at, data)

    def data_time(self, value: Any, field: str = "ThoiDiemDuLieu") -> datetime | None:
        """ThoiDiemDuLieu (or another `field` of the form yyyyMMddHHmmss, Vietnam time) as an
        aware datetime."""
        if value is None or value == "":
            return None
        text = str(value)
        try:
            if len(text) != 14 or not text.isdigit() or not text.isascii():
                raise ValueError(text)
            # Slicing, not strptime (a tenth of the CPU); the same checks of each field.
            return datetime(
                int(text[:4]),
                int(text[4:6]),
                int(text[6:8]),
                int(text[8:10]),
                int(text[10:12]),
                int(text[12:]),
                tzinfo=VIETNAM_TIME,
            )
        except ValueError:
            raise MalformedAnswer(
                self.source,
                f"{field} is not yyyyMMddHHmmss (got {type(value).__name__} of "
                f"{len(str(value))} chars)",
            ) from None

    def words(self, text: object, limit: int = SOURCE_WORDS_MAX) -> str:
        """The source's own words (a result description, a fault string) for an error message."""
        return source_words(text, limit)

    # -- errors ----------------------------------------------------------------------------------
    # zeep's messages may quote the answer (TransportError carries the whole body,
    # EntitiesForbidden the entity's content): never pass them on. A SOAP faultstring is the
    # source's own words.
    def classify(self, exc: BaseException) -> SourceError | None:
        if isinstance(exc, zeep.exceptions.Error):
            return self.classify_zeep(exc, None)
        if isinstance(exc, RequestValueError):
            return SourceRejected(self.source, f"cannot be asked: {exc}")
        return super().classify(exc)

    def classify_zeep(self, exc: zeep.exceptions.Error, answer: RawAnswer | None) -> SourceError:
        """A zeep error as a SourceError; `answer` describes the answer when there was one."""
        if isinstance(exc, zeep.exceptions.Fault):
            return self._fault(exc)
        content = answer.content if answer is not None else getattr(exc, "content", None)
        content = content if isinstance(content, bytes) else None  # zeep may keep a str
        if isinstance(exc, zeep.exceptions.DTDForbidden) or (
            # libxml2 stops an entity bomb itself, as not well-formed: the DOCTYPE says why.
            isinstance(exc, zeep.exceptions.TransportError | zeep.exceptions.XMLSyntaxError)
            and has_doctype(content)
        ):
            return UnsafeAnswer(self.source, doctype_refusal(content))
        for refusal, message in _ZEEP_REFUSALS.items():
            if isinstance(exc, refusal):
                return UnsafeAnswer(self.source, message)
        if isinstance(exc, zeep.exceptions.TransportError):
            status = exc.status_code or 0
            if status != 200:
                return self.http_status_error(status, "without a SOAP answer")
        if answer is not None:
            described = describe_answer(answer)
        elif isinstance(exc, zeep.exceptions.TransportError | zeep.exceptions.XMLSyntaxError):
            described = describe_body(getattr(exc, "status_code", None), None, exc.content)
        else:
            described = "no answer details"
        return MalformedAnswer(
            self.source, f"unreadable answer: {describe_zeep_error(exc)} ({described})"
        )

    def _fault(self, fault: zeep.exceptions.Fault) -> SourceError:
        if fault.code is None and fault.message == UNKNOWN_FAULT:
            return SourceUnavailable(self.source, "HTTP error status with a SOAP body but no Fault")
        code = self.words(fault.code or "", 60)
        message = f"SOAP fault {code}: {self.words(fault.message or '')}"
        if code.endswith("Client"):  # the source says our request is wrong: asking again won't do
            return SourceRejected(self.source, message)
        return SourceFault(self.source, message)
