"""Settings: settings.toml, overridden by environment variables.

Every key can be set from the environment with the prefix `TTHC_BUS_` and `__` between levels,
e.g. `TTHC_BUS_KAFKA__BOOTSTRAP_SERVERS=broker1:9092` or `TTHC_BUS_GATEWAY__PORT=8081`.
A wrong value stops the start with the key, the value and what was expected. So does an unknown
key or section, in settings.toml or in a `TTHC_BUS_` variable (besides those in `NOT_SETTINGS`):
every one is named, with the closest known key. Names under a table of user-chosen names
(`sources.<name>`, `sandbox.faults.<source>`) are free; a source's keys beyond `SourceSettings` are
its adapter's, checked when the sources are loaded (connectors/catalog.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from difflib import SequenceMatcher, get_close_matches
from functools import lru_cache
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

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
ENV_DELIMITER = "__"
SETTINGS_FILE_ENV = f"{ENV_PREFIX}SETTINGS_FILE"
# Variables with the prefix that are not settings, so not refused as unknown.
NOT_SETTINGS = frozenset(
    {
        SETTINGS_FILE_ENV,  # which settings.toml to read: it is read before any setting
    }
)
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
    replication_factor: int = Field(
        default=1,
        ge=1,
        description="Replicas of each topic the bus creates, at least; on a cluster of three or "
        "more brokers 3, with min.insync.replicas 2 (bus.topics.replication_for).",
    )

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
    max_body_bytes: int = Field(
        default=1 << 20,
        ge=1024,
        description="A request body longer than this is refused with 413 problem+json: at once "
        "when its Content-Length says so, else as soon as that many bytes have streamed in.",
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
        env_nested_delimiter=ENV_DELIMITER,
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
        named = os.environ.get(SETTINGS_FILE_ENV)
        toml_path = Path(named) if named else PROJECT_ROOT / "settings.toml"
        if named and not toml_path.is_file():
            # pydantic-settings would read a missing file as empty and start on bare defaults.
            raise SettingsError(f"{SETTINGS_FILE_ENV}={named}: no such file")
        toml = TomlConfigSettingsSource(settings_cls, toml_file=toml_path)
        # pydantic-settings ignores a variable that names no field, and a misspelt section
        # of the file only fails as an "extra input": both are checked here, all at once.
        unknown = [
            *unknown_in_file(settings_cls, toml.toml_data, named or "settings.toml"),
            *unknown_variables(settings_cls, os.environ),
        ]
        if unknown:
            raise SettingsError("unknown settings:\n  " + "\n  ".join(unknown))
        return (init_settings, env_settings, toml)

    def source(self, name: str) -> SourceSettings:
        try:
            return self.sources[name]
        except KeyError:
            raise SettingsError(
                f"sources.{name}: no such source; configured: {sorted(self.sources)}"
            ) from None


def _members(annotation: Any) -> list[Any]:
    """The types a value of `annotation` may have: a union's members but None."""
    if get_origin(annotation) in (Union, UnionType):
        return [arg for arg in get_args(annotation) if arg is not type(None)]
    return [annotation]


def _keys_below(annotation: Any) -> tuple[dict[str, Any], Any] | None:
    """What may be written under a value of `annotation`: its known keys, with their types, and
    the type under any other key (None: no other key is allowed); None for a plain value."""
    known: dict[str, Any] = {}
    other: Any = None
    table = False
    for member in _members(annotation):
        if member is Any or member is dict:
            return {}, Any
        if get_origin(member) is dict:
            args = get_args(member)
            other, table = (args[1] if args else Any), True
        elif isinstance(member, type) and issubclass(member, BaseModel):
            known.update({name: field.annotation for name, field in member.model_fields.items()})
            if member.model_config.get("extra") == "allow":
                other = Any  # keys of a subclass (an adapter's), checked where it is known
            table = True
    return (known, other) if table else None


