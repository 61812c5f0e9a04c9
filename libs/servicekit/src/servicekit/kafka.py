"""The Apache Kafka adapters of the bus (aiokafka).

Producer: idempotent (implies acks=all), so a retried send never duplicates or reorders within a
partition. Consumer: manual commits of ``offset + 1`` only after the handler returned, flushed on
rebalance, so work is at-least-once and never skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from opentelemetry import context, propagate
from opentelemetry.context import Context

from servicekit.bus import Handler, Headers, IncomingRecord, OutgoingRecord
from servicekit.telemetry import tracing_active

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36


async def ensure_topics(
    bootstrap_servers: str, topics: Iterable[str], partitions: int = 2, replication: int = 1
) -> None:
    """Create the topics that do not exist yet (idempotent)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, partitions, replication) for t in topics if t not in existing]
        if not missing:
            return
        response = await admin.create_topics(missing)
        for topic, code, *rest in response.topic_errors:
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise KafkaError(f"creating topic {topic!r} failed: error {code} {rest}")
    finally:
        await admin.close()


def _sampled(traceparent: bytes) -> bool:
    """Whether a W3C ``traceparent`` (version-trace_id-parent_id-flags) has its sampled bit."""
    try:
        return int(traceparent[-2:], 16) & 1 == 1
    except ValueError:
        return False  # not one we wrote: sent as stored, as without tracing


def _trace_parent(headers: Headers) -> tuple[Headers, Context | None]:
    """With tracing on, the record is sent inside the context its ``traceparent`` header names
    (the request that wrote the outbox row), so the produce span joins that trace and the
    instrumentation writes the header anew; without tracing, or when that trace is not sampled
    (its produce span would not be recorded either), the header goes out as stored."""
    if not tracing_active():
        return list(headers), None
    stored = next((v for k, v in headers if k == "traceparent"), None)
    if stored is None or not _sampled(stored):
        return list(headers), None
    kept = [(k, v) for k, v in headers if k not in ("traceparent", "tracestate")]
    return kept, propagate.extract({"traceparent": stored.decode()})


class KafkaPublisher:
    """Starts in the background and keeps trying: the service runs (and its outbox fills) while
    the broker is away, and readiness says so."""

    def __init__(
        self, bootstrap_servers: str, client_id: str, *, connect_wait_s: float = 5.0
    ) -> None:
        self._connect_wait_s = connect_wait_s
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            enable_idempotence=True,
            linger_ms=5,
            request_timeout_ms=10_000,
        )
        self._started = asyncio.Event()
        self._starter: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._starter = asyncio.create_task(self._start_until_connected())

    async def _start_until_connected(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._producer.start()
            except KafkaError as exc:
                log.warning("kafka producer not connected yet, retrying", extra={"error": str(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            else:
                self._started.set()
                return

    async def stop(self) -> None:
        if self._starter is not None:
            self._starter.cancel()
            await asyncio.gather(self._starter, return_exceptions=True)
        # Also when the start was cut short: a half-bootstrapped client holds open connections.
        await self._producer.stop()

    async def _connected(self) -> None:
        try:
            await asyncio.wait_for(self._started.wait(), timeout=self._connect_wait_s)
        except TimeoutError:
            raise KafkaError("the producer is not connected to the broker") from None

    async def send(self, record: OutgoingRecord) -> None:
        await self.send_batch([record])

    async def send_batch(self, records: Sequence[OutgoingRecord]) -> None:
        await self._connected()
        # Enqueue all, then wait for all acks: the idempotent producer keeps per-partition order.
        acks = []
        # A record of an untraced or unsampled request has no recorded trace to join: it skips
        # aiokafka's tracing wrapper, which started a PRODUCER span per record (a root trace of
        # its own when untraced; ~55 µs of CPU either way, bench/orders/README.md) and goes out
        # with its headers as stored.
        untraced = getattr(self._producer.send, "__wrapped__", self._producer.send)
        for record in records:
            headers, parent = _trace_parent(record.headers)
            if parent is None:
                acks.append(
                    await untraced(record.topic, record.value, key=record.key, headers=headers)
                )
                continue
            token = context.attach(parent)
            try:
                acks.append(
                    await self._producer.send(
                        record.topic, record.value, key=record.key, headers=headers
                    )
                )
            finally:
                context.detach(token)
        await asyncio.gather(*acks)

    async def ping(self) -> None:
        if not self._started.is_set():
            raise KafkaError("producer has not connected to the broker yet")
        await self._producer.client.fetch_all_metadata()


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, subscription: KafkaSubscription) -> None:
        self._subscription = subscription

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self._subscription.commit_processed()

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        return None


class KafkaSubscription:
    def __init__(
        self,
        bootstrap_servers: str,
        group_id: str,
        topics: Sequence[str],
        client_id: str,
        max_records: int = 500,
    ) -> None:
        self.topics = list(topics)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max_records,
        )
        self._processed: dict[TopicPartition, int] = {}
        self._stopping = asyncio.Event()

    async def commit_processed(self) -> None:
        if self._processed:
            offsets, self._processed = self._processed, {}
            await self._consumer.commit(offsets)

    async def run(self, handler: Handler) -> None:
        await self._consumer.start()
        self._consumer.subscribe(self.topics, listener=_CommitOnRevoke(self))
        try:
            while not self._stopping.is_set():
                batches = await self._consumer.getmany(timeout_ms=200)
                for tp, records in batches.items():
                    for msg in records:
                        await handler(
                            IncomingRecord(
                                topic=msg.topic,
                                partition=msg.partition,
                                offset=msg.offset,
                                key=msg.key,
                                value=msg.value,
                                headers=list(msg.headers),
                            )
                        )
                        self._processed[tp] = msg.offset + 1
                await self.commit_processed()
        finally:
            await self._consumer.stop()

    async def stop(self) -> None:
        self._stopping.set()


async def ping_broker(bootstrap_servers: str) -> None:
    """Raises unless the broker answers a metadata request."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=2_000)
    try:
        await admin.start()
        await admin.list_topics()
    finally:
        await admin.close()
