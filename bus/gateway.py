"""The HTTP gateway: `POST /v1/lookups` in, one LookupResponse out.

The gateway is one Kafka-native client of the bus (`LookupClient`) behind HTTP. It owns one reply
partition. Invalid requests are answered with RFC 9457 problem+json naming each field.

HTTP status by lookup status: complete, partial, not_found -> 200; denied -> 403; failed -> 502;
504, with what is known, when the deadline passed before every source answered; 503 with
Retry-After when the bus is past its capacity (refused at once, before the body is read, when
this gateway already has `gateway.max_in_flight` lookups in flight) or cannot reach Kafka; 413
for a body past `gateway.max_body_bytes`, refused before more of it than that is read.

The hot path reads the body with one pydantic validation, builds the Kafka request without a
second one, and relays the worker's reply bytes as they are.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import Field, ValidationError, field_validator
from pydantic.json_schema import JsonSchemaMode
from starlette.exceptions import HTTPException as StarletteHTTPException

from bus.admission import Overloaded
from bus.apidocs import add_docs_routes
from bus.audit.access import AuditAnswer, LedgerAccess
from bus.audit.pseudonym import Pseudonymizer
from bus.audit.recorder import AuditRecorder
from bus.auth import Authenticated, AuthError, AuthFailure, Keyring, RequestSigner
from bus.catalog import Catalog
from bus.client import BusUnavailable, LookupClient, Reply
from bus.deadline import deadline_in
from bus.discovery import Discovery
from bus.errors import SettingsError, exception_site
from bus.openapi import add_examples, typed_records
from bus.ops.dashboard import DASHBOARD_HTML
from bus.ops.health import readiness
from bus.ops.service import GatewayOps
from bus.outbox import Outbox
from bus.outcome import deadline_exceeded
from bus.policy import Policy
from bus.procedures import Procedure, ProcedureCatalogue, load_procedures
from bus.router import OVERLOADED
from bus.schemas import LookupRequest, LookupResponse, Requester, Subject
from bus.schemas.common import Model, NFCStr
from bus.schemas.discovery import AllowedDatasets, DatasetDescription
from bus.schemas.lookup import check_dataset_names, dataset_names_schema
from bus.schemas.problem import Problem
from bus.settings import Role, Settings
from bus.tracing import carried_tracestate, continue_trace
from bus.validation import LookupChecks, field_errors, one_line

log = logging.getLogger(__name__)

LOOKUPS_PATH = "/v1/lookups"
PROBLEM_JSON = "application/problem+json"
JSON = "application/json"

LOOKUPS = Counter("tthc_gateway_lookups_total", "Lookups answered by the gateway", ["status"])
REFUSED = Counter(
    "tthc_gateway_refused_total", "Lookups refused before reaching a source", ["reason"]
)
LATENCY = Histogram(
    "tthc_gateway_lookup_seconds",
    "Lookup latency seen by the gateway",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class HttpRequester(Model):
    """Who asks: the agency is the API key's; the body names the system and the officer."""

    agency_code: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Optional: the agency is the one the API key belongs to. If given, it must be "
        "that agency (else 403).",
    )
    system: str = Field(min_length=1, max_length=128, description="Requesting system.")
    officer: NFCStr = Field(min_length=1, max_length=128, description="Officer handling it.")


