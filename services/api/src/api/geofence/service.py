"""Nearby deals and the map view: from the cache when it is warm, else from PostGIS."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.deal.pricing import percent_off
from api.errors import InvalidInput
from api.geofence import kernel, repository
from api.geofence.cache import CachedDeal, CachedStore, GeoCache
from api.geofence.geodesy import Floats
from api.geofence.index import Hits, Ints
from api.geofence.schemas import (
    CacheStats,
    DistrictStats,
    MapCluster,
    MapStore,
    MapView,
    NearbyDealJson,
    NearbySort,
    Source,
    micros,
)

MAX_RADIUS_M = 5_000
MAX_VIEW_SPAN_DEG = 0.5
MAX_MARKERS = 200
CLUSTER_GRID = 8

Key = tuple[float | int, ...]  # the sort values, then the deal id as an int (uuid order)


@dataclass(frozen=True)
class NearbyQuery:
    lat: float
    lon: float
    radius_m: float = 1_000
    category: str | None = None
    sort: NearbySort = NearbySort.DISTANCE
    cursor: str | None = None
    limit: int = 20


def _encode(key: Key, deal_id: uuid.UUID) -> str:
    return ":".join([*(repr(float(k)) for k in key[:-1]), deal_id.hex])


def _decode(sort: NearbySort, cursor: str) -> tuple[Key, uuid.UUID]:
    parts = cursor.split(":")
    width = 1 if sort is NearbySort.DISTANCE else 2
    try:
        if len(parts) != width + 1:
            raise ValueError(cursor)
        deal_id = uuid.UUID(hex=parts[-1])
        values = tuple(float(p) for p in parts[:-1])
        if not all(math.isfinite(v) for v in values):
            raise ValueError(cursor)
    except ValueError as exc:
        raise InvalidInput("not a cursor of this sort order", field="cursor") from exc
    return (*values, deal_id.int), deal_id


def _check(query: NearbyQuery) -> tuple[Key, uuid.UUID] | None:
    if not 0 <= query.radius_m <= MAX_RADIUS_M:
        raise InvalidInput(f"radius must be between 0 and {MAX_RADIUS_M} m", field="radius")
    return _decode(query.sort, query.cursor) if query.cursor else None


# A deal that may be listed: its sort key, store, entry and distance.
Ranked = tuple[Key, CachedStore, CachedDeal, float]


def _rank(
    store: CachedStore,
    deals: Iterable[CachedDeal],
    distance: float,
    query: NearbyQuery,
    after: Key | None,
    now: datetime,
    into: list[Ranked],
) -> None:
    for deal in deals:
        if not deal.live_at(now):
            continue
        if query.sort is NearbySort.DISTANCE:
            key: Key = (distance, deal.id.int)
        elif query.sort is NearbySort.DISCOUNT:
            # Not deal.json(...).price: no fragments for deals that only get ranked.
            price = deal.price_at(now)
            key = (-percent_off(deal.original_price_krw, price), distance, deal.id.int)
        else:
            key = (deal.pickup_end_at.timestamp(), distance, deal.id.int)
        if after is None or key > after:
            into.append((key, store, deal, distance))


_first = itemgetter(0)
_SOURCES: dict[Source, bytes] = {"cache": b'"cache"}', "postgis": b'"postgis"}'}
# ``round(d, 1)`` as orjson writes it, for every distance a query can have: 0 to 5 km by 0.1 m.
_DISTANCE_TEXT = [orjson.dumps(tenths / 10) for tenths in range(10 * MAX_RADIUS_M + 1)]


def distance_texts(distances: list[float]) -> list[bytes]:
    """Each distance as the page shows it: ``orjson.dumps(round(d, 1))``.

    ``round(10 d)`` (to the nearest integer) gives the same tenths unless 10 d lies within
    rounding error of a half (the product is off by under 1e-11 here); those, and anything not
    in (0, 5 km], are written by ``round(d, 1)`` itself.
    """
    table = _DISTANCE_TEXT
    texts = []
    for d in distances:
        if 0.0 < d <= MAX_RADIUS_M:
            tenths = d * 10.0
            nearest = round(tenths)
            if -0.499999 < tenths - nearest < 0.499999:
                texts.append(table[nearest])
                continue
        texts.append(orjson.dumps(round(d, 1)))
    return texts


def _page(ranked: list[Ranked], query: NearbyQuery, source: Source, now_us: int) -> bytes:
    """The NearbyPage's JSON: each item's fragments joined around its distance and price."""
    ranked.sort(key=_first)
    page = ranked[: query.limit]
    parts = [b'{"items":[']
    if page:
        distances = distance_texts([r[3] for r in page])
        for (_, store, deal, _), distance in zip(page, distances, strict=True):
            made = deal.json(store)
            parts += (made.head, distance, made.tail_at(now_us), b",")
        parts.pop()
    cursor = _encode(page[-1][0], page[-1][2].id) if len(ranked) > query.limit else None
    parts += (b'],"next_cursor":', orjson.dumps(cursor), b',"source":', _SOURCES[source])
    return b"".join(parts)


def _from_cache(cache: GeoCache, query: NearbyQuery, after: Key | None, now: datetime) -> bytes:
    hits = cache.within(query.lat, query.lon, query.radius_m)
    if query.sort is NearbySort.DISTANCE:
        return _nearest_page(cache, hits, query, after, micros(now))
    ranked = _collect(cache, hits, query, after, now)
    return _page(ranked, query, "cache", micros(now))


def _collect(
    cache: GeoCache, hits: Hits, query: NearbyQuery, after: Key | None, now: datetime
) -> list[Ranked]:
    """Every live deal of these hits, ranked by the query's (non-distance) order."""
    distances = hits.distances
    category = query.category
    stores_at = cache.stores_at
    ranked: list[Ranked] = []
    for p, distance in zip(hits.position.tolist(), distances.tolist(), strict=True):
        store = stores_at[p]
        if category and not store.category_code.startswith(category):
            continue
        _rank(store, store.deals.values(), distance, query, after, now, ranked)
    return ranked


