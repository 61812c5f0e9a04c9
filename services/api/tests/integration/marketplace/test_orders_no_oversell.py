import asyncio
from collections import Counter

import pytest
from sqlalchemy import func, select

from api.deal.models import Deal
from api.order.models import Order

from .conftest import Api

pytestmark = pytest.mark.integration


async def test_200_customers_racing_for_50_units_get_exactly_50_orders(api: Api) -> None:
    store = await api.store()
    manager = await api.manager_of(store)
    deal = await api.deal(store, manager, quantity=50)

    responses = await asyncio.gather(*(api.order(deal["id"], api.customer()) for _ in range(200)))

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 50, 409: 150}
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"insufficient_stock"}
    async with api.sessions() as session:
        stored = await session.get(Deal, deal["id"])
        ordered = await session.scalar(
            select(func.sum(Order.quantity)).where(Order.deal_id == stored.id)
        )
    assert stored.stock == 0
    assert ordered == 50


async def test_a_restock_landing_mid_race_is_sold_exactly(api: Api) -> None:
    store = await api.store()
    manager = await api.manager_of(store)
    deal = await api.deal(store, manager, quantity=50)

    async def restock_after_first_orders() -> int:
        await asyncio.sleep(0.05)
        response = await api.client.post(
            f"/manager/stores/{store}/deals/{deal['id']}/restock",
            json={"quantity": 30},
            headers=manager,
        )
        assert response.status_code == 200, response.text
        return int(response.json()["stock"])

    restock = asyncio.create_task(restock_after_first_orders())
    responses = await asyncio.gather(*(api.order(deal["id"], api.customer()) for _ in range(200)))
    await restock

    placed = sum(1 for r in responses if r.status_code == 201)
    refused = [r for r in responses if r.status_code != 201]
    assert {r.status_code for r in refused} <= {409}
    async with api.sessions() as session:
        stored = await session.get(Deal, deal["id"])
        ordered = await session.scalar(
            select(func.sum(Order.quantity)).where(Order.deal_id == stored.id)
        )
    assert stored.quantity == 80
    assert ordered == placed
    assert placed + stored.stock == 80  # every unit is either sold or still on sale, none twice
    assert stored.stock >= 0
    assert placed >= 50


async def test_ordering_more_than_the_stock_names_what_is_left(api: Api) -> None:
    store = await api.store()
    manager = await api.manager_of(store)
    deal = await api.deal(store, manager, quantity=3)

    response = await api.order(deal["id"], api.customer(), quantity=4)

    assert response.status_code == 409
    assert response.json()["code"] == "insufficient_stock"
    assert response.json()["available"] == 3
    assert response.json()["field"] == "quantity"