class LookupHttpRequest(Model):
    """The body of `POST /v1/lookups`.

    Every string is stripped of surrounding whitespace before its rules apply (so `"   "` is
    empty); text is stored in Unicode NFC. A request that breaks a rule is a 400 naming the field.
    """

    requester: HttpRequester
    procedure_code: str = Field(
        min_length=1, max_length=64, description="TTHC procedure code (mã thủ tục hành chính)."
    )
    dossier_id: str = Field(min_length=1, max_length=128, description="Dossier (hồ sơ) id.")
    purpose: NFCStr = Field(
        min_length=1,
        max_length=1000,
        description="Why the data is needed: one of the purposes the procedure allows "
        "(GET /v1/procedures), else the lookup is denied.",
    )
    legal_basis: NFCStr = Field(
        min_length=1, max_length=1000, description="The legal basis of the request."
    )
    subject: Subject
    datasets: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        json_schema_extra=lambda schema: optional_list_schema(schema, dataset_names_schema),
        description="Datasets asked for, `<source>.<dataset>`, each once; an unknown one is a 400. "
        "Left out: the datasets the procedure needs (GET /v1/procedures), a dossier prefill.",
    )
    deadline_ms: int | None = Field(
        default=None,
        ge=100,
        description="Time allowed, in ms; by default `lookup.default_deadline_ms`, and longer "
        "than `lookup.max_deadline_ms` is cut to it.",
    )

    @field_validator("datasets", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:  # given as null; left out, it is not validated
            raise ValueError("datasets must be a list; leave it out for the procedure's datasets")
        return value

    @field_validator("datasets")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_dataset_names(value)


def optional_list_schema(schema: dict[str, Any], items: Callable[[dict[str, Any]], None]) -> None:
    """A field that may be left out but not given as null: its schema is the list's alone."""
    array = next(option for option in schema.pop("anyOf") if option.get("type") == "array")
    schema.pop("default", None)
    schema.update(array)
    items(schema)


def bearer_key(header: str | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header, or None."""
    if header is None:
        return None
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def overloaded(detail: str, retry_after_s: float) -> JSONResponse:
    seconds = max(1, math.ceil(retry_after_s))
    REFUSED.labels("overloaded").inc()
    return problem(
        503,
        "Bus over capacity",
        detail,
        headers={"Retry-After": str(seconds)},
        retry_after_s=seconds,
    )


class BodyTooLarge(Exception):
    """A request body past `gateway.max_body_bytes`."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is longer than {limit} bytes (gateway.max_body_bytes)")


async def read_body(http: Request, limit: int) -> bytes:
    """The body, or BodyTooLarge: at once when its Content-Length is past `limit`, else once
    more than `limit` bytes have streamed in (a chunked body declares no length), so that no
    more than the limit is ever held."""
    length = http.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in http.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def refused_body(exc: ValidationError | BodyTooLarge) -> JSONResponse:
    """413 for a body past the limit, 400 naming each invalid field for any other."""
    if isinstance(exc, BodyTooLarge):
        REFUSED.labels("too_large").inc()
        return problem(413, "Request body too large", str(exc))
    return invalid(field_errors(list(exc.errors())))


def add_error_handlers(app: FastAPI) -> None:
    """Problem+json for what FastAPI answers itself: 400 for invalid parameters (not its 422),
    500 for an unexpected failure (as `LookupFastPath` does, not a text page)."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return invalid(field_errors(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(http: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's own answers (404 no such route, 405 a method it does not take) in the
        # same problem+json as every other refusal, not its bare {"detail": ...}.
        titles = {404: "Not found", 405: "Method not allowed"}
        detail = {
            404: f"no route {http.url.path!r}: see /openapi.json for what the gateway serves",
            405: f"{http.method} is not a method of {http.url.path!r}",
        }.get(exc.status_code, str(exc.detail))
        title = titles.get(exc.status_code, str(exc.detail))
        return problem(exc.status_code, title, detail, headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        # Starlette raises the exception again once this is sent: the server logs it.
        return problem(500, "Internal error", "the gateway could not handle the request")


def invalid(errors: list[dict[str, Any]]) -> JSONResponse:
    return problem(400, "Invalid lookup request", one_line(errors), errors=errors)


def http_status(status: str, error_codes: list[str]) -> int:
    # Gateway Timeout: the deadline passed, or the source itself did not answer in time.
    if status != "complete" and any(
        code in ("deadline_exceeded", "timeout") for code in error_codes
    ):
        return 504
    return {"denied": 403, "failed": 502}.get(status, 200)


def refused_by_worker(reply: Reply) -> JSONResponse:
    """The worker's `overloaded` reply (it shed a backlog) as the same 503 the gateway gives."""
    retry_ms = reply.data.get("retry_after_ms") or 1000
    message = next(
        (str(e.get("message")) for e in reply.data["errors"] if e.get("code") == OVERLOADED),
        "over capacity",
    )
    return overloaded(message, float(retry_ms) / 1000)


def no_reply(request: LookupRequest, instance: str, trace: dict[str, str]) -> Response:
    """504 at the deadline when nothing came back: the gateway answers itself."""
    reply = LookupResponse(
        correlation_id=request.message_id,
        request_id=request.message_id,
        producer=instance,
        status="failed",
        errors=[
            deadline_exceeded(ds, "the bus did not reply before the deadline")
            for ds in request.datasets
        ],
    )
    LOOKUPS.labels(reply.status).inc()
    return Response(
        orjson.dumps(reply.model_dump(mode="json")), status_code=504, headers=trace, media_type=JSON
    )


class Healthy(Model):
    """The gateway can take lookups."""

    status: Literal["ok"]
    in_flight: int = Field(ge=0, description="Lookups sent and waiting for their reply.")


class Unhealthy(Model):
    """The gateway cannot answer lookups (its reply reader stopped)."""

    status: Literal["unhealthy"]
    reason: str


class Readiness(Model):
    """Whether the gateway can do its work: each check's "ok" or what is wrong."""

    status: Literal["ready", "not ready"]
    checks: dict[str, str]


SCHEMA_REF = "#/components/schemas/{model}"


def schema_ref(model: type[Model]) -> dict[str, str]:
    return {"$ref": SCHEMA_REF.format(model=model.__name__)}


TRACE_HEADER = {
    "traceparent": {
        "description": "W3C trace context of the lookup: the caller's trace, or a new one.",
        "required": True,
        "schema": {"type": "string", "pattern": "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"},
    }
}
RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "Seconds after which asking again may succeed.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}


def problem_response(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """An OpenAPI response whose body is a `Problem`, as `application/problem+json`."""
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": schema_ref(Problem)}},
    }
    if headers:
        response["headers"] = headers
    return response


def lookup_response(description: str) -> dict[str, Any]:
    """An OpenAPI response whose body is a `LookupResponse` (the worker's reply, relayed)."""
    return {"model": LookupResponse, "description": description, "headers": TRACE_HEADER}


# Every status `POST /v1/lookups` answers with (`http_status` maps a lookup's status to one).
LOOKUP_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The lookup's answer: `complete`, `partial` or `not_found`.",
        "headers": TRACE_HEADER,
    },
    400: problem_response(
        "Invalid request: `errors` names each invalid field, `(body)` when the body is not a "
        "JSON object (unparsable, not UTF-8, another JSON value)."
    ),
    401: problem_response(
        "No valid API key (`Authorization: Bearer <key>`): the reason says which part is wrong. "
        "Audited.",
        headers={
            "WWW-Authenticate": {
                "description": "The scheme to use.",
                "required": True,
                "schema": {"type": "string"},
            }
        },
    ),
    403: {
        "description": "`denied` (application/json, a LookupResponse): the policy grants none "
        "of the datasets asked for, for this procedure and purpose; each error says why. Or "
        "(problem+json) the key may not do this: its role, or a requester.agency_code that is "
        "not the key's. Audited.",
        # Only the worker's denial carries the lookup's trace; the gateway's refusal has none.
        "headers": {"traceparent": TRACE_HEADER["traceparent"] | {"required": False}},
        "content": {
            JSON: {"schema": schema_ref(LookupResponse)},
            PROBLEM_JSON: {"schema": schema_ref(Problem)},
        },
    },
    413: problem_response(
        "The body is longer than `gateway.max_body_bytes` (1 MiB by default): refused before it "
        "is read when its Content-Length says so, else once that much of it has come."
    ),
    500: problem_response("The gateway failed unexpectedly."),
    502: lookup_response("`failed`: no dataset could be read (the errors say why)."),
    503: problem_response(
        "Over capacity (refused at once, before the body is read; `retry_after_s` says when to "
        "ask again) or Kafka unreachable.",
        headers=RETRY_AFTER_HEADER,
    ),
    504: lookup_response(
        "The deadline or a source's own time ran out: the body carries what is known."
    ),
}

