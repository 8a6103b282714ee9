"""The py-spy profile summary: collapsed stacks -> samples, bucket shares, top frames."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bench.profiling import OTHER, ProfileSession, parse_frame, summarise

SPINE = (
    "_run_module_as_main (<frozen runpy>:198);<module> (bus/cli.py:394);"
    "worker (bus/cli.py:207);BaseEventLoop.run_forever (asyncio/base_events.py:607)"
)
LOOP = f"{SPINE};BaseEventLoop._run_once (asyncio/base_events.py:1922)"
CALLBACK = f"{LOOP};Handle._run (asyncio/events.py:80)"
POOL = (
    "Thread._bootstrap (threading.py:995);_worker (concurrent/futures/thread.py:83);"
    "_WorkItem.run (concurrent/futures/thread.py:58)"
)
# 10 samples: 4 in a source call made from a pool thread, 3 in faust -> aiokafka,
# 2 in bus code -> pydantic, 1 in the event loop itself.
COLLAPSED = f"""\
{POOL};LookupConnector._fetch (connectors/lookup.py:120);Adapter.fetch (adapters/base.py:140);\
OperationProxy.__call__ (zeep/proxy.py:46);\
HTTPConnectionPool.urlopen (urllib3/connectionpool.py:790) 3
{POOL};LookupConnector._fetch (connectors/lookup.py:120);Adapter.fetch (adapters/base.py:141) 1
{CALLBACK};Agent._execute_actor (faust/agents/agent.py:674);\
AIOKafkaConnection._read (aiokafka/conn.py:522) 2
{CALLBACK};Agent._execute_actor (faust/agents/agent.py:674);\
Fetcher._fetcher (faust/transport/consumer.py:1300);\
AIOKafkaConnection._read (aiokafka/conn.py:529) 1
{CALLBACK};Outbox.send (bus/streams.py:50);BaseModel.model_dump_json \
(/venv/lib/python3.11/site-packages/pydantic/main.py:477) 2
{LOOP};EpollSelector.select (selectors.py:468) 1

not a stack line
"""


def test_parse_frame_keeps_function_file_and_line() -> None:
    frame = parse_frame("Struct.decode.<locals>.<listcomp> (aiokafka/protocol/struct.py:35)")
    assert (frame.function, frame.file, frame.line) == (
        "Struct.decode.<locals>.<listcomp>",
        "aiokafka/protocol/struct.py",
        35,
    )
    assert frame.bucket == "Kafka client"
    assert parse_frame("_run_code (<frozen runpy>:88)").bucket is None
    full = parse_frame("f (/x/lib/python3.11/site-packages/zeep/proxy.py:46)")
    assert full.package == "zeep"
    assert parse_frame("[native]").function == "[native]"


def test_summary_counts_samples_buckets_and_top_frames() -> None:
    summary = summarise(COLLAPSED, top=5)
    assert summary["samples"] == 10
    buckets = {name: value["share"] for name, value in summary["buckets"].items()}
    assert buckets["source call (adapter, zeep, HTTP)"] == 0.4
    assert buckets["Kafka client"] == 0.3
    assert buckets["faust runtime"] == 0.3
    assert buckets["validation/serialisation"] == 0.2
    # connectors/ (under the pool's work item) and bus/ (under the loop's callback); the
    # command-line frames bus/cli.py above the dispatch frames are not counted.
    assert buckets["bus code"] == 0.6
    assert buckets[OTHER] == 0.1  # the loop's own select
    assert buckets["web server (uvicorn, starlette, FastAPI)"] == 0.0
    # self: each sample once, in the bucket of its innermost bucketed frame.
    selves = {name: value["self_share"] for name, value in summary["buckets"].items()}
    assert selves["bus code"] == 0.0 and selves["faust runtime"] == 0.0
    assert sum(selves.values()) == pytest.approx(1.0)

    top = summary["top_frames"]
    assert [frame["frame"] for frame in top[:2]] == [
        "Adapter.fetch (adapters/base.py)",
        "LookupConnector._fetch (connectors/lookup.py)",
    ]
    assert top[0]["inclusive_share"] == 0.4 and top[0]["self_share"] == 0.1
    assert top[0]["bucket"] == "source call (adapter, zeep, HTTP)"
    # A frame on two lines of one stack (two line numbers) is one frame: 3 samples, not more.
    read = next(f for f in top if f["frame"] == "AIOKafkaConnection._read (aiokafka/conn.py)")
    assert read["inclusive_share"] == 0.3 and read["self_share"] == 0.3
    assert all("bus/cli.py" not in frame["frame"] for frame in top)


def test_empty_profile_has_no_share() -> None:
    summary = summarise("")
    assert summary["samples"] == 0
    assert summary["top_frames"] == []
    assert all(value["share"] == 0.0 for value in summary["buckets"].values())


def test_unattachable_process_is_reported_not_raised(tmp_path: Path) -> None:
    started = threading.Event()
    started.set()
    session = ProfileSession({"worker": 2**22 + 12345}, 1.0, tmp_path / "stamp")
    profile = session.start(started).finish()
    entry = profile["processes"]["worker"]
    assert entry["status"] == "not recorded"
    assert entry["reason"]
    assert "raw_file" not in entry
