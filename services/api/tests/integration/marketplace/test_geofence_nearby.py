"""GET /customer/deals/nearby and /map on the real PostGIS and Kafka: cache and PostGIS agree."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.geofence.cache import GeoCache
from api.geofence.geodesy import geodesic_m

from .conftest import Api

pytestmark = pytest.mark.integration


async def _warm(api: Api) -> GeoCache:
    cache: GeoCache = api.app.state.geo_cache
    for _ in range(200):
        if cache.serving:
            return cache
        await asyncio.sleep(0.05)
    raise AssertionError("the geofence cache never became warm")


async def _nearby(api: Api, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = await api.client.get("/customer/deals/nearby", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _until(api: Api, check: Any, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for _ in range(100):  # the relay publishes, the follower reloads: poll with a deadline
        body = await _nearby(api, headers, **params)
        if check(body):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"not seen in time: {body}")


def _spot() -> tuple[float, float]:
    """A random spot in Seoul, so parallel runs do not see each other's deals up close."""
    return random.uniform(37.45, 37.68), random.uniform(126.82, 127.15)


async def test_nearby_lists_a_new_deal_with_distance_and_price_then_drops_it_when_sold_out(
    api: Api,
) -> None:
    await _warm(api)
    lat, lon = _spot()
    store = await api.store(lon=lon + 0.003, lat=lat)
    manager = await api.manager_of(store)
    customer = api.customer()
    deal = await api.deal(store, manager, quantity=1)
    body = await _until(
        api,
        lambda b: any(i["deal_id"] == deal["id"] for i in b["items"]),
        customer,
        lat=lat,
        lon=lon,
        radius=500,
    )
    assert body["source"] == "cache"
    item = next(i for i in body["items"] if i["deal_id"] == deal["id"])
    assert item["distance_m"] == pytest.approx(geodesic_m(lat, lon + 0.003, lat, lon), abs=0.1)
    assert item["price_krw"] == 5600  # 8,000 less 30 %
    assert item["store_id"] == store
    response = await api.order(deal["id"], customer, quantity=1)
    assert response.status_code == 201, response.text
    await _until(
        api,
        lambda b: all(i["deal_id"] != deal["id"] for i in b["items"]),
        customer,
        lat=lat,
        lon=lon,
        radius=500,
    )


async def test_nearby_shows_the_markdown_price_in_force_now(api: Api) -> None:
    await _warm(api)
    lat, lon = _spot()
    store = await api.store(lon=lon, lat=lat)
    manager = await api.manager_of(store)
    now = datetime.now(UTC)
    deal = await api.deal(
        store,
        manager,
        pickup_end_at=(now + timedelta(minutes=50)).isoformat(),
        markdown=[{"minutes_before_end": 60, "percent_off": 50}],
    )
    body = await _until(
        api,
        lambda b: any(i["deal_id"] == deal["id"] for i in b["items"]),
        api.customer(),
        lat=lat,
        lon=lon,
        radius=10,
    )
    item = next(i for i in body["items"] if i["deal_id"] == deal["id"])
    assert (item["price_krw"], item["discount_percent"]) == (4000, 50)


async def test_cache_and_postgis_answer_the_same_pages_in_every_sort_order(api: Api) -> None:
    cache = await _warm(api)
    lat, lon = _spot()
    customer = api.customer()
    ids = []
    for k in range(7):
        store = await api.store(lon=lon + 0.0004 * k, lat=lat - 0.0003 * k)
        manager = await api.manager_of(store)
        deal = await api.deal(store, manager, discount_percent=10 + 5 * k)
        ids.append(deal["id"])
    await _until(
        api,
        lambda b: {i["deal_id"] for i in b["items"]} >= set(ids),
        customer,
        lat=lat,
        lon=lon,
        radius=400,
        limit=100,
    )
    for sort in ("distance", "discount", "pickup_end"):
        pages: dict[str, list[str]] = {}
        for source in ("cache", "postgis"):
            api.app.state.geo_cache = cache if source == "cache" else None
            seen: list[str] = []
            cursor = None
            while True:
                params: dict[str, Any] = {"lat": lat, "lon": lon, "radius": 400, "sort": sort}
                params |= {"limit": 3} | ({"cursor": cursor} if cursor else {})
                body = await _nearby(api, customer, **params)
                assert body["source"] == source
                seen += [i["deal_id"] for i in body["items"] if i["deal_id"] in ids]
                cursor = body["next_cursor"]
                if cursor is None:
                    break
            pages[source] = seen
        api.app.state.geo_cache = cache
        assert pages["cache"] == pages["postgis"], sort
        assert sorted(pages["cache"]) == sorted(ids)
    by_discount = await _nearby(api, customer, lat=lat, lon=lon, radius=400, sort="discount")
    discounts = [i["discount_percent"] for i in by_discount["items"]]
    assert discounts == sorted(discounts, reverse=True)


