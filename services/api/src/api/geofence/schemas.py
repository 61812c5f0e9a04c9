from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

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
    """A NearbyDeal as the hot path builds it: a plain dict, dumped to JSON once (orjson).

    Same fields, same JSON as :class:`NearbyDeal` (a unit test holds them equal); the model stays
    the documented schema.
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
    """A NearbyPage as the hot path builds it (see NearbyItem)."""

    items: list[NearbyItem]
    next_cursor: str | None
    source: Source


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
