"""The SQL of geo-subscriptions and notification preferences."""

from __future__ import annotations

import math
from collections.abc import Collection

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


async def subscribers_near(session: AsyncSession, lon: float, lat: float) -> list[str]:
    """Users with a saved place whose chosen radius reaches the point (the geofence turned
    around: the radius belongs to the place, so the query is one ST_DWithin per row)."""
    if session.get_bind().dialect.name == "postgresql":
        rows = await session.scalars(
            text(
                "SELECT DISTINCT user_id FROM saved_places WHERE ST_DWithin(location, "
                "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, radius_m)"
            ),
            {"lon": lon, "lat": lat},
        )
        return list(rows)
    places = await session.scalars(select(SavedPlace))
    return sorted(
        {
            p.user_id
            for p in places
            if haversine_m(p.location.lon, p.location.lat, lon, lat) <= p.radius_m
        }
    )


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