async def test_category_filter_keeps_only_that_category(api: Api) -> None:
    await _warm(api)
    lat, lon = _spot()
    store = await api.store(lon=lon, lat=lat)
    manager = await api.manager_of(store)
    deal = await api.deal(store, manager)
    customer = api.customer()
    await _until(
        api,
        lambda b: any(i["deal_id"] == deal["id"] for i in b["items"]),
        customer,
        lat=lat,
        lon=lon,
        radius=50,
        category="I21",
    )
    body = await _nearby(api, customer, lat=lat, lon=lon, radius=50, category="I22")
    assert all(i["deal_id"] != deal["id"] for i in body["items"])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lat": 37.5, "lon": 127.0, "radius": 5001}, "radius"),
        ({"lat": 91, "lon": 127.0}, "lat"),
        ({"lat": 37.5}, "lon"),
        ({"lat": 37.5, "lon": 127.0, "cursor": "garbage"}, "cursor"),
        ({"lat": 37.5, "lon": 127.0, "sort": "price"}, "sort"),
        ({"lat": 37.5, "lon": 127.0, "limit": 1000}, "limit"),
    ],
)
async def test_bad_nearby_queries_are_problems_naming_the_field(
    api: Api, params: dict[str, Any], field: str
) -> None:
    response = await api.client.get("/customer/deals/nearby", params=params, headers=api.customer())
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in response.text


async def test_nearby_requires_a_customer_token(api: Api) -> None:
    response = await api.client.get("/customer/deals/nearby", params={"lat": 37.5, "lon": 127})
    assert response.status_code == 401


async def test_map_view_lists_stores_then_clusters_them(api: Api) -> None:
    cache = await _warm(api)
    lat, lon = _spot()
    store = await api.store(lon=lon, lat=lat)
    manager = await api.manager_of(store)
    deal = await api.deal(store, manager)
    customer = api.customer()
    await _until(
        api,
        lambda b: any(i["deal_id"] == deal["id"] for i in b["items"]),
        customer,
        lat=lat,
        lon=lon,
        radius=10,
    )
    box = {"south": lat - 0.001, "west": lon - 0.001, "north": lat + 0.001, "east": lon + 0.001}
    for source in ("cache", "postgis"):
        api.app.state.geo_cache = cache if source == "cache" else None
        response = await api.client.get("/customer/deals/map", params=box, headers=customer)
        assert response.status_code == 200, response.text
        view = response.json()
        assert view["source"] == source
        assert any(s["store_id"] == store and s["deals"] >= 1 for s in view["stores"])
    api.app.state.geo_cache = cache
    wide = {"south": 37.40, "west": 126.75, "north": 37.72, "east": 127.20}
    # Clustering starts past 200 stores; the shared database may hold fewer, so check the shape.
    view = (await api.client.get("/customer/deals/map", params=wide, headers=customer)).json()
    assert view["stores"] or view["clusters"]
    bad = {**box, "south": lat + 0.01}
    response = await api.client.get("/customer/deals/map", params=bad, headers=customer)
    assert response.status_code == 422
    assert "south" in response.text


async def test_admin_sees_entries_and_bytes_per_district(api: Api) -> None:
    await _warm(api)
    response = await api.client.get("/admin/geofence/cache", headers=api.admin())
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["warm"] is True
    assert stats["deals"] == sum(d["deals"] for d in stats["districts"])
    assert all(d["bytes"] > 0 for d in stats["districts"] if d["stores"])
    response = await api.client.get("/admin/geofence/cache", headers=api.customer())
    assert response.status_code == 403
