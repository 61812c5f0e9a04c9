"""Two push replicas (real processes) share 10,000 events on a 2-partition topic; one is killed
with SIGKILL mid-way. Every expected (event, device) notification reaches the FCM stand-in; a
duplicate is possible only for messages FCM accepted just before the kill and not yet recorded:
at most one FCM call (``fcm.batch_size``; 1 makes it one message) per crash. The test counts and
prints them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from conftest import REPO, Infra
from contracts import OrderStatus, OrderStatusChanged, OrderStatusChangedData, serialize_event
from push.db import Base
from push.device.models import Device
from servicekit.db import prepare_schema
from servicekit.kafka import ensure_topics
from standins.server import free_port

pytestmark = pytest.mark.integration

EVENTS = 10_000
CUSTOMERS = 200
STORES = 40
BATCH = 50


def _events(run: str, customers: list[str]) -> list[OrderStatusChanged]:
    return [
        OrderStatusChanged(
            key=f"S-{run}-{i % STORES}",
            data=OrderStatusChangedData(
                order_id=uuid.uuid4(),
                deal_id=uuid.uuid4(),
                store_id=f"S-{run}-{i % STORES}",
                store_name="마감빵집",
                deal_name="소금빵 3개",
                customer_id=customers[i % len(customers)],
                from_status=OrderStatus.ACCEPTED,
                to_status=OrderStatus.READY,
                changed_by="m",
            ),
        )
        for i in range(EVENTS)
    ]


async def _seed_devices(infra: Infra, customers: list[str]) -> dict[str, list[str]]:
    """Each customer one token, every fourth also a Firebase installation id."""
    url = f"postgresql+psycopg://{infra.pg_user}:{infra.pg_password}@{infra.pg_host}:{infra.pg_port}/push"
    engine = create_async_engine(url)
    targets: dict[str, list[str]] = {}
    try:
        await prepare_schema(engine, Base.metadata)
        now = datetime.now(UTC)
        rows = []
        for n, customer in enumerate(customers):
            kinds = [("token", f"tok-{customer}")]
            if n % 4 == 0:
                kinds.append(("fid", f"fid-{customer}"))
            targets[customer] = [t for _, t in kinds]
            rows += [
                {
                    "id": uuid.uuid4(),
                    "user_id": customer,
                    "target_kind": k,
                    "target": t,
                    "platform": "android",
                    "locale": "ko-KR",
                    "created_at": now,
                    "last_seen_at": now,
                }
                for k, t in kinds
            ]
        async with engine.begin() as conn:
            await conn.execute(insert(Device), rows)
    finally:
        await engine.dispose()
    return targets


async def _produce(bootstrap: str, topic: str, events: list[OrderStatusChanged]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        acks = [await producer.send(topic, serialize_event(e), key=e.key.encode()) for e in events]
        await asyncio.gather(*acks)
    finally:
        await producer.stop()


def _replica(env: dict[str, str], port: int, log: BinaryIO) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "from push.main import serve; serve()"],
        env={**env, "PUSH_HTTP__PORT": str(port)},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )


def _reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _assigned(log: Path, topic: str) -> list[str]:
    """The partitions of ``topic`` a replica holds, from its latest assignment log line."""
    latest: list[str] = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if '"partitions assigned"' in line:
            latest = [p for p in json.loads(line)["partitions"] if p.startswith(topic)]
    return latest


def _wait(what: str, done: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        time.sleep(1.0)  # reading the stand-in's log is not free


@dataclass(frozen=True)
class Standin:
    env: dict[str, str]
    received_log: Path

    def received(self) -> list[tuple[str, str]]:
        """(event id, target) of every accepted message, in arrival order."""
        if not self.received_log.exists():
            return []
        text = self.received_log.read_text(encoding="utf-8")
        # The stand-in may be mid-append: a line without its newline is not there yet.
        lines = text[: text.rfind("\n") + 1].splitlines()
        return [
            (row["data"].get("event_id", ""), row["target"])
            for row in map(json.loads, lines)
            if row.get("target")
        ]


@pytest.fixture
def standin(prod_profile: Infra) -> Iterator[Standin]:
    """The FCM stand-in as its own process: 10,000 requests should not share pytest's GIL."""
    keep = Path(tempfile.mkdtemp(prefix="push-crash-"))  # outlives pytest's tmp rotation
    port = free_port()
    sa, log = keep / "service-account.json", keep / "fcm-received.jsonl"
    output = (keep / "fcm.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "standins.fcm",
            "--port",
            str(port),
            "--project",
            "magam-test",
            "--service-account",
            str(sa),
            "--log",
            str(log),
            "--http2",  # h2c, as FCM speaks HTTP/2: the replicas send over push's own transport
        ],
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait("the FCM stand-in", sa.exists, 30)
        run = uuid.uuid4().hex[:8]
        env = {
            **os.environ,
            "PUSH_FCM__SENDER": "fcm",
            "PUSH_FCM__PROJECT_ID": "magam-test",
            "PUSH_FCM__CREDENTIALS_FILE": str(sa),
            "PUSH_FCM__SEND_URL": f"http://127.0.0.1:{port}/v1/projects/{{project}}/messages:send",
            "PUSH_FCM__H2C": "true",
            "PUSH_CONSUMER__GROUP_ID": f"push-crash-{run}",
            "PUSH_CONSUMER__TOPICS": json.dumps([f"crash-order-{run}"]),
            "PUSH_CONSUMER__SESSION_TIMEOUT_MS": "6000",
            "PUSH_CONSUMER__HEARTBEAT_INTERVAL_MS": "1000",
            # FCM calls of BATCH messages, each recorded before the next: a crash repeats at
            # most one call's worth (1 gives at most one message; too slow for this budget).
            "PUSH_FCM__BATCH_SIZE": str(BATCH),
            "PUSH_FCM__CONCURRENT_BATCHES": "1",
            # Held deals other tests left in the shared database are not this test's business.
            "PUSH_NOTIFY__RELEASE_INTERVAL_S": "3600",
            "PUSH_LOG__LEVEL": "INFO",
        }
        time.sleep(0.5)  # the service-account file is written just before uvicorn binds
        yield Standin(env, log)
    finally:
        _reap(proc)
        output.close()


