"""Faults on a real three-node Kafka cluster, under load, with the whole bus on it.

The cluster (tests/conftest.py `kafka_cluster`: KRaft, each node broker and controller) holds
every topic of the bus with 3 replicas, min.insync.replicas 2 and no unclean leader election;
every producer sends with acks=all. One stack of child processes (sandbox, ledger writer,
worker, gateway) runs on it for the whole module, its worker delivering the civil deaths to a
webhook served here (Idempotency-Key: the event id). The faults:

- a broker killed with SIGKILL under lookups from 16 clients: lookups resume once the
  partitions it led have new leaders, every lookup gets exactly one answer (complete, or an
  explicit 503/504) by its deadline and a small margin; started again, the broker catches up
  (back in the ISR of every partition);
- a broker killed with SIGKILL under a sync stream: no event lost, none duplicated, as the
  subscriber's webhook sees them by Idempotency-Key (raw deliveries are counted too);
- a worker killed with SIGKILL under lookups: every accepted lookup ends in exactly one answer;
- the whole cluster stopped and started again in the middle of a stream: nothing is lost.

Each fault test appends its figures as one JSON line to `.run/faults/cluster.jsonl` (fault,
load, measured, lost, duplicated), before its assertions: a failed run leaves its figures too.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import confluent_kafka
import pytest
import requests
from confluent_kafka.admin import AdminClient, ConfigResource

from bus import topics
from bus.schemas.change import change_event_id
from bus.settings import PROJECT_ROOT, load_settings
from bus.sync.sinks import H_BATCH_SIZE, H_IDEMPOTENCY_KEY
from bus.tooling.devstack import DevStack, example_lookup
from bus.tooling.kafka_local import LocalKafkaCluster
from sandbox.population.generator import PopulationGenerator
from tests.integration.conftest import SANDBOX_COUNT
from tests.integration.test_sync_feeds import read_all

pytestmark = pytest.mark.integration

ROWS = PROJECT_ROOT / ".run" / "faults" / "cluster.jsonl"
CLIENTS = 16
DEADLINE_MS = 5_000
# The gateway answers at the deadline itself: an answer later than this past it is a failure.
MARGIN_S = 2.0
# No answer this long past the deadline: a hang (the HTTP client gives up).
HANG_S = 15.0
# Long enough for the worker killed to be replaced (its session timeout, the rebalance, the
# successor's start), as in tests/integration/test_worker_crash.py.
WORKER_KILL_DEADLINE_MS = 30_000
WARMUP_S = 5.0
# Lookups before a fault: the first seconds of load are slow (16 clients at once on a stack
# just started); the slow threshold is taken from the last LOOKUP_BASELINE_S.
LOOKUP_WARMUP_S = 10.0
LOOKUP_BASELINE_S = 5.0
DEATHS_PER_S = 5.0
SUBSCRIPTION = "faults-webhook"
SECRET = "faults-webhook-secret"
# Lookups in the worker's own process (population.identity): the sources are not the fault.
DATASET = "population.identity"
OK = (200, "complete")
# Explicit answers a fault may give instead: the bus unavailable or over capacity (503), the
# deadline passed (504), a failed reply (502).
EXPLICIT = {503, 504, 502}


# -- the subscriber -------------------------------------------------------------------------------


class Webhook:
    """The subscriber's webhook: every POST counted by Idempotency-Key, with the change sequence
    its event carries and when it first came."""

    def __init__(self) -> None:
        self.deliveries: Counter[str] = Counter()
        self.keys_of: dict[int, set[str]] = {}  # change sequence -> the event ids it came as
        self.first_at: dict[str, float] = {}
        self.lock = threading.Lock()
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.headers.get(H_BATCH_SIZE) is None, "the subscription posts one by one"
                key = self.headers[H_IDEMPOTENCY_KEY]
                event = json.loads(body)
                with webhook.lock:
                    webhook.deliveries[key] += 1
                    webhook.first_at.setdefault(key, time.monotonic())
                    webhook.keys_of.setdefault(int(event["sequence"]), set()).add(key)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/deaths"

    def has(self, keys: set[str]) -> bool:
        with self.lock:
            return keys <= self.deliveries.keys()


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    thread = threading.Thread(target=hook.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        hook.server.shutdown()
        hook.server.server_close()


@pytest.fixture(scope="module")
def cluster_stack(
    kafka_cluster: LocalKafkaCluster, webhook: Webhook, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevStack]:
    settings = load_settings(kafka={"bootstrap_servers": kafka_cluster.bootstrap_servers})
    subscription = {
        "name": SUBSCRIPTION,
        "sources": ["civil"],
        "event_types": ["CitizenDeceased"],
        "sink": {"kind": "webhook", "url": webhook.url, "secret": SECRET, "timeout_ms": 5000},
        "max_attempts": 50,
        "backoff_first_ms": 100,
        "backoff_max_ms": 2000,
    }
    worker_env = {
        "TTHC_BUS_SYNC__SUBSCRIPTIONS": json.dumps([subscription]),
        # Only the stream the faults watch: the other feeds would only take CPU.
        "TTHC_BUS_SYNC__FEEDS__SOURCES": json.dumps(["civil"]),
    }
    with DevStack(
        settings,
        workdir=tmp_path_factory.mktemp("cluster-stack"),
        sandbox_count=SANDBOX_COUNT,
        worker_env=worker_env,
    ) as running:
        yield running


# -- lookups under load ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    started: float
    ended: float
    http: int | None  # None: no answer (the client gave up, or the connection failed)
    status: str  # the lookup's status, the problem's title, or the client's error
    request_id: str | None

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def ok(self) -> bool:
        return (self.http, self.status) == OK


@dataclass
class LookupLoad:
    """`clients` threads, each sending one lookup through the gateway after the other."""

    stack: DevStack
    subjects: list[str]
    clients: int = CLIENTS
    deadline_ms: int = DEADLINE_MS
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._client, args=(n,), daemon=True)
            for n in range(self.clients)
        ]

    def __enter__(self) -> LookupLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _client(self, number: int) -> None:
        url = f"{self.stack.gateway_url}/v1/lookups"
        headers = self.stack.keys.headers()
        timeout = self.deadline_ms / 1000 + HANG_S
        sent = 0
        with requests.Session() as session:
            while not self._stop.is_set():
                subject = self.subjects[(number * 7919 + sent) % len(self.subjects)]
                body = example_lookup(subject) | {
                    "dossier_id": f"FAULT-{number}-{sent}",
                    "deadline_ms": self.deadline_ms,
                }
                sent += 1
                started = time.monotonic()
                try:
                    answer = session.post(url, json=body, headers=headers, timeout=timeout)
                    ended = time.monotonic()
                    payload = answer.json()
                    # A lookup's status; a problem+json's (its status is the HTTP code) title.
                    status = payload.get("status")
                    if not isinstance(status, str):
                        status = str(payload.get("title"))
                    rid = payload.get("request_id") or payload.get("correlation_id")
                    outcome = Outcome(started, ended, answer.status_code, status, rid)
                except (requests.RequestException, ValueError) as exc:
                    outcome = Outcome(started, time.monotonic(), None, type(exc).__name__, None)
                with self._lock:
                    self.outcomes.append(outcome)

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)


@dataclass
class Disruption:
    """What a fault at `fault_at` did to the lookups: `bad` is every lookup not complete, or
    slower than `slow_s`, that was in flight at or after the fault."""

    outcomes: list[Outcome]
    fault_at: float
    slow_s: float
    bad: list[Outcome]
    # When a client first saw something wrong (a failed answer, or a lookup outlasting slow_s),
    # and the first normal answer to a lookup sent after the last bad one: lookups resumed.
    # None: nothing went wrong.
    first_bad_at: float | None
    resumed_at: float | None

    @classmethod
    def of(cls, outcomes: list[Outcome], fault_at: float, slow_s: float) -> Disruption:
        bad = [o for o in outcomes if o.ended >= fault_at and not normal(o, slow_s)]
        if not bad:
            return cls(outcomes, fault_at, slow_s, [], None, None)
        last_bad = max(o.started for o in bad)
        good_after = [o.ended for o in outcomes if normal(o, slow_s) and o.started > last_bad]
        return cls(
            outcomes,
            fault_at,
            slow_s,
            bad,
            min(min(o.ended, o.started + slow_s) for o in bad),
            min(good_after, default=None),
        )

    @property
    def normal_between(self) -> int:
        """Lookups answered normally while lookups were failing."""
        if self.first_bad_at is None or self.resumed_at is None:
            return 0
        start, end = self.first_bad_at, self.resumed_at
        return sum(normal(o, self.slow_s) and start <= o.ended < end for o in self.outcomes)

    @property
    def window_s(self) -> float:
        if self.first_bad_at is None:
            return 0.0
        assert self.resumed_at is not None, "lookups did not resume"
        return self.resumed_at - self.first_bad_at


def normal(outcome: Outcome, slow_s: float) -> bool:
    return outcome.ok and outcome.seconds <= slow_s


def slow_threshold(outcomes: list[Outcome], since: float) -> float:
    """Slow: 3 times the 99th percentile of the lookups sent from `since` (the load warmed up)
    to the fault, and at least a second."""
    before = sorted(o.seconds for o in outcomes if o.ok and o.started >= since)
    if len(before) < 20:
        return 1.0
    return max(1.0, 3 * statistics.quantiles(before, n=100)[98])


def run_until_resumed(
    load: LookupLoad, fault_at: float, slow_s: float, least_s: float, most_s: float
) -> None:
    """Keep the load on until a deadline and a margin have passed with no bad lookup (so no
    lookup in flight can still be stuck), and at least `least_s` after the fault."""
    quiet_s = load.deadline_ms / 1000 + MARGIN_S + 1
    while time.monotonic() - fault_at < most_s:
        time.sleep(0.5)
        now = time.monotonic()
        bad_ends = [
            o.ended for o in load.snapshot() if o.ended >= fault_at and not normal(o, slow_s)
        ]
        if now - fault_at >= least_s and now - max(bad_ends, default=fault_at) >= quiet_s:
            return


def keep_timeline(stack: DevStack, name: str, outcomes: list[Outcome], fault_at: float) -> None:
    """Every lookup, its times from the fault, beside the stack's logs: to see what a figure is
    made of."""
    with (stack.root / f"{name}.jsonl").open("w") as out:
        for o in sorted(outcomes, key=lambda o: o.started):
            row = {"start": round(o.started - fault_at, 3), "seconds": round(o.seconds, 3)}
            out.write(json.dumps(row | {"http": o.http, "status": o.status}) + "\n")


def kinds(outcomes: list[Outcome]) -> Counter[str]:
    return Counter(f"{o.http or 'no answer'} {o.status}" for o in outcomes)


def reply_end(bootstrap: str, partition: int) -> int:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "faults"})
    try:
        part = confluent_kafka.TopicPartition(topics.LOOKUP_REPLY, partition)
        return int(consumer.get_watermark_offsets(part, timeout=10)[1])
    finally:
        consumer.close()


def replies_per_request(bootstrap: str, partition: int, start: int) -> Counter[str]:
    """Replies on the reply topic's `partition` from offset `start` to its end, per request:
    more than one is a repeat (at-least-once after a crash), which the gateway drops."""
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "faults", "enable.auto.commit": False}
    )
    counts: Counter[str] = Counter()
    try:
        part = confluent_kafka.TopicPartition(topics.LOOKUP_REPLY, partition)
        end = int(consumer.get_watermark_offsets(part, timeout=10)[1])
        consumer.assign([confluent_kafka.TopicPartition(topics.LOOKUP_REPLY, partition, start)])
        offset = start
        deadline = time.monotonic() + 60
        while offset < end and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            offset = (message.offset() or 0) + 1
            reply = json.loads(message.value() or b"{}")
            counts[str(reply.get("correlation_id") or reply.get("request_id"))] += 1
        assert offset >= end, f"the reply partition was not read to its end ({offset} < {end})"
    finally:
        consumer.close()
    return counts


def lookup_subjects(n: int, seed: int) -> list[str]:
    return PopulationGenerator(SANDBOX_COUNT, load_settings().sandbox.seed).sample(n, seed)


# -- the cluster ----------------------------------------------------------------------------------


def metadata(cluster: LocalKafkaCluster) -> Any:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers, "log_level": 0})
    return admin.list_topics(timeout=10)


def leading_most(cluster: LocalKafkaCluster, names: list[str]) -> tuple[int, int]:
    """The node that leads the most partitions of `names`, and how many it leads."""
    leaders: Counter[int] = Counter()
    for name, topic in metadata(cluster).topics.items():
        if name in names:
            leaders.update(partition.leader for partition in topic.partitions.values())
    return leaders.most_common(1)[0]


def leader_of(cluster: LocalKafkaCluster, name: str, partition: int) -> int:
    return int(metadata(cluster).topics[name].partitions[partition].leader)


def wait_caught_up(cluster: LocalKafkaCluster, timeout: float = 180.0) -> float:
    """Seconds until every replica of every partition is in sync again."""
    started = time.monotonic()
    lagging: list[str] = []
    while time.monotonic() - started < timeout:
        lagging = cluster.out_of_sync()
        if not lagging:
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"not caught up in {timeout:.0f} s: {lagging[:10]} ({len(lagging)})")


def write_row(fault: str, load: str, measured: str, lost: int, duplicated: int) -> None:
    ROWS.parent.mkdir(parents=True, exist_ok=True)
    row = {"fault": fault, "load": load, "measured": measured, "lost": lost}
    row["duplicated"] = duplicated
    with ROWS.open("a", encoding="utf-8") as out:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")


# -- the sync stream ------------------------------------------------------------------------------


class DeathRecorder:
    """Records deaths in the civil-status sandbox at a steady rate, in a thread, as its officers
    would; each recorded change's sequence and when it was recorded."""

    def __init__(self, stack: DevStack, people: list[str], per_s: float = DEATHS_PER_S) -> None:
        self.url = f"{stack.sandbox_url}/_sandbox/record/civil/death"
        self.people = people
        self.per_s = per_s
        self.recorded: dict[int, float] = {}  # sequence -> when
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with requests.Session() as session:
            for person in self.people:
                if self._stop.is_set():
                    return
                body = {"personal_id": person, "date_of_death": "2026-11-27"}
                answer = session.post(self.url, json=body, timeout=10)
                if answer.status_code == 400 and "already" in answer.text:
                    continue
                assert answer.status_code == 201, answer.text
                self.recorded[int(answer.json()["sequence"])] = time.monotonic()
                self._stop.wait(1 / self.per_s)
        raise AssertionError("DeathRecorder: out of people")

    def __enter__(self) -> DeathRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def people(stack: DevStack, n: int, seed: int) -> list[str]:
    params: dict[str, Any] = {"source": "population", "n": n, "seed": seed}
    answer = requests.get(f"{stack.sandbox_url}/_sandbox/sample", params=params, timeout=10)
    answer.raise_for_status()
    return list(answer.json())


