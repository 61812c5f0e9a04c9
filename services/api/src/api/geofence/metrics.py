"""The geofence cache in Prometheus: its size per district, and how fresh it is.

Gauges follow ``servicekit.metrics`` (a ``service`` label, one process-wide registry); the
follower sets them about once a second and after every load, so ``/metrics`` reads no cache state
while a request runs.
"""

from __future__ import annotations

import time
from datetime import datetime

from prometheus_client import Gauge

from api.geofence.cache import GeoCache

SERVICE = "api"

CACHE_STORES = Gauge(
    "magam_geofence_cache_stores", "Stores with live deals in the cache", ["service", "district"]
)
CACHE_DEALS = Gauge(
    "magam_geofence_cache_deals", "Live deals in the cache", ["service", "district"]
)
CACHE_BYTES = Gauge(
    "magam_geofence_cache_bytes",
    "Estimated memory of the cache's entries and index",
    ["service", "district"],
)
INDEX_BYTES = Gauge(
    "magam_geofence_index_bytes",
    "Memory of the districts' index arrays laid end to end (queried as one)",
    ["service"],
)
CACHE_WARM = Gauge(
    "magam_geofence_cache_warm", "1 when answers come from the cache, 0 from PostGIS", ["service"]
)
STALENESS = Gauge(
    "magam_geofence_cache_staleness_seconds",
    "Seconds since the cache last applied a stock event (or since it warmed, if later)",
    ["service"],
)
EVENT_LAG = Gauge(
    "magam_geofence_event_lag_seconds",
    "For the newest stock event applied: from the event to its application",
    ["service"],
)


class CacheMetrics:
    """What one replica's follower reports; ``report`` sets the gauges."""

    def __init__(self, cache: GeoCache) -> None:
        self._cache = cache
        self._updated = time.monotonic()  # warm, or the last event applied
        self._districts: set[str] = set()

    def warmed(self) -> None:
        self._updated = time.monotonic()
        self.report()

    def applied(self, newest: datetime | None, now: datetime) -> None:
        self._updated = time.monotonic()
        if newest is not None:
            EVENT_LAG.labels(SERVICE).set(max((now - newest).total_seconds(), 0.0))

    def report(self) -> None:
        cache = self._cache
        CACHE_WARM.labels(SERVICE).set(1 if cache.serving else 0)
        STALENESS.labels(SERVICE).set(time.monotonic() - self._updated if cache.warm else 0.0)
        INDEX_BYTES.labels(SERVICE).set(cache.index_nbytes)
        seen = set()
        for district in list(cache.districts.values()):
            code = district.code
            seen.add(code)
            CACHE_STORES.labels(SERVICE, code).set(len(district.stores))
            CACHE_DEALS.labels(SERVICE, code).set(district.deal_count)
            CACHE_BYTES.labels(SERVICE, code).set(district.nbytes())
        for gone in self._districts - seen:
            for gauge in (CACHE_STORES, CACHE_DEALS, CACHE_BYTES):
                gauge.labels(SERVICE, gone).set(0)
        self._districts = seen
