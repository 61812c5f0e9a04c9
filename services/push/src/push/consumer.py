"""The Kafka consumer group of push: batches per partition, offsets committed manually and only
after the batch's work is durable; a revoked partition's finished work is committed on revocation.

servicekit's ``KafkaSubscription`` hands over one record at a time; push sends up to 500
notifications per FCM call, so it hands over whole per-partition batches.

Each partition has its own worker, so partitions never wait for each other: while one handles a
batch, the poll loop keeps fetching, and what arrived meanwhile is the partition's next batch.
A batch is handled in two steps — plan (claim and plan in one transaction), then deliver (send,
record, dead-letter) — and a partition's next batch is planned while the current one is being
delivered; deliveries run one at a time, in order. A committer commits a partition's offset after
its batch's delivery returned, off the workers' path. A partition more than ``max_batch`` records
behind is paused until its worker catches up, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from push.delivery.pipeline import Deliver, sampled
from push.settings import ConsumerSettings
from servicekit.bus import IncomingRecord
from servicekit.metrics import CONSUMER_LAG
from servicekit.telemetry import consumer_span, tracing_active

log = logging.getLogger(__name__)

#: Plans a batch and returns its delivery (``Pipeline.plan_batch``).
BatchHandler = Callable[[Sequence[IncomingRecord]], Awaitable[Deliver]]


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: BatchConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self._consumer.settle(revoked)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        log.info(
            "partitions assigned",
            extra={"partitions": [f"{t.topic}-{t.partition}" for t in assigned]},
        )


@dataclass
class _Partition:
    """One partition's records fetched but not yet handed over, and the worker handling them."""

    records: list[Any] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    paused: bool = False
    worker: asyncio.Task[None] | None = None


