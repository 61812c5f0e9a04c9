"""Stores with live deals, cached per district (the 25 자치구), each with its own grid index.

One cache per api replica. It fills from the database district by district (a district answers
from the cache once it is loaded) and follows the ``stock`` topic: every event names a deal, whose
row is read again and put in or taken out. Deals expire by time without an event, so prices and
liveness are always computed at query time; :meth:`GeoCache.purge` drops expired deals.
"""

from __future__ import annotations

import functools
import json
import sys
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from api.deal.models import Deal
from api.deal.pricing import MarkdownStep, price_at
from api.geofence.index import DistrictGrid, GeoIndex, Hits
from api.geofence.schemas import NearbyDealJson
from api.store.models import Store

_UTC_ZONES: tuple[tzinfo, ...] = (UTC, ZoneInfo("UTC"), ZoneInfo("Etc/UTC"))


def _aware(at: datetime) -> datetime:
    """SQLite hands back naive UTC; PostgreSQL aware."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@functools.lru_cache(maxsize=4096)
def _schedule(markdown_json: str) -> tuple[MarkdownStep, ...]:
    """A markdown schedule from its JSON text; deals share few distinct schedules."""
    steps = json.loads(markdown_json)
    return tuple(MarkdownStep(s["minutes_before_end"], s["percent_off"]) for s in steps)


@dataclass(frozen=True, slots=True)
class CachedDeal:
    """What the nearby list shows of a deal, and what its current price needs."""

    id: uuid.UUID
    store_id: str
    name: str
    original_price_krw: int
    price_krw: int
    stock: int
    pickup_start_at: datetime
    pickup_end_at: datetime
    markdown: tuple[MarkdownStep, ...]
    photo_url: str | None
    # The nearby item pre-serialised, made on first listing. An entry is never changed in place
    # (a new stock, a closing, a new price all put a new CachedDeal), so this cannot go stale;
    # the price in force is chosen per request from the schedule (NearbyDealJson.price).
    _json: NearbyDealJson | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def of(cls, deal: Deal) -> CachedDeal:
        return cls(
            id=deal.id,
            store_id=deal.store_id,
            name=deal.name,
            original_price_krw=deal.original_price_krw,
            price_krw=deal.price_krw,
            stock=deal.stock,
            pickup_start_at=_aware(deal.pickup_start_at),
            pickup_end_at=_aware(deal.pickup_end_at),
            markdown=tuple(
                MarkdownStep(s["minutes_before_end"], s["percent_off"]) for s in deal.markdown
            ),
            photo_url=deal.photo_url,
        )

    def live_at(self, now: datetime) -> bool:
        return self.stock > 0 and now < self.pickup_end_at

    def price_at(self, now: datetime) -> int:
        return price_at(
            self.original_price_krw, self.price_krw, self.markdown, self.pickup_end_at, now
        )

    def json(self, store: CachedStore) -> NearbyDealJson:
        """This deal's nearby item as JSON fragments (made once; ``store`` is its entry)."""
        made = self._json
        if made is None or made.store is not store:
            made = NearbyDealJson(
                store,
                self.id,
                store.id,
                store.name,
                store.category_code,
                self.name,
                store.lat,
                store.lon,
                self.original_price_krw,
                self.price_krw,
                self.markdown,
                self.stock,
                self.pickup_start_at,
                self.pickup_end_at,
                self.photo_url,
            )
            object.__setattr__(self, "_json", made)  # a memo, not a change: see _json
        return made


# A deal as the nearby ranking reads it: see CachedStore.listing.
Listed = tuple[int, int, CachedDeal, NearbyDealJson]


@dataclass(slots=True)
class CachedStore:
    id: str
    name: str
    category_code: str
    district_code: str
    lat: float
    lon: float
    deals: dict[uuid.UUID, CachedDeal] = field(default_factory=dict)
    # ``deals`` as the nearby page reads them, made on first use; GeoCache, the only writer of
    # ``deals``, drops it on every change (``deals_changed``).
    _listing: tuple[Listed, ...] | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def of(cls, store: Store) -> CachedStore:
        return cls(
            id=store.id,
            name=store.name,
            category_code=store.category_code,
            district_code=store.district_code,
            lat=store.location.lat,
            lon=store.location.lon,
        )

    def listing(self) -> tuple[Listed, ...]:
        """Deals in stock as (pickup end in µs, deal id as an int, deal, its JSON fragments):
        what ranking by distance reads per hit, without a datetime, UUID or dict in between."""
        listing = self._listing
        if listing is None:
            listing = self._listing = tuple(
                (made.pickup_end_us, deal.id.int, deal, made)
                for deal in self.deals.values()
                if deal.stock > 0
                for made in (deal.json(self),)
            )
        return listing

    def deals_changed(self) -> None:
        self._listing = None


