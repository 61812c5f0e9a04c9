"""Reading what the relay published, from offsets taken before the test acted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts import Event, parse_event


class KafkaTail:
    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> KafkaTail:
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        await consumer.start()
        partitions = [
            TopicPartition(t, p)
            for t in self._topics
            for p in sorted(consumer.partitions_for_topic(t) or {0, 1})
        ]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp, offset in ends.items():
            consumer.seek(tp, offset)
        self._consumer = consumer
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._consumer is not None
        await self._consumer.stop()

    async def collect(
        self, wanted: Callable[[Event], bool], count: int, timeout_s: float = 30
    ) -> list[tuple[str, int, int, Event]]:
        """(topic, partition, offset, event) of matching events, until ``count`` arrived or the
        timeout."""
        assert self._consumer is not None
        found: list[tuple[str, int, int, Event]] = []
        deadline = time.monotonic() + timeout_s
        while len(found) < count and time.monotonic() < deadline:
            batches = await self._consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    event = parse_event(record.value)
                    if wanted(event):
                        found.append((record.topic, record.partition, record.offset, event))
            await asyncio.sleep(0)
        return found
