"""The HTTP gateway: `POST /v1/lookups` in, one LookupResponse out.

The gateway is one Kafka-native client of the bus (`LookupClient`) behind HTTP. It owns one reply
partition. Invalid requests are answered with RFC 9457 problem+json naming each field.

HTTP status by lookup status: complete, partial, not_found -> 200; denied -> 403; failed -> 502;
and 504, with what is known, when the deadline passed before every source answered.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import Field, ValidationError, field_validator

from bus.client import BusUnavailable, LookupClient, deadline_in
from bus.outcome import deadline_exceeded
from bus.schemas import LookupRequest, LookupResponse, Requester, Subject
from bus.schemas.common import Model, NFCStr
from bus.schemas.lookup import check_dataset_names
from bus.settings import Settings
from bus.tracing import carried_tracestate, continue_trace

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

LOOKUPS = Counter("tthc_gateway_lookups_total", "Lookups answered by the gateway", ["status"])
LATENCY = Histogram(
    "tthc_gateway_lookup_seconds",
    "Lookup latency seen by the gateway",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class LookupHttpRequest(Model):
    """The body of `POST /v1/lookups`."""

    requester: Requester
    procedure_code: str = Field(min_length=1, max_length=64)
    dossier_id: str = Field(min_length=1, max_length=128)
    purpose: NFCStr = Field(min_length=1, max_length=1000)
    legal_basis: NFCStr = Field(min_length=1, max_length=1000)
    subject: Subject
    datasets: list[str] = Field(min_length=1, max_length=16)
    deadline_ms: int | None = Field(default=None, ge=100, description="Time allowed, in ms.")

    @field_validator("datasets")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        return check_dataset_names(value)


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def field_errors(errors: list[Any]) -> list[dict[str, Any]]:
    out = []
    for item in errors:
        loc = [str(part) for part in item["loc"] if part != "body"]
        out.append(
            {"field": ".".join(loc) or "(body)", "message": item["msg"], "type": item["type"]}
        )
    return out


def http_status(response: LookupResponse) -> int:
    # Gateway Timeout: the deadline passed, or the source itself did not answer in time.
    if response.status != "complete" and any(
        error.code in ("deadline_exceeded", "timeout") for error in response.errors
    ):
        return 504
    return {"denied": 403, "failed": 502}.get(response.status, 200)


def create_gateway(settings: Settings) -> FastAPI:
    known = settings.dataset_sources()
    client = LookupClient(
        settings.kafka.resolved_bootstrap(),
        reply_partition=settings.gateway.reply_partition,
        producer_name=settings.gateway.instance_id,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await client.start()
        try:
            yield
        finally:
            await client.stop()

    app = FastAPI(
        title="tthc-bus gateway",
        version="1",
        description="Cross-agency data lookups for TTHC systems.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors(list(exc.errors()))
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem(400, "Invalid lookup request", detail, errors=errors)

    @app.post(
        "/v1/lookups",
        response_model=LookupResponse,
        responses={
            400: {"description": "Invalid request (problem+json)"},
            504: {"description": "Deadline passed; the body carries what is known"},
        },
    )
    async def post_lookup(body: LookupHttpRequest, http: Request) -> JSONResponse:
        unknown = [(i, ds) for i, ds in enumerate(body.datasets) if ds not in known]
        if unknown:
            errors = [
                {
                    "field": f"datasets.{i}",
                    "message": f"unknown dataset {ds!r}; known: {sorted(known)}",
                    "type": "unknown_dataset",
                }
                for i, ds in unknown
            ]
            return problem(400, "Invalid lookup request", errors[0]["message"], errors=errors)
        deadline_ms = min(
            body.deadline_ms or settings.lookup.default_deadline_ms,
            settings.lookup.max_deadline_ms,
        )
        try:
            request = LookupRequest(
                producer=settings.gateway.instance_id,
                deadline=deadline_in(deadline_ms),
                traceparent=continue_trace(http.headers.get("traceparent")),
                tracestate=carried_tracestate(http.headers),
                **body.model_dump(exclude={"deadline_ms"}),
            )
        except ValidationError as exc:
            errors = field_errors(list(exc.errors()))
            return problem(400, "Invalid lookup request", errors[0]["message"], errors=errors)
        with LATENCY.time():
            try:
                reply = await client.lookup(request)
            except BusUnavailable as exc:
                return problem(503, "Bus unavailable", str(exc))
        if reply is None:
            reply = LookupResponse(
                correlation_id=request.message_id,
                request_id=request.message_id,
                producer=settings.gateway.instance_id,
                status="failed",
                errors=[
                    deadline_exceeded(ds, "the bus did not reply before the deadline")
                    for ds in request.datasets
                ],
            )
        LOOKUPS.labels(reply.status).inc()
        return JSONResponse(
            reply.model_dump(mode="json"),
            status_code=http_status(reply),
            headers={"traceparent": request.traceparent or ""},
        )

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        if not client.healthy:
            return JSONResponse({"status": "unhealthy", "reason": "reply reader stopped"}, 503)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
