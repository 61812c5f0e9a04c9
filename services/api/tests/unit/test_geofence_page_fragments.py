"""The nearby page is joined from per-deal JSON fragments kept with the cache entries: it must be
the bytes the documented NearbyPage model writes, and never stale — the price in force now, and a
deal re-stocked, re-priced, sold out or closed shown as it is now."""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pytest

from api.deal.models import Deal
from api.deal.pricing import percent_off, price_at
from api.geo import LonLat
from api.geofence import service
from api.geofence.cache import GeoCache
from api.geofence.schemas import NearbyDeal, NearbyPage, NearbySort, micros
from api.store.models import Store

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LAT, LON = 37.5612, 127.0371
ZONES: list[tzinfo] = [
    UTC,
    ZoneInfo("Etc/UTC"),
    ZoneInfo("Asia/Seoul"),
    timezone(timedelta(hours=9)),
]


def _store(i: int, lat: float, lon: float) -> Store:
    return Store(
        id=f"S{i:05d}",
        name=f'가게 "{i}"\n본점' if i % 3 == 0 else f"가게 {i}",
        category_code="I21001" if i % 2 else "I10002",
        district_code="11200" if i % 4 else "11680",
        location=LonLat(lon, lat),
    )


def _deal(store_id: str, **overrides: Any) -> Deal:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "store_id": store_id,
        "name": "마감 세트",
        "original_price_krw": 10_000,
        "price_krw": 7_000,
        "quantity": 5,
        "stock": 3,
        "pickup_start_at": NOW - timedelta(hours=1),
        "pickup_end_at": NOW + timedelta(hours=2),
        "markdown": [{"minutes_before_end": 60, "percent_off": 50}],
        "photo_url": None,
        "closed_at": None,
        "created_by": "test",
        **overrides,
    }
    return Deal(**values)


def _random_cache(rng: random.Random) -> GeoCache:
    cache = GeoCache()
    for i in range(60):
        # Some stores share a point (equal distances: ties broken by the deal id).
        lat = LAT + rng.choice([0.0, 0.001, rng.uniform(-0.004, 0.004)])
        lon = LON + rng.choice([0.0, 0.001, rng.uniform(-0.004, 0.004)])
        store = _store(i, lat, lon)
        for _ in range(rng.choice([1, 1, 2, 3])):
            zone = rng.choice(ZONES)
            end = NOW + timedelta(minutes=rng.choice([-1, 20, 45, 59, 60, 61, 90, 200]))
            steps = rng.choice(
                [
                    [],
                    [{"minutes_before_end": 60, "percent_off": 50}],
                    [
                        {"minutes_before_end": 120, "percent_off": 40},
                        {"minutes_before_end": 30, "percent_off": 70},
                    ],
                    [{"minutes_before_end": 45, "percent_off": 10}],  # above the listed price
                ]
            )
            deal = _deal(
                store.id,
                name=rng.choice(["제육 도시락", 'say "hi"\\', "tab\there", "빵 🍞"]),
                original_price_krw=rng.choice([8_000, 9_990, 10_000]),
                price_krw=rng.choice([5_000, 6_990, 7_000]),
                stock=rng.choice([1, 3, 10]),
                pickup_start_at=(
                    NOW - timedelta(hours=1, microseconds=rng.randrange(10**6))
                ).astimezone(zone),
                pickup_end_at=end.astimezone(zone),
                markdown=steps,
                photo_url=rng.choice([None, f"https://cdn.example/{i}.jpg"]),
            )
            cache.apply(deal, store, NOW - timedelta(hours=2))
    cache.warm = True
    return cache


def _joined(cache: GeoCache, query: service.NearbyQuery, now: datetime) -> bytes:
    after = service._check(query)
    return service._from_cache(cache, query, after[0] if after else None, now)


