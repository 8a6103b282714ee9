"""The sync-throughput baseline: a raw aiokafka consume -> transform -> produce pipe.

A backlog of JSON change events (the population database's native field names) is produced to a
fresh source topic first; then the pipe drains it into a sink topic, renaming fields to the
normalized names, and is timed from its first record to the last acknowledged write. It keeps the
guarantees a sync stream must keep (acks=all, offsets committed only after the writes are acked),
so the comparison with the bus path measures the bus, not weaker delivery.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

# Native (population database) field -> normalized field.
FIELD_RENAMES = {
    "MaSuKien": "event_id",
    "LoaiSuKien": "event_type",
    "SoDinhDanh": "personal_id",
    "ThoiDiem": "occurred_at",
    "NoiOHienTai": "current_residence",
}
STALL_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class PipeTopics:
    source: str
    sink: str

    @classmethod
    def fresh(cls) -> PipeTopics:
        run = uuid.uuid4().hex[:12]
        return cls(source=f"bench.sync.{run}.source", sink=f"bench.sync.{run}.sink")


def change_event(sequence: int) -> dict[str, Any]:
    """A native residence-change event, deterministic in ``sequence``."""
    return {
        "MaSuKien": f"DC-{sequence:012d}",
        "LoaiSuKien": "THAY_DOI_NOI_O_HIEN_TAI",
        "SoDinhDanh": f"{1_000_000_000 + sequence * 7919 % 999_999_999:012d}",
        "ThoiDiem": f"2025-07-{1 + sequence % 28:02d}T08:{sequence % 60:02d}:00+07:00",
        "NoiOHienTai": {
            "ChiTiet": f"Số {sequence % 300 + 1} đường Lê Lợi",
            "MaDonViHanhChinh": f"{sequence % 3321:05d}",
            "MaTinh": f"{sequence % 34 + 1:02d}",
            "QuocGia": "VN",
        },
    }


def transform(raw: bytes) -> bytes:
    """Decode, rename the native fields to normalized ones, encode."""
    event = orjson.loads(raw)
    return orjson.dumps({FIELD_RENAMES.get(key, key): value for key, value in event.items()})


@asynccontextmanager
async def temporary_topics(
    bootstrap_servers: str, topics: PipeTopics, partitions: int
) -> AsyncIterator[PipeTopics]:
    """Create the source and sink topics; delete them afterwards (best effort)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, partitions, 1) for name in (topics.source, topics.sink)]
        )
        await _wait_for_leaders(admin, [topics.source, topics.sink], partitions)
        yield topics
    finally:
        with suppress(Exception):
            await admin.delete_topics([topics.source, topics.sink])
        await admin.close()


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, names: list[str], partitions: int, timeout_s: float = 30.0
) -> None:
    """Wait until every partition of the new topics has a leader (else produce retries warn)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        described = await admin.describe_topics(names)
        ready = [
            topic
            for topic in described
            if topic["error_code"] == 0
            and len(topic["partitions"]) == partitions
            and all(p["error_code"] == 0 and p["leader"] >= 0 for p in topic["partitions"])
        ]
        if len(ready) == len(names):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"topics {names} have no leader for every partition after {timeout_s:g} s")


async def produce_backlog(bootstrap_servers: str, topic: str, events: int) -> float:
    """Write ``events`` change events to ``topic``; returns the seconds it took."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, acks="all", linger_ms=10, max_batch_size=262_144
    )
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for sequence in range(events):
            event = change_event(sequence)
            pending.append(
                await producer.send(topic, orjson.dumps(event), key=event["SoDinhDanh"].encode())
            )
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def drain_pipe(bootstrap_servers: str, topics: PipeTopics, events: int) -> dict[str, Any]:
    """Consume ``events`` from the source, transform, produce to the sink; time it."""
    consumer = AIOKafkaConsumer(
        topics.source,
        bootstrap_servers=bootstrap_servers,
        group_id=f"{topics.source}.pipe",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=2000,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, acks="all", linger_ms=5, max_batch_size=262_144
    )
    await asyncio.gather(consumer.start(), producer.start())
    try:
        return await _drain(consumer, producer, topics.sink, events)
    finally:
        await asyncio.gather(consumer.stop(), producer.stop())


async def _drain(
    consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, sink: str, events: int
) -> dict[str, Any]:
    done = 0
    first_record: float | None = None
    last_progress = time.perf_counter()
    while done < events:
        batches = await consumer.getmany(timeout_ms=500, max_records=2000)
        if not batches:
            if time.perf_counter() - last_progress > STALL_TIMEOUT_S:
                raise TimeoutError(
                    f"sync pipe stalled: {done} of {events} events after {STALL_TIMEOUT_S:.0f} s"
                )
            continue
        first_record = first_record or time.perf_counter()
        acks = [
            await producer.send(sink, transform(record.value), key=record.key)
            for records in batches.values()
            for record in records
        ]
        await asyncio.gather(*acks)
        await consumer.commit()
        done += len(acks)
        last_progress = time.perf_counter()
    elapsed = time.perf_counter() - (first_record or last_progress)
    return {
        "events": done,
        "elapsed_s": round(elapsed, 3),
        "events_per_s": round(done / elapsed, 1),
    }


async def measure_raw_pipe(bootstrap_servers: str, events: int, partitions: int) -> dict[str, Any]:
    """Produce the backlog, then time the raw pipe draining it."""
    async with temporary_topics(bootstrap_servers, PipeTopics.fresh(), partitions) as topics:
        backlog_s = await produce_backlog(bootstrap_servers, topics.source, events)
        drained = await drain_pipe(bootstrap_servers, topics, events)
    return {"backlog_produce_s": round(backlog_s, 3), "partitions": partitions, **drained}