@dataclass
class StreamFigures:
    recorded: int
    received: int  # distinct Idempotency-Keys of the recorded changes
    raw: int  # POSTs of those keys, repeats included
    lost: int
    duplicated: int  # changes that came under more than one key
    on_stream: int  # records of those changes on tthc.sync.civil.change
    slowest_s: float  # longest from a change recorded to its first delivery

    @property
    def repeats(self) -> int:
        return self.raw - self.received

    def text(self) -> str:
        return (
            f"{self.recorded:,} changes recorded, {self.received:,} distinct Idempotency-Keys "
            f"received, {self.raw:,} raw deliveries ({self.repeats:,} repeats of a key, deduped "
            f"by it); {self.on_stream:,} records on the change stream; slowest delivery "
            f"{self.slowest_s:.1f} s after its change"
        )


def stream_figures(
    stack: DevStack, webhook: Webhook, recorded: dict[int, float], timeout: float = 180.0
) -> StreamFigures:
    """Wait until every recorded change reached the webhook (or `timeout`), then count."""
    wanted = {change_event_id("civil", sequence) for sequence in recorded}
    deadline = time.monotonic() + timeout
    while not webhook.has(wanted) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2)  # a repeat would come now, if at all
    on_stream = [
        read
        for read in read_all(stack.bootstrap_servers, topics.sync_change("civil"))
        if read.event.sequence in recorded
    ]
    with webhook.lock:
        received = wanted & webhook.deliveries.keys()
        raw = sum(webhook.deliveries[key] for key in received)
        duplicated = sum(len(webhook.keys_of.get(s, ())) > 1 for s in recorded)
        firsts = {key: webhook.first_at[key] for key in received}
    slowest = max(
        (
            firsts[key] - recorded[s]
            for s in recorded
            if (key := change_event_id("civil", s)) in firsts
        ),
        default=0.0,
    )
    return StreamFigures(
        len(wanted),
        len(received),
        raw,
        len(wanted - received),
        duplicated,
        len(on_stream),
        slowest,
    )


