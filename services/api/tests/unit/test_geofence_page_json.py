"""The nearby page is built as plain dicts and dumped with orjson: the same JSON as its model."""

import uuid
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import orjson

from api.geofence.schemas import NearbyDeal, NearbyItem, NearbyPage, NearbyResult


def _item(i: int, tz: tzinfo, photo: str | None) -> NearbyItem:
    start = datetime(2026, 11, 25, 11, 0, 0, 120_000 * (i % 2), tzinfo=tz)
    return {
        "deal_id": uuid.UUID(int=i * 7919),
        "store_id": f"MA01012022{i:010d}",
        "store_name": '왕십리 도시락 "본점"',
        "category_code": "I21001",
        "name": "제육 도시락\n1인분",
        "lat": 37.5612 + i * 1e-7,
        "lon": 127.0371,
        "distance_m": round(412.74 + i / 3, 1),
        "original_price_krw": 8000,
        "price_krw": 4000 + i,
        "discount_percent": 50,
        "stock": i,
        "pickup_start_at": start,
        "pickup_end_at": start + timedelta(hours=2),
        "photo_url": photo,
    }


def test_the_page_dict_has_exactly_the_documented_fields() -> None:
    assert list(NearbyItem.__annotations__) == list(NearbyDeal.model_fields)
    assert list(NearbyResult.__annotations__) == list(NearbyPage.model_fields)


def test_orjson_dumps_the_page_exactly_as_the_model_would() -> None:
    zones: list[tzinfo] = [
        UTC,
        ZoneInfo("UTC"),
        ZoneInfo("Asia/Seoul"),
        timezone(timedelta(hours=9)),
    ]
    items = [
        _item(i, zones[i % len(zones)], None if i % 3 else f"https://cdn/{i}.jpg")
        for i in range(12)
    ]
    for page in (
        NearbyResult(items=items, next_cursor="412.7:" + uuid.UUID(int=5).hex, source="cache"),
        NearbyResult(items=[], next_cursor=None, source="postgis"),
    ):
        fast = orjson.dumps(page, option=orjson.OPT_UTC_Z)
        assert fast == NearbyPage.model_validate(page).model_dump_json().encode()
