"""The cold load: one query of plain columns into the cache (here on the local profile's SQLite;
the PostgreSQL path runs in the integration tests, which start every replica cold)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from api.db import Base
from api.deal.models import Deal
from api.deal.pricing import MarkdownStep
from api.geo import LonLat
from api.geofence.cache import GeoCache
from api.geofence.follower import BusStockFeed, CacheFollower
from api.store.models import Store
from servicekit.bus import InProcessBus

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _deal(store_id: str, **overrides: object) -> Deal:
    values: dict[str, object] = {
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
        "created_by": "test",
        **overrides,
    }
    return Deal(**values)


async def test_cold_load_caches_live_deals_with_their_points_and_schedules(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'api.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    live = _deal("S1")
    async with sessions() as session, session.begin():
        for store_id, district, lon, lat in (
            ("S1", "11200", 127.04, 37.55),
            ("S2", "11680", 127.05, 37.5),
        ):
            session.add(
                Store(
                    id=store_id,
                    name=f"가게 {store_id}",
                    category_code="I21001",
                    district_code=district,
                    location=LonLat(lon, lat),
                )
            )
        await session.flush()
        session.add_all(
            [
                live,
                _deal("S1", markdown=[]),
                _deal("S2", stock=0),  # sold out
                _deal("S2", closed_at=NOW),  # closed
                _deal("S2", pickup_end_at=NOW - timedelta(minutes=1)),  # over
            ]
        )
    cache = GeoCache()
    follower = CacheFollower(cache, sessions, BusStockFeed(InProcessBus()), lambda: NOW)
    await follower.load()
    await engine.dispose()

    assert cache.serving
    assert set(cache.stores) == {"S1"}
    assert len(cache.deals) == 2
    store = cache.stores["S1"]
    assert (store.lat, store.lon, store.district_code) == (37.55, 127.04, "11200")
    cached = store.deals[live.id]
    assert cached.markdown == (MarkdownStep(60, 50),)
    assert cached.price_at(NOW + timedelta(hours=1, minutes=30)) == 5_000  # 50 % in the last hour
    assert cache.districts["11200"].deal_count == 2
    assert cache.within(37.55, 127.04, 10).keys == ["S1"]


def test_a_full_cache_stops_loading_and_hands_answers_to_postgis() -> None:
    cache = GeoCache(max_deals=1)
    point = LonLat(127.0, 37.5)
    rows = [
        (uuid.uuid4(), f"S{i}", "d", 100, 90, 1, NOW, NOW + timedelta(hours=1), "[]", None,
         "가게", "I21001", "11200", point, None)
        for i in range(2)
    ]  # fmt: skip
    assert not cache.put_rows(rows)
    assert cache.full
    assert len(cache.deals) == 1
