"""push consumes what a test produced on the real Kafka broker, from a 2-partition topic."""

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from fastapi.testclient import TestClient
from sqlalchemy import select

from conftest import Infra
from contracts import OrderPlaced, OrderPlacedData, serialize_event
from push.delivery.models import ProcessedEvent
from push.main import create_app
from push.settings import ConsumerSettings, PushSettings
from servicekit.kafka import ensure_topics

pytestmark = pytest.mark.integration


def _order_placed(store: str) -> OrderPlaced:
    return OrderPlaced(
        key=store,
        data=OrderPlacedData(
            order_id=uuid.uuid4(),
            deal_id=uuid.uuid4(),
            store_id=store,
            store_name="마감빵집",
            deal_name="소금빵 3개",
            customer_id="u-1",
            quantity=1,
            unit_price_krw=2500,
            total_krw=2500,
            pickup_end_at=datetime.now(UTC) + timedelta(hours=1),
        ),
    )


async def _partitions(bootstrap: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        return len(described["partitions"])
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, values: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for key, value in values:
            await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()


def test_push_consumes_events_produced_on_kafka_once_each(prod_profile: Infra) -> None:
    topic = f"test-order-{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_topics(prod_profile.kafka_bootstrap, [topic], partitions=2))
    assert asyncio.run(_partitions(prod_profile.kafka_bootstrap, topic)) == 2

    events = [_order_placed(store) for store in ("S-A", "S-B", "S-C", "S-D")]
    duplicate = events[0]
    asyncio.run(
        _produce(
            prod_profile.kafka_bootstrap,
            topic,
            [(e.key, serialize_event(e)) for e in [*events, duplicate]] + [("S-A", b"{not json")],
        )
    )

    settings = PushSettings(
        consumer=ConsumerSettings(group_id=f"push-test-{uuid.uuid4().hex[:8]}", topics=[topic])
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        sessions = client.app.state.sessions  # type: ignore[attr-defined]
        wanted = {e.event_id for e in events}

        async def processed() -> list[ProcessedEvent]:
            async with sessions() as session:
                rows = await session.scalars(
                    select(ProcessedEvent).where(ProcessedEvent.topic == topic)
                )
                return list(rows)

        rows: list[ProcessedEvent] = []
        for _ in range(100):
            rows = client.portal.call(processed)  # type: ignore[union-attr]
            if {r.event_id for r in rows} >= wanted:
                break
            time.sleep(0.1)

    assert sorted(r.event_id for r in rows) == sorted(wanted)  # the duplicate was not re-processed
    assert {r.partition for r in rows} <= {0, 1}
