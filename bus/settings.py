"""Settings: settings.toml, overridden by environment variables.

Every key can be set from the environment with the prefix `TTHC_BUS_` and `__` between levels,
e.g. `TTHC_BUS_KAFKA__BOOTSTRAP_SERVERS=broker1:9092` or `TTHC_BUS_GATEWAY__PORT=8081`.
A wrong value stops the start with the key, the value and what was expected.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bus.errors import SettingsError
from bus.schemas.change import CHANGE_DATA, CHANGE_TYPES
from bus.topics import CLI_REPLY_PARTITION

ENV_PREFIX = "TTHC_BUS_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LocalKafkaSettings(Section):
    """The embedded single-node broker (KRaft), used when no bootstrap servers are configured."""

    version: str = Field(default="4.1.1", pattern=r"^\d+\.\d+\.\d+$")
    scala_version: str = "2.13"
    cache_dir: Path = Path(".kafka")
    data_dir: Path = Path(".kafka/data")
    host: str = "127.0.0.1"
    port: int = Field(default=19092, ge=1, le=65535)
    controller_port: int = Field(default=19093, ge=1, le=65535)
    heap: str = Field(default="512m", pattern=r"^\d+[mMgG]$")
    start_timeout_s: float = Field(default=60.0, gt=0)


class KafkaSettings(Section):
    bootstrap_servers: str | None = Field(
        default=None, description="External cluster; when unset the local broker is used."
    )
    local: LocalKafkaSettings = LocalKafkaSettings()
    partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)

    def resolved_bootstrap(self) -> str:
        return self.bootstrap_servers or f"{self.local.host}:{self.local.port}"


class LookupSettings(Section):
    """Deadlines of lookups, for every client (HTTP or Kafka-native)."""

    default_deadline_ms: int = Field(default=5000, ge=100)
    max_deadline_ms: int = Field(
        default=60000, ge=100, description="Longer deadlines are cut to this by the router."
    )
    procedures_file: Path = Field(
        default=Path("procedures.toml"),
        description="The TTHC procedure catalogue (relative paths: to the project root).",
    )

    def procedures_path(self) -> Path:
        path = self.procedures_file
        return path if path.is_absolute() else PROJECT_ROOT / path


class GatewaySettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    reply_partition: int = Field(
        default=0,
        ge=0,
        lt=CLI_REPLY_PARTITION,
        description="Partition of the reply topic this instance owns; each gateway its own.",
    )
    instance_id: str = "gateway-1"
    max_in_flight: int = Field(
        default=256,
        ge=1,
        description="Lookups this gateway has in flight at most; past it, 503 with Retry-After "
        "at once (admission control: the bus refuses early instead of collapsing).",
    )
    key: SecretStr | None = Field(
        default=None,
        description="The gateway's own API key (role gateway): it signs the requests it sends on "
        "behalf of the agencies it authenticated. From the environment: TTHC_BUS_GATEWAY__KEY.",
    )


class OpsSettings(Section):
    """What processes report for operating the bus (bus/ops)."""

    status_interval_s: float = Field(
        default=3.0,
        ge=0.2,
        le=300,
        description="Every process publishes its status to tthc.status this often; one not "
        "heard from for three intervals shows as not reporting.",
    )
    ledger_web_host: str = Field(
        default="127.0.0.1",
        description="Where the audit ledger writer (`tthc-bus ledger`) serves /healthz, /readyz "
        "and /metrics.",
    )
    ledger_web_port: int = Field(default=6067, ge=1, le=65535)


class WorkerSettings(Section):
    app_id: str = "tthc-bus"
    web_port: int = Field(default=6066, ge=1, le=65535)
    data_dir: Path = Path(".run/worker")
    sources: list[str] | None = Field(
        default=None, description="Sources whose lookup connectors this worker runs; None = all."
    )
    concurrency: int = Field(
        default=256, ge=1, le=4096, description="Lookup requests a worker handles at once."
    )
    max_queue_ms: int = Field(
        default=1000,
        ge=1,
        description="A request that waited longer in Kafka is refused as overloaded (shedding a "
        "backlog, for clients that do not cap what they send).",
    )
    session_timeout_ms: int = Field(
        default=10_000,
        ge=6_000,
        description="A worker that stops heartbeating for this long loses its partitions to the "
        "others (the broker's group.min.session.timeout.ms is 6 s by default).",
    )
    fetch_max_wait_ms: int = Field(
        default=500,
        ge=0,
        le=5000,
        description="How long the broker may hold an empty fetch. It answers as soon as a record "
        "arrives, so this adds no latency; a short wait only costs idle CPU on both sides.",
    )


class SourceSettings(BaseModel):
    """One national database: how to reach it and how hard to push it.

    An adapter adds its own fields with a subclass (its `settings_model`); keys this base does
    not know are kept here and checked against that model when the adapter is loaded.
    """

    model_config = ConfigDict(extra="allow")

    adapter: str = Field(
        description="The adapter: an entry-point name of the group tthc_bus.adapters, or "
        "'module:Class'."
    )
    url: str
    datasets: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Serve only these of the adapter's datasets; None = all it declares.",
    )
    timeout_s: float = Field(default=3.0, gt=0)
    concurrency: int = Field(default=16, ge=1, le=512)
    retries: int = Field(default=2, ge=0, le=10)
    retry_backoff_s: float = Field(default=0.05, ge=0)
    breaker_failures: int = Field(
        default=5, ge=1, description="Failures in a row that open the source's circuit breaker."
    )
    breaker_reset_s: float = Field(
        default=5.0, gt=0, description="How long an open breaker refuses before a probe call."
    )
    rate_limit_per_s: float | None = Field(
        default=None, gt=0, description="The source's quota: calls per second (None: no limit)."
    )
    rate_burst: int | None = Field(
        default=None, ge=1, description="Calls allowed at once above the rate (default: 1 s's)."
    )
    max_waiting: int | None = Field(
        default=None,
        ge=0,
        description="The bulkhead: calls that may wait for one of the `concurrency` connections; "
        "more are refused at once, so that one slow source cannot hold every request a worker "
        "admits. None: no cap besides each request's deadline (a backlog after a restart waits).",
    )


class SandboxSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=1, le=65535)
    count: int = Field(default=10_000, ge=1, le=1_000_000)
    seed: int = 20250701
    changes_backlog: int = Field(
        default=200,
        ge=0,
        le=1_000_000,
        description="Changes each database's feed already holds at the start (generated on "
        "demand, deterministic in the seed): 1,000,000 for load.",
    )
    changes_rate: float = Field(
        default=0.0,
        ge=0,
        le=10_000,
        description="Live changes per second, over all databases, appended while it runs.",
    )
    state_file: Path | None = Field(
        default=None,
        description="Where the sandbox keeps what changed while it ran (updates applied, "
        "changes recorded), so that a restart keeps them as a database would (the broker "
        "keeps the streams and cursors); none: forgotten at exit. `tthc-bus dev` keeps it "
        "beside the children's logs.",
    )
    faults: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Faults from the start, per simulated source (the fields of "
        "sandbox.faults.Faults), e.g. [sandbox.faults.insurance] latency_ms = 200; changed at "
        "run time with PUT /_sandbox/faults/<source>.",
    )


class SyncSourceSettings(Section):
    """How the sync source connectors poll their change feeds (the same for every source)."""

    sources: list[str] | None = Field(
        default=None,
        description="Sources whose change feed this worker polls; None = every source whose "
        "adapter has a feed.",
    )
    page_size: int = Field(default=500, ge=1, le=10_000, description="Changes asked per poll.")
    poll_interval_ms: int = Field(
        default=500, ge=10, description="Pause between polls once the feed is drained."
    )
    backoff_first_ms: int = Field(default=500, ge=10, description="First pause after a failure.")
    backoff_max_ms: int = Field(default=30_000, ge=10, description="Longest pause (doubling).")


class WebhookSink(Section):
    """POST each event as JSON, with `Idempotency-Key` (the event id) and `X-Tthc-Signature`
    (`sha256=` + HMAC-SHA256 of the body under `secret`) headers; 2xx is delivered."""

    kind: Literal["webhook"] = "webhook"
    url: str = Field(pattern=r"^https?://", description="Where the events are POSTed.")
    secret: SecretStr = Field(description="The HMAC key of the signature header.")
    timeout_ms: int = Field(default=5_000, ge=1)
    batch_max: int = Field(
        default=1,
        ge=1,
        le=1_000,
        description="Events per POST at most: 1 posts each event alone; above 1, what waits "
        'in a partition goes as {"events": [...]}, in order, and the receiver dedupes by each '
        "event's message_id.",
    )


class UpdateSink(Section):
    """An update operation on another national database (its adapter's `update`)."""

    kind: Literal["update"] = "update"
    source: str = Field(description="The national database updated, e.g. 'population'.")
    operation: str = Field(description="One of that adapter's update_operations.")
    timeout_ms: int = Field(default=5_000, ge=1)


SUBSCRIPTION_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class EventFilter(Section):
    """One condition on an event's data: `equals` one of the values, or a date `within_days`
    before the event (or the delivery, `of`): e.g. a birth date at most 2190 days, six years,
    before it."""

    field: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="A field of the data.")
    equals: list[str] = Field(default_factory=list)
    within_days: int | None = Field(default=None, ge=0)
    of: Literal["event", "delivery"] = Field(
        default="event",
        description="within_days of the event's time, or of the delivery (a rule the receiving "
        "database applies on the day it is asked, such as a child's card before 6 years).",
    )

    @model_validator(mode="after")
    def _one_condition(self) -> EventFilter:
        if bool(self.equals) == (self.within_days is not None):
            raise ValueError(f"filter on {self.field!r}: give either equals or within_days")
        return self


