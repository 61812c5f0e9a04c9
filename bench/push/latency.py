"""End-to-end latency: an order committed in api → the FCM request for the manager's phone.

    nice -n 10 uv run python bench/push/latency.py --rate 50 --duration 20

api and push run as real processes in the prod profile (PostgreSQL and Kafka from scripts/infra),
the FCM stand-in as a third process over h2c, as push's bench and tests use it. A store, its
approved manager with one registered phone and a deal with enough stock are set up through the
APIs; then orders are placed open-loop at ``--rate`` per second for ``--duration`` seconds, each
by its own customer. An order's latency is the time from api's 201 answer (the transaction has
committed: the outbox row is in it) to the stand-in receiving the ``order.placed`` message for the
manager's phone — through the outbox relay, Kafka, push's consumer, its planning transaction and
firebase-admin. Clocks: one machine, ``time.time()`` on both ends.

``--source outbox`` (labelled ``relay+push only`` in the result) skips api's order path: the bench
itself commits each order's two outbox rows (``order.placed`` and ``stock.changed``, built as the
order path builds them) in one transaction, straight into api's database, and the clock starts at
that commit. It measures the relay, Kafka and push at rates api cannot commit orders at yet.

    nice -n 10 uv run python bench/push/latency.py --source outbox --rate 500 --duration 20

Both modes also report the CPU time api (in outbox mode: the relay alone) and push used per order
during the load and the drain, from /proc: on a shared box that is steadier than wall time.

The goal (issue 7): p99 ≤ 250 ms at 500 orders/s. The achieved rate (orders answered per
second) is reported next to the asked one: on a shared 2-core box the asked rate may not be
reachable, and latency is only meaningful at a rate the system sustains. Needs `scripts/infra up`.
About ``duration`` + 40 s (services start, warm-up, drain).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from api.outbox import row_values
from contracts import (
    OrderPlaced,
    OrderPlacedData,
    StockChanged,
    StockChangedData,
    StockChangeReason,
)
from servicekit.testing import ServiceProcess, TokenFactory, jwks_server
from standins.server import free_port

REPO = Path(__file__).resolve().parents[2]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _local_ports(pid: int, remote_port: int) -> set[int]:
    """The local ports of a process's TCP connections to ``remote_port`` (its sockets' inodes
    looked up in /proc/net/tcp*)."""
    inodes: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes and int(fields[2].rsplit(":", 1)[1], 16) == remote_port:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _server_cpu() -> tuple[dict[int, float], dict[int, float]]:
    """CPU seconds so far of each PostgreSQL backend, by its client's port (from the process
    title, ``postgres: ... 127.0.0.1(<port>) ...``), and of each Kafka broker process."""
    backends: dict[int, float] = {}
    brokers: dict[int, float] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if cmdline.startswith(b"postgres:") and b"(" in cmdline:
                port = int(cmdline[cmdline.index(b"(") + 1 : cmdline.index(b")")])
                backends[port] = backends.get(port, 0.0) + _cpu_s(int(proc.name))
            elif b"kafka.Kafka" in cmdline:
                brokers[int(proc.name)] = _cpu_s(int(proc.name))
        except (OSError, ValueError):
            continue
    return backends, brokers


def _wait_outbox_drained(pg_port: int, timeout_s: float = 120) -> None:
    """Waits until api's outbox has nothing unsent: a backlog another run (or another engineer)
    left would be published first and counted as this run's latency."""
    deadline = time.monotonic() + timeout_s
    dsn = f"host=127.0.0.1 port={pg_port} user=magam password=magam dbname=api"
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM outbox_events WHERE sent_at IS NULL"
            ).fetchone()
            unsent = row[0] if row else 0
            if not unsent:
                return
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"api's outbox still holds {unsent} unsent events after {timeout_s:.0f} s;"
                    " is another relay stuck, or Kafka down? (`scripts/infra up`)"
                )
            print(f"\r  waiting for the outbox backlog: {unsent} unsent", end="", file=sys.stderr)
            time.sleep(1)


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the FCM stand-in exited; run `python -m standins.fcm --help`")
        try:
            httpx.post(f"http://127.0.0.1:{port}/token", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"the FCM stand-in did not listen on {port} within 30 s")


