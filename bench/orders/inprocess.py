"""api's own CPU per order, in one process: the ASGI app driven directly, no uvicorn, no wrk.

The HTTP bench (run.py) shares two cores with PostgreSQL, Kafka and wrk, so its wall-clock
numbers and even its per-process CPU readings move with whatever else runs. This drives the same
app (prod profile: PostgreSQL, the outbox relay publishing to the real Kafka) with ``--concurrency``
requests in flight on one hot deal and reports ``time.process_time()`` per order of this process,
and the cyclic GC's passes (count, CPU, longest). ``--profile`` adds a cProfile of the run.

Usage: uv run python bench/orders/inprocess.py [--orders 4000] [--concurrency 16] [--profile]
Needs: scripts/infra up. About 10-20 s.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import pstats
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from api.main import create_app
from api.settings import ApiSettings
from servicekit.testing import TokenFactory

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PG = "host=127.0.0.1 port={port} user=magam password=magam dbname=api"


class GcWatch:
    """CPU and count of the cyclic collector's passes per generation while installed."""

    def __init__(self) -> None:
        self.passes = [0, 0, 0]
        self.cpu_s = [0.0, 0.0, 0.0]
        self.longest_s = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.thread_time()
            return
        used = time.thread_time() - self._started
        generation = info["generation"]
        self.passes[generation] += 1
        self.cpu_s[generation] += used
        self.longest_s[generation] = max(self.longest_s[generation], used)

    def summary(self) -> str:
        return ", ".join(
            f"gen{g} {n} passes {1000 * c:.0f} ms (longest {1000 * m:.1f} ms)"
            for g, (n, c, m) in enumerate(zip(self.passes, self.cpu_s, self.longest_s, strict=True))
        )


def _environment(args: argparse.Namespace) -> None:
    os.environ.update(
        {
            "MAGAM_PROFILE": "prod",
            "MAGAM_ALLOW_DEV_SECRETS": "1",
            "MAGAM_CONFIG_REPO": str(REPO / "config-repo"),
            "PGOPTIONS": "-c synchronous_commit=on",
            "API_DATABASE__PASSWORD": "magam",
            "API_DATABASE__PORT": str(args.pg_port),
            "API_DATABASE__POOL_SIZE": str(args.concurrency),
            "API_LOG__LEVEL": "WARNING",
            "API_TRACING__SAMPLE_RATIO": "0",
            "API_GEOFENCE__ENABLED": "false",
            "API_ORDERS__FAST_PATH_BATCH": str(args.batch),
            # The sweeper expires orders other people's tests left in the shared database: not
            # this bench's work (one pass at start, then none while measuring).
            "API_ORDERS__SWEEP_INTERVAL_S": "3600",
        }
    )


