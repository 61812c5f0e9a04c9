from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from api.deal.pricing import MarkdownStep, discounted, percent_off
from api.examples import example_of

Source = Literal["cache", "postgis"]


class NearbySort(StrEnum):
    DISTANCE = "distance"
    DISCOUNT = "discount"
    PICKUP_END = "pickup_end"


class NearbyDeal(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "deal_id": "0b6f3c1e-6c1d-4a53-9a5e-3f1c2b7d9e10",
                    "store_id": "MA0101202210A0086421",
                    "store_name": "왕십리 도시락",
                    "category_code": "I21001",
                    "name": "제육 도시락",
                    "lat": 37.5612,
                    "lon": 127.0371,
                    "distance_m": 412.7,
                    "original_price_krw": 8000,
                    "price_krw": 4000,
                    "discount_percent": 50,
                    "stock": 3,
                    "pickup_start_at": "2026-11-25T11:00:00Z",
                    "pickup_end_at": "2026-11-25T13:00:00Z",
                    "photo_url": None,
                }
            ]
        }
    )

    deal_id: uuid.UUID
    store_id: str
    store_name: str
    category_code: str
    name: str
    lat: float
    lon: float
    distance_m: float = Field(description="From the query point to the store, on the spheroid")
    original_price_krw: int
    price_krw: int = Field(description="The price now, markdown schedule applied")
    discount_percent: int
    stock: int
    pickup_start_at: datetime
    pickup_end_at: datetime
    photo_url: str | None


class NearbyPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [example_of(NearbyDeal)],
                    "next_cursor": "412.7:0b6f3c1e6c1d4a539a5e3f1c2b7d9e10",
                    "source": "cache",
                }
            ]
        }
    )

    items: list[NearbyDeal]
    next_cursor: str | None
    source: Source = Field(description="cache, or postgis while the cache is not warm")


class NearbyItem(TypedDict):
    """A NearbyDeal as a plain dict: orjson (OPT_UTC_Z) writes it as the model does (a unit
    test holds them equal), which is what :class:`NearbyDealJson`'s fragments rely on; the model
    stays the documented schema.
    """

    deal_id: uuid.UUID
    store_id: str
    store_name: str
    category_code: str
    name: str
    lat: float
    lon: float
    distance_m: float
    original_price_krw: int
    price_krw: int
    discount_percent: int
    stock: int
    pickup_start_at: datetime
    pickup_end_at: datetime
    photo_url: str | None


class NearbyResult(TypedDict):
    """A NearbyPage as a plain dict (see NearbyItem)."""

    items: list[NearbyItem]
    next_cursor: str | None
    source: Source


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def micros(at: datetime) -> int:
    """Microseconds since the epoch: exact, so comparing them is comparing the datetimes."""
    return (at - _EPOCH) // _MICROSECOND


