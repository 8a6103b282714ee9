"""How adapters classify what goes wrong into the SourceError family (no server needed)."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import zeep.exceptions
from requests.structures import CaseInsensitiveDict

from adapters.base import Adapter, Dataset, NativeRecord, RawAnswer, error_chain, source_words
from adapters.population import OPERATION, PopulationAdapter
from adapters.registry import load_adapter
from adapters.soap import SoapOperation
from adapters.soap_adapter import zeep_settings
from bus.errors import (
    MalformedAnswer,
    SettingsError,
    SourceError,
    SourceFault,
    SourceNotFound,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
)
from bus.schemas import Subject
from bus.settings import SourceSettings
from sandbox.population.service import WSDL_FILE

SUBJECT = Subject(personal_id="001085012345")


def settings(url: str = "http://127.0.0.1:9/dancu", **overrides: Any) -> SourceSettings:
    values: dict[str, Any] = {
        "adapter": "adapters.population:PopulationAdapter",
        "url": url,
        "datasets": ["identity"],
        "timeout_s": 1.0,
    }
    return SourceSettings(**(values | overrides))


class RaisingAdapter(Adapter):
    """Raises whatever it is told to, to check the base's classification."""

    name = "raising"
    datasets = (Dataset("identity", "population"),)
    error: BaseException = RuntimeError()

    def ask(self, dataset: str, subject: Subject, **kwargs: Any) -> NativeRecord:
        raise self.error


def fetch(adapter: Adapter, timeout: float = 1.0) -> NativeRecord:
    return adapter.fetch("identity", SUBJECT, timeout=timeout, request_id="r", requester_agency="a")


def response(status: int) -> requests.Response:
    answer = requests.Response()
    answer.status_code, answer.reason = status, "Reason"
    return answer


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (requests.ConnectTimeout("connect"), SourceTimeout),
        (requests.ReadTimeout("read"), SourceTimeout),
        (requests.ConnectionError("refused"), SourceUnavailable),
        (requests.HTTPError(response=response(503)), SourceUnavailable),
        (requests.HTTPError(response=response(429)), SourceUnavailable),
        (requests.HTTPError(response=response(404)), SourceRejected),
        (requests.exceptions.ChunkedEncodingError("cut"), SourceUnavailable),
    ],
)
def test_base_classifies_http_errors(error: BaseException, expected: type[SourceError]) -> None:
    adapter = RaisingAdapter("raising", settings())
    adapter.error = error
    with pytest.raises(expected) as info:
        fetch(adapter)
    assert info.value.source == "raising"
    assert info.value.__cause__ is error


def test_base_messages_name_the_error_not_the_url() -> None:
    # A REST source may carry the personal id in the URL; requests quotes the URL in str(exc).
    url = "http://127.0.0.1:9/citizens/001085012345?name=Nguyen"
    try:
        requests.get(url, timeout=0.5)
    except requests.ConnectionError as exc:
        error = exc
    adapter = RaisingAdapter("raising", settings())
    adapter.error = error
    with pytest.raises(SourceUnavailable) as info:
        fetch(adapter)
    message = str(info.value)
    assert "001085012345" not in message and "Nguyen" not in message and "/citizens" not in message
    assert message.startswith("raising: cannot connect (ConnectionError <- ")
    assert "ConnectionRefusedError" in message


def test_error_chain_follows_wrapped_errors() -> None:
    inner = ConnectionRefusedError(111, "refused: http://x/001085012345")
    outer = requests.ConnectionError(inner)
    assert error_chain(outer) == "ConnectionError <- ConnectionRefusedError"


def test_source_words_are_cut_and_on_one_line() -> None:
    assert source_words("a\n  b") == "a b"
    cut = source_words("x" * 500)
    assert len(cut) == 200 and cut.endswith("\u2026")


def test_a_bug_is_not_disguised_as_a_source_error() -> None:
    adapter = RaisingAdapter("raising", settings())
    adapter.error = KeyError("oops")
    with pytest.raises(KeyError):
        fetch(adapter)


def test_no_time_left_is_a_timeout_without_asking() -> None:
    adapter = RaisingAdapter("raising", settings())
    with pytest.raises(SourceTimeout):
        fetch(adapter, timeout=0)


def test_unknown_dataset_is_rejected() -> None:
    adapter = RaisingAdapter("raising", settings())
    with pytest.raises(SourceRejected, match="identity"):
        adapter.fetch("vehicles", SUBJECT, timeout=1, request_id="r", requester_agency="a")


