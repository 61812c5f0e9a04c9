"""The event bus behind one interface: Apache Kafka in prod, an in-process bus locally.

Code above this line (the outbox relay, consumers) sees only ``Publisher`` and ``Subscription``;
the local profile swaps the adapter, not the code path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from contracts import Event, serialize_event, topic_for

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class OutgoingRecord:
    topic: str
    key: bytes
    value: bytes
    headers: Headers = field(default_factory=list)


@dataclass(frozen=True)
class IncomingRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers

    def header(self, name: str) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


Handler = Callable[[IncomingRecord], Awaitable[None]]


class Publisher(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def send(self, record: OutgoingRecord) -> None:
        """Returns once the record is durably accepted by the bus."""
        ...

    async def send_batch(self, records: Sequence[OutgoingRecord]) -> None:
        """Sends in order (per partition) and returns once every record is accepted."""
        ...

    async def ping(self) -> None:
        """Raises when the bus cannot be reached."""
        ...


class Subscription(Protocol):
    """A consumer-group member: delivers each record to ``handler``, commits after it returns."""

    async def run(self, handler: Handler) -> None: ...
    async def stop(self) -> None: ...


def record_for(event: Event) -> OutgoingRecord:
    """The bus record of an event: its topic, key = store id, and its traceparent as a header."""
    headers: Headers = [("event_type", event.type.encode())]
    if event.traceparent:
        headers.append(("traceparent", event.traceparent.encode()))
    return OutgoingRecord(
        topic=topic_for(event),
        key=event.key.encode(),
        value=serialize_event(event),
        headers=headers,
    )


class InProcessBus:
    """Topics as in-memory logs, consumer groups as cursors: the local profile's Kafka.

    Like Kafka, every group sees every record of its topics once; unlike Kafka, nothing survives
    the process, which is what a laptop demo wants.
    """

    def __init__(self) -> None:
        self._logs: dict[str, list[OutgoingRecord]] = defaultdict(list)
        self._changed = asyncio.Condition()

    def publisher(self) -> InProcessPublisher:
        return InProcessPublisher(self)

    def subscription(self, group_id: str, topics: Sequence[str]) -> InProcessSubscription:
        return InProcessSubscription(self, group_id, topics)

    async def append(self, record: OutgoingRecord) -> None:
        async with self._changed:
            self._logs[record.topic].append(record)
            self._changed.notify_all()

    def read(self, topic: str, offset: int) -> list[OutgoingRecord]:
        return self._logs[topic][offset:]


class InProcessPublisher:
    def __init__(self, bus: InProcessBus) -> None:
        self._bus = bus

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, record: OutgoingRecord) -> None:
        await self._bus.append(record)

    async def send_batch(self, records: Sequence[OutgoingRecord]) -> None:
        for record in records:
            await self._bus.append(record)

    async def ping(self) -> None:
        return None


class InProcessSubscription:
    def __init__(self, bus: InProcessBus, group_id: str, topics: Sequence[str]) -> None:
        self._bus = bus
        self.group_id = group_id
        self._offsets = dict.fromkeys(topics, 0)
        self._stopping = False

    async def run(self, handler: Handler) -> None:
        while not self._stopping:
            delivered = False
            for topic, offset in list(self._offsets.items()):
                for record in self._bus.read(topic, offset):
                    await handler(
                        IncomingRecord(
                            topic, 0, self._offsets[topic], record.key, record.value, record.headers
                        )
                    )
                    self._offsets[topic] += 1
                    delivered = True
            if not delivered:
                async with self._bus._changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._bus._changed.wait(), timeout=0.5)

    async def stop(self) -> None:
        self._stopping = True
