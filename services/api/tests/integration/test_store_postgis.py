"""api writes and reads PostgreSQL: a PostGIS geography column round trip."""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.db import Base
from api.geo import LonLat
from api.settings import ApiSettings
from api.store.models import Store
from conftest import Infra
from servicekit.db import build_engine, prepare_schema, session_factory

pytestmark = pytest.mark.integration

SEOUL_CITY_HALL = LonLat(126.978388, 37.566610)


@pytest.fixture
async def engine(prod_profile: Infra) -> AsyncIterator[AsyncEngine]:
    engine = build_engine(ApiSettings())
    await prepare_schema(engine, Base.metadata)
    async with engine.begin() as conn:
        await conn.execute(delete(Store).where(Store.id.like("TEST%")))
    yield engine
    await engine.dispose()


def _store(store_id: str, where: LonLat) -> Store:
    return Store(
        id=store_id,
        name="시청앞 도시락",
        branch="",
        category_code="I20101",
        address="서울특별시 중구 세종대로 110",
        district_code="11140",
        dong_code="11140550",
        location=where,
    )


async def test_a_store_location_round_trips_through_a_postgis_geography(
    engine: AsyncEngine,
) -> None:
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        session.add(_store("TEST-ROUNDTRIP", SEOUL_CITY_HALL))

    async with sessions() as session:
        stored = await session.get(Store, "TEST-ROUNDTRIP")
        column_type = await session.scalar(
            select(func.pg_typeof(Store.location)).where(Store.id == "TEST-ROUNDTRIP")
        )

    assert stored is not None
    assert stored.location == SEOUL_CITY_HALL
    assert column_type == "geography"


async def test_geography_distances_are_in_meters_on_the_spheroid(engine: AsyncEngine) -> None:
    # ~0.009° of latitude is ~1 km: a store 999 m away is within 1 km, one 1,001 m away is not.
    sessions = session_factory(engine)
    near, far = LonLat(126.978388, 37.575612), LonLat(126.978388, 37.575632)
    async with sessions() as session, session.begin():
        session.add_all([_store("TEST-NEAR", near), _store("TEST-FAR", far)])

    origin = func.ST_GeogFromText(f"SRID=4326;POINT({SEOUL_CITY_HALL.lon} {SEOUL_CITY_HALL.lat})")
    async with sessions() as session:
        rows = await session.execute(
            select(Store.id, func.ST_Distance(Store.location, origin)).where(
                Store.id.in_(["TEST-NEAR", "TEST-FAR"])
            )
        )
        distances = {store_id: meters for store_id, meters in rows}
        within = (
            await session.scalars(
                select(Store.id).where(
                    Store.id.like("TEST%"), func.ST_DWithin(Store.location, origin, 1000)
                )
            )
        ).all()

    assert 998 < distances["TEST-NEAR"] < 1000 < distances["TEST-FAR"] < 1002
    assert "TEST-NEAR" in within
    assert "TEST-FAR" not in within
