"""What the gateway's OpenAPI document says beyond FastAPI's: the typed record of each dataset,
and an example of every request and answer.

The records: a `DatasetResult` is one variant per dataset of the catalogue, told apart by its
`dataset` (a discriminator), whose `data` is that dataset's normalized schema as the connector
sends it (bus/catalog.py `DatasetInfo.schema`, fields without a value left out, any top-level
field possibly withheld by policy).

The examples are fake Vietnamese data built with the bus's own models (a field renamed or a rule
changed breaks their construction), and tests/unit/test_openapi.py validates each one against its
model and against the document itself.
"""

from __future__ import annotations

import copy
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bus.audit.access import AuditAnswer
from bus.audit.ledger import AccessRecord
from bus.catalog import Catalog
from bus.identifiers import enterprise_check_digit
from bus.ops.report import build_report
from bus.ops.sla import SlaRow
from bus.procedures import Procedure
from bus.schemas import DatasetError, DatasetResult, LookupResponse
from bus.schemas.audit import AuditedDataset
from bus.schemas.citizen import Address, Citizen, CodedValue, PartialDate, Relative
from bus.schemas.discovery import AllowedDataset, AllowedDatasets, AllowedProcedure
from bus.schemas.enterprise import BusinessActivity, Enterprise, LegalRepresentative
from bus.schemas.lookup import Provenance, WithheldField
from bus.schemas.problem import FieldError, Problem

SCHEMA_REF = "#/components/schemas/{model}"
RESULT_VARIANT = "DatasetResult.{dataset}"
JSON = "application/json"
PROBLEM_JSON = "application/problem+json"


# --- The typed records ------------------------------------------------------------------------