def _leaf_paths(annotation: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every plain value under `annotation`, through its models (not into tables
    of free names)."""
    below = _keys_below(annotation)
    for name, inner in (below[0] if below else {}).items():
        if _keys_below(inner) is None:
            yield (*path, name)
        yield from _leaf_paths(inner, (*path, name))


def _dotted(path: tuple[str | int, ...]) -> str:
    parts = [f"[{part}]" if isinstance(part, int) else f".{part}" for part in path]
    return "".join(parts).removeprefix(".")


def _unknown_keys(
    annotation: Any, value: Any, path: tuple[str | int, ...], fold_case: bool = False
) -> Iterator[str]:
    """A line for each key in `value` that its type does not know (and those under it)."""
    if isinstance(value, list):
        items = [get_args(m)[0] for m in _members(annotation) if get_origin(m) is list]
        for index, item in enumerate(value if items else []):
            yield from _unknown_keys(items[0], item, (*path, index))
        return
    below = _keys_below(annotation)
    if below is None or not isinstance(value, Mapping):
        return  # a wrong type: validation says so
    known, other = below
    # pydantic-settings matches the top-level keys whatever their case, the nested ones exactly.
    by_name = {name.lower() if fold_case else name: name for name in known}
    for key, item in value.items():
        name = by_name.get(key.lower() if fold_case else key)
        if name is not None or other is not None:
            yield from _unknown_keys(known[name] if name is not None else other, item, (*path, key))
            continue
        what = "section" if isinstance(item, Mapping) else "key"
        line = f'unknown {what} "{_dotted((*path, key))}"'
        close = [_dotted((*path, match)) for match in get_close_matches(key, known, n=1)]
        if not close and not path:  # a key of a section written above any section header?
            close = get_close_matches(key, [".".join(p) for p in _leaf_paths(annotation)], n=1)
        if close:
            yield f'{line}; did you mean "{close[0]}"?'
        else:
            yield f"{line}; {_dotted(path) or 'the top level'} takes {', '.join(sorted(known))}"


def unknown_in_file(root: type[BaseModel], data: Mapping[str, Any], file: str) -> list[str]:
    """The keys and sections of a settings file that `root` does not know, each with a hint."""
    return [f"{file}: {line}" for line in _unknown_keys(root, data, (), fold_case=True)]


def _corrected(root: type[BaseModel], segments: list[str]) -> tuple[list[str], list[str] | None]:
    """The key path `segments` most likely meant, level by level; where no known key is close,
    the path so far and the keys known at that level."""
    annotation: Any = root
    path: list[str] = []
    for written in segments:
        below = _keys_below(annotation)
        if below is None:
            break  # a plain value has nothing under it: the setting is the path so far
        known, other = below
        by_name = {key.lower(): key for key in known}
        if written in by_name:
            segment = written
        elif other is not None:
            path.append(written)  # a free name (or an adapter's key): anything goes below
            annotation = other
            continue
        else:
            close = get_close_matches(written, by_name, n=1)
            if not close:
                return path, sorted(by_name)
            segment = close[0]
        path.append(segment)
        annotation = known[by_name[segment]]
    return path, None


def _unknown_variable(root: type[BaseModel], name: str) -> str | None:
    """Why variable `name` (with the prefix) is no setting of `root`, with the closest one."""
    written = name[len(ENV_PREFIX) :].lower()
    segments = written.split(ENV_DELIMITER)
    path, known_there = _corrected(root, segments)
    if known_there is None and path == segments:
        return None
    guesses = [] if known_there is not None else [ENV_DELIMITER.join(path)]
    if known_there is not None or path != segments[: len(path)]:
        # Matched level by level, `gateway_port` is `gateway`: whole names find `gateway__port`.
        leaves = [ENV_DELIMITER.join(leaf) for leaf in _leaf_paths(root)]
        guesses += get_close_matches(written, leaves, n=1)
    if guesses:
        best = max(guesses, key=lambda guess: SequenceMatcher(None, written, guess).ratio())
        return f"{name}: no such setting; did you mean {_variable([best])}?"
    under = _variable(path) + ENV_DELIMITER if path else ENV_PREFIX
    names = ", ".join(key.upper() for key in known_there or [])
    return f"{name}: no such setting; known under {under}: {names}"


def _variable(path: Iterable[str]) -> str:
    return ENV_PREFIX + ENV_DELIMITER.join(path).upper()


def unknown_variables(root: type[BaseModel], environ: Mapping[str, str]) -> list[str]:
    """The variables with the prefix (in any case, as pydantic-settings reads them) that name
    no setting of `root`, each with the closest variable that does."""
    lines = []
    for name in sorted(environ):
        if name.upper().startswith(ENV_PREFIX) and name.upper() not in NOT_SETTINGS:
            line = _unknown_variable(root, name)
            if line is not None:
                lines.append(line)
    return lines


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