# Models the routes name by `$ref` but FastAPI does not document itself: the body the lookup
# route reads on its own (validation: what a client sends), and problem+json (what it receives).
SPLICED_MODELS: tuple[tuple[type[Model], JsonSchemaMode], ...] = (
    (LookupHttpRequest, "validation"),
    (Problem, "serialization"),
)


def declare_every_status(document: dict[str, Any]) -> None:
    """Each operation as the gateway answers it: invalid parameters are a 400 problem+json (the
    `RequestValidationError` handler), never FastAPI's default 422; an unexpected failure is a
    500 problem+json (the `Exception` handler, or `LookupFastPath`)."""
    for item in document["paths"].values():
        for operation in item.values():
            responses = operation["responses"]
            responses.pop("422", None)
            if operation.get("parameters"):
                responses.setdefault(
                    "400", problem_response("Invalid query: `errors` names each parameter.")
                )
            responses.setdefault("500", problem_response("The gateway failed unexpectedly."))
    # FastAPI's models of its 422, named by nothing now.
    for name in ("HTTPValidationError", "ValidationError"):
        document["components"]["schemas"].pop(name, None)


def lookup_openapi(
    app: FastAPI, catalog: Catalog, procedures: ProcedureCatalogue
) -> dict[str, Any]:
    """FastAPI's document, plus the spliced models' schemas; the request body's `datasets` are
    listed as this gateway's, each with the kind of subject it is asked by (`LookupChecks`
    refuses any other)."""
    if app.openapi_schema is None:
        # A copy: FastAPI shares the `responses` dicts given to the routes (LOOKUP_RESPONSES)
        # between operations, and each operation gets examples of its own.
        document = copy.deepcopy(
            get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
        )
        components = document.setdefault("components", {}).setdefault("schemas", {})
        for model, mode in SPLICED_MODELS:
            schema = model.model_json_schema(ref_template=SCHEMA_REF, mode=mode)
            for name, part in [*schema.pop("$defs", {}).items(), (model.__name__, schema)]:
                if components.get(name, part) != part:
                    raise ValueError(f"two different schemas named {name!r} in the OpenAPI")
                components[name] = part
        document["components"]["securitySchemes"] = {
            "apiKey": {
                "type": "http",
                "scheme": "bearer",
                "description": "The agency's API key (`tthc-bus keys new AGENCY`): "
                "`Authorization: Bearer tthc_<id>_<secret>`. The requester is the key's agency.",
            }
        }
        document["paths"][LOOKUPS_PATH]["post"]["security"] = [{"apiKey": []}]
        body = components[LookupHttpRequest.__name__]
        body["properties"]["datasets"]["items"]["enum"] = catalog.names()
        by_kind: dict[str, list[str]] = {}
        for info in catalog.datasets.values():
            by_kind.setdefault(info.subject, []).append(info.name)
        body["oneOf"] = [
            {
                "properties": {
                    "subject": {"required": [kind], "properties": {kind: {"type": "string"}}},
                    "datasets": {"items": {"enum": sorted(names)}},
                }
            }
            for kind, names in sorted(by_kind.items())
        ]
        # Without datasets, a procedure of the catalogue whose datasets take one kind of subject.
        prefills = []
        for procedure in procedures.all():
            kinds = {catalog.datasets[d].subject for d in procedure.datasets if d in catalog}
            if len(kinds) == 1:
                (kind,) = kinds
                prefills.append(
                    {
                        "required": ["procedure_code"],
                        "properties": {
                            "procedure_code": {"const": procedure.code},
                            "subject": {
                                "required": [kind],
                                "properties": {kind: {"type": "string"}},
                            },
                        },
                    }
                )
        body["anyOf"] = [{"required": ["datasets"]}, *prefills]
        declare_every_status(document)
        typed_records(components, catalog)
        add_examples(document, procedures.all(), getattr(app.state, "discovery", None))
        app.openapi_schema = document
    return app.openapi_schema