class Subscription(Section):
    """Change events of some types from some sources, delivered to one sink, in order per
    entity, by its own consumer group; past the retry budget an event goes to
    `tthc.dlq.<name>`."""

    name: str = Field(pattern=SUBSCRIPTION_PATTERN, description="Also its DLQ topic's suffix.")
    description: str = ""
    sources: list[str] = Field(min_length=1, description="Sources whose streams it reads.")
    event_types: list[str] = Field(
        default_factory=list, description="ChangeEvent types wanted; empty = every type."
    )
    sink: WebhookSink | UpdateSink = Field(discriminator="kind")
    where: list[EventFilter] = Field(
        default_factory=list,
        description="Conditions on the event's data, all of them met, else the event is "
        "skipped (like a type not wanted); each field must be in every wanted type's data.",
    )

    @field_validator("event_types")
    @classmethod
    def _known_types(cls, event_types: list[str]) -> list[str]:
        unknown = sorted(set(event_types) - set(CHANGE_TYPES))
        if unknown:
            raise ValueError(f"unknown event types {unknown}; known: {list(CHANGE_TYPES)}")
        return event_types

    @field_validator("where")
    @classmethod
    def _known_fields(cls, where: list[EventFilter], info: Any) -> list[EventFilter]:
        types = info.data.get("event_types") or list(CHANGE_TYPES)
        for condition in where:
            lacking = [t for t in types if condition.field not in CHANGE_DATA[t].model_fields]
            if lacking:
                raise ValueError(
                    f"where: {condition.field!r} is not in the data of {lacking}; "
                    "name the event_types whose data has it"
                )
        return where

    max_attempts: int = Field(default=5, ge=1, le=100, description="Tries before the DLQ.")
    backoff_first_ms: int = Field(default=200, ge=1)
    backoff_max_ms: int = Field(default=10_000, ge=1)
    enabled: bool = True


