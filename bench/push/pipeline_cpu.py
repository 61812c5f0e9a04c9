"""push's CPU per order in its own pipeline, by batch size: claim, plan, send, record.

    uv run python bench/push/pipeline_cpu.py --batches 1 5 25 --orders 1000    # ~30 s

``Pipeline.handle_batch`` runs in this process against a scratch PostgreSQL database (created
and dropped; PostgreSQL from scripts/infra), each order being the ``order.placed`` and
``stock.changed`` events api writes for it, for a store with one manager and one phone. The
sender accepts every message without a network (FCM's and the stand-in's CPU are
bench/push/throughput.py's subject), and there is no Kafka: what remains is push's own work per
batch — parsing, the planning transaction, the recording transaction — measured as this
process's CPU time (``time.process_time``) per order, which a shared machine disturbs far less
than wall time. ``--profile out.prof`` writes a cProfile of the measured batches.

At a given rate, push's batches are what arrived while it handled the previous one: about one
order at 100 orders/s on an idle machine, tens when it falls behind. A fixed cost per batch
therefore dominates at low rates and fades at high ones.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from contracts import (
    Event,
    ManagerApproved,
    ManagerApprovedData,
    OrderPlaced,
    OrderPlacedData,
    StockChanged,
    StockChangedData,
    StockChangeReason,
    serialize_event,
)
from push.alerts import LogChannel
from push.db import Base
from push.delivery.pipeline import Pipeline, RetryPolicy
from push.delivery.sender import Notification, Outcome, SendResult, tune_gc_for_sending
from push.delivery.service import Policy
from push.device.models import Device
from servicekit.bus import IncomingRecord, OutgoingRecord
from servicekit.db import prepare_schema

STORE = "LBENCHPIPELINECPU001"


class AcceptingSender:
    """Says SENT to every message (the Sender protocol without a network)."""

    max_batch = 500
    concurrency = 1

    def __init__(self) -> None:
        self.sent = 0

    async def send(self, notifications: list[Notification]) -> list[SendResult]:
        self.sent += len(notifications)
        return [SendResult(Outcome.SENT, message_id=f"m/{self.sent}") for _ in notifications]

    async def aclose(self) -> None:
        return None


class NoDlq:
    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, record: OutgoingRecord) -> None:
        raise SystemExit(f"an event was dead-lettered: {record.headers}")

    async def send_batch(self, records: Sequence[OutgoingRecord]) -> None:
        raise SystemExit(f"events were dead-lettered: {[r.headers for r in records]}")

    async def ping(self) -> None:
        return None


def _order(n: int) -> list[Event]:
    """An order's two events, as api's order path writes them."""
    deal = uuid.uuid4()
    placed = OrderPlaced(
        key=STORE,
        data=OrderPlacedData(
            order_id=uuid.uuid4(),
            deal_id=deal,
            store_id=STORE,
            store_name="지연빵집",
            deal_name="소금빵",
            customer_id=f"c-{n}",
            quantity=1,
            unit_price_krw=1800,
            total_krw=1800,
            pickup_end_at=datetime.now(UTC) + timedelta(hours=2),
        ),
    )
    stock = StockChanged(
        key=STORE,
        data=StockChangedData(
            deal_id=deal,
            store_id=STORE,
            quantity_available=1000,
            price_krw=1800,
            reason=StockChangeReason.ORDERED,
            live=True,
            lat=37.5477,
            lon=127.0447,
        ),
    )
    return [placed, stock]


class Records:
    def __init__(self) -> None:
        self.offset = 0

    def __call__(self, events: list[Event]) -> list[IncomingRecord]:
        records = []
        for event in events:
            self.offset += 1
            topic = event.type.split(".")[0]
            records.append(
                IncomingRecord(
                    topic, 0, self.offset, event.key.encode(), serialize_event(event), []
                )
            )
        return records


async def _measure(
    engine: AsyncEngine, batch: int, orders: int, profile: Path | None
) -> dict[str, Any]:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    sender = AcceptingSender()
    pipeline = Pipeline(
        sessions, sender, NoDlq(), LogChannel(), Policy(ZoneInfo("Asia/Seoul"), 10), RetryPolicy()
    )
    records = Records()
    for _ in range(20):  # warm-up: statement caches, prepared statements, the pool
        await pipeline.handle_batch(records([e for n in range(batch) for e in _order(n)]))
    batches = [
        records([e for n in range(batch) for e in _order(n)]) for _ in range(orders // batch)
    ]
    profiler = cProfile.Profile() if profile else None
    sent_before = sender.sent
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    for records_of_batch in batches:
        await pipeline.handle_batch(records_of_batch)
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)  # type: ignore[arg-type]
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    done = len(batches) * batch
    if sender.sent - sent_before != done:
        raise SystemExit(f"{sender.sent - sent_before} notifications for {done} orders")
    return {
        "orders_per_batch": batch,
        "orders": done,
        "cpu_ms_per_order": round(1000 * cpu / done, 3),
        "cpu_ms_per_batch": round(1000 * cpu / len(batches), 3),
        "wall_ms_per_order": round(1000 * wall / done, 3),
    }


async def _run(args: argparse.Namespace, database: str) -> list[dict[str, Any]]:
    engine = create_async_engine(
        f"postgresql+psycopg://magam:{args.pg_password}@127.0.0.1:{args.pg_port}/{database}",
        pool_pre_ping=True,  # as servicekit.db.build_engine makes push's engine
        connect_args={"application_name": "push"},
    )
    try:
        await prepare_schema(engine, Base.metadata)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with sessions() as session, session.begin():
            session.add(
                Device(
                    user_id="m1",
                    target_kind="token",
                    target="phone-m1",
                    platform="android",
                    locale="ko-KR",
                    last_seen_at=datetime.now(UTC),
                )
            )
        approval = ManagerApproved(
            key=STORE,
            data=ManagerApprovedData(
                claim_id=uuid.uuid4(), store_id=STORE, user_id="m1", approved_by="bench"
            ),
        )
        pipeline = Pipeline(
            sessions,
            AcceptingSender(),
            NoDlq(),
            LogChannel(),
            Policy(ZoneInfo("Asia/Seoul"), 10),
            RetryPolicy(),
        )
        await pipeline.handle_batch(Records()([approval]))
        results = []
        for batch in args.batches:
            profile = args.profile.with_suffix(f".{batch}.prof") if args.profile else None
            result = await _measure(engine, batch, args.orders, profile)
            print(json.dumps(result))
            results.append(result)
        return results
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--batches", type=int, nargs="+", default=[1, 5, 25], help="orders per batch (1 5 25)"
    )
    parser.add_argument("--orders", type=int, default=1000, help="orders measured per size")
    parser.add_argument("--pg-port", type=int, default=5433, help="PostgreSQL port (5433)")
    parser.add_argument("--pg-password", default=os.environ.get("MAGAM_PG_PASSWORD", "magam"))
    parser.add_argument("--profile", type=Path, help="cProfile output: <path>.<batch>.prof")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    tune_gc_for_sending()  # as push's entry point does
    database = f"push_bench_{uuid.uuid4().hex[:8]}"
    admin = f"host=127.0.0.1 port={args.pg_port} user=magam password={args.pg_password}"
    try:
        with psycopg.connect(f"{admin} dbname=postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
    except psycopg.OperationalError as exc:
        raise SystemExit(f"PostgreSQL is not reachable ({exc}); run `scripts/infra up`") from None
    try:
        results = asyncio.run(_run(args, database))
    finally:
        with psycopg.connect(f"{admin} dbname=postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    summary = {
        "bench": "push-pipeline-cpu",
        "results": results,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