def _omitting_nulls(schema: dict[str, Any]) -> None:
    """The schema of a model dumped with `exclude_none` (as the lookup connector does): a field
    that may be None is left out instead, so it is not required and never null."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return
    optional: set[str] = set()
    for name, prop in properties.items():
        options = prop.get("anyOf")
        if not isinstance(options, list) or {"type": "null"} not in options:
            continue
        optional.add(name)
        kept = [option for option in options if option != {"type": "null"}]
        rest = {
            k: v for k, v in prop.items() if k != "anyOf" and not (k == "default" and v is None)
        }
        properties[name] = rest | kept[0] if len(kept) == 1 else rest | {"anyOf": kept}
    if "required" in schema:
        schema["required"] = [name for name in schema["required"] if name not in optional]
        if not schema["required"]:
            del schema["required"]


def typed_records(components: dict[str, Any], catalog: Catalog) -> None:
    """`DatasetResult` in `components` as a oneOf of one variant per dataset of `catalog`, each
    with its `dataset` constant and its record's schema; the records' models join `components`."""
    infos = [catalog.datasets[name] for name in catalog.names()]
    if not infos:
        return
    models: list[type[BaseModel]] = list(dict.fromkeys(info.schema for info in infos))
    refs, definitions = models_json_schema(
        [(model, "serialization") for model in models], ref_template=SCHEMA_REF
    )
    names = {model: refs[(model, "serialization")]["$ref"].rsplit("/", 1)[1] for model in models}
    defs: dict[str, Any] = definitions.get("$defs", {})
    for schema in defs.values():
        _omitting_nulls(schema)
    for model in models:
        # Policy may withhold any top-level field (a record used nested elsewhere, which none
        # is, would be documented as loosely there: still true of what is sent).
        defs[names[model]].pop("required", None)
    for name, schema in defs.items():
        if components.get(name, schema) != schema:
            raise ValueError(f"two different schemas named {name!r} in the OpenAPI")
        components[name] = schema
    base = components[DatasetResult.__name__]
    variants: dict[str, str] = {}
    for info in infos:
        variant = copy.deepcopy(base)
        variant["title"] = f"{DatasetResult.__name__} of {info.name}"
        variant["properties"]["dataset"] = {"type": "string", "const": info.name}
        variant["properties"]["data"] = {
            "$ref": SCHEMA_REF.format(model=names[info.schema]),
            "description": (f"{info.description} " if info.description else "")
            + "Fields without a value are left out; fields policy did not grant are left out "
            "and listed in `withheld`.",
        }
        key = RESULT_VARIANT.format(dataset=info.name)
        components[key] = variant
        variants[info.name] = SCHEMA_REF.format(model=key)
    components[DatasetResult.__name__] = {
        "title": DatasetResult.__name__,
        "description": "One dataset's record; its schema is the one of its `dataset`: "
        + ", ".join(f"`{info.name}` -> {names[info.schema]}" for info in infos)
        + ".",
        "oneOf": [{"$ref": ref} for ref in variants.values()],
        "discriminator": {"propertyName": "dataset", "mapping": variants},
    }


# --- The examples -----------------------------------------------------------------------------

# Fake people and an enterprise: the personal ids agree with their birth year and sex (digit 4
# century and sex, digits 5-6 the year), the enterprise code has its MST check digit.
CITIZEN_ID = "001090012345"  # Hà Nội, male, 1990
BRIDE_ID = "079195004321"  # Hồ Chí Minh City, female, 1995


def _enterprise_code(first_nine: str) -> str:
    digit = enterprise_check_digit(first_nine)
    if digit is None:
        raise ValueError(f"{first_nine} is a prefix no enterprise code has")
    return f"{first_nine}{digit}"


ENTERPRISE_CODE = _enterprise_code("010123456")
AT = datetime(2026, 3, 12, 2, 15, 4, 120000, tzinfo=UTC)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
GATEWAY, WORKER = "gateway-1", "worker-1"
REQUEST_ID = "6f1c2e0a9b7d4c3e8a5f0b1d2c3e4f50"
MAX_BODY_BYTES = 1 << 20  # the default of gateway.max_body_bytes, as the 413 example says


def _example(summary: str, value: Any) -> dict[str, Any]:
    return {"summary": summary, "value": value}


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True)


HANOI_HOME = Address(
    detail="Số 12 ngõ 34 phố Đội Cấn",
    province_code="01",
    province_name="Thành phố Hà Nội",
    commune_code="00004",
    commune_name="Phường Ba Đình",
    conversion="exact",
)

CITIZEN = Citizen(
    personal_id=CITIZEN_ID,
    full_name="Nguyễn Văn An",
    family_name="Nguyễn",
    middle_name="Văn",
    given_name="An",
    birth_date=PartialDate(year=1990, month=5, day=14, precision="day"),
    sex="male",
    ethnicity=CodedValue(code="01", name="Kinh", code_list="ethnicity-2008"),
    nationality="VN",
    hometown=Address(province_code="01", province_name="Thành phố Hà Nội"),
    permanent_address=HANOI_HOME,
    current_address=HANOI_HOME,
    father=Relative(full_name="Nguyễn Văn Bình", personal_id="001062001234", relation="Cha"),
    mother=Relative(full_name="Trần Thị Hoa", personal_id="001165002468", relation="Mẹ"),
)

ENTERPRISE = Enterprise(
    enterprise_code=ENTERPRISE_CODE,
    name="Công ty TNHH Thương mại Dịch vụ Sông Hồng",
    short_name="Sông Hồng Co., Ltd",
    enterprise_type=CodedValue(
        code="2",
        name="Công ty trách nhiệm hữu hạn hai thành viên trở lên",
        code_list="enterprise-type",
    ),
    status=CodedValue(code="1", name="Đang hoạt động", code_list="enterprise-status"),
    founding_date=PartialDate(year=2018, month=9, day=3, precision="day"),
    charter_capital=5_000_000_000,
    head_office=Address(
        detail="Số 8 phố Trần Duy Hưng",
        province_code="01",
        province_name="Thành phố Hà Nội",
        commune_code="00167",
        commune_name="Phường Cầu Giấy",
        conversion="exact",
    ),
    representatives=[
        LegalRepresentative(personal_id=CITIZEN_ID, full_name="Nguyễn Văn An", title="Giám đốc")
    ],
    activities=[
        BusinessActivity(
            industry=CodedValue(
                code="4659",
                name="Bán buôn máy móc, thiết bị và phụ tùng máy khác",
                code_list="vsic-2018",
            ),
            main=True,
        )
    ],
)


def _provenance(source: str, latency_ms: float) -> Provenance:
    return Provenance(source=source, fetched_at=AT, latency_ms=latency_ms)


def _result(dataset: str, record: BaseModel, withheld: list[str] | None = None) -> DatasetResult:
    data = _dump(record)
    granted_only = {k: v for k, v in data.items() if k not in (withheld or [])}
    reason = "not granted to agency 'H26.30' for procedure 'SB.KET-HON'"
    return DatasetResult(
        dataset=dataset,
        data=granted_only,
        provenance=_provenance(dataset.split(".", maxsplit=1)[0], 41.7),
        withheld=[WithheldField(field=name, reason=reason) for name in withheld or []],
    )


def _reply(status: Any, results: list[DatasetResult], errors: list[DatasetError]) -> dict[str, Any]:
    reply = LookupResponse(
        message_id="a3b9c1d2e4f5061728394a5b6c7d8e9f",
        correlation_id=REQUEST_ID,
        request_id=REQUEST_ID,
        time=AT,
        producer=WORKER,
        traceparent=TRACEPARENT,
        status=status,
        results=results,
        errors=errors,
    )
    return reply.model_dump(mode="json")


def _error(dataset: str, code: str, message: str, *, retryable: bool) -> DatasetError:
    return DatasetError(
        dataset=dataset,
        source=dataset.split(".", maxsplit=1)[0],
        code=code,
        message=message,
        retryable=retryable,
    )


def _problem(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return _dump(Problem(status=status, title=title, detail=detail, **extra))


# Withheld from agency H26.30 (settings.toml: a civil-status office registering a marriage).
NOT_FOR_MARRIAGE = ["old_id_number", "ethnicity", "religion", "hometown", "father", "mother"]
NOT_FOR_MARRIAGE += ["spouse", "household_head"]

LOOKUP_REQUESTS = {
    "identity": _example(
        "A citizen's identity, for a dossier of procedure 1.004222",
        {
            "requester": {"system": "dvc-ha-noi", "officer": "can-bo-tiep-nhan-07"},
            "procedure_code": "1.004222",
            "dossier_id": "HS-2026-000123",
            "purpose": "Xác minh nhân thân khi giải quyết hồ sơ",
            "legal_basis": "Nghị định 194/2025/NĐ-CP",
            "subject": {"personal_id": CITIZEN_ID},
            "datasets": ["population.identity"],
            "deadline_ms": 3000,
        },
    ),
    "prefill": _example(
        "A dossier prefill: no datasets, the procedure's (marriage registration)",
        {
            "requester": {"system": "hotich-ha-noi", "officer": "cong-chuc-tu-phap-02"},
            "procedure_code": "SB.KET-HON",
            "dossier_id": "KH-2026-004512",
            "purpose": "Đăng ký kết hôn",
            "legal_basis": "Luật Hộ tịch 2014",
            "subject": {"personal_id": BRIDE_ID},
        },
    ),
    "enterprise": _example(
        "An enterprise's registration record, by its enterprise code",
        {
            "requester": {"system": "dkkd-ha-noi", "officer": "chuyen-vien-03"},
            "procedure_code": "SB.DKDN-THAY-DOI",
            "dossier_id": "DN-2026-000789",
            "purpose": "Đăng ký thay đổi nội dung đăng ký doanh nghiệp",
            "legal_basis": "Luật Doanh nghiệp 2020",
            "subject": {"enterprise_code": ENTERPRISE_CODE},
            "datasets": ["enterprise.profile"],
        },
    ),
}

UNAUTHENTICATED = _example(
    "No API key",
    _problem(401, "Not authenticated", "no API key: send the header 'Authorization: Bearer <key>'"),
)
INTERNAL = _example(
    "Something unexpected",
    _problem(500, "Internal error", "the gateway could not handle the request"),
)


def lookup_examples() -> dict[str, dict[str, dict[str, Any]]]:
    """`POST /v1/lookups`: status -> media type -> name -> example."""
    identity = _result("population.identity", CITIZEN)
    return {
        "200": {
            JSON: {
                "complete": _example(
                    "complete: every dataset answered",
                    _reply("complete", [identity], []),
                ),
                "partial": _example(
                    "partial: some fields withheld by policy, one source unavailable",
                    _reply(
                        "partial",
                        [_result("population.identity", CITIZEN, NOT_FOR_MARRIAGE)],
                        [
                            _error(
                                "civil.marital_status",
                                "unavailable",
                                "civil: connection refused",
                                retryable=True,
                            )
                        ],
                    ),
                ),
                "not_found": _example(
                    "not_found: a well-formed id nobody has",
                    _reply(
                        "not_found",
                        [],
                        [
                            _error(
                                "population.identity",
                                "not_found",
                                "population: no citizen has this personal id",
                                retryable=False,
                            )
                        ],
                    ),
                ),
            }
        },
        "400": {
            PROBLEM_JSON: {
                "invalid": _example(
                    "A personal id of 11 digits",
                    _problem(
                        400,
                        "Invalid lookup request",
                        "subject.personal_id: Value error, personal id must be exactly 12 "
                        "digits, got 11 characters",
                        errors=[
                            FieldError(
                                field="subject.personal_id",
                                message="Value error, personal id must be exactly 12 digits, "
                                "got 11 characters",
                                type="value_error",
                            )
                        ],
                    ),
                )
            }
        },
        "401": {PROBLEM_JSON: {"unauthenticated": UNAUTHENTICATED}},
        "403": {
            JSON: {
                "denied": _example(
                    "denied: the policy grants none of the datasets asked for",
                    _reply(
                        "denied",
                        [],
                        [
                            _error(
                                "licence.driver",
                                "not_granted",
                                "no policy grants agency 'H26.30' dataset 'licence.driver' "
                                "for procedure 'SB.KET-HON'",
                                retryable=False,
                            )
                        ],
                    ),
                )
            },
            PROBLEM_JSON: {
                "forbidden": _example(
                    "The body names another agency than the key's",
                    _problem(
                        403,
                        "Forbidden",
                        "requester.agency_code 'H26.22' is not the agency of the API key "
                        "('H26.30'): the requester is the key's agency",
                    ),
                )
            },
        },
        "413": {
            PROBLEM_JSON: {
                "too_large": _example(
                    "A body longer than gateway.max_body_bytes",
                    _problem(
                        413,
                        "Request body too large",
                        f"the body is longer than {MAX_BODY_BYTES} bytes (gateway.max_body_bytes)",
                    ),
                )
            }
        },
        "500": {PROBLEM_JSON: {"internal": INTERNAL}},
        "502": {
            JSON: {
                "failed": _example(
                    "failed: no dataset could be read",
                    _reply(
                        "failed",
                        [],
                        [
                            _error(
                                "population.identity",
                                "source_fault",
                                "population: the service answered with a SOAP fault",
                                retryable=True,
                            )
                        ],
                    ),
                )
            }
        },
        "503": {
            PROBLEM_JSON: {
                "overloaded": _example(
                    "Over capacity: refused at once",
                    _problem(
                        503,
                        "Bus over capacity",
                        "256 lookups are in flight, the most this client sends at once "
                        "(max_in_flight); retry after 1 s",
                        retry_after_s=1,
                    ),
                ),
                "maintenance": _example(
                    "The gateway is in maintenance",
                    _problem(
                        503,
                        "Bus over capacity",
                        "this gateway is in maintenance (upgrade): it finishes the lookups in "
                        "flight and takes no new one; retry after 10 s, or on another gateway",
                        retry_after_s=10,
                    ),
                ),
                "unavailable": _example(
                    "Kafka cannot be reached",
                    _problem(
                        503,
                        "Bus unavailable",
                        "the request could not be handed to Kafka (no acknowledgement before "
                        "the deadline)",
                    ),
                ),
            }
        },
        "504": {
            JSON: {
                "partial": _example(
                    "The deadline passed: what is known, and the datasets left without answer",
                    _reply(
                        "partial",
                        [identity],
                        [
                            _error(
                                "insurance.participation",
                                "deadline_exceeded",
                                "no answer from the source before the request's deadline",
                                retryable=True,
                            )
                        ],
                    ),
                )
            }
        },
    }


AUDIT_PARAMETERS = {
    "subject": CITIZEN_ID,
    "since": "2026-03-01T00:00:00+07:00",
    "until": "2026-04-01T00:00:00+07:00",
    "limit": 50,
}


def audit_examples() -> dict[str, dict[str, dict[str, Any]]]:
    """`GET /v1/audit`: status -> media type -> name -> example."""
    access = AccessRecord(
        time=AT,
        agency="H26.22",
        system="dvc-ha-noi",
        officer="can-bo-tiep-nhan-07",
        procedure_code="1.004222",
        dossier_id="HS-2026-000123",
        purpose="Xác minh nhân thân khi giải quyết hồ sơ",
        legal_basis="Nghị định 194/2025/NĐ-CP",
        kind="release",
        outcome="released",
        channel="http",
        datasets=[
            AuditedDataset(
                dataset="population.identity",
                source="population",
                outcome="found",
                fields=sorted(CITIZEN.model_dump(exclude_none=True)),
            )
        ],
        event_id=f"{REQUEST_ID}.release",
    )
    answer = AuditAnswer(
        subject="9c2f4b6e8a0d1c3e5f7a9b1d3c5e7f90a2c4e6081b3d5f7092a4c6e8b0d2f416",
        accesses=[access],
    )
    return {
        "200": {JSON: {"accesses": _example("One release of a citizen's identity", _dump(answer))}},
        "400": {
            PROBLEM_JSON: {
                "invalid": _example(
                    "A limit past 1000",
                    _problem(
                        400,
                        "Invalid lookup request",
                        "query.limit: Input should be less than or equal to 1000",
                        errors=[
                            FieldError(
                                field="query.limit",
                                message="Input should be less than or equal to 1000",
                                type="less_than_equal",
                            )
                        ],
                    ),
                )
            }
        },
        "401": {PROBLEM_JSON: {"unauthenticated": UNAUTHENTICATED}},
        "403": {
            PROBLEM_JSON: {
                "forbidden": _example(
                    "A key without the auditor role",
                    _problem(
                        403,
                        "Forbidden",
                        "key 3f9a1c7e5b2d8046 of agency 'H26.22' has roles ['lookup']; this "
                        "needs role 'auditor'",
                    ),
                )
            }
        },
        "500": {PROBLEM_JSON: {"internal": INTERNAL}},
    }


def info_examples(procedures: list[Procedure]) -> dict[str, dict[str, Any]]:
    """The other routes: path -> status -> media type -> name -> example."""
    quality = SlaRow(
        source="population",
        agency="H26.22",
        requests=1284,
        found=1270,
        not_found=11,
        errors=3,
        deadline_misses=2,
        p50_ms=38.5,
        p95_ms=96.0,
        p99_ms=210.3,
    )
    status = build_report({}, {}, AT) | {"quality": [asdict(quality)], "quality_window_s": 3600.0}
    internal = {PROBLEM_JSON: {"internal": INTERNAL}}
    return {
        "/v1/procedures": {
            "200": {
                JSON: {
                    "catalogue": _example(
                        "The first procedures of the catalogue",
                        [p.model_dump(mode="json") for p in procedures[:2]],
                    )
                }
            },
            "500": internal,
        },
        "/healthz": {
            "200": {JSON: {"ok": _example("Taking lookups", {"status": "ok", "in_flight": 3})}},
            "503": {
                JSON: {
                    "unhealthy": _example(
                        "The reply reader stopped",
                        {"status": "unhealthy", "reason": "reply reader stopped"},
                    )
                }
            },
            "500": internal,
        },
        "/readyz": {
            "200": {
                JSON: {
                    "ready": _example(
                        "Every check passes",
                        {
                            "status": "ready",
                            "checks": {"replies": "ok", "broker": "ok", "maintenance": "ok"},
                        },
                    )
                }
            },
            "503": {
                JSON: {
                    "maintenance": _example(
                        "In maintenance",
                        {
                            "status": "not ready",
                            "checks": {
                                "replies": "ok",
                                "broker": "ok",
                                "maintenance": "in maintenance: upgrade",
                            },
                        },
                    )
                }
            },
            "500": internal,
        },
        "/metrics": {
            "200": {
                "text/plain": {
                    "sample": _example(
                        "Prometheus text exposition (an excerpt)",
                        "# HELP tthc_gateway_lookups_total Lookups answered by the gateway\n"
                        "# TYPE tthc_gateway_lookups_total counter\n"
                        'tthc_gateway_lookups_total{status="complete"} 1270.0\n'
                        'tthc_gateway_lookups_total{status="not_found"} 11.0\n',
                    )
                }
            },
            "500": internal,
        },
        "/v1/ops/status": {
            "200": {JSON: {"status": _example("A bus with no process reporting yet", status)}},
            "500": internal,
        },
    }


def discovery_examples(discovery: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """`/v1/datasets` and `/v1/datasets/allowed`, from this bus's own catalogue and grants
    (bus/discovery.py): path -> status -> media type -> name -> example."""
    datasets = discovery.datasets()
    # Made up: the document is public, and an agency's real grants are shown only to its key.
    first = datasets[0]
    allowed = AllowedDatasets(
        agency="H99.01",
        datasets=[
            AllowedDataset(
                dataset=first.name,
                source=first.source,
                subject=first.subject,
                procedures=[
                    AllowedProcedure(
                        code="1.004222",
                        name="Xác minh nhân thân",
                        purposes=["Xác minh nhân thân khi giải quyết hồ sơ"],
                        fields=None,
                    ),
                    AllowedProcedure(
                        code="SB.KET-HON",
                        name="Đăng ký kết hôn",
                        purposes=["Đăng ký kết hôn"],
                        fields=[f.name for f in first.fields[:2]],
                    ),
                ],
            )
        ],
    )
    agency = allowed.agency
    internal = {PROBLEM_JSON: {"internal": INTERNAL}}
    return {
        "/v1/datasets": {
            "200": {
                JSON: {
                    "catalogue": _example(
                        "The first datasets of the catalogue",
                        [d.model_dump(mode="json") for d in datasets[:2]],
                    )
                }
            },
            "500": internal,
        },
        "/v1/datasets/allowed": {
            "200": {
                JSON: {
                    "grants": _example(
                        f"What agency {agency} may ask for (made up: one dataset, two procedures)",
                        allowed.model_dump(mode="json"),
                    )
                }
            },
            "401": {PROBLEM_JSON: {"unauthenticated": UNAUTHENTICATED}},
            "403": {
                PROBLEM_JSON: {
                    "forbidden": _example(
                        "An auditor's key: it may not look up",
                        _problem(
                            403,
                            "Forbidden",
                            "key 5c2e8a1f9d3b7046 of agency 'AUDIT' has roles ['auditor']; this "
                            "needs role 'lookup'",
                        ),
                    )
                }
            },
            "500": internal,
        },
    }


def add_response_examples(
    operation: dict[str, Any], examples: dict[str, dict[str, dict[str, Any]]]
) -> None:
    """Each example under its status and media type; a media type the document names
    otherwise (the Prometheus one) takes the examples given for its base type."""
    for status, by_media in examples.items():
        content = operation["responses"][status]["content"]
        for media, named in by_media.items():
            target = media if media in content else next(m for m in content if m.startswith(media))
            content[target]["examples"] = named


def add_examples(
    document: dict[str, Any], procedures: list[Procedure], discovery: Any = None
) -> None:
    """Every operation of the gateway with examples of its requests and answers."""
    paths = document["paths"]
    lookups = paths["/v1/lookups"]["post"]
    lookups["requestBody"]["content"][JSON]["examples"] = LOOKUP_REQUESTS
    add_response_examples(lookups, lookup_examples())
    audit = paths["/v1/audit"]["get"]
    for parameter in audit["parameters"]:
        parameter["example"] = AUDIT_PARAMETERS[parameter["name"]]
    add_response_examples(audit, audit_examples())
    for path, examples in info_examples(procedures).items():
        add_response_examples(paths[path]["get"], examples)
    if discovery is not None and "/v1/datasets" in paths:
        for path, examples in discovery_examples(discovery).items():
            add_response_examples(paths[path]["get"], examples)
