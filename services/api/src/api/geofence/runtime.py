"""The geofence's moving parts in one replica's lifespan: the cache and its follower task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.clock import utcnow
from api.geofence.cache import GeoCache
from api.geofence.follower import BusStockFeed, CacheFollower, KafkaStockFeed, StockFeed
from api.geofence.settings import GeofenceSettings
from servicekit.bus import InProcessBus

log = logging.getLogger(__name__)


class GeofenceRuntime:
    """Starts following (retrying while the broker is away), loads, then follows the topic.

    Until the load is done ``cache.serving`` is False and the endpoints answer from PostGIS. With
    an embedded database (no PostGIS), :meth:`start` loads before the app serves.
    """

    def __init__(
        self,
        settings: GeofenceSettings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        kafka_bootstrap: str | None,
        bus: InProcessBus | None,
    ) -> None:
        self.cache = GeoCache(settings.max_deals)
        feed: StockFeed
        if kafka_bootstrap is not None:
            feed = KafkaStockFeed(kafka_bootstrap, client_id=f"api-geofence-{uuid.uuid4().hex[:8]}")
        else:
            feed = BusStockFeed(bus or InProcessBus())
        self.follower = CacheFollower(
            self.cache, sessions, feed, utcnow, purge_every_s=settings.purge_every_s
        )
        self._embedded = kafka_bootstrap is None
        self._task: asyncio.Task[None] | None = None
        self._starting = False

    async def start(self) -> None:
        if self._embedded:
            await self.follower.start()
            await self.follower.load()
            self._task = asyncio.create_task(self.follower.follow(), name="geofence-follow")
        else:
            self._task = asyncio.create_task(self._run(), name="geofence")

    async def _run(self) -> None:
        while True:
            try:
                self._starting = True
                await self.follower.start()
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning(
                    "geofence: stock topic unreachable, retrying; PostGIS answers", exc_info=True
                )
                self._starting = False
                await asyncio.sleep(2)
        self._starting = False
        await self.follower.load()
        await self.follower.follow()

    async def stop(self) -> None:
        # Cancelling the Kafka client halfway through its start leaks its sockets: let it finish.
        for _ in range(500):
            if not self._starting:
                break
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.follower.stop()
