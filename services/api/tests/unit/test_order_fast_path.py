"""The order fast path takes only requests the route would accept, and hashes them the same."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from api.geo import LonLat
from api.order import repository, service
from api.order.fast_path import _plain_headers, parse_order
from api.order.schemas import OrderCreate
from contracts import parse_event, serialize_event
from servicekit.security import Principal

DEAL = "0b5f7a43-7f55-4c1e-9a0e-4f9c2e1d2a10"


@pytest.mark.parametrize(
    "body",
    [
        {"deal_id": DEAL, "quantity": 1},
        {"deal_id": DEAL, "quantity": 100, "expected_unit_price_krw": 4000},
        {"quantity": 2, "expected_unit_price_krw": None, "deal_id": DEAL},
        {"deal_id": DEAL, "quantity": 3, "expected_unit_price_krw": 0},
    ],
)
def test_a_plain_order_is_taken_with_the_routes_canonical_json(body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    parsed = parse_order(raw)
    assert parsed is not None
    order, canonical = parsed
    expected = OrderCreate.model_validate_json(raw)
    assert order == expected
    assert canonical == expected.model_dump_json().encode()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b"not json",
        b'{"deal_id": "%s", "quantity": NaN}' % DEAL.encode(),
        b'{"deal_id": "%s", "quantity": 1, "note": "x"}' % DEAL.encode(),  # unknown field
        b'{"deal_id": "%s", "quantity": 1}' % DEAL.upper().encode(),
        b'{"deal_id": "%s", "quantity": 1}' % DEAL.replace("-", "").encode(),
        b'{"deal_id": "%s", "quantity": "1"}' % DEAL.encode(),
        b'{"deal_id": "%s", "quantity": 1.0}' % DEAL.encode(),
        b'{"deal_id": "%s", "quantity": true}' % DEAL.encode(),
        b'{"deal_id": "%s", "quantity": 0}' % DEAL.encode(),
        b'{"deal_id": "%s", "quantity": 101}' % DEAL.encode(),
        b'{"deal_id": "%s"}' % DEAL.encode(),
        b'{"quantity": 1}',
        b'{"deal_id": "%s", "quantity": 1, "expected_unit_price_krw": -1}' % DEAL.encode(),
        b'{"deal_id": "%s", "quantity": 1, "expected_unit_price_krw": "4000"}' % DEAL.encode(),
        b'{"deal_id": null, "quantity": 1}',
    ],
)
def test_anything_not_plain_goes_to_the_route(raw: bytes) -> None:
    assert parse_order(raw) is None


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=200),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.lists(st.integers(), max_size=2),
)


@given(
    st.dictionaries(
        st.sampled_from(["deal_id", "quantity", "expected_unit_price_krw", "extra", "Quantity"]),
        _values,
        max_size=4,
    )
)
def test_whatever_the_fast_path_takes_the_model_takes_the_same(body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    parsed = parse_order(raw)
    if parsed is None:
        return  # the route decides (it may accept more spellings than the fast path)
    order, canonical = parsed
    try:
        expected = OrderCreate.model_validate_json(raw)
    except ValidationError as exc:  # pragma: no cover — would be a bug
        raise AssertionError(f"the fast path took {raw!r}, the model refuses it") from exc
    assert order == expected
    assert canonical == expected.model_dump_json().encode()


def _scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"headers": list(headers)}


AUTH = (b"authorization", b"Bearer abc.def.ghi")
JSON = (b"content-type", b"application/json")


def test_plain_headers_give_the_token_and_the_key() -> None:
    key = str(uuid.uuid4()).encode()
    assert _plain_headers(_scope(AUTH, JSON, (b"idempotency-key", key))) == (
        "abc.def.ghi",
        key.decode(),
    )


@pytest.mark.parametrize(
    "headers",
    [
        [AUTH, JSON],  # no key: the route's 400
        [JSON, (b"idempotency-key", b"k")],  # no token: the route's 401
        [AUTH, (b"idempotency-key", b"k")],  # no content type
        [AUTH, JSON, (b"idempotency-key", b"k"), (b"idempotency-key", b"k2")],
        [AUTH, JSON, (b"idempotency-key", b" k")],  # the route strips it
        [AUTH, JSON, (b"idempotency-key", b"")],
        [AUTH, JSON, (b"idempotency-key", b"k" * 101)],  # over the route's max_length
        [AUTH, JSON, (b"idempotency-key", "키".encode())],
        [AUTH, (b"content-type", b"application/json; charset=utf-8"), (b"idempotency-key", b"k")],
        [(b"authorization", b"Basic abc"), JSON, (b"idempotency-key", b"k")],
        [AUTH, AUTH, JSON, (b"idempotency-key", b"k")],
    ],
)
def test_headers_not_plain_go_to_the_route(headers: list[tuple[bytes, bytes]]) -> None:
    assert _plain_headers(_scope(*headers)) is None


@given(
    store_id=st.text(min_size=1, max_size=40),
    store_name=st.text(max_size=30),
    price=st.integers(min_value=0, max_value=10_000_000),
    lon=st.floats(min_value=-180, max_value=180),
    lat=st.floats(min_value=-90, max_value=90),
    traceparent=st.none() | st.just("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
)
def test_the_sold_out_payload_is_the_serialized_sold_out_event(
    store_id: str, store_name: str, price: int, lon: float, lat: float, traceparent: str | None
) -> None:
    now = datetime.now(UTC)
    deal = repository.DealToOrder(
        uuid.uuid4(), store_id, "도시락", price, price, [], now + timedelta(hours=1), None, 5,
        store_name, LonLat(lon, lat),
    )  # fmt: skip
    actor = Principal(store_id, frozenset({"customer"}), None, "t", None)  # type: ignore[arg-type]
    data = OrderCreate(deal_id=deal.id, quantity=1)
    with patch.object(service, "current_traceparent", lambda: traceparent):
        *_, stock_event = service.new_order(deal, actor, data, now)
    template = stock_event(repository._STOCK_PLACEHOLDER)
    sold_out = template.model_copy(update={"data": stock_event(0).data})

    payload = repository.sold_out_payload(serialize_event(template).decode())

    assert payload == serialize_event(sold_out).decode()
    assert parse_event(payload.encode()) == sold_out