def _reference(cache: GeoCache, query: service.NearbyQuery, now: datetime) -> bytes:
    """The page as the model writes it, ranked from scratch with pricing.price_at."""
    after = service._check(query)
    hits = cache.within(query.lat, query.lon, query.radius_m)
    found: list[tuple[Any, NearbyDeal, uuid.UUID]] = []
    for key, distance in zip(hits.keys, hits.distances.tolist(), strict=True):
        store = cache.stores[key]
        if query.category and not store.category_code.startswith(query.category):
            continue
        for deal in store.deals.values():
            if deal.stock <= 0 or now >= deal.pickup_end_at:
                continue
            price = price_at(
                deal.original_price_krw, deal.price_krw, deal.markdown, deal.pickup_end_at, now
            )
            off = percent_off(deal.original_price_krw, price)
            if query.sort is NearbySort.DISTANCE:
                sort_key: tuple[float | int, ...] = (distance, deal.id.int)
            elif query.sort is NearbySort.DISCOUNT:
                sort_key = (-off, distance, deal.id.int)
            else:
                sort_key = (deal.pickup_end_at.timestamp(), distance, deal.id.int)
            if after is not None and sort_key <= after[0]:
                continue
            item = NearbyDeal(
                deal_id=deal.id,
                store_id=store.id,
                store_name=store.name,
                category_code=store.category_code,
                name=deal.name,
                lat=store.lat,
                lon=store.lon,
                distance_m=round(distance, 1),
                original_price_krw=deal.original_price_krw,
                price_krw=price,
                discount_percent=off,
                stock=deal.stock,
                pickup_start_at=deal.pickup_start_at,
                pickup_end_at=deal.pickup_end_at,
                photo_url=deal.photo_url,
            )
            found.append((sort_key, item, deal.id))
    found.sort(key=lambda f: f[0])
    page = found[: query.limit]
    cursor = service._encode(page[-1][0], page[-1][2]) if len(found) > query.limit else None
    model = NearbyPage(items=[f[1] for f in page], next_cursor=cursor, source="cache")
    return model.model_dump_json().encode()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_joined_page_is_the_models_json_at_every_instant_and_order(seed: int) -> None:
    rng = random.Random(seed)
    cache = _random_cache(rng)
    # Instants around the schedules' steps: a step begins exactly at its microsecond.
    instants = [
        NOW,
        NOW + timedelta(minutes=29, seconds=59, microseconds=999_999),
        NOW + timedelta(minutes=30),
        NOW + timedelta(minutes=75),
        NOW + timedelta(minutes=150),
        NOW,  # back in time: the memo of a later price must not stick
    ]
    pages = 0
    for now in instants:
        for sort in NearbySort:
            for category, limit in ((None, 7), ("I21", 5), (None, 100)):
                query = service.NearbyQuery(LAT, LON, 600, category, sort, None, limit)
                while True:
                    body = _joined(cache, query, now)
                    assert body == _reference(cache, query, now), (now, sort, category)
                    pages += 1
                    cursor = orjson.loads(body)["next_cursor"]
                    if cursor is None:
                        break
                    query = service.NearbyQuery(LAT, LON, 600, category, sort, cursor, limit)
    assert pages > 100


@pytest.mark.parametrize("sibling", [False, True], ids=["alone", "beside-another-deal"])
def test_a_listed_deal_is_never_served_stale(sibling: bool) -> None:
    cache = GeoCache()
    cache.warm = True
    store = _store(1, LAT, LON + 0.001)
    deal = _deal(store.id, pickup_end_at=NOW + timedelta(minutes=90))  # 50 % off from 60 min
    cache.apply(deal, store, NOW)
    if sibling:  # the store's entry stays: only its deals change under it
        cache.apply(_deal(store.id, pickup_end_at=NOW + timedelta(hours=5)), store, NOW)
    query = service.NearbyQuery(LAT, LON, 500, None, NearbySort.DISTANCE, None, 20)

    def listed(now: datetime) -> list[dict[str, Any]]:
        body = _joined(cache, query, now)
        assert body == _reference(cache, query, now)
        items: list[dict[str, Any]] = orjson.loads(body)["items"]
        assert len(items) == sibling + sum(i["deal_id"] == str(deal.id) for i in items)
        return [i for i in items if i["deal_id"] == str(deal.id)]

    first = listed(NOW)
    assert [(i["price_krw"], i["stock"]) for i in first] == [(7_000, 3)]
    # The markdown schedule re-prices it, without any event.
    later = listed(NOW + timedelta(minutes=31))
    assert [(i["price_krw"], i["discount_percent"]) for i in later] == [(5_000, 50)]
    # Someone bought one: a new entry, new stock.
    deal.stock = 2
    cache.apply(deal, store, NOW + timedelta(minutes=31))
    assert [(i["price_krw"], i["stock"]) for i in listed(NOW + timedelta(minutes=31))] == [
        (5_000, 2)
    ]
    # The manager lowered the listed price (before the markdown step).
    deal.price_krw = 6_000
    cache.apply(deal, store, NOW)
    assert [i["price_krw"] for i in listed(NOW)] == [6_000]
    # Sold out, then back in stock, then closed.
    deal.stock = 0
    cache.apply(deal, store, NOW)
    assert listed(NOW) == []
    deal.stock = 1
    cache.apply(deal, store, NOW)
    assert [i["stock"] for i in listed(NOW)] == [1]
    deal.closed_at = NOW
    cache.apply(deal, store, NOW)
    assert listed(NOW) == []
    # Its pickup window over: gone even before the purge drops it.
    deal.closed_at = None
    cache.apply(deal, store, NOW)
    assert listed(NOW + timedelta(minutes=90)) == []


