"""The outbox relay on its own database: several relays at once publish every row once, each
key's rows in their order; an insert's NOTIFY (at commit only) wakes a relay that never polls."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence

import psycopg
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from api.outbox import CHANNEL, OutboxEvent, OutboxRelay, install_notify_trigger, shard_of
from conftest import Infra
from servicekit.bus import OutgoingRecord

pytestmark = pytest.mark.integration


class Recorder:
    """A publisher that keeps what it was sent (the broker is not what these tests are about)."""

    def __init__(self) -> None:
        self.records: list[OutgoingRecord] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, record: OutgoingRecord) -> None:
        await self.send_batch([record])

    async def send_batch(self, records: Sequence[OutgoingRecord]) -> None:
        await asyncio.sleep(0.001)  # an ack's round trip: lets the other relay run meanwhile
        self.records.extend(records)

    async def ping(self) -> None:
        return None


@pytest.fixture
def scratch_database(prod_profile: Infra) -> Iterator[str]:
    with prod_profile.scratch_database("api_outbox") as name:
        yield prod_profile.dsn(name)


@pytest.fixture
async def engine(scratch_database: str, prod_profile: Infra) -> AsyncIterator[AsyncEngine]:
    name = scratch_database.rsplit("=", 1)[1]
    engine = create_async_engine(
        f"postgresql+psycopg://magam:magam@127.0.0.1:{prod_profile.pg_port}/{name}"
    )
    async with engine.begin() as conn:
        await conn.run_sync(OutboxEvent.metadata.tables["outbox_events"].create)
    try:
        yield engine
    finally:
        await engine.dispose()


def _row(key: str, n: int) -> dict[str, object]:
    return {
        "event_id": uuid.uuid4(),
        "type": "order.placed",
        "topic": "order",
        "key": key,
        "shard": shard_of(key),
        "payload": f"{key}/{n}".encode(),
        "headers": [["content-type", "application/json"]],
    }


async def _unsent(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.sent_at.is_(None))
        )
    return int(count or 0)


async def test_three_relays_publish_every_row_once_each_key_in_order(engine: AsyncEngine) -> None:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    recorder = Recorder()
    relays = [OutboxRelay(sessions, recorder, batch_size=20) for _ in range(3)]
    running = [asyncio.create_task(r.run()) for r in relays]
    keys = [f"S{k:03d}" for k in range(40)]

    async def writer(own: list[str]) -> None:
        # One writer per key set: a key's rows commit in their id order (as one store's orders
        # do behind the deal's row lock), one to three rows a transaction.
        for n in range(0, 30, 3):
            for key in own:
                async with sessions() as session, session.begin():
                    await session.execute(
                        insert(OutboxEvent), [_row(key, n + i) for i in range(1 + n % 3)]
                    )

    await asyncio.gather(*(writer(keys[w::4]) for w in range(4)))
    for _ in range(600):  # drained, or the test fails below with what was left
        if await _unsent(sessions) == 0:
            break
        await asyncio.sleep(0.1)
    for relay in relays:
        await relay.stop()
    await asyncio.gather(*running)

    assert await _unsent(sessions) == 0
    async with sessions() as session:
        stored = (
            await session.execute(
                select(OutboxEvent.key, OutboxEvent.payload).order_by(OutboxEvent.id)
            )
        ).all()
    assert len(recorder.records) == len(stored)  # each row once: no crash, so no repeats
    for key in keys:
        published = [r.value for r in recorder.records if r.key == key.encode()]
        assert published == [p for k, p in stored if k == key]
        assert published == sorted(published, key=lambda v: int(v.split(b"/")[1]))
    assert sum(r.published for r in relays) == len(stored)
    assert all(r.headers == [("content-type", b"application/json")] for r in recorder.records)


async def test_an_insert_notifies_at_commit_and_a_rolled_back_one_never(
    engine: AsyncEngine, scratch_database: str
) -> None:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as session, session.begin():
        assert await install_notify_trigger(session)
    async with sessions() as session, session.begin():
        assert not await install_notify_trigger(session)  # once is enough

    async with await psycopg.AsyncConnection.connect(scratch_database, autocommit=True) as conn:
        await conn.execute(f"LISTEN {CHANNEL}")
        async with sessions() as session:
            await session.execute(insert(OutboxEvent), [_row("R", 0)])
            await session.rollback()
            await session.execute(insert(OutboxEvent), [_row("C", 0), _row("C", 1)])
            await session.execute(insert(OutboxEvent), [_row("C", 2)])
            await session.commit()
        # Delivered in commit order: the committed transaction's is the first and only one.
        heard = [n async for n in conn.notifies(timeout=10, stop_after=1)]
        assert [n.channel for n in heard] == [CHANNEL]
        assert [n async for n in conn.notifies(timeout=1)] == []  # one per transaction


async def test_a_relay_that_never_polls_is_woken_by_the_insert(engine: AsyncEngine) -> None:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    recorder = Recorder()
    relay = OutboxRelay(sessions, recorder, idle_poll_s=3600, listen_poll_s=3600)
    running = asyncio.create_task(relay.run())
    try:
        for _ in range(300):  # it has installed the trigger and listens
            if relay.listening:
                break
            await asyncio.sleep(0.1)
        assert relay.listening
        await asyncio.sleep(0.2)  # past the pass that listening started
        async with sessions() as session, session.begin():
            await session.execute(insert(OutboxEvent), [_row("W", 0)])
        for _ in range(300):
            if recorder.records:
                break
            await asyncio.sleep(0.1)
        # Without the notification the next pass would be an hour away.
        assert [r.value for r in recorder.records] == [b"W/0"]
    finally:
        await relay.stop()
        await running
