from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.routing import APIRoute

from api.clock import utcnow
from api.geofence import service
from api.geofence.cache import GeoCache
from api.geofence.schemas import CacheStats, MapView, NearbyPage, NearbySort
from api.pagination import Cursor, Limit
from servicekit.security import CurrentAdmin, CurrentCustomer

router = APIRouter(prefix="/customer/deals", tags=["customer: nearby deals"])
admin_router = APIRouter(prefix="/admin/geofence", tags=["admin: geofence"])

Lat = Annotated[float, Query(ge=-90, le=90)]
Lon = Annotated[float, Query(ge=-180, le=180)]


NEARBY_PATH = "/customer/deals/nearby"


def cache_of(state: Any) -> GeoCache | None:
    """The app's cache, unless settings force PostGIS (the bench's baseline)."""
    cache: GeoCache | None = getattr(state, "geo_cache", None)
    return None if state.settings.geofence.force_postgis else cache


def _cache(request: Request) -> GeoCache | None:
    return cache_of(request.app.state)


@router.get(
    "/nearby",
    summary="Live deals near a point, with distance and today's price",
    response_model=NearbyPage,
)
async def find_deals_near(
    request: Request,
    _actor: CurrentCustomer,
    lat: Lat,
    lon: Lon,
    radius: Annotated[
        float, Query(ge=0, le=service.MAX_RADIUS_M, description="Meters, at most 5,000")
    ] = 1_000,
    category: Annotated[
        str | None, Query(max_length=10, description="A category code or its prefix (I2, I201…)")
    ] = None,
    sort: NearbySort = NearbySort.DISTANCE,
    cursor: Cursor = None,
    limit: Limit = 20,
) -> Response:
    query = service.NearbyQuery(lat, lon, radius, category or None, sort, cursor, limit)
    page = await service.find_deals_near(
        _cache(request), request.app.state.sessions, query, utcnow()
    )
    # The hot path: the page is already NearbyPage's JSON, 'Z' for UTC included (FastAPI would
    # validate it against NearbyPage and dump it again).
    return Response(page, media_type="application/json")


@router.get("/map", summary="Stores with live deals in a map's view, clustered when many")
async def deals_in_view(
    request: Request,
    _actor: CurrentCustomer,
    south: Lat,
    west: Lon,
    north: Lat,
    east: Lon,
) -> MapView:
    return await service.deals_in_view(
        _cache(request), request.app.state.sessions, (south, west, north, east), utcnow()
    )


@functools.cache
def nearby_route() -> APIRoute:
    """The documented route of the nearby search (fast_path answers its common case)."""
    return next(r for r in router.routes if isinstance(r, APIRoute) and r.path == NEARBY_PATH)


@admin_router.get("/cache", summary="The nearby cache: entries and bytes per district")
async def cache_stats(request: Request, _actor: CurrentAdmin) -> CacheStats:
    cache: GeoCache = request.app.state.geo_cache
    return service.cache_stats(cache)