def test_killing_one_replica_mid_stream_loses_nothing_and_repeats_at_most_one(
    prod_profile: Infra, standin: Standin
) -> None:
    replicas_env = standin.env
    topic = json.loads(replicas_env["PUSH_CONSUMER__TOPICS"])[0]
    run = topic.rsplit("-", 1)[1]
    customers = [f"crash-{run}-{n}" for n in range(CUSTOMERS)]
    targets = asyncio.run(_seed_devices(prod_profile, customers))
    events = _events(run, customers)
    expected = Counter((str(e.event_id), t) for e in events for t in targets[e.data.customer_id])
    asyncio.run(ensure_topics(prod_profile.kafka_bootstrap, [topic], partitions=2))

    keep = standin.received_log.parent
    logs = [keep / "replica-a.log", keep / "replica-b.log"]
    print("replica logs:", *logs)
    ports = [free_port(), free_port()]
    with ExitStack() as stack:
        procs = [
            _replica(replicas_env, port, stack.enter_context(log.open("wb")))
            for port, log in zip(ports, logs, strict=True)
        ]
        for proc in procs:
            stack.callback(_reap, proc)
        _wait(
            "each replica holds one partition",
            lambda: all(len(_assigned(log, topic)) == 1 for log in logs),
            60,
        )
        asyncio.run(_produce(prod_profile.kafka_bootstrap, topic, events))
        _wait(
            "a third delivered", lambda: len(standin.received()) >= sum(expected.values()) // 3, 180
        )
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
        killed_at = len(standin.received())
        _wait(
            "every expected notification",
            lambda: set(expected) <= set(standin.received()),
            # ~100 s on a quiet 2-core box; a loaded one (load 10 seen) needs far longer.
            420,
        )
        time.sleep(1.0)  # anything sent twice would have arrived by now
        assert httpx.get(f"http://127.0.0.1:{ports[1]}/healthz").status_code == 200
        procs[1].send_signal(signal.SIGTERM)
        procs[1].wait(timeout=20)

    ours = {str(e.event_id) for e in events}
    received = Counter(r for r in standin.received() if r[0] in ours)
    duplicates = sum(n - 1 for n in received.values() if n > 1)
    print(
        f"expected {sum(expected.values())} notifications for {EVENTS} events; "
        f"received {sum(received.values())}; killed replica A after {killed_at}; "
        f"duplicates {duplicates}"
    )
    assert set(received) == set(expected)  # nothing lost, nothing extra
    assert duplicates <= BATCH  # one crash: at most the one FCM call in flight
