"""Events are written with the change they describe, and the relay publishes them to Kafka."""

import asyncio
import re
import subprocess
import time
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from api.outbox import OutboxEvent
from conftest import REPO, Infra
from contracts import TOPIC_ORDER, TOPIC_STOCK

from .conftest import Api
from .kafka_tail import KafkaTail

pytestmark = pytest.mark.integration


async def _outbox_types(api: Api, store: str) -> list[str]:
    async with api.sessions() as session:
        rows = await session.scalars(
            select(OutboxEvent.type).where(OutboxEvent.key == store).order_by(OutboxEvent.id)
        )
        return list(rows)


async def test_a_refused_order_writes_no_event_and_a_placed_one_writes_both(api: Api) -> None:
    store = await api.store()
    deal = await api.deal(store, await api.manager_of(store), quantity=1)

    await api.order(deal["id"], api.customer(), quantity=2)  # refused: only 1 left
    placed = await api.order(deal["id"], api.customer(), quantity=1)

    assert placed.status_code == 201
    assert await _outbox_types(api, store) == ["deal.published", "order.placed", "stock.changed"]


async def test_the_relay_publishes_each_event_keyed_by_store(api: Api, prod_profile: Infra) -> None:
    async with KafkaTail(prod_profile.kafka_bootstrap, [TOPIC_ORDER, TOPIC_STOCK]) as tail:
        store = await api.store()
        deal = await api.deal(store, await api.manager_of(store))
        order = (await api.order(deal["id"], api.customer())).json()

        arrived = await tail.collect(lambda e: e.key == store, count=3)

    by_type = {e.type: e for _, _, _, e in arrived}
    assert set(by_type) == {"deal.published", "order.placed", "stock.changed"}
    assert str(by_type["order.placed"].data.order_id) == order["id"]  # type: ignore[union-attr]
    async with api.sessions() as session:
        unsent = await session.scalar(
            select(func.count()).where(OutboxEvent.key == store, OutboxEvent.sent_at.is_(None))
        )
    assert unsent == 0


async def _backlog_metric(api: Api, wanted: Callable[[float], bool], timeout_s: float) -> float:
    """``magam_outbox_backlog`` from /metrics, polled until ``wanted`` holds or the timeout."""
    value = -1.0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = (await api.client.get("/metrics")).text
        match = re.search(r'^magam_outbox_backlog\{service="api"\} ([0-9.e+]+)$', text, re.M)
        value = float(match.group(1)) if match else -1.0
        if wanted(value):
            break
        await asyncio.sleep(0.5)
    return value


def _infra(*args: str) -> None:
    subprocess.run([str(REPO / "scripts" / "infra"), *args], check=True, capture_output=True)


@pytest.mark.disruptive
async def test_orders_succeed_while_kafka_is_down_and_every_event_arrives_in_store_order(
    api: Api, prod_profile: Infra
) -> None:
    stores = [await api.store() for _ in range(3)]
    deals = {s: await api.deal(s, await api.manager_of(s), quantity=50) for s in stores}
    async with KafkaTail(prod_profile.kafka_bootstrap, [TOPIC_ORDER, TOPIC_STOCK]) as tail:
        try:
            _infra("down", "kafka")
            statuses = [
                (await api.order(deals[s]["id"], api.customer())).status_code
                for _ in range(10)
                for s in stores
            ]
            async with api.sessions() as session:
                rows = (
                    await session.execute(
                        select(
                            OutboxEvent.key,
                            OutboxEvent.topic,
                            OutboxEvent.event_id,
                            OutboxEvent.sent_at,
                        )
                        .where(OutboxEvent.key.in_(stores), OutboxEvent.type != "deal.published")
                        .order_by(OutboxEvent.id)
                    )
                ).all()
            backlog_during = await _backlog_metric(api, lambda v: v >= 60, timeout_s=30)
        finally:
            _infra("up", "kafka")

        arrived = await tail.collect(
            lambda e: e.key in stores and e.type != "deal.published", count=60, timeout_s=120
        )

    assert statuses == [201] * 30  # customers never noticed
    assert len(rows) == 60  # order.placed + stock.changed per order
    assert all(sent_at is None for *_, sent_at in rows)  # all held back during the outage
    # Kafka orders a partition of one topic: compare each store's events per topic.
    streams = {(s, t) for s in stores for t in (TOPIC_ORDER, TOPIC_STOCK)}
    expected = {st: [eid for key, topic, eid, _ in rows if (key, topic) == st] for st in streams}
    received: dict[tuple[str, str], list[uuid.UUID]] = {st: [] for st in streams}
    for topic, _, _, event in sorted(arrived, key=lambda a: (a[0], a[1], a[2])):
        stream = received[(event.key, topic)]
        if event.event_id not in stream:  # a relay crash may resend: only ever the same id
            stream.append(event.event_id)
    assert received == expected  # nothing lost, and each store's events in their order
    assert backlog_during >= 60  # /metrics showed the backlog rising while Kafka was away
    assert await _backlog_metric(api, lambda v: v == 0, timeout_s=60) == 0  # and falling after