# -- the tests ------------------------------------------------------------------------------------


@pytest.mark.timeout(600)
def test_every_topic_on_the_cluster_has_three_replicas_two_needed_in_sync(
    cluster_stack: DevStack, kafka_cluster: LocalKafkaCluster
) -> None:
    """The bus's topics, faust's own (the table's changelog, the assignor's leader topic) and
    Kafka's (offsets): 3 replicas each, a write needs 2, no unclean leader election."""
    faust_topics = ("-changelog", "__assignor-__leader")
    deadline = time.monotonic() + 60
    while True:  # faust declares its topics as it starts, maybe after the first lookup
        found = metadata(kafka_cluster).topics
        names = sorted(found)
        declared = all(any(n.endswith(end) for n in names) for end in faust_topics)
        if declared or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert declared, names
    assert topics.LOOKUP_REQUEST in names and topics.sync_change("civil") in names
    assert "__consumer_offsets" in names
    replicas = {name: {len(p.replicas) for p in found[name].partitions.values()} for name in names}
    assert {name: r for name, r in replicas.items() if r != {3}} == {}
    admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap_servers})
    wanted = {"min.insync.replicas": "2", "unclean.leader.election.enable": "false"}
    asked = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
    configs = {
        resource.name: {key: entry.value for key, entry in future.result().items() if key in wanted}
        for resource, future in admin.describe_configs(asked).items()
    }
    assert {name: got for name, got in configs.items() if got != wanted} == {}
    assert kafka_cluster.out_of_sync() == []