class FcmLog:
    """The stand-in's JSON-lines log of accepted messages, read as it grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self.arrivals: dict[str, float] = {}  # order_id → when the stand-in got it

    def poll(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as log:
            log.seek(self._offset)
            chunk = log.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            entry = json.loads(line)
            order_id = entry.get("data", {}).get("order_id")
            if order_id and entry.get("data", {}).get("type") == "order.placed":
                self.arrivals.setdefault(order_id, entry["at"])


def _setup(
    tokens: TokenFactory, api: httpx.Client, push: httpx.Client, pg_port: int, stock: int
) -> tuple[str, str, str]:
    """A store with an approved manager, the manager's phone, a deal; returns (deal id, phone,
    store id)."""
    store = f"L{uuid.uuid4().hex[:19].upper()}"
    with psycopg.connect(
        f"host=127.0.0.1 port={pg_port} user=magam password=magam dbname=api", autocommit=True
    ) as conn:
        conn.execute(
            "INSERT INTO stores (id, name, branch, category_code, address, district_code,"
            " dong_code, location, large_category_code, middle_category_code, road_address,"
            " lot_address) VALUES (%s, '지연빵집', '', 'I21001', '', '11200', '',"
            " 'SRID=4326;POINT(127.0447 37.5477)', 'I2', 'I210', '', '')",
            (store,),
        )
        manager_id = f"m-lat-{uuid.uuid4().hex[:8]}"
        manager = tokens.headers(manager_id, ["customer", "manager"], ttl_s=3600)
        phone = f"fcm-lat-{uuid.uuid4().hex}"
        answer = push.post(
            "/devices",
            json={"target_kind": "token", "target": phone, "platform": "android"},
            headers=manager,
        )
        answer.raise_for_status()
        claim = api.post(
            f"/stores/{store}/claims", json={"business_number": "220-81-62517"}, headers=manager
        )
        claim.raise_for_status()
        api.post(
            f"/admin/store-claims/{claim.json()['id']}/approve",
            json={},
            headers=tokens.headers("a-lat", ["admin"]),
        ).raise_for_status()
        now = datetime.now(UTC)
        deal = api.post(
            f"/manager/stores/{store}/deals",
            json={
                "name": "소금빵",
                "original_price_krw": 3000,
                "discount_percent": 40,
                "quantity": 10,
                "pickup_start_at": now.isoformat(),
                "pickup_end_at": (now + timedelta(hours=2)).isoformat(),
            },
            headers=manager,
        )
        deal.raise_for_status()
        deal_id: str = deal.json()["id"]
        # More stock than the API lets a manager type in one go (≤ 1,000): the bench's orders.
        conn.execute(
            "UPDATE deals SET quantity = %s, stock = %s WHERE id = %s", (stock, stock, deal_id)
        )
    return deal_id, phone, store


def _stages(
    pg_port: int, committed: dict[str, float], arrivals: dict[str, float]
) -> dict[str, dict[str, float]]:
    """Where the time went, per order: api commit → relay published to Kafka (outbox
    ``sent_at``) → push planned it (deliveries ``created_at``) → the stand-in received it."""
    ids = list(committed)  # the relay's stage also for orders push never delivered
    dsn = f"host=127.0.0.1 port={pg_port} user=magam password=magam dbname={{}}"
    with psycopg.connect(dsn.format("api")) as conn:
        published = {
            str(order): at.timestamp()
            for order, at in conn.execute(
                "SELECT convert_from(payload, 'UTF8')::jsonb -> 'data' ->> 'order_id', sent_at"
                " FROM outbox_events WHERE type = 'order.placed' AND sent_at IS NOT NULL"
                " AND convert_from(payload, 'UTF8')::jsonb -> 'data' ->> 'order_id' = ANY(%s)",
                (ids,),
            )
        }
    with psycopg.connect(dsn.format("push")) as conn:
        planned = {
            str(order): at.timestamp()
            for order, at in conn.execute(
                "SELECT data ->> 'order_id', min(created_at) FROM deliveries"
                " WHERE data ->> 'order_id' = ANY(%s) GROUP BY 1",
                (ids,),
            )
        }
    spans = {
        "commit_to_kafka": [published[o] - committed[o] for o in ids if o in published],
        "kafka_to_push_planned": [
            planned[o] - published[o] for o in ids if o in published and o in planned
        ],
        "planned_to_fcm": [arrivals[o] - planned[o] for o in ids if o in planned and o in arrivals],
    }
    return {
        name: {
            "p50_ms": round(1000 * statistics.median(values), 1),
            "p99_ms": round(1000 * _percentile(values, 0.99), 1),
        }
        for name, values in spans.items()
        if values
    }


async def _load(
    api_url: str,
    tokens: TokenFactory,
    deal_id: str,
    rate: float,
    duration_s: float,
    log: FcmLog,
) -> tuple[dict[str, float], int, float]:
    """Orders open-loop at ``rate``/s; returns order id → committed time, failures, elapsed."""
    committed: dict[str, float] = {}
    failures = 0
    total = int(rate * duration_s)
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    # Tokens are signed ahead: RS256 signing is not what the bench measures.
    headers = [
        tokens.headers(f"c-lat-{uuid.uuid4().hex[:12]}", ["customer"], ttl_s=3600)
        for _ in range(total)
    ]
    # At most as many requests in flight as connections: when api answers slower than asked,
    # the rest wait here (an O(1) semaphore) instead of in httpx's pool, whose queue handling
    # grew quadratic with thousands waiting and made the load generator the bottleneck. The
    # clock of an order starts at its answer, so waiting here does not count as latency; the
    # achieved rate says how many api committed.
    gate = asyncio.Semaphore(256)
    async with httpx.AsyncClient(base_url=api_url, limits=limits, timeout=30) as client:

        async def one(n: int) -> None:
            nonlocal failures
            try:
                async with gate:
                    answer = await client.post(
                        "/customer/orders",
                        json={"deal_id": deal_id, "quantity": 1},
                        headers={**headers[n], "Idempotency-Key": str(uuid.uuid4())},
                    )
            except httpx.HTTPError as exc:
                if not failures:
                    print(f"\n  an order failed: {exc!r}", file=sys.stderr)
                failures += 1
                return
            done = time.time()
            if answer.status_code == 201:
                committed[answer.json()["id"]] = done
            else:
                if not failures:
                    print(
                        f"\n  an order failed: {answer.status_code} {answer.text[:300]}",
                        file=sys.stderr,
                    )
                failures += 1

        started = time.monotonic()
        tasks: list[asyncio.Task[None]] = []
        for n in range(total):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
            if n % max(1, int(rate)) == 0:
                log.poll()
                print(
                    f"\r  {n}/{total} orders sent, {len(committed)} committed,"
                    f" {len(log.arrivals)} at FCM",
                    end="",
                    file=sys.stderr,
                )
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
    print(file=sys.stderr)
    return committed, failures, elapsed


_INSERT_ORDER_EVENTS = (
    "INSERT INTO outbox_events (event_id, type, topic, key, shard, payload, headers, traceparent)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s), (%s, %s, %s, %s, %s, %s, %s, %s)"
)


def _order_events(deal_id: str, store: str, n: int) -> tuple[str, list[Any]]:
    """An order's id and the parameters of its two outbox rows, as the order path writes them."""
    now = datetime.now(UTC)
    order_id = uuid.uuid4()
    placed = OrderPlaced(
        key=store,
        data=OrderPlacedData(
            order_id=order_id,
            deal_id=uuid.UUID(deal_id),
            store_id=store,
            store_name="지연빵집",
            deal_name="소금빵",
            customer_id=f"c-lat-{n}",
            quantity=1,
            unit_price_krw=1800,
            total_krw=1800,
            pickup_end_at=now + timedelta(hours=2),
        ),
    )
    stock = StockChanged(
        key=store,
        data=StockChangedData(
            deal_id=uuid.UUID(deal_id),
            store_id=store,
            quantity_available=1_000_000 - n,
            price_krw=1800,
            reason=StockChangeReason.ORDERED,
            live=True,
            lat=37.5477,
            lon=127.0447,
        ),
    )
    params: list[Any] = []
    for event in (placed, stock):
        row = row_values(event)
        params += [
            *(row["event_id"], row["type"], row["topic"], row["key"], row["shard"]),
            *(row["payload"], json.dumps(row["headers"]), row["traceparent"]),
        ]
    return str(order_id), params