def _prepare(args: argparse.Namespace) -> tuple[str, str]:
    """A store and one deal with plenty of stock (rows written directly, as run.py copies them)."""
    store_id = f"B{uuid.uuid4().hex[:19].upper()}"
    now = datetime.now(UTC)
    with psycopg.connect(PG.format(port=args.pg_port), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO stores (id, name, branch, category_code, address, district_code,"
            " dong_code, location, large_category_code, middle_category_code, road_address,"
            " lot_address) VALUES (%s, 'bench', '', 'I20101', '', '11200', '',"
            " 'SRID=4326;POINT(127.04 37.55)', 'I2', 'I201', '', '')",
            (store_id,),
        )
        deal = conn.execute(
            "INSERT INTO deals (id, store_id, name, description, original_price_krw, price_krw,"
            " quantity, stock, pickup_start_at, pickup_end_at, allergens, tags, markdown,"
            " return_stock_on_expiry, created_by)"
            " VALUES (gen_random_uuid(), %s, 'bench 0', '', 8000, 5600, 10000000, 10000000,"
            " %s, %s, '[]', '[]', '[]', true, 'bench') RETURNING id",
            (store_id, now, now + timedelta(hours=6)),
        ).fetchone()
    assert deal is not None
    return store_id, str(deal[0])


def _cleanup(args: argparse.Namespace, store_id: str, customer_id: str) -> None:
    with psycopg.connect(PG.format(port=args.pg_port), autocommit=True) as conn:
        for _ in range(60):  # the relay publishes the last events
            left = conn.execute(
                "SELECT count(*) FROM outbox_events WHERE key = %s AND sent_at IS NULL",
                (store_id,),
            ).fetchone()
            if left is not None and left[0] == 0:
                break
            time.sleep(0.5)
        with conn.transaction():
            conn.execute(
                "DELETE FROM order_changes WHERE order_id IN"
                " (SELECT id FROM orders WHERE store_id = %s)",
                (store_id,),
            )
            conn.execute("DELETE FROM orders WHERE store_id = %s", (store_id,))
            conn.execute("DELETE FROM idempotency_keys WHERE customer_id = %s", (customer_id,))
            conn.execute(
                "DELETE FROM outbox_events WHERE key = %s AND sent_at IS NOT NULL", (store_id,)
            )
            conn.execute("DELETE FROM deals WHERE store_id = %s", (store_id,))
            conn.execute("DELETE FROM stores WHERE id = %s", (store_id,))


async def _drive(app: Any, token: str, deal_id: str, orders: int, concurrency: int) -> int:
    """Places ``orders`` orders with ``concurrency`` in flight; returns how many got 201."""
    body = b'{"deal_id":"%s","quantity":1}' % deal_id.encode()
    run = uuid.uuid4().hex[:8]
    placed = 0
    counter = iter(range(orders))

    async def client() -> None:
        nonlocal placed
        for n in counter:
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "POST",
                "scheme": "http",
                "path": "/customer/orders",
                "raw_path": b"/customer/orders",
                "query_string": b"",
                "root_path": "",
                "headers": [
                    (b"host", b"api"),
                    (b"authorization", b"Bearer " + token.encode()),
                    (b"content-type", b"application/json"),
                    (b"idempotency-key", f"{run}-{n}".encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
                "client": ("127.0.0.1", 1),
                "server": ("127.0.0.1", 80),
                "state": {},
            }
            sent = False
            status = 0

            async def receive() -> dict[str, Any]:
                nonlocal sent
                if sent:
                    await asyncio.sleep(3600)
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]

            await app(scope, receive, send)
            placed += status == 201

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return placed


async def _relayed(args: argparse.Namespace, store_id: str, timeout_s: float = 60) -> None:
    """Returns when the relay has published every event of the store."""
    pg = await psycopg.AsyncConnection.connect(PG.format(port=args.pg_port), autocommit=True)
    async with pg:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            cursor = await pg.execute(
                "SELECT count(*) FROM outbox_events WHERE key = %s AND sent_at IS NULL",
                (store_id,),
            )
            row = await cursor.fetchone()
            if row is not None and row[0] == 0:
                return
            await asyncio.sleep(0.2)
    raise SystemExit(f"the relay left events of {store_id} unsent after {timeout_s} s")


async def _run(args: argparse.Namespace) -> None:
    store_id, deal_id = _prepare(args)
    customer_id = f"bench-inprocess-{uuid.uuid4().hex[:8]}"
    tokens = TokenFactory()
    app = create_app(ApiSettings())
    app.state.token_verifier = tokens.verifier()
    token = tokens.token(customer_id, ["customer"], ttl_s=3600)
    try:
        async with app.router.lifespan_context(app):
            await _drive(app, token, deal_id, args.warmup, args.concurrency)
            gc.collect()
            gc.disable()  # what the orders leave to the cyclic collector, counted below
            await _drive(app, token, deal_id, 200, args.concurrency)
            cyclic = gc.collect() / 200
            gc.enable()
            watch = GcWatch()
            gc.callbacks.append(watch)
            profile = cProfile.Profile(time.process_time) if args.profile else None
            started_cpu, started = time.process_time(), time.perf_counter()
            if profile is not None:
                profile.enable()
            placed = await _drive(app, token, deal_id, args.orders, args.concurrency)
            if profile is not None:
                profile.disable()
            cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
            gc.callbacks.remove(watch)
            await _relayed(args, store_id)  # the relay's CPU for these orders counts too
            cpu_with_relay = time.process_time() - started_cpu
    finally:
        _cleanup(args, store_id, customer_id)
    print(
        f"{placed} of {args.orders} orders placed in {wall:.2f} s ({placed / wall:.0f}/s),"
        f" {args.concurrency} in flight, batch {args.batch}"
    )
    print(
        f"api CPU per order: {1000 * cpu / placed:.3f} ms while placing,"
        f" {1000 * cpu_with_relay / placed:.3f} ms with the relay publishing them"
    )
    print(f"cyclic GC while placing: {watch.summary()}")
    print(f"cyclic garbage: {cyclic:.1f} objects per order (freed only by the collector)")
    if profile is not None:
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats("tottime").print_stats(35)
        stats.sort_stats("cumulative").print_stats(60)
        print(out.getvalue())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--orders", type=int, default=4000, help="orders measured")
    parser.add_argument("--warmup", type=int, default=500, help="orders placed before measuring")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--batch", type=int, default=64, help="api's orders.fast_path_batch")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the run")
    parser.add_argument("--pg-port", type=int, default=int(os.environ.get("MAGAM_PG_PORT", "5433")))
    args = parser.parse_args()
    _environment(args)
    asyncio.run(_run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
