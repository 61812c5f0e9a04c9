"""Which nearby queries the fast path takes itself; everything else goes to the FastAPI route."""

from urllib.parse import parse_qsl

import pytest

from api.geofence.fast_path import _pairs, parse_nearby
from api.geofence.schemas import NearbySort
from api.geofence.service import NearbyQuery


def test_a_plain_query_is_parsed_with_the_routes_defaults() -> None:
    assert parse_nearby(b"lat=37.5612&lon=127.0371") == NearbyQuery(
        37.5612, 127.0371, 1000.0, None, NearbySort.DISTANCE, None, 20
    )
    assert parse_nearby(
        b"lat=-37.5&lon=127&radius=250.5&category=I21&sort=discount&cursor=1.5%3Aab&limit=50&x=1"
    ) == NearbyQuery(-37.5, 127.0, 250.5, "I21", NearbySort.DISCOUNT, "1.5:ab", 50)
    assert parse_nearby(b"lat=37.5&lon=127&category=&cursor=") == NearbyQuery(
        37.5, 127.0, 1000.0, None, NearbySort.DISTANCE, "", 20
    )


@pytest.mark.parametrize(
    "query",
    [
        b"lon=127",  # lat missing
        b"lat=91&lon=127",
        b"lat=37.5&lon=-180.5",
        b"lat=37.5&lon=127&radius=5001",
        b"lat=37.5&lon=127&radius=-1",
        b"lat=1e1&lon=127",  # pydantic's to judge
        b"lat=nan&lon=127",
        b"lat=+37.5&lon=127",
        b"lat=%2037.5&lon=127",
        b"lat=37.5&lat=37.6&lon=127",  # repeated
        b"lat=37.5&lon=127&sort=nearest",
        b"lat=37.5&lon=127&limit=0",
        b"lat=37.5&lon=127&limit=101",
        b"lat=37.5&lon=127&limit=5.0",
        b"lat=37.5&lon=127&category=I2100100000",  # 11 characters
        b"lat=37.5&lon=127&cursor=" + b"1" * 101,
        "lat=37.5&lon=127&category=한식".encode(),
    ],
)
def test_anything_not_plainly_valid_is_left_to_the_route(query: bytes) -> None:
    assert parse_nearby(query) is None


@pytest.mark.parametrize(
    "text",
    [
        "lat=37.5&lon=127",
        "lat=37.5&&lon=127&",
        "&lat&lon=&=1&a=b=c",
        "lat=37.5%2C1&lon=127+1",
        "lat=%3D&x=%26",
        "",
    ],
)
def test_the_query_is_split_as_parse_qsl_splits_it(text: str) -> None:
    assert _pairs(text) == parse_qsl(text, keep_blank_values=True)