class BatchConsumer:
    def __init__(self, bootstrap_servers: str, settings: ConsumerSettings, client_id: str) -> None:
        self.topics = list(settings.topics)
        self._group_id = settings.group_id
        self._max_batch = settings.max_batch
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=settings.group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset=settings.offset_reset,
            max_poll_records=settings.max_batch,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
        )
        #: How long a rebalance waits for batches in hand before committing what is done.
        self._settle_s = settings.session_timeout_ms / 2000
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._done: dict[TopicPartition, int] = {}
        self._commit_wanted = asyncio.Event()
        self._failed: asyncio.Future[None] | None = None
        self._stopping = asyncio.Event()

    async def commit_done(self) -> None:
        """Commits the offsets after every batch that returned, for partitions still ours."""
        assigned = self._consumer.assignment()
        offsets = {tp: o for tp, o in self._done.items() if tp in assigned}
        self._done = {}
        if offsets:
            await self._consumer.commit(offsets)

    async def settle(self, partitions: Sequence[TopicPartition]) -> None:
        """Before partitions leave: drop what their workers have not started (it comes again
        to the next owner), let the batches in hand finish, commit."""
        waiting = []
        for tp in partitions:
            state = self._partitions.get(tp)
            if state is not None:
                state.records = []
                state.paused = False  # a new assignment starts unpaused
                waiting.append(state.idle.wait())
        if waiting:
            done, _ = await asyncio.wait(
                [asyncio.ensure_future(w) for w in waiting], timeout=self._settle_s
            )
            if len(done) < len(waiting):
                log.warning(
                    "rebalance: batches still running after the wait; their partitions'"
                    " records will come again",
                    extra={"running": len(waiting) - len(done)},
                )
        await self.commit_done()

    def _fail(self, exc: BaseException) -> None:
        if self._failed is not None and not self._failed.done():
            self._failed.set_exception(exc)

    async def _work(self, tp: TopicPartition, state: _Partition, handler: BatchHandler) -> None:
        delivering: tuple[asyncio.Task[None], int] | None = None  # a delivery and its offset

        async def delivered() -> None:
            nonlocal delivering
            if delivering is not None:
                task, offset = delivering
                delivering = None
                await task
                self._done[tp] = offset
                self._commit_wanted.set()

        try:
            while True:
                state.arrived.clear()
                if state.records:
                    state.idle.clear()
                    batch = state.records[: self._max_batch]
                    state.records = state.records[self._max_batch :]
                    if state.paused and len(state.records) < self._max_batch:
                        state.paused = False
                        with contextlib.suppress(Exception):  # no longer assigned: nothing to do
                            self._consumer.resume(tp)
                    deliver = await handler(
                        [
                            IncomingRecord(
                                m.topic, m.partition, m.offset, m.key, m.value, list(m.headers)
                            )
                            for m in batch
                        ]
                    )
                    await delivered()  # the previous batch's, sent while this one was planned
                    delivering = (
                        asyncio.create_task(deliver(), name=f"push-deliver-{tp}"),
                        batch[-1].offset + 1,
                    )
                elif delivering is not None:  # plan what arrives meanwhile, or finish
                    arrival = asyncio.ensure_future(state.arrived.wait())
                    try:
                        await asyncio.wait(
                            [arrival, delivering[0]], return_when=asyncio.FIRST_COMPLETED
                        )
                    finally:
                        arrival.cancel()
                    if delivering[0].done():
                        await delivered()
                else:
                    state.idle.set()
                    await state.arrived.wait()
        except asyncio.CancelledError:
            if delivering is not None:
                delivering[0].cancel()
            raise
        except BaseException as exc:  # the whole consumer restarts; uncommitted records return
            if delivering is not None:  # let a send in progress be recorded, so none repeats
                await asyncio.wait([delivering[0]])
            state.idle.set()
            self._fail(exc)

    async def _commit_forever(self) -> None:
        try:
            while True:
                await self._commit_wanted.wait()
                self._commit_wanted.clear()
                await self.commit_done()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._fail(exc)

    def _hand_over(self, tp: TopicPartition, records: list[Any], handler: BatchHandler) -> None:
        state = self._partitions.get(tp)
        if state is None:
            state = self._partitions[tp] = _Partition()
            state.idle.set()
        if state.worker is None or state.worker.done():
            state.worker = asyncio.create_task(
                self._work(tp, state, handler), name=f"push-consume-{tp.topic}-{tp.partition}"
            )
        state.records.extend(records)
        state.arrived.set()
        if len(state.records) >= self._max_batch and not state.paused:
            state.paused = True
            self._consumer.pause(tp)

    async def _report_lag(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            end = self._consumer.highwater(tp)
            if end is not None:
                lag = end - await self._consumer.position(tp)
                CONSUMER_LAG.labels("push", tp.topic, str(tp.partition)).set(lag)

    async def run(self, handler: BatchHandler) -> None:
        failed = self._failed = asyncio.get_running_loop().create_future()
        await self._consumer.start()
        self._consumer.subscribe(self.topics, listener=_Listener(self))
        committer = asyncio.create_task(self._commit_forever(), name="push-commit")
        try:
            while not self._stopping.is_set():
                fetch = asyncio.ensure_future(self._getmany(timeout_ms=200))
                await asyncio.wait([fetch, failed], return_when=asyncio.FIRST_COMPLETED)
                if failed.done():
                    fetch.cancel()
                    with contextlib.suppress(BaseException):
                        await fetch
                    failed.result()  # raises the worker's or the committer's error
                batches = fetch.result()
                if tracing_active():
                    self._trace_received(batches)
                for tp, records in batches.items():
                    self._hand_over(tp, records, handler)
                if batches:
                    await self._report_lag(list(batches))
        finally:
            await self._shut_down(committer)

    def _getmany(self, timeout_ms: int) -> Awaitable[dict[TopicPartition, list[Any]]]:
        """``getmany`` without OpenTelemetry's aiokafka wrapper, which opens a span per record
        fetched, sampled or not (a poll span, a span per topic, a span per record with six
        attributes: ~0.3 ms of push's CPU per order at 500 orders/s); the records whose trace is
        sampled get their receive span from ``_trace_received`` instead."""
        plain = getattr(AIOKafkaConsumer.getmany, "__wrapped__", None)
        fetched = (
            self._consumer.getmany(timeout_ms=timeout_ms)
            if plain is None  # not instrumented
            else plain(self._consumer, timeout_ms=timeout_ms)
        )
        return cast("Awaitable[dict[TopicPartition, list[Any]]]", fetched)

    def _trace_received(self, batches: dict[TopicPartition, list[Any]]) -> None:
        """A ``<topic> receive`` CONSUMER span, child of the producer's, for each record whose
        trace is sampled (what the aiokafka instrumentation records for them)."""
        for tp, records in batches.items():
            for m in records:
                if sampled(next((v for k, v in m.headers if k == "traceparent"), None)):
                    attributes: dict[str, str | int] = {
                        "messaging.system": "kafka",
                        "messaging.destination.name": tp.topic,
                        "messaging.kafka.destination.partition": tp.partition,
                        "messaging.kafka.message.offset": m.offset,
                        "messaging.kafka.consumer.group": self._group_id,
                    }
                    with consumer_span(f"{tp.topic} receive", m.headers, **attributes):
                        pass

    async def _shut_down(self, committer: asyncio.Task[None]) -> None:
        """Lets the batches in hand finish and commits them (what was fetched but not started
        comes again), then leaves the group."""
        with contextlib.suppress(Exception):
            await self.settle(list(self._partitions))
        committer.cancel()
        workers = [s.worker for s in self._partitions.values() if s.worker is not None]
        for task in workers:
            task.cancel()
        await asyncio.gather(committer, *workers, return_exceptions=True)
        if self._failed is not None and self._failed.done():
            self._failed.exception()  # retrieved: raised above, or failed while shutting down
        await self._consumer.stop()

    async def stop(self) -> None:
        self._stopping.set()