class NearbyDealJson:
    """A NearbyDeal's JSON in fragments: ``head`` + the distance + ``tail_at(now)``.

    The same bytes as orjson (OPT_UTC_Z) dumping the NearbyItem dict, hence as NearbyDeal's
    JSON (unit tests hold all three equal), made once per cached deal instead of once per
    request: a page is then a join of bytes. What changes between requests stays outside the
    fragments: the distance, and the price, which the markdown schedule sets for the instant
    asked (``tail_at`` keeps the tail of the price in force and the span it is in force for).
    """

    __slots__ = (
        "_base_price",
        "_drops",
        "_fields",
        "_from_us",
        "_tail",
        "_until_us",
        "head",
        "pickup_end_us",
        "store",
    )

    def __init__(
        self,
        store: object,
        deal_id: uuid.UUID,
        store_id: str,
        store_name: str,
        category_code: str,
        name: str,
        lat: float,
        lon: float,
        original_price_krw: int,
        price_krw: int,
        markdown: Sequence[MarkdownStep],
        stock: int,
        pickup_start_at: datetime,
        pickup_end_at: datetime,
        photo_url: str | None,
    ) -> None:
        self.store = store  # the entry these fragments were made with
        head = {
            "deal_id": deal_id,
            "store_id": store_id,
            "store_name": store_name,
            "category_code": category_code,
            "name": name,
            "lat": lat,
            "lon": lon,
        }
        self.head = orjson.dumps(head)[:-1] + b',"distance_m":'
        self.pickup_end_us = end = micros(pickup_end_at)
        # pricing.price_at as a table: (from, price) ascending — the price from that microsecond
        # on is the lowest of the listed price and every step begun by then.
        drops: list[tuple[int, int]] = []
        price = price_krw
        for at, step_price in sorted(
            (end - s.minutes_before_end * 60_000_000, discounted(original_price_krw, s.percent_off))
            for s in markdown
        ):
            price = min(price, step_price)
            drops.append((at, price))
        self._base_price = price_krw
        self._drops = tuple(drops)
        self._fields = (original_price_krw, stock, pickup_start_at, pickup_end_at, photo_url)
        self._tail = b""
        self._from_us = self._until_us = 0  # an empty span: the first tail_at makes the tail

    def price(self, now_us: int) -> int:
        """The price in force at ``now_us`` (see :func:`micros`): ``pricing.price_at``."""
        return self._in_force(now_us)[0]

    def _in_force(self, now_us: int) -> tuple[int, int, int]:
        """The price at ``now_us`` and the span [from, until) it holds for."""
        price, since = self._base_price, -(2**63)
        for at, dropped in self._drops:
            if now_us < at:
                return price, since, at
            price, since = dropped, at
        return price, since, 2**63

    def tail_at(self, now_us: int) -> bytes:
        """The fields after the distance, at the price in force at ``now_us``."""
        if self._from_us <= now_us < self._until_us:
            return self._tail
        price, self._from_us, self._until_us = self._in_force(now_us)
        original, stock, start, end, photo = self._fields
        self._tail = (
            b","
            + orjson.dumps(
                {
                    "original_price_krw": original,
                    "price_krw": price,
                    "discount_percent": percent_off(original, price),
                    "stock": stock,
                    "pickup_start_at": start,
                    "pickup_end_at": end,
                    "photo_url": photo,
                },
                option=orjson.OPT_UTC_Z,
            )[1:]
        )
        return self._tail


class MapStore(BaseModel):
    store_id: str
    name: str
    lat: float
    lon: float
    deals: int
    lowest_price_krw: int


class MapCluster(BaseModel):
    lat: float = Field(description="The members' centroid")
    lon: float
    stores: int
    south: float
    west: float
    north: float
    east: float


class MapView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "stores": [
                        {
                            "store_id": "MA0101202210A0086421",
                            "name": "왕십리 도시락",
                            "lat": 37.5612,
                            "lon": 127.0371,
                            "deals": 2,
                            "lowest_price_krw": 4000,
                        }
                    ],
                    "clusters": [],
                    "source": "cache",
                }
            ]
        }
    )

    stores: list[MapStore] = Field(description="Every store, when there are few enough")
    clusters: list[MapCluster] = Field(description="Otherwise stores grouped on a grid")
    source: Source


class DistrictStats(BaseModel):
    district_code: str
    loaded: bool
    stores: int
    deals: int
    bytes: int


class CacheStats(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "warm": True,
                    "full": False,
                    "max_deals": 2000000,
                    "stores": 1,
                    "deals": 2,
                    "bytes": 900,
                    "districts": [
                        {
                            "district_code": "11200",
                            "loaded": True,
                            "stores": 1,
                            "deals": 2,
                            "bytes": 900,
                        }
                    ],
                }
            ]
        }
    )

    warm: bool
    full: bool
    max_deals: int
    stores: int
    deals: int
    bytes: int
    districts: list[DistrictStats]