# A deal on a page by distance: (distance, deal id as an int, its fragments, the distance's text
# in _DISTANCE_TEXT or -1). (distance, deal id) is unique per deal: sorting never compares more.
Near = tuple[float, int, NearbyDealJson, int]


def _nearest_page(
    cache: GeoCache, hits: Hits, query: NearbyQuery, after: Key | None, now_us: int
) -> bytes:
    """The page in distance order: only the nearest hits are visited, nearest first."""
    lower = after[0] if after is not None else -math.inf
    wanted = query.limit + 1
    # Most answers need only the nearest few (one compiled call picks and sorts them). They do
    # when a hit beyond the last one listed is reached: every tie at the page's end is then in.
    found = kernel.nearest(hits.distances, hits.position, lower, 4 * wanted, MAX_RADIUS_M)
    near, complete = _nearest(cache, *found[:3], query, after, now_us)
    if found[3] and not complete:  # too few live deals among them: every hit, in order
        found = kernel.nearest(hits.distances, hits.position, lower, len(hits), MAX_RADIUS_M)
        near, _ = _nearest(cache, *found[:3], query, after, now_us)
    return _nearest_json(near, query, now_us)


def _nearest(
    cache: GeoCache,
    positions: Ints,
    distances: Floats,
    texts: Ints,
    query: NearbyQuery,
    after: Key | None,
    now_us: int,
) -> tuple[list[Near], bool]:
    """The live deals of these hits (in distance order), until a page and every tie at its end
    are in (True) or the hits run out (False)."""
    stores_at = cache.stores_at
    category = query.category
    wanted = query.limit + 1
    near: list[Near] = []
    last = -1.0
    # Python floats and ints once, not a NumPy scalar per hit (this loop is the request's core).
    for p, distance, text in zip(
        positions.tolist(), distances.tolist(), texts.tolist(), strict=True
    ):
        if len(near) >= wanted and distance > last:
            return near, True
        store = stores_at[p]
        if category and not store.category_code.startswith(category):
            continue
        # Liveness compares integers (the cached datetimes' ZoneInfo makes a datetime
        # comparison cost a microsecond).
        for pickup_end_us, deal_id, _, made in store.listing():
            if now_us < pickup_end_us and (after is None or (distance, deal_id) > after):
                near.append((distance, deal_id, made, text))
        last = distance
    return near, False


def _nearest_json(near: list[Near], query: NearbyQuery, now_us: int) -> bytes:
    """The NearbyPage's JSON of a distance-ordered page (as :func:`_page` writes it)."""
    near.sort()
    page = near[: query.limit]
    table = _DISTANCE_TEXT
    parts = [b'{"items":[']
    for distance, _, made, text in page:
        parts += (
            made.head,
            table[text] if text >= 0 else orjson.dumps(round(distance, 1)),
            made.tail_at(now_us),
            b",",
        )
    if page:
        parts.pop()
    cursor = None
    if len(near) > query.limit:
        distance, deal_id, _, _ = page[-1]
        cursor = f"{distance!r}:{deal_id:032x}"  # _encode's text: repr of the float, uuid hex
    parts += (b'],"next_cursor":', orjson.dumps(cursor), b',"source":', _SOURCES["cache"])
    return b"".join(parts)