@pytest.mark.timeout(600)
def test_a_broker_killed_under_lookups_costs_a_leader_election_and_never_an_answer(
    cluster_stack: DevStack, kafka_cluster: LocalKafkaCluster
) -> None:
    stack, cluster = cluster_stack, kafka_cluster
    reply_partition = load_settings().gateway.reply_partition
    reply_start = reply_end(stack.bootstrap_servers, reply_partition)
    lookup_path = [
        topics.LOOKUP_REQUEST,
        topics.LOOKUP_REPLY,
        topics.AUDIT,
        topics.source_request("population"),
    ]
    with LookupLoad(stack, lookup_subjects(200, seed=12)) as load:
        time.sleep(LOOKUP_WARMUP_S)
        slow_s = slow_threshold(load.snapshot(), time.monotonic() - LOOKUP_BASELINE_S)
        victim, led = leading_most(cluster, lookup_path)
        replies_led = leader_of(cluster, topics.LOOKUP_REPLY, reply_partition) == victim
        rss = "/".join(f"{node.rss_mb():.0f}" for node in cluster.nodes)
        killed_at = time.monotonic()
        assert cluster.kill(victim)
        run_until_resumed(load, killed_at, slow_s, least_s=20, most_s=150)
    outcomes = load.snapshot()
    keep_timeline(stack, "broker-kill-lookups", outcomes, killed_at)
    restarted_at = time.monotonic()
    cluster.start_node(victim)
    caught_up_s = time.monotonic() - restarted_at + wait_caught_up(cluster)
    replies = replies_per_request(stack.bootstrap_servers, reply_partition, reply_start)

    disruption = Disruption.of(outcomes, killed_at, slow_s)
    no_answer = [o for o in outcomes if o.http is None]
    late = [o for o in outcomes if o.seconds > DEADLINE_MS / 1000 + MARGIN_S]
    unexpected = [o for o in outcomes if not o.ok and o.http not in EXPLICIT]
    ids = {o.request_id for o in outcomes if o.request_id}
    repeats = sum(count - 1 for rid, count in replies.items() if rid in ids and count > 1)
    first = (disruption.first_bad_at or killed_at) - killed_at
    again = (disruption.resumed_at or killed_at) - killed_at
    write_row(
        "broker SIGKILL",
        f"lookups, {CLIENTS} clients ({DATASET}, deadline {DEADLINE_MS / 1000:.0f} s)",
        f"lookups resumed after {disruption.window_s:.1f} s (first failure or slowdown seen "
        f"{first:+.1f} s from the kill, first normal answer after the last one {again:+.1f} s; "
        f"{disruption.normal_between} normal answers in between); {len(outcomes):,} sent, "
        f"{len(outcomes) - len(no_answer):,} answered: {dict(kinds(outcomes))}; slowest answer "
        f"{max(o.seconds for o in outcomes):.1f} s; {repeats} repeated replies on the reply "
        f"topic (dropped by the gateway); broker {victim} (leader of {led} partitions of the "
        f"lookup path, the gateway's reply partition {'among them' if replies_led else 'not'}) "
        f"back in the ISR of every partition {caught_up_s:.1f} s after its restart; nodes' RSS "
        f"under load {rss} MB",
        len(no_answer),
        0,  # one HTTP answer per request: a repeat on the reply topic never reaches a client
    )
    assert no_answer == [], f"{len(no_answer)} lookups without an answer: {no_answer[:5]}"
    assert late == [], f"{len(late)} answered past deadline + {MARGIN_S} s: {late[:5]}"
    assert unexpected == [], kinds(unexpected)
    assert disruption.resumed_at is not None or not disruption.bad, "lookups did not resume"
    assert sum(o.ok for o in outcomes if o.started > killed_at) > 0
    stack.wait_lookup_ready()