def test_the_fragments_price_is_pricing_price_at() -> None:
    rng = random.Random(5)
    for _ in range(300):
        steps = [
            {"minutes_before_end": rng.randrange(0, 300), "percent_off": rng.randrange(0, 95)}
            for _ in range(rng.randrange(0, 4))
        ]
        deal = _deal("S1", price_krw=rng.randrange(1_000, 10_000, 10), markdown=steps)
        cache = GeoCache()
        store = _store(1, LAT, LON)
        cache.apply(deal, store, NOW - timedelta(hours=9))
        cached = cache.stores[store.id].deals[deal.id]
        made = cached.json(cache.stores[store.id])
        for minutes in range(-10, 130, 7):
            for nudge in (-1, 0, 1):
                at = deal.pickup_end_at - timedelta(minutes=minutes, microseconds=nudge)
                assert made.price(micros(at)) == cached.price_at(at)


def test_distances_are_written_as_orjson_writes_them_rounded() -> None:
    rng = random.Random(3)
    values = [0.0, 5000.0, 4999.95, 0.05, 0.15, 0.25, 0.35, 1e-9, 2.675, 1000.0]
    for _ in range(20_000):
        tenth = rng.randrange(0, 50_000) / 10
        values += [tenth, tenth + 0.05, math.nextafter(tenth + 0.05, 0), rng.uniform(0, 5000)]
    for start in range(0, len(values), 50):
        chunk = values[start : start + 50]
        assert service.distance_texts(chunk) == [orjson.dumps(round(d, 1)) for d in chunk]
    assert service.distance_texts([-0.0, 7000.25]) == [b"-0.0", b"7000.2"]


def test_the_store_at_each_index_position_is_that_positions_store() -> None:
    cache = _random_cache(random.Random(8))
    for _ in range(3):
        index = cache.index
        assert [s.id for s in cache.stores_at] == index.keys_at(np.arange(len(index)))
        # A store leaves (its only deals sold out) and one arrives: both re-laid out.
        gone = next(iter(cache.stores.values()))
        for deal_id in list(gone.deals):
            cache.forget(deal_id)
        newcomer = _store(900 + len(cache.stores), LAT + 0.002, LON - 0.002)
        cache.apply(_deal(newcomer.id), newcomer, NOW)
        assert gone.id not in [s.id for s in cache.stores_at]


def test_purge_drops_exactly_the_deals_whose_pickup_ended_in_any_zone() -> None:
    cache = GeoCache()
    store = _store(1, LAT, LON)
    ended: set[uuid.UUID] = set()
    live: set[uuid.UUID] = set()
    for zone in [*ZONES, ZoneInfo("UTC"), timezone(timedelta(0))]:
        for offset_us in (-1, 0, 1):
            end = (NOW + timedelta(microseconds=offset_us)).astimezone(zone)
            deal = _deal(store.id, pickup_end_at=end)
            cache.apply(deal, store, NOW - timedelta(hours=1))
            (ended if offset_us <= 0 else live).add(deal.id)

    assert cache.purge(NOW) == len(ended)
    assert set(cache.deals) == live
