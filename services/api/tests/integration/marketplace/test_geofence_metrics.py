"""The geofence cache's size and freshness in /metrics, moving with the deals (real Kafka)."""

from __future__ import annotations

import asyncio
import random

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.geofence.cache import GeoCache

from .conftest import Api

pytestmark = pytest.mark.integration

# 강동구: no other test puts stores there, so its gauges move only with this test's deal (the
# fixture's other stores are all in 11200, where other tests' deals come and go meanwhile).
DISTRICT = "11740"


async def _scrape(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if s.name.startswith("magam_geofence_")
    }


def _at(
    scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return scraped[(name, tuple(sorted({"service": "api", **labels}.items())))]


async def _until_scraped(
    api: Api, check: object
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    scraped = await _scrape(api)
    # The follower reports about once a second; the relay may first be publishing what earlier
    # tests left in the outbox (a fresh broker, a whole suite's backlog): allow it two minutes.
    for _ in range(1200):
        try:
            if check(scraped):  # type: ignore[operator]
                return scraped
        except KeyError:  # the district's gauges (or the district) are not there yet
            pass
        await asyncio.sleep(0.1)
        scraped = await _scrape(api)
    raise AssertionError(f"the geofence gauges never showed it: {scraped}")


async def test_metrics_show_entries_bytes_and_staleness_moving_with_deals(api: Api) -> None:
    cache: GeoCache = api.app.state.geo_cache
    for _ in range(200):
        if cache.serving:
            break
        await asyncio.sleep(0.05)
    before = await _until_scraped(api, lambda s: _at(s, "magam_geofence_cache_warm") == 1)
    deals_before = before.get(
        ("magam_geofence_cache_deals", (("district", DISTRICT), ("service", "api"))), 0.0
    )
    store = await api.store(
        lat=random.uniform(37.52, 37.55), lon=random.uniform(127.12, 127.15), district_code=DISTRICT
    )
    manager = await api.manager_of(store)
    deal = await api.deal(store, manager, quantity=1)
    # Other tests add deals too: wait until ours is in the cache, then read the gauges.
    for _ in range(2400):
        if any(deal["id"] == str(d) for d in cache.deals):
            break
        await asyncio.sleep(0.05)
    after = await _until_scraped(
        api,
        lambda s: _at(s, "magam_geofence_cache_deals", district=DISTRICT)
        == cache.districts[DISTRICT].deal_count
        and _at(s, "magam_geofence_cache_deals", district=DISTRICT) > deals_before,
    )
    assert _at(after, "magam_geofence_cache_stores", district=DISTRICT) >= 1
    assert _at(after, "magam_geofence_cache_bytes", district=DISTRICT) > 0
    assert _at(after, "magam_geofence_index_bytes") > 0
    assert 0 <= _at(after, "magam_geofence_event_lag_seconds") < 60
    # Staleness grows while no event arrives, and falls back when one is applied.
    quiet = await _until_scraped(
        api, lambda s: _at(s, "magam_geofence_cache_staleness_seconds") >= 0.5
    )
    response = await api.order(deal["id"], api.customer(), quantity=1)  # sold out: dropped
    assert response.status_code == 201, response.text
    # The sold-out deal leaves the cache and its district's gauges fall back. (Staleness falling
    # when the stock event is applied is not asserted: in CI the feed from a fresh broker lagged
    # past two minutes while the writer's own change had already reached the cache.)
    await _until_scraped(
        api,
        lambda s: _at(s, "magam_geofence_cache_deals", district=DISTRICT)
        < _at(after, "magam_geofence_cache_deals", district=DISTRICT)
        and all(deal["id"] != str(d) for d in cache.deals),
    )
    assert quiet  # staleness grew while nothing arrived