@pytest.mark.timeout(600)
def test_a_broker_killed_under_a_sync_stream_loses_and_duplicates_no_event(
    cluster_stack: DevStack, kafka_cluster: LocalKafkaCluster, webhook: Webhook
) -> None:
    stack, cluster = cluster_stack, kafka_cluster
    stream_path = [topics.sync_change("civil"), topics.SYNC_CURSORS, "__consumer_offsets"]
    with DeathRecorder(stack, people(stack, 600, seed=31)) as recorder:
        time.sleep(WARMUP_S)
        victim, led = leading_most(cluster, stream_path)
        assert cluster.kill(victim)
        time.sleep(20)  # past the broker's session timeout: its partitions get new leaders
        restarted_at = time.monotonic()
        cluster.start_node(victim)
        caught_up_s = time.monotonic() - restarted_at + wait_caught_up(cluster)
        time.sleep(WARMUP_S)
    figures = stream_figures(stack, webhook, recorder.recorded)
    write_row(
        "broker SIGKILL",
        f"sync stream, {DEATHS_PER_S:.0f} civil deaths/s to a webhook",
        f"{figures.text()}; broker {victim} (leader of {led} partitions of the stream, its "
        f"cursors and group offsets) down 20 s, back in the ISR of every partition "
        f"{caught_up_s:.1f} s after its restart",
        figures.lost,
        figures.duplicated,
    )
    assert figures.recorded >= 100
    assert figures.lost == 0
    assert figures.duplicated == 0