class SyncSettings(Section):
    feeds: SyncSourceSettings = SyncSourceSettings()
    subscriptions: list[Subscription] = Field(default_factory=list)

    @field_validator("subscriptions")
    @classmethod
    def _unique_names(cls, subscriptions: list[Subscription]) -> list[Subscription]:
        seen: set[str] = set()
        for subscription in subscriptions:
            if subscription.name in seen:
                raise ValueError(f"two subscriptions named {subscription.name!r}")
            seen.add(subscription.name)
        return subscriptions


AGENCY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$"
ALL_FIELDS = "*"  # a grant of every field of a dataset (and so recorded in the audit trail)
FieldGrant = Literal["*"] | list[str]


class Grant(Section):
    """One policy grant: an agency may ask, for these procedures, these datasets' fields."""

    agency: str = Field(pattern=AGENCY_PATTERN, description="The agency code granted.")
    procedures: list[str] = Field(min_length=1, description="TTHC procedure codes covered.")
    datasets: dict[str, FieldGrant] = Field(
        min_length=1,
        description='Dataset -> the fields granted: "*" for all of them, or a list of the '
        "normalized record's top-level field names.",
    )
    description: str | None = None


class PolicySettings(Section):
    """Deny by default: an agency sees only what a grant gives it (bus/policy.py)."""

    grants: list[Grant] = Field(default_factory=list)