def add_document(app: FastAPI, catalog: Catalog, procedures: ProcedureCatalogue) -> None:
    """`/openapi.json` as `lookup_openapi` makes it, and its pages `/docs` and `/redoc`."""
    app.openapi = lambda: lookup_openapi(app, catalog, procedures)  # type: ignore[method-assign]
    add_docs_routes(app)


class KeyGuard:
    """The gateway's API-key check: who is calling, and may the key do this. Every refusal is
    audited before it is answered."""

    def __init__(self, keyring: Keyring, audit: AuditRecorder) -> None:
        self.keyring = keyring
        self.audit = audit  # replaced by one over the client's producer once it has started

    async def refuse(
        self, status: int, reason: str, key_id: str | None = None, agency: str | None = None
    ) -> JSONResponse:
        """401 or 403 problem+json, after the refusal is in the audit trail."""
        outcome: Literal["unauthenticated", "forbidden"] = (
            "unauthenticated" if status == 401 else "forbidden"
        )
        event = self.audit.authentication(
            channel="http", outcome=outcome, reason=reason, agency=agency, key_id=key_id
        )
        await self.audit.record(event)
        REFUSED.labels(outcome).inc()
        if status == 401:
            return problem(401, "Not authenticated", reason, headers={"WWW-Authenticate": "Bearer"})
        return problem(403, "Forbidden", reason)

    async def authenticate(self, http: Request, role: Role) -> Authenticated | JSONResponse:
        presented = bearer_key(http.headers.get("authorization"))
        if presented is None:
            return await self.refuse(
                401, "no API key: send the header 'Authorization: Bearer <key>'"
            )
        found = self.keyring.authenticate_cached(presented)
        if found is None:  # a key not seen lately: scrypt, ~50 ms, off the event loop
            found = await asyncio.to_thread(self.keyring.authenticate, presented)
        if isinstance(found, AuthFailure):
            return await self.refuse(401, found.reason, found.key_id)
        record = found.record
        if role not in record.roles:
            return await self.refuse(
                403,
                f"key {record.id} of agency {record.agency!r} has roles {record.roles}; this "
                f"needs role {role!r}",
                record.id,
                record.agency,
            )
        return found


