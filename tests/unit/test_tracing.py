"""W3C trace context: the gateway continues a caller's trace or starts a new one."""

from __future__ import annotations

from bus.tracing import carried_tracestate, continue_trace, new_traceparent, valid_traceparent

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_new_trace_is_well_formed_and_random() -> None:
    first, second = new_traceparent(), new_traceparent()
    assert valid_traceparent(first) and valid_traceparent(second)
    assert first.split("-")[1] != second.split("-")[1]


def test_the_callers_trace_id_and_flags_are_kept_with_a_new_span() -> None:
    continued = continue_trace(CALLER)
    version, trace_id, span_id, flags = continued.split("-")
    assert (version, trace_id, flags) == ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01")
    assert span_id != "00f067aa0ba902b7" and len(span_id) == 16


def test_an_invalid_or_missing_traceparent_starts_a_new_trace() -> None:
    for bad in (None, "", "garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", CALLER.upper()):
        continued = continue_trace(bad)
        assert valid_traceparent(continued)
        assert continued.split("-")[1] != "4bf92f3577b34da6a3ce929d0e0e4736"


def test_tracestate_is_carried_only_with_a_valid_traceparent_and_bounded() -> None:
    state = "vendor=" + "x" * 1000
    assert carried_tracestate({"traceparent": CALLER, "tracestate": state}) == state[:512]
    assert carried_tracestate({"traceparent": "garbage", "tracestate": state}) is None
    assert carried_tracestate({"tracestate": state}) is None
    assert carried_tracestate({"traceparent": CALLER}) is None