Role = Literal["lookup", "auditor", "gateway"]


class ApiKeyRecord(Section):
    """A stored API key: never the key itself, only what verifies it (bus/auth.py)."""

    id: str = Field(pattern=r"^[0-9a-f]{16}$", description="The key's public id.")
    agency: str = Field(pattern=AGENCY_PATTERN)
    roles: list[Role] = Field(default_factory=lambda: list[Role](["lookup"]), min_length=1)
    hash: str = Field(description="scrypt verifier of the key's secret (bus/auth.py).")
    description: str | None = None


class AuthSettings(Section):
    """API keys of the agencies (stored hashed) and the Kafka-native agencies' reply topics."""

    keys: list[ApiKeyRecord] = Field(
        default_factory=list, description="Keys given in settings or TTHC_BUS_AUTH__KEYS (JSON)."
    )
    keys_file: Path = Field(
        default=Path("keys.toml"),
        description="More keys, as [[keys]] tables; `tthc-bus keys new` appends to it "
        "(relative paths: to the project root).",
    )
    kafka_agencies: list[str] = Field(
        default_factory=list,
        description="Agencies that talk Kafka directly: each gets its own reply topic "
        "tthc.lookup.reply.<agency>, and its requests must name it.",
    )
    reply_topic_partitions: int = Field(default=1, ge=1, le=64)

    @field_validator("kafka_agencies")
    @classmethod
    def _agency_codes(cls, value: list[str]) -> list[str]:
        for code in value:
            if not re.fullmatch(AGENCY_PATTERN, code):
                raise ValueError(f"agency code {code!r} must match {AGENCY_PATTERN}")
        return value

    def keys_path(self) -> Path:
        path = self.keys_file
        return path if path.is_absolute() else PROJECT_ROOT / path


class AuditSettings(Section):
    """The audit trail: every decision and release on tthc.audit, and the ledger that keeps it."""

    enabled: bool = Field(
        default=True,
        description="Off only to measure its cost: without it no data may be said to be audited.",
    )
    pseudonym_key: SecretStr | None = Field(
        default=None,
        description="Key of the keyed hash (HMAC-SHA256) that pseudonymizes subject ids in the "
        "ledger; set it from the environment (TTHC_BUS_AUDIT__PSEUDONYM_KEY).",
    )
    ledger_url: str = Field(
        default="sqlite:///.run/audit.db",
        description="sqlite:///PATH (relative: to the project root) or postgresql://...",
    )
    ledger_writer: bool = Field(
        default=True,
        description="Workers also store tthc.audit into the ledger (one consumer group: the "
        "partitions, each a hash chain, are shared among the workers). Off: run "
        "`tthc-bus ledger` on its own.",
    )
    write_timeout_ms: int = Field(
        default=2000,
        ge=10,
        description="Longest wait for the broker to take an audit event (the deadline may cut it).",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        toml_file=None,
    )

    kafka: KafkaSettings = KafkaSettings()
    lookup: LookupSettings = LookupSettings()
    gateway: GatewaySettings = GatewaySettings()
    worker: WorkerSettings = WorkerSettings()
    sandbox: SandboxSettings = SandboxSettings()
    policy: PolicySettings = PolicySettings()
    auth: AuthSettings = AuthSettings()
    audit: AuditSettings = AuditSettings()
    sync: SyncSettings = SyncSettings()
    ops: OpsSettings = OpsSettings()
    sources: dict[str, SourceSettings] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        named = os.environ.get(f"{ENV_PREFIX}SETTINGS_FILE")
        toml_path = Path(named) if named else PROJECT_ROOT / "settings.toml"
        if named and not toml_path.is_file():
            # pydantic-settings would read a missing file as empty and start on bare defaults.
            raise SettingsError(f"{ENV_PREFIX}SETTINGS_FILE={named}: no such file")
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_path),
        )

    def source(self, name: str) -> SourceSettings:
        try:
            return self.sources[name]
        except KeyError:
            raise SettingsError(
                f"sources.{name}: no such source; configured: {sorted(self.sources)}"
            ) from None


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem: the dotted key, the env variable, the value and what was expected."""
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        env = ENV_PREFIX + "__".join(str(part).upper() for part in item["loc"])
        value: Any = item.get("input")
        lines.append(f"{key} (env {env}) = {value!r}: {item['msg']}")
    return "invalid settings:\n  " + "\n  ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
