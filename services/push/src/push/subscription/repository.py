"""The SQL of geo-subscriptions and notification preferences."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from push.subscription.models import NotificationPreference, SavedPlace

_EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance; SQLite's stand-in for PostGIS (local profile only)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_M * math.asin(math.sqrt(a))


async def subscribers_near(
    session: AsyncSession, points: Sequence[tuple[float, float]]
) -> list[set[str]]:
    """For each (lon, lat) point, the users with a saved place whose chosen radius reaches it
    (the geofence turned around: the radius belongs to the place, so it is one ST_DWithin per
    row); all points in one query."""
    if not points:
        return []
    found: list[set[str]] = [set() for _ in points]
    if session.get_bind().dialect.name == "postgresql":
        rows = await session.execute(
            text(
                "SELECT DISTINCT p.i, s.user_id FROM unnest(CAST(:lons AS float8[]),"
                " CAST(:lats AS float8[])) WITH ORDINALITY AS p(lon, lat, i)"
                " JOIN saved_places s ON ST_DWithin(s.location,"
                " ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326)::geography, s.radius_m)"
            ),
            {"lons": [lon for lon, _ in points], "lats": [lat for _, lat in points]},
        )
        for index, user_id in rows.all():
            found[index - 1].add(user_id)
        return found
    places = list(await session.scalars(select(SavedPlace)))
    for users, (lon, lat) in zip(found, points, strict=True):
        users.update(
            p.user_id
            for p in places
            if haversine_m(p.location.lon, p.location.lat, lon, lat) <= p.radius_m
        )
    return found


async def places_of(session: AsyncSession, user_id: str) -> list[SavedPlace]:
    rows = await session.scalars(
        select(SavedPlace).where(SavedPlace.user_id == user_id).order_by(SavedPlace.label)
    )
    return list(rows)


async def place(session: AsyncSession, user_id: str, label: str) -> SavedPlace | None:
    found: SavedPlace | None = await session.scalar(
        select(SavedPlace).where(SavedPlace.user_id == user_id, SavedPlace.label == label)
    )
    return found


async def preferences_of(
    session: AsyncSession, user_ids: Collection[str]
) -> dict[str, NotificationPreference]:
    if not user_ids:
        return {}
    rows = await session.scalars(
        select(NotificationPreference).where(NotificationPreference.user_id.in_(list(user_ids)))
    )
    return {p.user_id: p for p in rows}
