"""The events an order writes in the statement that takes the stock: the stock left is the one the
database computed (the payload is built before it is known), and the last unit says sold out."""

import uuid

import pytest
from sqlalchemy import select

from api.order.models import IdempotencyKey, OrderChange
from api.outbox import OutboxEvent, shard_of
from contracts import OrderPlaced, StockChanged, parse_event

from .conftest import Api

pytestmark = pytest.mark.integration


async def _events(api: Api, store: str) -> list[OutboxEvent]:
    async with api.sessions() as session:
        rows = await session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.key == store, OutboxEvent.type != "deal.published")
            .order_by(OutboxEvent.id)
        )
        return list(rows)


# The fast path (api.order.fast_path) places a plain request; another spelling of the JSON
# content type sends the same order to the FastAPI route. Both must write the same.
PATHS = {"fast path": {}, "route": {"Content-Type": "application/json; charset=utf-8"}}


@pytest.mark.parametrize("path", list(PATHS))
async def test_place_order_writes_stock_left_then_sold_out_with_the_order_and_its_answer(
    api: Api, path: str
) -> None:
    store = await api.store()
    deal = await api.deal(store, await api.manager_of(store), quantity=3)
    customer = {**api.customer(), **PATHS[path]}

    first = await api.order(deal["id"], customer, quantity=2, key="k-first")
    last = await api.order(deal["id"], customer, quantity=1, key="k-last")

    assert first.status_code == last.status_code == 201, first.text
    rows = await _events(api, store)
    events = [parse_event(r.payload) for r in rows]
    assert [e.type for e in events] == [
        "order.placed",
        "stock.changed",
        "order.placed",
        "stock.changed",
    ]
    placed, left, placed_last, sold_out = events
    assert isinstance(placed, OrderPlaced)
    assert isinstance(placed_last, OrderPlaced)
    assert isinstance(left, StockChanged)
    assert isinstance(sold_out, StockChanged)
    assert str(placed.data.order_id) == first.json()["id"]
    assert (placed.data.quantity, placed.data.unit_price_krw, placed.data.total_krw) == (
        2,
        deal["price_krw"],
        2 * deal["price_krw"],
    )
    assert placed.data.deal_name == deal["name"]
    assert placed.data.store_name.startswith("테스트가게")
    assert (left.data.quantity_available, left.data.reason, left.data.live) == (1, "ordered", True)
    assert (sold_out.data.quantity_available, sold_out.data.reason, sold_out.data.live) == (
        0,
        "sold_out",
        False,
    )
    assert left.data.price_krw == deal["price_krw"]
    assert all(
        r.shard == shard_of(store) and r.event_id == e.event_id
        for r, e in zip(rows, events, strict=True)
    )
    assert all(
        r.topic == ("order" if e.type == "order.placed" else "stock")
        for r, e in zip(rows, events, strict=True)
    )
    async with api.sessions() as session:
        history = (
            await session.scalars(
                select(OrderChange).where(OrderChange.order_id == uuid.UUID(first.json()["id"]))
            )
        ).one()
        answer = await session.get(IdempotencyKey, (placed.data.customer_id, "k-first"))
    assert (history.from_status, history.to_status, history.actor_id) == (
        None,
        "placed",
        placed.data.customer_id,
    )
    assert answer is not None
    assert answer.response_status == 201
    assert answer.response_body == first.json()
