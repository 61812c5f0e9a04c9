"""The Kafka consumer group of push: batches per partition, offsets committed manually and only
after the batch's work is durable; a revoked partition's progress is committed on revocation.

servicekit's ``KafkaSubscription`` hands over one record at a time; push sends up to 500
notifications per FCM call, so it polls and hands over whole per-partition batches.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from push.settings import ConsumerSettings
from servicekit.bus import IncomingRecord
from servicekit.metrics import CONSUMER_LAG

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[IncomingRecord]], Awaitable[None]]


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: BatchConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self._consumer.commit_done()

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        log.info(
            "partitions assigned",
            extra={"partitions": [f"{t.topic}-{t.partition}" for t in assigned]},
        )


class BatchConsumer:
    def __init__(self, bootstrap_servers: str, settings: ConsumerSettings, client_id: str) -> None:
        self.topics = list(settings.topics)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=settings.group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset=settings.offset_reset,
            max_poll_records=settings.max_batch,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
        )
        self._done: dict[TopicPartition, int] = {}
        self._stopping = asyncio.Event()

    async def commit_done(self) -> None:
        if self._done:
            offsets, self._done = self._done, {}
            await self._consumer.commit(offsets)

    async def run(self, handler: BatchHandler) -> None:
        await self._consumer.start()
        self._consumer.subscribe(self.topics, listener=_Listener(self))
        try:
            while not self._stopping.is_set():
                batches = await self._consumer.getmany(timeout_ms=200)
                if not batches:
                    continue

                async def one(tp: TopicPartition, records: list[Any]) -> None:
                    await handler(
                        [
                            IncomingRecord(
                                m.topic, m.partition, m.offset, m.key, m.value, list(m.headers)
                            )
                            for m in records
                        ]
                    )
                    self._done[tp] = records[-1].offset + 1

                # Partitions are independent: their batches go to FCM side by side.
                await asyncio.gather(*(one(tp, recs) for tp, recs in batches.items()))
                await self.commit_done()
                for tp in batches:
                    end = self._consumer.highwater(tp)
                    if end is not None:
                        lag = end - await self._consumer.position(tp)
                        CONSUMER_LAG.labels("push", tp.topic, str(tp.partition)).set(lag)
        finally:
            await self._consumer.stop()

    async def stop(self) -> None:
        self._stopping.set()
