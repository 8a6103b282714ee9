"""How adapters classify what goes wrong into the SourceError family (no server needed)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import zeep.exceptions

from adapters.base import Adapter, NativeRecord
from adapters.population import PopulationAdapter
from adapters.registry import load_adapter
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
    mapping = {"identity": "population"}  # noqa: RUF012
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
    with pytest.raises(MalformedAnswer, match="ThoiDiemDuLieu"):
        population.read_answer("identity", answer("00", {"SoDinhDanh": "1"}, when="30/06/2025"))


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
