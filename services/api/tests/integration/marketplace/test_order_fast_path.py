"""The order fast path answers what the FastAPI route answers; refusals stay the route's."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from api.deal.models import Deal
from api.order import repository, service
from api.outbox import OutboxEvent
from contracts import parse_event

from .conftest import Api

pytestmark = pytest.mark.integration

ROUTE_ONLY = {"Content-Type": "application/json; charset=utf-8"}  # not plain: the route answers
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often each path placed an order (the route's service call, the fast path's)."""
    counted = {"route": 0, "fast": 0}
    route, fast = service.place_order, service.place_order_at_once

    async def routed(*args: Any, **kwargs: Any) -> Any:
        counted["route"] += 1
        return await route(*args, **kwargs)

    async def fast_path(*args: Any, **kwargs: Any) -> Any:
        answer = await fast(*args, **kwargs)
        counted["fast"] += answer is not None
        return answer

    monkeypatch.setattr(service, "place_order", routed)
    monkeypatch.setattr(service, "place_order_at_once", fast_path)
    return counted


def _shape(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(k, "time" if TIME.fullmatch(str(v)) else type(v).__name__) for k, v in body.items()]


async def test_a_plain_order_is_placed_by_the_fast_path_and_replayed_byte_for_byte(
    api: Api, calls: dict[str, int]
) -> None:
    store = await api.store()
    deal = await api.deal(store, await api.manager_of(store), quantity=5)
    customer = api.customer()

    fast = await api.order(deal["id"], customer, quantity=2, key="k-fast")
    assert calls == {"route": 0, "fast": 1}
    replayed = await api.order(deal["id"], customer, quantity=2, key="k-fast")
    routed = await api.order(deal["id"], {**customer, **ROUTE_ONLY}, key="k-route")
    assert calls == {"route": 1, "fast": 1}  # the replay is the route's, without placing

    assert fast.status_code == routed.status_code == replayed.status_code == 201
    assert replayed.content == fast.content
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in fast.headers
    assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"
    assert _shape(fast.json()) == _shape(routed.json())
    assert fast.json()["total_krw"] == 2 * deal["price_krw"]
    assert fast.json()["created_at"] == fast.json()["updated_at"]
    metrics = (await api.client.get("/metrics")).text
    assert 'route="/customer/orders",service="api",status="201"' in metrics


async def test_refusals_are_the_routes_and_the_fast_path_writes_nothing_for_them(
    api: Api, calls: dict[str, int]
) -> None:
    store = await api.store()
    deal = await api.deal(store, await api.manager_of(store), quantity=1)
    customer = api.customer()

    too_many = await api.order(deal["id"], customer, quantity=2, key="k-many")
    wrong_price = await api.order(
        deal["id"], customer, key="k-price", expected_unit_price_krw=deal["price_krw"] + 1
    )
    again = await api.order(deal["id"], customer, quantity=2, key="k-many")
    assert calls == {"route": 2, "fast": 0}

    assert too_many.status_code == again.status_code == 409
    assert too_many.json()["code"] == "insufficient_stock"
    assert too_many.json()["available"] == 1
    assert again.content == too_many.content
    assert again.headers["content-type"] == "application/problem+json"
    assert wrong_price.status_code == 409
    assert wrong_price.json()["code"] == "price_changed"
    last = await api.order(deal["id"], customer, key="k-last")
    assert last.status_code == 201
    assert calls == {"route": 2, "fast": 1}
    sold_out = await api.order(deal["id"], customer, key="k-after")
    assert sold_out.status_code == 409
    assert sold_out.json()["available"] == 0


async def test_bad_requests_get_the_routes_problems(api: Api, calls: dict[str, int]) -> None:
    store = await api.store()
    deal = await api.deal(store, await api.manager_of(store))
    customer = api.customer()

    unknown_field = await api.order(deal["id"], customer, note="x")
    no_token = await api.order(deal["id"], {})
    manager_only = await api.order(deal["id"], api.tokens.headers("m-x", ["manager"]))
    too_many = await api.order(deal["id"], customer, quantity=101)

    assert unknown_field.status_code == 422
    assert no_token.status_code == 401
    assert manager_only.status_code == 403
    assert too_many.status_code == 422
    assert calls == {"route": 0, "fast": 0}


