import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from api.order.idempotency import request_hash
from api.order.models import IdempotencyKey, Order

from .conftest import Api

pytestmark = pytest.mark.integration


async def _orders_of(api: Api, deal_id: str) -> int:
    async with api.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(Order).where(Order.deal_id == uuid.UUID(deal_id))
        )
    return int(count or 0)


async def test_the_same_key_and_body_replays_the_first_answer(api: Api) -> None:
    store = await api.store()
    deal = await api.deal(store, await api.manager_of(store))
    customer = api.customer()

    first = await api.order(deal["id"], customer, quantity=2, key="k-1")
    again = await api.order(deal["id"], customer, quantity=2, key="k-1")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert await _orders_of(api, deal["id"]) == 1


async def test_an_error_answer_is_replayed_too(api: Api) -> None:
    store = await api.store()
    manager = await api.manager_of(store)
    deal = await api.deal(store, manager, quantity=1)
    customer = api.customer()

    refused = await api.order(deal["id"], customer, quantity=2, key="k-err")
    await api.client.post(
        f"/manager/stores/{store}/deals/{deal['id']}/restock", json={"quantity": 5}, headers=manager
    )
    replayed = await api.order(deal["id"], customer, quantity=2, key="k-err")

    assert refused.status_code == replayed.status_code == 409
    assert replayed.json() == refused.json()
    assert replayed.headers["content-type"] == "application/problem+json"


async def test_the_same_key_with_another_body_is_422(api: Api) -> None:
    store = await api.store()
    deal = await api.deal(store, await api.manager_of(store))
    customer = api.customer()

    await api.order(deal["id"], customer, quantity=1, key="k-2")
    other = await api.order(deal["id"], customer, quantity=3, key="k-2")

    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert other.json()["field"] == "Idempotency-Key"
    assert await _orders_of(api, deal["id"]) == 1


async def test_a_key_still_in_flight_is_409_and_nothing_is_ordered(api: Api) -> None:
    store = await api.store()
    deal = await api.deal(store, await api.manager_of(store))
    user_id = f"c-{uuid.uuid4().hex[:12]}"
    body = f'{{"deal_id":"{deal["id"]}","quantity":1,"expected_unit_price_krw":null}}'.encode()
    async with api.sessions() as session, session.begin():
        # The first request with this key claimed it and is still running.
        session.add(
            IdempotencyKey(
                customer_id=user_id,
                key="k-busy",
                request_hash=request_hash("POST", "/customer/orders", body),
                created_at=datetime.now(UTC),
            )
        )

    response = await api.order(deal["id"], api.tokens.headers(user_id, ["customer"]), key="k-busy")

    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_in_flight"
    assert await _orders_of(api, deal["id"]) == 0


async def test_concurrent_retries_with_one_key_order_once(api: Api) -> None:
    store = await api.store()
    deal = await api.deal(store, await api.manager_of(store))
    customer = api.customer()

    responses = await asyncio.gather(
        *(api.order(deal["id"], customer, key="k-storm") for _ in range(10))
    )

    assert {r.status_code for r in responses} <= {201, 409}
    created = [r for r in responses if r.status_code == 201]
    assert len({r.json()["id"] for r in created}) == 1
    assert await _orders_of(api, deal["id"]) == 1


async def test_a_missing_key_is_a_clear_400(api: Api) -> None:
    store = await api.store()
    deal = await api.deal(store, await api.manager_of(store))
    response = await api.client.post(
        "/customer/orders", json={"deal_id": deal["id"], "quantity": 1}, headers=api.customer()
    )
    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_required"
