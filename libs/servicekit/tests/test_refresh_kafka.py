"""The config bus on the real Kafka broker: every replica sees every refresh record."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from conftest import Infra
from servicekit.bus import Handler, IncomingRecord, OutgoingRecord
from servicekit.kafka import KafkaPublisher, ensure_topics
from servicekit.refresh import KafkaBroadcastSubscription

pytestmark = pytest.mark.integration


async def test_broadcast_delivers_each_record_to_every_replica_from_where_it_started(
    infra: Infra,
) -> None:
    topic = f"test-config-bus-{uuid.uuid4().hex[:8]}"
    await ensure_topics(infra.kafka_bootstrap, [topic], partitions=1)
    publisher = KafkaPublisher(infra.kafka_bootstrap, client_id="test-config-bus")
    await publisher.start()
    await publisher.send(OutgoingRecord(topic, b"*", b"before"))
    replicas = [
        KafkaBroadcastSubscription(infra.kafka_bootstrap, topic, f"replica-{i}") for i in range(2)
    ]
    seen: list[list[bytes]] = [[], []]
    both_saw_two = asyncio.Event()

    def collect(i: int) -> Handler:
        async def handle(record: IncomingRecord) -> None:
            seen[i].append(record.value)
            if all(len(s) >= 2 for s in seen):
                both_saw_two.set()

        return handle

    tasks = [asyncio.create_task(r.run(collect(i))) for i, r in enumerate(replicas)]
    try:
        await asyncio.wait_for(asyncio.gather(*(r.ready.wait() for r in replicas)), 20)
        await publisher.send(OutgoingRecord(topic, b"*", b"refresh-1"))
        await publisher.send(OutgoingRecord(topic, b"*", b"refresh-2"))
        await asyncio.wait_for(both_saw_two.wait(), 20)
    finally:
        for replica in replicas:
            await replica.stop()
        await asyncio.gather(*tasks)
        await publisher.stop()

    assert seen == [[b"refresh-1", b"refresh-2"], [b"refresh-1", b"refresh-2"]]