class District:
    """One district's stores with live deals, and a grid over them rebuilt when the set changes."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.stores: dict[str, CachedStore] = {}
        self.loaded = False
        self.deal_count = 0
        self._grid: DistrictGrid | None = None
        self._in_grid_order: list[CachedStore] | None = None

    @property
    def grid(self) -> DistrictGrid:
        if self._grid is None:
            stores = list(self.stores.values())
            self._grid = DistrictGrid(
                [s.id for s in stores], [s.lat for s in stores], [s.lon for s in stores]
            )
        return self._grid

    @property
    def in_grid_order(self) -> list[CachedStore]:
        """The stores in the order of the grid's points (made with the grid)."""
        if self._in_grid_order is None:
            self._in_grid_order = [self.stores[key] for key in self.grid.keys]
        return self._in_grid_order

    def changed(self) -> None:
        self._grid = None
        self._in_grid_order = None

    def nbytes(self) -> int:
        """An estimate: the grid's arrays plus the entries' objects (not the shared strings)."""
        deal = sys.getsizeof(uuid.UUID(int=0)) + 10 * 8 + 2 * 48 + 64  # slots, datetimes, dict slot
        store = 7 * 8 + 64 + 232  # slots + the deals dict's base
        grid = self._grid.nbytes if self._grid is not None else 0
        return grid + store * len(self.stores) + deal * self.deal_count