def gateway_signer(settings: Settings) -> RequestSigner:
    """The gateway's own key (checked by `Keyring.from_settings`), which signs what it sends
    for the agencies it authenticated."""
    if settings.gateway.key is None:
        raise SettingsError(
            "gateway.key is not set (env TTHC_BUS_GATEWAY__KEY): the gateway signs the requests "
            "it sends with a key of role 'gateway' (tthc-bus keys new BUS --role gateway)"
        )
    try:
        return RequestSigner(settings.gateway.key.get_secret_value())
    except AuthError as exc:
        raise SettingsError(f"gateway.key: {exc}") from None


def add_audit_route(
    app: FastAPI, guard: KeyGuard, ledger_access: LedgerAccess, pseudonymize: Pseudonymizer
) -> None:
    """`GET /v1/audit`: who accessed a subject's data, for auditor keys (PDP Law 91/2025)."""

    @app.get(
        "/v1/audit",
        response_model=AuditAnswer,
        summary="Who accessed a subject's data: the data subject's right to know (auditor keys)",
        responses={
            400: problem_response("Invalid query: `errors` names each parameter."),
            401: LOOKUP_RESPONSES[401],
            403: problem_response("The key is not an auditor's (role 'auditor')."),
        },
        openapi_extra={"security": [{"apiKey": []}]},
    )
    async def get_audit(
        http: Request,
        subject: Annotated[
            str, Query(description="The personal id or enterprise code, as issued.")
        ],
        since: Annotated[datetime | None, Query(description="From this time (ISO 8601).")] = None,
        until: Annotated[datetime | None, Query(description="Until this time.")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        caller = await guard.authenticate(http, "auditor")
        if isinstance(caller, JSONResponse):
            return caller
        try:
            Subject.model_validate(
                {"personal_id": subject} if len(subject) == 12 else {"enterprise_code": subject}
            )
        except ValidationError as exc:
            return invalid(
                [{"field": "subject", "message": e["msg"], "type": e["type"]} for e in exc.errors()]
            )
        records = await ledger_access.query(pseudonymize(subject), since, until, limit)
        answer = AuditAnswer(subject=pseudonymize(subject), accesses=records)
        return Response(answer.model_dump_json(), media_type=JSON)


def discovery_of(settings: Settings, catalog: Catalog, procedures: ProcedureCatalogue) -> Discovery:
    return Discovery(Policy(catalog, procedures, settings.policy.grants).check())


def add_discovery_routes(app: FastAPI, guard: KeyGuard, discovery: Discovery) -> None:
    """What the bus serves and what the caller may ask for (bus/discovery.py)."""
    app.state.discovery = discovery  # for the document's examples (bus/openapi.py)

    @app.get(
        "/v1/datasets",
        response_model=list[DatasetDescription],
        summary="Every dataset the bus serves: its source, the subject it is asked by, its "
        "fields and the procedures that need it",
    )
    async def list_datasets() -> list[DatasetDescription]:
        return discovery.datasets()

    @app.get(
        "/v1/datasets/allowed",
        response_model=AllowedDatasets,
        summary="What the calling agency may ask for: each dataset, for which procedures and "
        "purposes, with the fields granted",
        responses={
            401: LOOKUP_RESPONSES[401],
            403: problem_response("The key may not look up (role 'lookup')."),
        },
        openapi_extra={"security": [{"apiKey": []}]},
    )
    async def allowed_datasets(http: Request) -> Response:
        caller = await guard.authenticate(http, "lookup")
        if isinstance(caller, JSONResponse):
            return caller
        answer = discovery.allowed(caller.record.agency)
        return Response(answer.model_dump_json(), media_type=JSON)


def add_ops_routes(app: FastAPI, ops: GatewayOps) -> None:
    """The operator's live view: its data and the page that shows it (bus/ops)."""

    @app.get(
        "/v1/ops/status",
        response_model=dict[str, Any],
        summary="Every process, national database, stream, subscription and consumer group, "
        "with what is unhealthy and the service quality of the last hour (no personal data)",
    )
    async def ops_status() -> dict[str, Any]:
        return await ops.board.snapshot()

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(DASHBOARD_HTML)


def add_info_routes(
    app: FastAPI, client: LookupClient, listed: list[Procedure], ops: GatewayOps
) -> None:
    """The procedure catalogue, health and metrics."""

    @app.get(
        "/v1/procedures",
        response_model=list[Procedure],
        summary="The TTHC procedures the bus knows, with the datasets each needs",
    )
    async def list_procedures() -> list[Procedure]:
        return listed

    @app.get(
        "/healthz",
        response_model=Healthy,
        responses={503: {"model": Unhealthy, "description": "Not taking lookups."}},
    )
    async def healthz() -> JSONResponse:
        if not client.healthy:
            return JSONResponse({"status": "unhealthy", "reason": "reply reader stopped"}, 503)
        return JSONResponse({"status": "ok", "in_flight": client.in_flight})

    async def replies() -> str | None:
        return None if client.healthy else "the reply reader stopped"

    async def broker() -> str | None:
        producer = client.producer
        return "not started" if producer is None else await producer.reachable()

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Not ready: the checks say why."}},
    )
    async def readyz() -> JSONResponse:
        ready, results = await readiness(
            {"replies": replies, "broker": broker, "maintenance": ops.maintenance.check}
        )
        body = {"status": "ready" if ready else "not ready", "checks": results}
        return JSONResponse(body, 200 if ready else 503)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {
                "description": "Prometheus text exposition.",
                "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
            }
        },
    )
    async def metrics() -> Response:
        await ops.board.fresh_lags()  # tthc_consumer_group_lag_messages: read while scraped
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def to_request(
    settings: Settings, client: LookupClient, body: LookupHttpRequest, http: Request, agency: str
) -> LookupRequest:
    """The Kafka request of a validated body, for the key's agency."""
    deadline_ms = min(
        body.deadline_ms or settings.lookup.default_deadline_ms, settings.lookup.max_deadline_ms
    )
    # The parts are models validated with the body: pydantic does not validate them again.
    return LookupRequest(
        producer=settings.gateway.instance_id,
        deadline=deadline_in(deadline_ms),
        traceparent=continue_trace(http.headers.get("traceparent")),
        tracestate=carried_tracestate(http.headers),
        requester=Requester(
            agency_code=agency, system=body.requester.system, officer=body.requester.officer
        ),
        procedure_code=body.procedure_code,
        dossier_id=body.dossier_id,
        purpose=body.purpose,
        legal_basis=body.legal_basis,
        subject=body.subject,
        datasets=body.datasets or [],
        reply_to=client.reply_to,
    )