async def _load_outbox(
    pg_port: int, deal_id: str, store: str, rate: float, duration_s: float, log: FcmLog
) -> tuple[dict[str, float], int, float]:
    """Orders' outbox rows committed open-loop at ``rate``/s by a few connections, as api's
    requests would commit them; returns order id → committed time, failures, elapsed."""
    total = int(rate * duration_s)
    orders = [_order_events(deal_id, store, n) for n in range(total)]  # built ahead, not timed
    committed: dict[str, float] = {}
    failures = 0
    queue: asyncio.Queue[tuple[str, list[Any]] | None] = asyncio.Queue()
    dsn = f"host=127.0.0.1 port={pg_port} user=magam password=magam dbname=api"

    async def writer() -> None:
        nonlocal failures
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            while (item := await queue.get()) is not None:
                order_id, params = item
                try:
                    await conn.execute(_INSERT_ORDER_EVENTS, params)
                except psycopg.Error:
                    failures += 1
                    continue
                committed[order_id] = time.time()

    writers = [asyncio.create_task(writer()) for _ in range(8)]
    started = time.monotonic()
    for n, order in enumerate(orders):
        delay = started + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(order)
        if n % max(1, int(rate)) == 0:
            log.poll()
            print(
                f"\r  {n}/{total} orders' events written, {len(committed)} committed,"
                f" {len(log.arrivals)} at FCM",
                end="",
                file=sys.stderr,
            )
    for _ in writers:
        queue.put_nowait(None)
    await asyncio.gather(*writers)
    elapsed = time.monotonic() - started
    print(file=sys.stderr)
    return committed, failures, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50, help="orders per second asked (50)")
    parser.add_argument("--duration", type=float, default=20, help="seconds of load (20)")
    parser.add_argument("--pg-port", type=int, default=5433, help="PostgreSQL port (5433)")
    parser.add_argument("--kafka", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    parser.add_argument(
        "--source",
        choices=("orders", "outbox"),
        default="orders",
        help="orders: POST /customer/orders to api (default); outbox: the bench commits the"
        " orders' outbox rows itself (relay + push only, for rates api cannot place yet)",
    )
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="push-latency-"))
    tokens = TokenFactory()
    fcm_port = free_port()
    fcm_log = workdir / "fcm.jsonl"
    sa = workdir / "service-account.json"
    standin = subprocess.Popen(
        [
            *(sys.executable, "-m", "standins.fcm", "--port", str(fcm_port), "--http2"),
            *("--service-account", str(sa), "--log", str(fcm_log), "--project", "magam-local"),
        ],
        stdout=subprocess.DEVNULL,
    )
    processes: list[ServiceProcess] = []
    try:
        _wait_listening(fcm_port, standin)
        with jwks_server(tokens) as jwks_url:
            common = {
                **os.environ,
                "MAGAM_PROFILE": "prod",
                "MAGAM_ALLOW_DEV_SECRETS": "1",
                "MAGAM_CONFIG_REPO": str(REPO / "config-repo"),
                "API_DATABASE__PORT": str(args.pg_port),
                "PUSH_DATABASE__PORT": str(args.pg_port),
                "API_DATABASE__PASSWORD": "magam",
                "PUSH_DATABASE__PASSWORD": "magam",
                "API_KAFKA__BOOTSTRAP_SERVERS": args.kafka,
                "PUSH_KAFKA__BOOTSTRAP_SERVERS": args.kafka,
                "API_AUTH__JWKS_URL": jwks_url,
                "API_AUTH__ISSUER": tokens.issuer,
                "PUSH_AUTH__JWKS_URL": jwks_url,
                "PUSH_AUTH__ISSUER": tokens.issuer,
                "PUSH_CONSUMER__GROUP_ID": f"push-latency-{uuid.uuid4().hex[:8]}",
                "PUSH_CONSUMER__OFFSET_RESET": "latest",
                "PUSH_FCM__SENDER": "fcm",
                "PUSH_FCM__PROJECT_ID": "magam-local",
                "PUSH_FCM__CREDENTIALS_FILE": str(sa),
                "PUSH_FCM__SEND_URL": (
                    f"http://127.0.0.1:{fcm_port}/v1/projects/{{project}}/messages:send"
                ),
                "PUSH_FCM__H2C": "true",
                "API_GEOFENCE__ENABLED": "false",  # its cold load is not what is measured
                "API_LOG__LEVEL": "WARNING",
                "PUSH_LOG__LEVEL": "WARNING",
            }
            push = ServiceProcess.start("push", common, workdir / "push.log")
            processes.append(push)
            api = ServiceProcess.start("api", common, workdir / "api.log")
            processes.append(api)
            push.wait_ready()
            api.wait_ready()
            print(f"api :{api.port}, push :{push.port}, FCM stand-in :{fcm_port}", file=sys.stderr)
            _wait_outbox_drained(args.pg_port)
            log = FcmLog(fcm_log)
            total = int(args.rate * args.duration)
            with (
                httpx.Client(base_url=api.url, timeout=60) as api_client,
                httpx.Client(base_url=push.url, timeout=60) as push_client,
            ):
                deal_id, phone, store = _setup(
                    tokens, api_client, push_client, args.pg_port, total + 50
                )
            # Warm-up: orders until one reaches the phone (push has learned the manager from
            # store.manager_approved and holds an FCM token); not measured.
            deadline = time.monotonic() + 60
            while not log.arrivals:
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"no warm-up order reached the FCM stand-in in 60 s; see {workdir}"
                    )
                asyncio.run(_load(api.url, tokens, deal_id, 5, 1, log))
                time.sleep(0.5)
                log.poll()
            warm = set(log.arrivals)
            _wait_outbox_drained(args.pg_port)
            print(f"warm; {total} orders at {args.rate:g}/s ({args.source})", file=sys.stderr)
            cpu_before = {p.service: _cpu_s(p.process.pid) for p in processes}
            cpu_before["fcm_standin"] = _cpu_s(standin.pid)
            backends_before, brokers_before = _server_cpu()
            if args.source == "outbox":
                committed, failures, elapsed = asyncio.run(
                    _load_outbox(args.pg_port, deal_id, store, args.rate, args.duration, log)
                )
            else:
                committed, failures, elapsed = asyncio.run(
                    _load(api.url, tokens, deal_id, args.rate, args.duration, log)
                )
            drain_deadline = time.monotonic() + 30
            while time.monotonic() < drain_deadline:
                log.poll()
                if all(o in log.arrivals for o in committed):
                    break
                time.sleep(0.2)
            cpu = {p.service: _cpu_s(p.process.pid) - cpu_before[p.service] for p in processes}
            cpu["fcm_standin"] = _cpu_s(standin.pid) - cpu_before["fcm_standin"]
            backends_after, brokers_after = _server_cpu()
            for p in processes:  # the PostgreSQL backends serving this service's connections
                ports = _local_ports(p.process.pid, args.pg_port)
                cpu[f"postgres_for_{p.service}"] = sum(
                    backends_after[port] - backends_before.get(port, 0.0)
                    for port in ports
                    if port in backends_after
                )
            # The broker serves everyone's topics on this machine: an upper bound, not ours.
            cpu["kafka_broker_shared"] = sum(
                used - brokers_before.get(pid, 0.0) for pid, used in brokers_after.items()
            )
    finally:
        for process in reversed(processes):
            process.stop()
        standin.terminate()
        standin.wait()
    latencies = [1000 * (log.arrivals[o] - t) for o, t in committed.items() if o in log.arrivals]
    missing = [o for o in committed if o not in log.arrivals]
    delivered = [o for o in committed if o in log.arrivals]
    stages = _stages(args.pg_port, committed, log.arrivals)
    result: dict[str, Any] = {
        "bench": "push-latency-order-to-fcm",
        "source": args.source,
        "measures": "relay+push only (outbox rows written by the bench)"
        if args.source == "outbox"
        else "api order path + relay + push",
        "rate_asked_per_s": args.rate,
        "duration_s": args.duration,
        "orders_committed": len(committed),
        "orders_failed": failures,
        "rate_achieved_per_s": round(len(committed) / elapsed, 1),
        # Notifications received / (last one received - first order committed): below the
        # committed rate when push (or the relay) fell behind and the run ended in a drain.
        "rate_delivered_per_s": round(
            len(latencies)
            / max(1e-9, max(log.arrivals[o] for o in delivered) - min(committed.values())),
            1,
        )
        if delivered
        else None,
        "notifications_received": len(latencies),
        "notifications_missing": len(missing),
        "warm_up_orders": len(warm),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p90_ms": round(_percentile(latencies, 0.90), 1) if latencies else None,
        "p99_ms": round(_percentile(latencies, 0.99), 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
        "stages": stages,
        # CPU per order committed, from /proc, during the load and the drain: api (in outbox
        # mode its relay alone), push, the FCM stand-in, the PostgreSQL backends of api's and
        # push's connections, and the Kafka broker (shared with whatever else runs).
        "cpu_ms_per_order": {
            name: round(1000 * seconds / max(1, len(committed)), 3) for name, seconds in cpu.items()
        },
        "goal": {"p99_ms": 250, "rate_per_s": 500},
        "target": phone[:12] + "…",
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if missing:
        raise SystemExit(f"{len(missing)} committed orders never reached the FCM stand-in")


if __name__ == "__main__":
    main()
