"""The outbox relay alone: commit → broker-acked latency and CPU per event, on a database and a
topic of its own (nothing else's backlog or load in the numbers).

    nice -n 10 uv run python bench/push/relay.py --rate 1000 --duration 20

A writer thread commits outbox rows open-loop at ``--rate`` events per second (two rows a
transaction, as an order writes ``order.placed`` and ``stock.changed``; 200 stores) into a scratch
database, while api's ``OutboxRelay`` publishes them to a fresh 2-partition topic on the real
Kafka with api's own producer (``KafkaPublisher``). Latency is the database's own clock: the
row's ``sent_at`` (the relay marked it after the broker's ack) minus its ``created_at`` (the
writer's transaction). CPU is the relay's thread (the event loop: the relay, aiokafka, the
LISTEN connection) per event. Then ``--backlog`` rows are written at once and timed until the
relay has drained them: its top rate. Needs `scripts/infra up`; about ``duration`` + 20 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
import uuid
from typing import Any

import psycopg
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from api.outbox import OutboxEvent, OutboxRelay, shard_of
from servicekit.kafka import KafkaPublisher, ensure_topics

_INSERT = (
    "INSERT INTO outbox_events (event_id, type, topic, key, shard, payload, headers)"
    " VALUES (%s, 'order.placed', %s, %s, %s, %s, '[]'),"
    " (%s, 'stock.changed', %s, %s, %s, %s, '[]')"
)
_PAYLOAD = b"x" * 600  # about an order.placed envelope


def _writer(dsn: str, topic: str, rate: float, duration_s: float, stop: threading.Event) -> int:
    keys = [f"B{k:019d}" for k in range(200)]
    pairs = int(rate / 2 * duration_s)
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.monotonic()
        for n in range(pairs):
            if stop.is_set():
                return n * 2
            delay = started + n / (rate / 2) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            key = keys[n % len(keys)]
            shard = shard_of(key)
            conn.execute(
                _INSERT,
                (
                    uuid.uuid4(),
                    topic,
                    key,
                    shard,
                    _PAYLOAD,
                    uuid.uuid4(),
                    topic,
                    key,
                    shard,
                    _PAYLOAD,
                ),
            )
    return pairs * 2


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _drained(dsn: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = await (
                await conn.execute("SELECT count(*) FROM outbox_events WHERE sent_at IS NULL")
            ).fetchone()
            if row is not None and row[0] == 0:
                return True
            await asyncio.sleep(0.05)
    return False


async def _run(args: argparse.Namespace, database: str) -> dict[str, Any]:
    dsn = f"host=127.0.0.1 port={args.pg_port} user=magam password=magam dbname={database}"
    engine = create_async_engine(
        f"postgresql+psycopg://magam:magam@127.0.0.1:{args.pg_port}/{database}", pool_size=5
    )
    async with engine.begin() as conn:
        await conn.run_sync(OutboxEvent.metadata.tables["outbox_events"].create)
    topic = f"bench-relay-{uuid.uuid4().hex[:8]}"
    await ensure_topics(args.kafka, [topic], 2)
    publisher = KafkaPublisher(args.kafka, client_id="bench-relay")
    await publisher.start()
    relay = OutboxRelay(async_sessionmaker(engine, expire_on_commit=False), publisher)
    running = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(2)  # connected, listening, the first (empty) passes done
        stop = threading.Event()
        cpu_before, published_before = time.thread_time(), relay.published
        written = await asyncio.to_thread(_writer, dsn, topic, args.rate, args.duration, stop)
        drained = await _drained(dsn, 60)
        cpu = time.thread_time() - cpu_before
        published = relay.published - published_before
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            cur = await conn.execute(
                "SELECT extract(epoch FROM sent_at - created_at) FROM outbox_events"
                " WHERE sent_at IS NOT NULL"
            )
            latencies = [1000 * float(r[0]) for r in await cur.fetchall()]
        # Top rate: a backlog written at once, drained by the relay.
        with psycopg.connect(dsn, autocommit=True) as conn:
            keys = [f"K{k:019d}" for k in range(200)]
            with (
                conn.cursor() as cur2,
                cur2.copy(
                    "COPY outbox_events (event_id, type, topic, key, shard, payload, headers)"
                    " FROM STDIN"
                ) as copy,
            ):
                for n in range(args.backlog):
                    key = keys[n % len(keys)]
                    copy.write_row(
                        (uuid.uuid4(), "order.placed", topic, key, shard_of(key), _PAYLOAD, "[]")
                    )
        started, cpu_before = time.monotonic(), time.thread_time()
        backlog_drained = await _drained(dsn, 120)
        drain_s = time.monotonic() - started
        drain_cpu = time.thread_time() - cpu_before
    finally:
        await relay.stop()
        await running
        await publisher.stop()
        await engine.dispose()
    return {
        "bench": "outbox-relay",
        "rate_asked_per_s": args.rate,
        "duration_s": args.duration,
        "events_written": written,
        "events_published": published,
        "drained": drained,
        "commit_to_acked_ms": {
            "p50": round(statistics.median(latencies), 1),
            "p90": round(_percentile(latencies, 0.90), 1),
            "p99": round(_percentile(latencies, 0.99), 1),
            "max": round(max(latencies), 1),
        }
        if latencies
        else None,
        "relay_cpu_us_per_event": round(1e6 * cpu / max(1, published), 1),
        "backlog": {
            "events": args.backlog,
            "drained": backlog_drained,
            "seconds": round(drain_s, 2),
            "events_per_s": round(args.backlog / drain_s, 1),
            "relay_cpu_us_per_event": round(1e6 * drain_cpu / max(1, args.backlog), 1),
        },
        # The class under test: the one in the tree, or an older one put first on PYTHONPATH.
        "relay": "LISTEN/NOTIFY, lock then claim"
        if hasattr(relay, "listening")
        else "polling, ORM per shard",
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000, help="events per second (1000)")
    parser.add_argument("--duration", type=float, default=20, help="seconds of load (20)")
    parser.add_argument("--backlog", type=int, default=20_000, help="rows drained at once")
    parser.add_argument("--pg-port", type=int, default=5433, help="PostgreSQL port (5433)")
    parser.add_argument("--kafka", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    args = parser.parse_args()
    database = f"bench_relay_{uuid.uuid4().hex[:8]}"
    admin = f"host=127.0.0.1 port={args.pg_port} user=magam password=magam dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    try:
        print(f"relay bench on database {database}, {args.rate:g} events/s", file=sys.stderr)
        result = asyncio.run(_run(args, database))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