def relay(request: LookupRequest, reply: Reply | None, instance: str) -> Response:
    """The worker's reply as it came, with the HTTP status of its lookup status."""
    trace = {"traceparent": request.traceparent or ""}
    if reply is None:
        return no_reply(request, instance, trace)
    status, codes = reply.status, reply.error_codes()
    if OVERLOADED in codes:
        return refused_by_worker(reply)
    LOOKUPS.labels(status).inc()
    return Response(
        reply.body, status_code=http_status(status, codes), headers=trace, media_type=JSON
    )


async def _connect(
    settings: Settings, client: LookupClient, guard: KeyGuard, pseudonymize: Pseudonymizer
) -> Outbox:
    """At the start: the client connected, and the audit recorder on its producer."""
    await client.start()
    assert client.producer is not None
    outbox = Outbox.over(client.producer, settings.gateway.instance_id)
    guard.audit = AuditRecorder(
        outbox,
        pseudonymize,
        enabled=settings.audit.enabled,
        timeout_s=settings.audit.write_timeout_ms / 1000,
    )
    return outbox


def create_gateway(settings: Settings, catalog: Catalog) -> FastAPI:
    procedures = load_procedures(settings.lookup, catalog)
    checks = LookupChecks.of_catalogues(catalog, procedures)
    instance = settings.gateway.instance_id
    keyring = Keyring.from_settings(settings.auth, settings.gateway)
    client = LookupClient(
        settings.kafka.resolved_bootstrap(),
        reply_partition=settings.gateway.reply_partition,
        producer_name=instance,
        max_in_flight=settings.gateway.max_in_flight,
        signer=gateway_signer(settings),
    )
    pseudonymize = Pseudonymizer.from_settings(settings.audit)
    guard = KeyGuard(keyring, AuditRecorder(None, pseudonymize))
    ledger_access = LedgerAccess(settings.audit.ledger_url)
    refuse, authenticate = guard.refuse, guard.authenticate

    ops = GatewayOps(settings, client, ledger_access)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await ops.start(await _connect(settings, client, guard, pseudonymize))
        try:
            yield
        finally:
            await ops.stop()
            await client.stop()
            ledger_access.close()

    app = FastAPI(
        title="tthc-bus gateway",
        version="1",
        description="Cross-agency data lookups for TTHC systems.",
        lifespan=lifespan,
        # Served by add_docs_routes from packaged assets: FastAPI's pages load them from outside.
        docs_url=None,
        redoc_url=None,
    )

    add_error_handlers(app)

    @app.post(
        LOOKUPS_PATH,
        response_model=LookupResponse,
        summary="Look up a subject's data in the national databases, for a dossier",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": schema_ref(LookupHttpRequest)}},
            }
        },
        responses=LOOKUP_RESPONSES,
    )
    async def post_lookup(http: Request) -> Response:
        try:
            client.admission.check()  # before reading the body: a refusal must cost nothing
        except Overloaded as exc:
            return overloaded(str(exc), exc.retry_after_s)
        caller = await authenticate(http, "lookup")
        if isinstance(caller, JSONResponse):
            return caller
        agency = caller.record.agency
        try:
            body = LookupHttpRequest.model_validate_json(
                await read_body(http, settings.gateway.max_body_bytes)
            )
        except (ValidationError, BodyTooLarge) as exc:
            return refused_body(exc)
        if body.requester.agency_code not in (None, agency):
            return await refuse(
                403,
                f"requester.agency_code {body.requester.agency_code!r} is not the agency of the "
                f"API key ({agency!r}): the requester is the key's agency",
                caller.record.id,
                agency,
            )
        datasets, problems = checks.check(body.procedure_code, body.datasets, body.subject)
        if problems:
            return invalid(problems)
        body = body.model_copy(update={"datasets": datasets})
        request = to_request(settings, client, body, http, agency)
        with LATENCY.time():
            try:
                reply = await client.exchange(request)
            except Overloaded as exc:
                return overloaded(str(exc), exc.retry_after_s)
            except BusUnavailable as exc:
                REFUSED.labels("bus_unavailable").inc()
                return problem(503, "Bus unavailable", str(exc), headers={"Retry-After": "1"})
        return relay(request, reply, instance)

    add_audit_route(app, guard, ledger_access, pseudonymize)
    add_discovery_routes(app, guard, discovery_of(settings, catalog, procedures))
    add_info_routes(app, client, procedures.all(), ops)
    add_ops_routes(app, ops)
    add_document(app, catalog, procedures)
    app.state.post_lookup = post_lookup
    return app


class LookupFastPath:
    """ASGI: `POST /v1/lookups` straight to its route function, everything else through FastAPI.

    The route is FastAPI's (its OpenAPI entry, its one implementation); only the dozen ASGI
    middleware layers in front of it are skipped on the hot path, about a fifth of the gateway's
    CPU per lookup. The route catches what it expects; anything else is a 500 problem+json here.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._post_lookup = app.state.post_lookup

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != LOOKUPS_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            response = await self._post_lookup(Request(scope, receive))
        except Exception as exc:
            log.error("POST %s failed: %s", LOOKUPS_PATH, exception_site(exc))
            response = problem(500, "Internal error", "the gateway could not handle the request")
        await response(scope, receive, send)


def create_gateway_asgi(settings: Settings, catalog: Catalog) -> LookupFastPath:
    """What the gateway process serves: the FastAPI app behind the lookup fast path."""
    return LookupFastPath(create_gateway(settings, catalog))


__all__ = ["LookupHttpRequest", "Reply", "create_gateway", "create_gateway_asgi", "http_status"]
