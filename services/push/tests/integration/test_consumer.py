"""push's batch consumer on the real Kafka: partitions do not wait for each other, a partition's
batches come in order one at a time (the next one planned while the current one is delivered),
and an offset is committed only after its batch's delivery returned."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from conftest import Infra
from push.consumer import BatchConsumer, BatchHandler
from push.delivery.pipeline import Deliver
from push.settings import ConsumerSettings
from servicekit.bus import IncomingRecord
from servicekit.kafka import ensure_topics

pytestmark = pytest.mark.integration


@dataclass
class Topic:
    name: str
    bootstrap: str
    producer: AIOKafkaProducer

    async def put(self, partition: int, *values: str) -> None:
        for value in values:
            await self.producer.send_and_wait(self.name, value.encode(), partition=partition)

    def consumer(self, group: str) -> BatchConsumer:
        settings = ConsumerSettings(group_id=group, topics=[self.name], max_batch=50)
        return BatchConsumer(self.bootstrap, settings, client_id="push-test")

    async def committed(self, group: str) -> dict[int, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(group)
        finally:
            await admin.close()
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == self.name}


@pytest.fixture
async def topic(prod_profile: Infra) -> AsyncIterator[Topic]:
    name = f"push-consumer-test-{uuid.uuid4().hex[:10]}"
    await ensure_topics(prod_profile.kafka_bootstrap, [name], partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=prod_profile.kafka_bootstrap)
    await producer.start()
    try:
        yield Topic(name, prod_profile.kafka_bootstrap, producer)
    finally:
        await producer.stop()


def delivering(handle: Callable[[Sequence[IncomingRecord]], Awaitable[None]]) -> BatchHandler:
    """A handler whose planning does nothing and whose delivery is ``handle``."""

    async def plan(records: Sequence[IncomingRecord]) -> Deliver:
        async def deliver() -> None:
            await handle(records)

        return deliver

    return plan


async def _until(condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    """Waits for ``condition()``; the deadline only turns a hang into a failure."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)


async def test_a_partition_flows_while_another_is_busy_and_commits_only_after_its_batch(
    topic: Topic,
) -> None:
    group = f"push-consumer-test-{uuid.uuid4().hex[:8]}"
    consumer = topic.consumer(group)
    release = asyncio.Event()
    seen: dict[int, list[str]] = {0: [], 1: []}
    in_flight: dict[int, int] = {0: 0, 1: 0}
    overlapped: list[int] = []

    async def handler(records: Sequence[IncomingRecord]) -> None:
        partition = records[0].partition
        in_flight[partition] += 1
        if in_flight[partition] > 1:
            overlapped.append(partition)
        try:
            if partition == 0:
                await release.wait()  # partition 0 is stuck (a slow FCM, a slow database)
            seen[partition] += [(r.value or b"").decode() for r in records]
        finally:
            in_flight[partition] -= 1

    running = asyncio.create_task(consumer.run(delivering(handler)))
    try:
        await topic.put(0, "a0")
        await _until(lambda: in_flight[0] == 1, "partition 0's batch started")
        await topic.put(0, "a1", "a2")  # behind the stuck batch
        await topic.put(1, "b0", "b1")
        await _until(lambda: len(seen[1]) == 2, "partition 1 handled while 0 is stuck")
        await topic.put(1, "b2")
        await _until(lambda: len(seen[1]) == 3, "partition 1 keeps flowing")
        committed: dict[int, int] = {}
        for _ in range(200):
            committed = await topic.committed(group)
            if committed.get(1) == 3:
                break
            await asyncio.sleep(0.05)
        assert committed.get(1) == 3
        assert committed.get(0, -1) <= 0  # nothing of the stuck batch is committed

        release.set()
        await _until(lambda: seen[0] == ["a0", "a1", "a2"], "partition 0 done, in order")
        for _ in range(200):
            committed = await topic.committed(group)
            if committed.get(0) == 3:
                break
            await asyncio.sleep(0.05)
        assert committed == {0: 3, 1: 3}
        assert seen[1] == ["b0", "b1", "b2"]
        assert overlapped == []  # one batch at a time per partition
    finally:
        release.set()
        await consumer.stop()
        await running


async def test_the_next_batch_is_planned_while_one_is_delivered_and_delivered_after_it(
    topic: Topic,
) -> None:
    group = f"push-consumer-test-{uuid.uuid4().hex[:8]}"
    consumer = topic.consumer(group)
    release = asyncio.Event()
    planned: list[str] = []
    delivered: list[str] = []

    async def plan(records: Sequence[IncomingRecord]) -> Deliver:
        values = [(r.value or b"").decode() for r in records]
        planned.extend(values)

        async def deliver() -> None:
            if values[0] == "a0":
                await release.wait()  # a slow FCM
            delivered.extend(values)

        return deliver

    running = asyncio.create_task(consumer.run(plan))
    try:
        await topic.put(0, "a0")
        await _until(lambda: planned == ["a0"], "a0 planned")
        await topic.put(0, "a1", "a2")
        await _until(lambda: "a1" in planned, "a1 planned while a0 is being sent")
        await asyncio.sleep(0.5)
        assert delivered == []  # a1 (and a2) wait for a0's delivery
        assert (await topic.committed(group)).get(0, -1) <= 0
        release.set()
        await _until(lambda: delivered == ["a0", "a1", "a2"], "all delivered, in order")
        committed: dict[int, int] = {}
        for _ in range(200):
            committed = await topic.committed(group)
            if committed.get(0) == 3:
                break
            await asyncio.sleep(0.05)
        assert committed.get(0) == 3
    finally:
        release.set()
        await consumer.stop()
        await running


@pytest.mark.parametrize("step", ["plan", "delivery"])
async def test_a_failed_batch_stops_the_consumer_and_its_records_come_again(
    topic: Topic, step: str
) -> None:
    group = f"push-consumer-test-{uuid.uuid4().hex[:8]}"
    await topic.put(0, "x0", "x1")

    async def failing_plan(records: Sequence[IncomingRecord]) -> Deliver:
        async def failing_delivery() -> None:
            raise RuntimeError("the database is away")

        if step == "plan":
            raise RuntimeError("the database is away")
        return failing_delivery

    first = topic.consumer(group)
    with pytest.raises(RuntimeError, match="the database is away"):
        await asyncio.wait_for(first.run(failing_plan), timeout=120)
    assert (await topic.committed(group)).get(0, -1) <= 0

    seen: list[str] = []

    async def working(records: Sequence[IncomingRecord]) -> None:
        seen.extend((r.value or b"").decode() for r in records)

    second = topic.consumer(group)
    running = asyncio.create_task(second.run(delivering(working)))
    try:
        await _until(lambda: seen == ["x0", "x1"], "the records came again to a new consumer")
    finally:
        await second.stop()
        await running
    assert (await topic.committed(group)).get(0) == 2  # committed when it stopped