class GeoCache:
    """Every district's live deals; ``max_deals`` bounds memory (past it, districts stay cold)."""

    def __init__(self, max_deals: int = 2_000_000) -> None:
        self.max_deals = max_deals
        self.districts: dict[str, District] = {}
        self.stores: dict[str, CachedStore] = {}
        self.deals: dict[uuid.UUID, CachedStore] = {}
        self.warm = False  # every district with live deals is loaded
        self.full = False  # the bound was hit: answers come from PostGIS until a reload
        self._index: GeoIndex | None = None
        self._index_nbytes = 0
        self._stores_at: list[CachedStore] | None = None

    def district(self, code: str) -> District:
        found = self.districts.get(code)
        if found is None:
            found = self.districts[code] = District(code)
        return found

    def reset(self) -> None:
        """Empty, before a cold load."""
        self.districts.clear()
        self.stores.clear()
        self.deals.clear()
        self.full = False
        self._index = None
        self._stores_at = None

    def put_rows(self, rows: Iterable[Sequence[Any]]) -> bool:
        """Add live deals (rows of ``repository.stream_live_rows``, in its column order); False
        once the memory bound forbids more (the cache is then ``full``; PostGIS answers)."""
        stores, deals = self.stores, self.deals
        for row in rows:
            if len(deals) >= self.max_deals:
                self.full = True
                return False
            (deal_id, store_id, deal_name, original, price, stock, start, end, markdown, photo,
             store_name, category, district_code, lat, lon) = row  # fmt: skip
            if end.tzinfo is None:  # SQLite hands back naive UTC
                start, end = _aware(start), _aware(end)
            if deal_id in deals:
                self._drop(deal_id)
            cached = stores.get(store_id)
            if cached is None:
                if lon is None:  # SQLite: the point itself
                    lat, lon = lat.lat, lat.lon
                cached = CachedStore(store_id, store_name, category, district_code, lat, lon)
                stores[store_id] = cached
                self._changed(self.district(district_code)).stores[store_id] = cached
            cached.deals_changed()
            cached.deals[deal_id] = CachedDeal(
                deal_id, store_id, deal_name, original, price, stock, start, end,
                _schedule(markdown), photo,
            )  # fmt: skip
            deals[deal_id] = cached
            self.districts[district_code].deal_count += 1
        return True

    def apply(self, deal: Deal, store: Store, now: datetime) -> None:
        """A deal as it is now: cached if live, dropped otherwise."""
        self._drop(deal.id)
        if deal.closed_at is None and deal.stock > 0 and now < _aware(deal.pickup_end_at):
            if len(self.deals) >= self.max_deals:
                self.full = True
                return
            self._put(deal, store, now)

    def forget(self, deal_id: uuid.UUID) -> None:
        """A deal that no longer exists."""
        self._drop(deal_id)

    def _changed(self, district: District) -> District:
        district.changed()
        self._index = None
        self._stores_at = None
        return district

    @property
    def index(self) -> GeoIndex:
        """Every district's grid end to end; rebuilt (changed districts only) after a change."""
        if self._index is None:
            self._index = GeoIndex(self.districts[code].grid for code in sorted(self.districts))
            self._index_nbytes = self._index.nbytes
        return self._index

    @property
    def stores_at(self) -> list[CachedStore]:
        """The store entry at each position of :attr:`index`: a hit's store by one list index
        (no key, no dict lookup: the nearby page's loop touches one object per hit).

        The index lays the districts' grids end to end, in the order given (``index.grids``);
        per district the list is made with its grid, so a change re-joins lists only."""
        index = self.index
        if self._stores_at is None:
            districts = [self.districts[code] for code in sorted(self.districts)]
            parts = [d for d in districts if len(d.grid)]
            if [d.grid for d in parts] == index.grids:
                self._stores_at = [s for d in parts for s in d.in_grid_order]
            else:  # laid out otherwise: ask the index for every key (slower, still right)
                keys = index.keys_at(np.arange(len(index), dtype=np.int64))
                self._stores_at = [self.stores[key] for key in keys]
        return self._stores_at

    @property
    def index_nbytes(self) -> int:
        """The index's arrays as last built (0 until a query or a load builds it)."""
        return self._index_nbytes

    def _put(self, deal: Deal, store: Store, now: datetime) -> None:
        cached = self.stores.get(store.id)
        if cached is None:
            cached = self.stores[store.id] = CachedStore.of(store)
            district = self.district(cached.district_code)
            district.stores[store.id] = cached
            self._changed(district)
        cached.deals_changed()
        cached.deals[deal.id] = CachedDeal.of(deal)
        self.deals[deal.id] = cached
        self.districts[cached.district_code].deal_count += 1

    def _drop(self, deal_id: uuid.UUID) -> None:
        store = self.deals.pop(deal_id, None)
        if store is None:
            return
        store.deals_changed()
        store.deals.pop(deal_id, None)
        self.districts[store.district_code].deal_count -= 1
        if not store.deals:
            self.stores.pop(store.id, None)
            district = self.districts[store.district_code]
            district.stores.pop(store.id, None)
            self._changed(district)

    def purge(self, now: datetime) -> int:
        """Drop deals whose pickup window has ended; returns how many."""
        # ``now`` in each UTC tzinfo the rows carry (psycopg: ZoneInfo("Etc/UTC")): datetimes of
        # the same tzinfo compare without utcoffset() calls, ~1 µs less per deal — the walk over
        # every deal took ~0.3 s of the event loop at 150k. Other zones: live_at, as before.
        utc_now: dict[tzinfo | None, datetime] = {z: now.astimezone(z) for z in _UTC_ZONES}
        expired = []
        for deal_id, store in self.deals.items():
            deal = store.deals[deal_id]
            end = deal.pickup_end_at
            local_now = utc_now.get(end.tzinfo)
            if local_now is None:
                if not deal.live_at(now):
                    expired.append(deal_id)
            elif deal.stock <= 0 or local_now >= end:
                expired.append(deal_id)
        for deal_id in expired:
            self._drop(deal_id)
        return len(expired)

    @property
    def serving(self) -> bool:
        """Whether answers may come from the cache (else from PostGIS)."""
        return self.warm and not self.full

    def within(self, lat: float, lon: float, radius_m: float) -> Hits:
        return self.index.within(lat, lon, radius_m)

    def in_box(
        self, south: float, west: float, north: float, east: float
    ) -> list[tuple[str, float, float]]:
        return self.index.in_box(south, west, north, east)

    def stats(self) -> list[dict[str, object]]:
        return [
            {
                "district_code": d.code,
                "loaded": d.loaded,
                "stores": len(d.stores),
                "deals": d.deal_count,
                "bytes": d.nbytes(),
            }
            for d in sorted(self.districts.values(), key=lambda d: d.code)
        ]