async def _from_postgis(
    session: AsyncSession, query: NearbyQuery, cursor: tuple[Key, uuid.UUID] | None, now: datetime
) -> bytes:
    after = cursor[0] if cursor else None
    if query.sort is NearbySort.DISTANCE:
        found = await repository.live_deals_within(
            session,
            query.lat,
            query.lon,
            query.radius_m,
            now,
            query.category,
            nearest=query.limit + 1,
            after=(cursor[0][0], cursor[1]) if cursor else None,
        )
    else:
        found = await repository.live_deals_within(
            session, query.lat, query.lon, query.radius_m, now, query.category
        )
    ranked: list[Ranked] = []
    for deal, store, distance in found:
        cached = CachedStore.of(store)
        _rank(cached, [CachedDeal.of(deal)], distance, query, after, now, ranked)
    return _page(ranked, query, "postgis", micros(now))


Sessions = async_sessionmaker[AsyncSession]


async def find_deals_near(
    cache: GeoCache | None, sessions: Sessions, query: NearbyQuery, now: datetime
) -> bytes:
    """Live deals within the radius, sorted, one page: a NearbyPage's JSON (as the model dumps
    it); from the cache once warm."""
    cursor = _check(query)
    if cache is not None and cache.serving:
        return _from_cache(cache, query, cursor[0] if cursor else None, now)
    async with sessions() as session:
        return await _from_postgis(session, query, cursor, now)


def _view(
    stores: list[tuple[CachedStore, list[CachedDeal]]],
    box: tuple[float, float, float, float],
    now: datetime,
    source: Source,
) -> MapView:
    shown: list[MapStore] = []
    for store, deals in stores:
        live = [d for d in deals if d.live_at(now)]
        if live:
            shown.append(
                MapStore(
                    store_id=store.id,
                    name=store.name,
                    lat=store.lat,
                    lon=store.lon,
                    deals=len(live),
                    lowest_price_krw=min(d.price_at(now) for d in live),
                )
            )
    if len(shown) <= MAX_MARKERS:
        return MapView(stores=shown, clusters=[], source=source)
    south, west, north, east = box
    dlat = (north - south) / CLUSTER_GRID or 1.0
    dlon = (east - west) / CLUSTER_GRID or 1.0
    cells: dict[tuple[int, int], list[MapStore]] = {}
    for s in shown:
        cell = (
            min(int((s.lat - south) / dlat), CLUSTER_GRID - 1),
            min(int((s.lon - west) / dlon), CLUSTER_GRID - 1),
        )
        cells.setdefault(cell, []).append(s)
    clusters = [
        MapCluster(
            lat=sum(m.lat for m in members) / len(members),
            lon=sum(m.lon for m in members) / len(members),
            stores=len(members),
            south=south + r * dlat,
            west=west + c * dlon,
            north=south + (r + 1) * dlat,
            east=west + (c + 1) * dlon,
        )
        for (r, c), members in sorted(cells.items())
    ]
    return MapView(stores=[], clusters=clusters, source=source)


async def deals_in_view(
    cache: GeoCache | None,
    sessions: Sessions,
    box: tuple[float, float, float, float],
    now: datetime,
) -> MapView:
    """Stores with live deals inside a map's bounding box, clustered when there are many."""
    south, west, north, east = box
    if south > north:
        raise InvalidInput("south must not be north of north", field="south")
    if west > east:
        raise InvalidInput("west must not be east of east", field="west")
    if north - south > MAX_VIEW_SPAN_DEG or east - west > MAX_VIEW_SPAN_DEG:
        raise InvalidInput(f"the view spans at most {MAX_VIEW_SPAN_DEG}°", field="north")
    if cache is not None and cache.serving:
        found = cache.in_box(*box)
        stores = [cache.stores[key] for key, _, _ in found]
        return _view([(s, list(s.deals.values())) for s in stores], box, now, "cache")
    async with sessions() as session:
        rows = await repository.live_stores_in_box(session, *box, now)
    grouped: dict[str, tuple[CachedStore, list[CachedDeal]]] = {}
    for deal, store in rows:
        grouped.setdefault(store.id, (CachedStore.of(store), []))[1].append(CachedDeal.of(deal))
    return _view(list(grouped.values()), box, now, "postgis")


def cache_stats(cache: GeoCache) -> CacheStats:
    """Entries and bytes per district: the memory the cache holds."""
    districts = [DistrictStats(**d) for d in cache.stats()]
    return CacheStats(
        warm=cache.warm,
        full=cache.full,
        max_deals=cache.max_deals,
        stores=len(cache.stores),
        deals=len(cache.deals),
        bytes=sum(d.bytes for d in districts),
        districts=districts,
    )
