"""The geofence's SQL: live deals with their store's point, by district, by id, or by PostGIS."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Text, cast, func, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from api.deal.models import Deal
from api.store.models import Store

_LIVE = (Deal.closed_at.is_(None), Deal.stock > 0)


def _live_rows() -> Select[Deal, Store]:
    return select(Deal, Store).join(Store, Store.id == Deal.store_id).where(*_LIVE)


# What the cache keeps of a live deal and its store, as plain columns in this order (the cache
# unpacks them by position): a cold load reads every live deal, and mapped objects (or per-row
# JSON and WKB decoding) cost far more than the columns.
_CACHED_COLUMNS = (
    Deal.id.label("deal_id"),
    Deal.store_id,
    Deal.name.label("deal_name"),
    Deal.original_price_krw,
    Deal.price_krw,
    Deal.stock,
    Deal.pickup_start_at,
    Deal.pickup_end_at,
    cast(Deal.markdown, Text).label("markdown_json"),  # parsed once per distinct schedule
    Deal.photo_url,
    Store.name.label("store_name"),
    Store.category_code,
    Store.district_code,
)


def _coordinates(dialect: str) -> tuple[Any, Any]:
    if dialect == "postgresql":  # floats from PostGIS, no WKB parsing in Python
        point = func.geometry(Store.location)
        return func.ST_Y(point).label("lat"), func.ST_X(point).label("lon")
    return Store.location.label("lat"), literal(None).label("lon")


async def stream_live_rows(
    session: AsyncSession, now: datetime, batch: int = 5_000
) -> AsyncIterator[Sequence[Any]]:
    """Every live deal with its store: rows of the ``_CACHED_COLUMNS`` then ``lat``, ``lon`` (in
    SQLite ``lat`` is the point and ``lon`` None). One query and one round trip (a query per
    district scans the live deals once per district; a server-side cursor fetches in ~50-row
    round trips), handed out in batches so the caller can let requests run in between."""
    query = (
        select(*_CACHED_COLUMNS, *_coordinates(session.get_bind().dialect.name))
        .join(Store, Store.id == Deal.store_id)
        .where(*_LIVE, Deal.pickup_end_at > now)
    )
    rows: Sequence[Any] = (await session.execute(query)).all()
    for start in range(0, len(rows), batch):
        yield rows[start : start + batch]


async def deals_by_id(
    session: AsyncSession, deal_ids: Sequence[uuid.UUID]
) -> Sequence[tuple[Deal, Store]]:
    """These deals as they are now, live or not."""
    query = select(Deal, Store).join(Store, Store.id == Deal.store_id).where(Deal.id.in_(deal_ids))
    return [(d, s) for d, s in (await session.execute(query)).all()]


def _point(lat: float, lon: float) -> Any:
    return func.ST_GeogFromText(literal(f"SRID=4326;POINT({lon!r} {lat!r})"))


async def live_deals_within(
    session: AsyncSession,
    lat: float,
    lon: float,
    radius_m: float,
    now: datetime,
    category: str | None,
    nearest: int | None = None,
    after: tuple[float, uuid.UUID] | None = None,
) -> Sequence[tuple[Deal, Store, float]]:
    """PostGIS answers: live deals whose store is within ``radius_m`` (ST_DWithin on geography).

    With ``nearest``, only that many, closest first (ties by deal id), after the ``after`` cursor.
    """
    point = _point(lat, lon)
    distance = func.ST_Distance(Store.location, point)
    query = (
        select(Deal, Store, distance.label("distance"))
        .join(Store, Store.id == Deal.store_id)
        .where(
            *_LIVE,
            Deal.pickup_end_at > now,
            func.ST_DWithin(Store.location, point, radius_m),
        )
    )
    if category:
        query = query.where(Store.category_code.startswith(category, autoescape=True))
    if nearest is not None:
        if after is not None:
            query = query.where(tuple_(distance, Deal.id) > tuple_(literal(after[0]), after[1]))
        query = query.order_by(distance, Deal.id).limit(nearest)
    return [(d, s, float(m)) for d, s, m in (await session.execute(query)).all()]


async def live_stores_in_box(
    session: AsyncSession, south: float, west: float, north: float, east: float, now: datetime
) -> Sequence[tuple[Deal, Store]]:
    box = func.ST_MakeEnvelope(west, south, east, north, 4326)
    query = _live_rows().where(
        Deal.pickup_end_at > now,
        func.ST_Intersects(func.geometry(Store.location), box),
    )
    return [(d, s) for d, s in (await session.execute(query)).all()]