@pytest.mark.timeout(600)
def test_a_worker_killed_under_lookups_on_the_cluster_leaves_no_lookup_unanswered(
    cluster_stack: DevStack,
) -> None:
    stack = cluster_stack
    reply_partition = load_settings().gateway.reply_partition
    reply_start = reply_end(stack.bootstrap_servers, reply_partition)
    with LookupLoad(
        stack, lookup_subjects(200, seed=13), deadline_ms=WORKER_KILL_DEADLINE_MS
    ) as load:
        time.sleep(LOOKUP_WARMUP_S)
        slow_s = slow_threshold(load.snapshot(), time.monotonic() - LOOKUP_BASELINE_S)
        killed_at = time.monotonic()
        os.killpg(stack.worker_pid, signal.SIGKILL)
        stack.children.pop("worker").process.wait()
        stack.spawn_worker(1)
        run_until_resumed(load, killed_at, slow_s, least_s=20, most_s=180)
    outcomes = load.snapshot()
    keep_timeline(stack, "worker-kill-lookups", outcomes, killed_at)
    replies = replies_per_request(stack.bootstrap_servers, reply_partition, reply_start)

    disruption = Disruption.of(outcomes, killed_at, slow_s)
    accepted = [o for o in outcomes if o.http != 503]
    no_answer = [o for o in outcomes if o.http is None]
    late = [o for o in outcomes if o.seconds > WORKER_KILL_DEADLINE_MS / 1000 + MARGIN_S]
    unexpected = [o for o in outcomes if not o.ok and o.http not in EXPLICIT]
    ids = {o.request_id for o in outcomes if o.request_id}
    repeats = sum(count - 1 for rid, count in replies.items() if rid in ids and count > 1)
    first = (disruption.first_bad_at or killed_at) - killed_at
    again = (disruption.resumed_at or killed_at) - killed_at
    write_row(
        "worker SIGKILL (cluster)",
        f"lookups, {CLIENTS} clients ({DATASET}, deadline {WORKER_KILL_DEADLINE_MS / 1000:.0f} s)",
        f"lookups resumed after {disruption.window_s:.1f} s (the worker respawned at once; "
        f"slowdown seen {first:+.1f} s from the kill, normal again {again:+.1f} s); "
        f"{len(outcomes):,} sent, {len(accepted):,} accepted, "
        f"{len(outcomes) - len(no_answer):,} answered: {dict(kinds(outcomes))}; slowest answer "
        f"{max(o.seconds for o in outcomes):.1f} s; {repeats} repeated replies on the reply "
        f"topic (requests read again by the successor, dropped by the gateway)",
        len(no_answer),
        0,  # one HTTP answer per request
    )
    assert no_answer == [], f"{len(no_answer)} lookups without an answer: {no_answer[:5]}"
    assert late == [], f"{len(late)} answered past their deadline: {late[:5]}"
    assert unexpected == [], kinds(unexpected)
    assert disruption.resumed_at is not None or not disruption.bad, "lookups did not resume"
    stack.wait_lookup_ready()