async def test_an_order_after_the_deal_changed_copies_the_deal_as_it_is_now(
    api: Api, calls: dict[str, int]
) -> None:
    store = await api.store()
    manager = await api.manager_of(store)
    deal = await api.deal(store, manager, quantity=10)
    customer = api.customer()
    first = await api.order(deal["id"], customer)  # the fast path now remembers the deal
    edited = await api.client.patch(
        f"/manager/stores/{store}/deals/{deal['id']}",
        json={"name": "반값 도시락", "markdown": [{"minutes_before_end": 600, "percent_off": 50}]},
        headers=manager,
    )
    assert edited.status_code == 200, edited.text

    old_price = await api.order(deal["id"], customer, expected_unit_price_krw=deal["price_krw"])
    new_price = await api.order(deal["id"], customer, expected_unit_price_krw=4000)
    unchecked = await api.order(deal["id"], customer)

    assert first.status_code == new_price.status_code == unchecked.status_code == 201
    assert first.json()["unit_price_krw"] == deal["price_krw"]
    assert old_price.status_code == 409
    assert old_price.json()["code"] == "price_changed"
    assert new_price.json()["unit_price_krw"] == unchecked.json()["unit_price_krw"] == 4000
    assert calls == {"route": 1, "fast": 3}  # only the refusal went to the route
    async with api.sessions() as session:
        names = await session.scalars(
            select(OutboxEvent.payload).where(
                OutboxEvent.key == store, OutboxEvent.type == "order.placed"
            )
        )
        deal_names = [parse_event(p).data.deal_name for p in names]  # type: ignore[union-attr]
    assert sorted(deal_names) == sorted([deal["name"], "반값 도시락", "반값 도시락"])


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every batch the fast path wrote in one statement."""
    sizes: list[int] = []
    place_many = repository.place_many

    async def counted(pg: Any, batch: Any) -> Any:
        left = await place_many(pg, batch)
        if left is not None:
            sizes.append(len(batch))
        return left

    monkeypatch.setattr(repository, "place_many", counted)
    return sizes


async def test_concurrent_orders_of_one_deal_share_statements_and_each_names_its_stock_left(
    api: Api, batches: list[int]
) -> None:
    store = await api.store()
    deal = await api.deal(store, await api.manager_of(store), quantity=40)

    responses = await asyncio.gather(*(api.order(deal["id"], api.customer()) for _ in range(40)))

    assert [r.status_code for r in responses] == [201] * 40
    assert batches  # some were written together
    assert max(batches) > 1
    async with api.sessions() as session:
        rows = await session.scalars(
            select(OutboxEvent.payload)
            .where(OutboxEvent.key == store, OutboxEvent.type == "stock.changed")
            .order_by(OutboxEvent.id)
        )
        stock_events = [parse_event(p) for p in rows]
    left = [e.data.quantity_available for e in stock_events]  # type: ignore[union-attr]
    assert left == list(range(39, -1, -1))  # in commit order, each unit once
    last = stock_events[-1].data
    assert (last.reason, last.live) == ("sold_out", False)  # type: ignore[union-attr]
    assert all(e.data.live for e in stock_events[:-1])  # type: ignore[union-attr]


async def test_a_batch_the_stock_cannot_cover_is_placed_order_by_order(
    api: Api, batches: list[int]
) -> None:
    store = await api.store()
    deal = await api.deal(store, await api.manager_of(store), quantity=11)

    responses = await asyncio.gather(
        *(api.order(deal["id"], api.customer(), quantity=2) for _ in range(12))
    )

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 5, 409: 7}
    refused = [r.json() for r in responses if r.status_code == 409]
    assert {(r["code"], r["available"]) for r in refused} == {("insufficient_stock", 1)}
    async with api.sessions() as session:
        stored = await session.get(Deal, uuid.UUID(deal["id"]))
    assert stored is not None
    assert stored.stock == 1