def test_session_pool_is_sized_to_the_source_concurrency() -> None:
    adapter = RaisingAdapter("raising", settings(concurrency=48))
    http = adapter.session.get_adapter("http://example.invalid/")
    assert http._pool_maxsize == 48  # type: ignore[attr-defined]
    assert http.max_retries.total == 0  # type: ignore[attr-defined]


# --- population: SOAP and result codes ---------------------------------------------------------


@pytest.fixture
def population() -> PopulationAdapter:
    return PopulationAdapter("population", settings())


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (zeep.exceptions.Fault("internal error", code="soap:Server"), SourceFault),
        (zeep.exceptions.Fault("bad request", code="soap:Client"), SourceRejected),
        (zeep.exceptions.Fault("Unknown fault occured", code=None), SourceUnavailable),
        (zeep.exceptions.TransportError("invalid XML", status_code=200), MalformedAnswer),
        (zeep.exceptions.TransportError("no content", status_code=502), SourceUnavailable),
        (zeep.exceptions.XMLParseError("unexpected element"), MalformedAnswer),
        (zeep.exceptions.XMLSyntaxError("not xml"), MalformedAnswer),
        (requests.ConnectionError("reset"), SourceUnavailable),
    ],
)
def test_population_classifies_soap_errors(
    population: PopulationAdapter, error: BaseException, expected: type[SourceError]
) -> None:
    classified = population.classify(error)
    assert type(classified) is expected


PERSONAL_ID, NAME = "001085012345", "Nguyễn Văn Đức"
BODY = f"<CongDan><SoDinhDanh>{PERSONAL_ID}</SoDinhDanh><HoVaTen>{NAME}</HoVaTen>".encode()


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            zeep.exceptions.TransportError(
                f"Server returned response (200) with invalid XML: x.\nContent: {BODY!r}",
                status_code=200,
                content=BODY,
            ),
            f"not well-formed XML (TransportError) (HTTP 200, no content type, {len(BODY)} bytes)",
        ),
        (
            zeep.exceptions.XMLSyntaxError(f"Invalid XML {NAME}", content=BODY),
            f"not well-formed XML (XMLSyntaxError) (HTTP status unknown, no content type, "
            f"{len(BODY)} bytes)",
        ),
        (
            zeep.exceptions.ValidationError(f"{PERSONAL_ID} too long", path=["CongDan", "Ten"]),
            "ValidationError at CongDan.Ten (no answer details)",
        ),
        (
            zeep.exceptions.XMLParseError(f"Unexpected {NAME}", sourceline=3),
            "XMLParseError at line 3 (no answer details)",
        ),
    ],
)
def test_unreadable_answers_are_described_never_quoted(
    population: PopulationAdapter, error: zeep.exceptions.Error, expected: str
) -> None:
    classified = population.classify(error)
    assert isinstance(classified, MalformedAnswer)
    assert classified.detail == f"unreadable answer: {expected}"
    assert PERSONAL_ID not in str(classified)
    assert not any(part in str(classified) for part in NAME.split())


def sandbox_operation() -> SoapOperation:
    """The lookup operation as the adapter loads it, from the sandbox's WSDL file."""
    client = zeep.Client(str(WSDL_FILE), settings=zeep_settings())  # type: ignore[no-untyped-call]
    return SoapOperation.from_client(client, OPERATION)