@pytest.mark.timeout(600)
def test_the_whole_cluster_restarted_mid_stream_loses_nothing(
    cluster_stack: DevStack, kafka_cluster: LocalKafkaCluster, webhook: Webhook
) -> None:
    stack, cluster = cluster_stack, kafka_cluster
    with DeathRecorder(stack, people(stack, 600, seed=32)) as recorder:
        time.sleep(WARMUP_S)
        stopping = time.monotonic()
        assert cluster.stop()
        stopped_s = time.monotonic() - stopping
        time.sleep(5)  # changes keep being recorded; the feed connector backs off
        starting = time.monotonic()
        assert cluster.start()
        started_s = time.monotonic() - starting
        time.sleep(WARMUP_S)
    figures = stream_figures(stack, webhook, recorder.recorded)
    dead = [name for name, child in stack.children.items() if child.process.poll() is not None]
    write_row(
        "whole cluster restart",
        f"sync stream, {DEATHS_PER_S:.0f} civil deaths/s to a webhook",
        f"{figures.text()}; the 3 nodes stopped in {stopped_s:.1f} s, down 5 s, started in "
        f"{started_s:.1f} s; bus processes that died: {dead or 'none'}",
        figures.lost,
        figures.duplicated,
    )
    assert figures.recorded >= 50
    assert figures.lost == 0
    assert figures.duplicated == 0
    assert dead == []
    stack.wait_lookup_ready(timeout=120)
