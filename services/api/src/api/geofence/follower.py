"""Keeps a replica's cache fresh: a cold load from the database, then the ``stock`` topic.

Every replica must see every event, so the Kafka feed assigns itself all partitions of ``stock``
(no consumer group, nothing committed) and starts at their end *before* the cold load begins:
an event committed during the load is not missed. Events name a deal; its row is read again (in
batches) and put into or taken out of the cache — exact, whatever the event carried. Events that
arrive while districts are still loading are read again once the load is done, so an older
snapshot of a district can never win over a newer event.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.geofence import repository
from api.geofence.cache import GeoCache
from api.geofence.metrics import CacheMetrics
from contracts import TOPIC_STOCK, DealPublished, StockChanged, parse_event
from servicekit.bus import InProcessBus
from servicekit.kafka import ensure_topics

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_REPORT_EVERY_S = 1.0  # the cache's gauges in /metrics


class StockFeed(Protocol):
    async def start(self) -> None:
        """Positioned: events committed after this returns will be delivered."""
        ...

    async def next_batch(self) -> list[bytes]:
        """The next events' values (may be empty after a short wait)."""
        ...

    async def stop(self) -> None: ...


class KafkaStockFeed:
    """All partitions of ``stock``, from their end, without a group: a broadcast."""

    def __init__(self, bootstrap_servers: str, client_id: str) -> None:
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        await ensure_topics(self._bootstrap, [TOPIC_STOCK])
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
        )
        try:
            await consumer.start()
            # Without a subscription the consumer tracks no topic's metadata: ask for all of it.
            cluster = await consumer._client.fetch_all_metadata()
            partitions = cluster.partitions_for_topic(TOPIC_STOCK)
            if not partitions:
                raise RuntimeError(f"topic {TOPIC_STOCK!r} has no partitions yet")
            assigned = [TopicPartition(TOPIC_STOCK, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            await consumer.seek_to_end(*assigned)
            for tp in assigned:  # resolve the end offsets now, not at the first fetch
                await consumer.position(tp)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer

    async def next_batch(self) -> list[bytes]:
        assert self._consumer is not None, "start() first"
        batches = await self._consumer.getmany(timeout_ms=200)
        return [m.value for records in batches.values() for m in records if m.value is not None]

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


class BusStockFeed:
    """The local profile's in-process bus, read from the start (it holds only this run)."""

    def __init__(self, bus: InProcessBus) -> None:
        self._bus = bus
        self._offset = 0

    async def start(self) -> None:
        return None

    async def next_batch(self) -> list[bytes]:
        records = self._bus.read(TOPIC_STOCK, self._offset)
        if not records:
            await asyncio.sleep(0.05)
            return []
        self._offset += len(records)
        return [r.value for r in records]

    async def stop(self) -> None:
        return None


def stock_events(values: Iterable[bytes]) -> tuple[list[uuid.UUID], datetime | None]:
    """The deals these ``stock`` events are about (other events and garbage are skipped), and
    when the newest of them occurred."""
    found: list[uuid.UUID] = []
    newest: datetime | None = None
    for value in values:
        try:
            event = parse_event(value)
        except (ValidationError, ValueError):
            log.warning("unreadable event on the stock topic skipped")
            continue
        if isinstance(event, DealPublished | StockChanged):
            found.append(event.data.deal_id)
            if newest is None or event.occurred_at > newest:
                newest = event.occurred_at
    return found, newest


def deal_ids(values: Iterable[bytes]) -> list[uuid.UUID]:
    """The deals these ``stock`` events are about (other events and garbage are skipped)."""
    return stock_events(values)[0]


class CacheFollower:
    """Cold load, then follow; ``purge_every_s`` drops deals whose pickup window ended."""

    def __init__(
        self,
        cache: GeoCache,
        sessions: async_sessionmaker[AsyncSession],
        feed: StockFeed,
        clock: Clock,
        purge_every_s: float = 30.0,
    ) -> None:
        self.cache = cache
        self._sessions = sessions
        self._feed = feed
        self._clock = clock
        self._purge_every_s = purge_every_s
        self._pending: set[uuid.UUID] = set()
        self._stopping = asyncio.Event()
        self.events_applied = 0
        self.metrics = CacheMetrics(cache)

    async def start(self) -> None:
        await self._feed.start()

    async def load(self) -> None:
        """Fill every district from the database; then the cache is warm."""
        started = time.perf_counter()
        self.cache.reset()
        async with self._sessions() as session:
            async for rows in repository.stream_live_rows(session, self._clock()):
                if not self.cache.put_rows(rows):
                    log.warning("geofence cache full: answers come from PostGIS")
                    break
                await asyncio.sleep(0)  # requests (answered by PostGIS) go on meanwhile
        # Events seen during the load may be older in the snapshot: read those deals again.
        while self._pending:
            pending, self._pending = list(self._pending), set()
            await self._reload(pending)
        for district in self.cache.districts.values():
            district.loaded = True
        self.cache.index  # noqa: B018 — built now, not by the first query
        # The cache is a million long-lived objects at Seoul scale: out of the cyclic collector's
        # reach, its full collections stop scanning them (they were the index query's p99).
        gc.freeze()
        self.cache.warm = True
        self.metrics.warmed()
        log.info(
            "geofence cache warm",
            extra={
                "districts": len(self.cache.districts),
                "deals": len(self.cache.deals),
                "seconds": round(time.perf_counter() - started, 3),
            },
        )

    async def _reload(self, ids: list[uuid.UUID]) -> None:
        async with self._sessions() as session:
            rows = await repository.deals_by_id(session, ids)
        now = self._clock()
        seen = set()
        for deal, store in rows:
            self.cache.apply(deal, store, now)
            seen.add(deal.id)
        for missing in set(ids) - seen:
            self.cache.forget(missing)

    async def on_values(self, values: list[bytes]) -> None:
        ids, newest = stock_events(values)
        if not ids:
            return
        if not self.cache.warm:
            self._pending.update(ids)
        await self._reload(ids)
        self.events_applied += len(ids)
        self.metrics.applied(newest, self._clock())

    async def follow(self) -> None:
        last_purge = last_report = time.monotonic()
        while not self._stopping.is_set():
            if time.monotonic() - last_report >= _REPORT_EVERY_S:
                self.metrics.report()
                last_report = time.monotonic()
            try:
                await self.on_values(await self._feed.next_batch())
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed reload must not stop following; the next event retries
                log.exception("geofence follower failed on a batch")
                await asyncio.sleep(0.5)
            if time.monotonic() - last_purge > self._purge_every_s:
                self.cache.purge(self._clock())
                last_purge = time.monotonic()

    async def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(Exception):
            await self._feed.stop()