def test_unreadable_answer_during_a_call_says_status_type_and_length(
    population: PopulationAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = BODY + b"<!-- cut"
    reply = RawAnswer(200, body, CaseInsensitiveDict({"Content-Type": "text/xml; charset=utf-8"}))
    monkeypatch.setattr(population, "post_bytes", lambda *args, **kwargs: reply)
    population._operations = {OPERATION: sandbox_operation()}
    with pytest.raises(MalformedAnswer) as info:
        fetch(population)
    assert info.value.detail == (
        "unreadable answer: not well-formed XML (TransportError) "
        f"(HTTP 200, text/xml; charset=utf-8, {len(body)} bytes)"
    )
    assert PERSONAL_ID not in str(info.value)
    assert info.value.__cause__ is None  # a logged traceback must not show the answer


def test_soap_fault_string_is_passed_on_cut_short(population: PopulationAdapter) -> None:
    classified = population.classify(zeep.exceptions.Fault("lỗi " * 200, code="soap:Server"))
    assert isinstance(classified, SourceFault)
    assert classified.detail.startswith("SOAP fault soap:Server: lỗi lỗi")
    assert len(classified.detail) <= len("SOAP fault soap:Server: ") + 200


def test_answer_without_result_code_names_elements_not_values(
    population: PopulationAdapter,
) -> None:
    with pytest.raises(MalformedAnswer) as info:
        population.read_answer("identity", {"CongDan": {"SoDinhDanh": PERSONAL_ID, "Ten": NAME}})
    assert info.value.detail == "no MaKetQua in the answer (elements: CongDan)"


def test_result_description_is_cut_short(population: PopulationAdapter) -> None:
    long = {"MaKetQua": "99", "MoTaKetQua": "x" * 1000}
    with pytest.raises(SourceFault) as info:
        population.read_answer("identity", long)
    assert info.value.detail.startswith("result code '99': xxx")
    assert len(info.value.detail) <= len("result code '99': ") + 200


# --- population: waiting for the WSDL is bounded by the call's timeout ----------------------------


def test_waiting_for_the_wsdl_lock_times_out(population: PopulationAdapter) -> None:
    population._operations_lock.acquire()  # another call is loading the WSDL, slowly
    try:
        started = time.monotonic()
        with pytest.raises(SourceTimeout, match="WSDL was still being loaded"):
            population.operations(0.05)
        with pytest.raises(SourceTimeout):
            fetch(population, timeout=0.05)
        assert time.monotonic() - started < 1.0
    finally:
        population._operations_lock.release()
    assert not population._operations_lock.locked()


def test_waiters_get_the_operation_the_loader_loaded(
    population: PopulationAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[float] = []
    loaded = object()

    def slow_load(timeout: float) -> object:
        loads.append(timeout)
        time.sleep(0.1)
        return loaded

    monkeypatch.setattr(population, "_load_operations", slow_load)
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(population.operations(2.0)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [loaded] * 8
    assert len(loads) == 1 and 0 < loads[0] <= 2.0
    assert not population._operations_lock.locked()


def test_a_failed_wsdl_load_releases_the_lock(
    population: PopulationAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_load(timeout: float) -> object:
        raise requests.ConnectionError("refused")

    monkeypatch.setattr(population, "_load_operations", failing_load)
    with pytest.raises(requests.ConnectionError):
        population.operations(1.0)
    assert not population._operations_lock.locked()


def answer(code: str, citizen: dict[str, Any] | None = None, when: str = "20250630235959") -> Any:
    return {"MaKetQua": code, "MoTaKetQua": "mô tả", "ThoiDiemDuLieu": when, "CongDan": citizen}


def test_found_answer_becomes_a_native_record(population: PopulationAdapter) -> None:
    record = population.read_answer("identity", answer("00", {"SoDinhDanh": "001085012345"}))
    assert record.data == {"SoDinhDanh": "001085012345"}
    assert record.record_time == datetime(2025, 6, 30, 16, 59, 59, tzinfo=UTC)
    assert (record.source, record.dataset) == ("population", "identity")


@pytest.mark.parametrize(
    ("code", "expected"),
    [("01", SourceNotFound), ("02", SourceRejected), ("99", SourceFault), ("00", MalformedAnswer)],
)
def test_result_codes(
    population: PopulationAdapter, code: str, expected: type[SourceError]
) -> None:
    with pytest.raises(expected):
        population.read_answer("identity", answer(code))


def test_bad_data_time_is_malformed(population: PopulationAdapter) -> None:
    with pytest.raises(MalformedAnswer, match="ThoiDiemDuLieu") as info:
        population.read_answer("identity", answer("00", {"SoDinhDanh": "1"}, when="30/06/2025"))
    assert info.value.detail == "ThoiDiemDuLieu is not yyyyMMddHHmmss (got str of 10 chars)"


def test_subject_without_personal_id_is_rejected_before_any_call(
    population: PopulationAdapter,
) -> None:
    with pytest.raises(SourceRejected, match="personal id"):
        population.fetch(
            "identity",
            Subject(enterprise_code="0100047516"),
            timeout=1,
            request_id="r",
            requester_agency="a",
        )


def test_wsdl_unreachable_is_unavailable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    adapter = PopulationAdapter("population", settings(f"http://127.0.0.1:{port}/dancu"))
    with pytest.raises(SourceUnavailable):
        fetch(adapter)


# --- registry ----------------------------------------------------------------------------------


def test_registry_loads_the_configured_adapter() -> None:
    adapter = load_adapter("population", settings())
    assert isinstance(adapter, PopulationAdapter)
    assert adapter.source == "population"
    adapter.close()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("adapters.population", "module:Class"),
        ("adapters.nope:Thing", "cannot import"),
        ("adapters.population:Nothing", "has no Nothing"),
        ("adapters.population:OPERATION", "subclass of adapters.base.Adapter"),
    ],
)
def test_registry_says_what_is_wrong(path: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as info:
        load_adapter("population", settings(adapter=path))
    assert "sources.population.adapter" in str(info.value)
