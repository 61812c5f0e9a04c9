"""Demo data for the local profile: a few food stores at real Seoul coordinates.

The coordinates and district/dong codes are those of real rows of the Seoul store file of 2026-06
(see data/seoul/NOTICE.md); the stores themselves are made up for the demo.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from api.geo import LonLat
from api.store import repository
from api.store.models import Store

DEMO_STORES = (
    Store(
        id="DEMO0000000000000001",
        name="마감빵집",
        branch="서울숲점",
        category_code="I21001",
        address="서울특별시 성동구 왕십리로 114",
        district_code="11200",
        dong_code="11200660",
        location=LonLat(127.044744101547, 37.5476804712386),
    ),
    Store(
        id="DEMO0000000000000002",
        name="오늘도시락",
        branch="홍대점",
        category_code="I20101",
        address="서울특별시 마포구 홍익로 5-1",
        district_code="11440",
        dong_code="11440660",
        location=LonLat(126.923610369027, 37.5531152785739),
    ),
    Store(
        id="DEMO0000000000000003",
        name="강남반찬가게",
        branch="강남역점",
        category_code="I20199",
        address="서울특별시 강남구 강남대로 464",
        district_code="11680",
        dong_code="11680640",
        location=LonLat(127.025322018329, 37.5037083174499),
    ),
)


async def seed_demo_stores(session: AsyncSession) -> int:
    """Adds the demo stores that are missing; returns how many were added."""
    added = 0
    for demo in DEMO_STORES:
        if await repository.get(session, demo.id) is None:
            session.add(
                Store(
                    **{
                        c.key: getattr(demo, c.key)
                        for c in Store.__table__.columns
                        if c.key != "updated_at"
                    }
                )
            )
            added += 1
    return added
