"""BOLA matrix (OWASP API1): every manager endpoint, enumerated from the app itself, refuses a
manager of store A acting on store B's deals and orders, and leaves them unchanged."""

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.deal.schemas import DealCreate, DealFromMenu, DealUpdate, Restock
from api.menu.models import MenuItem
from api.order.schemas import OrderReject, PickupCheck

from .conftest import Api

pytestmark = pytest.mark.integration


def _valid_bodies() -> dict[str, dict[str, Any]]:
    now = datetime.now(UTC)
    return {
        DealCreate.__name__: {
            "name": "침입자 도시락",
            "original_price_krw": 5000,
            "price_krw": 1000,
            "quantity": 5,
            "pickup_start_at": now.isoformat(),
            "pickup_end_at": (now + timedelta(hours=1)).isoformat(),
        },
        DealUpdate.__name__: {"name": "바뀐 이름", "quantity": 1},
        DealFromMenu.__name__: {
            "discount_percent": 50,
            "quantity": 3,
            "pickup_start_at": now.isoformat(),
            "pickup_end_at": (now + timedelta(hours=1)).isoformat(),
        },
        Restock.__name__: {"quantity": 100},
        OrderReject.__name__: {"reason": "other"},
        PickupCheck.__name__: {"pickup_code": "000000"},
    }


def _manager_operations(app: Any) -> list[tuple[str, str, str | None]]:
    """(method, path template, request body schema name) of every /manager/ operation, read from
    the app's own OpenAPI document, so a new endpoint is in this test the moment it exists."""
    operations = []
    for path, item in app.openapi()["paths"].items():
        if not path.startswith("/manager/"):
            continue
        for method, operation in item.items():
            ref = (
                operation.get("requestBody", {})
                .get("content", {})
                .get("application/json", {})
                .get("schema", {})
                .get("$ref")
            )
            operations.append((method.upper(), path, ref.rsplit("/", 1)[-1] if ref else None))
    assert len(operations) >= 12, "the manager API shrank: update this test deliberately"
    return operations


async def _snapshot(
    api: Any, store: str, deal_id: str, order_id: str, headers: dict[str, str]
) -> Any:
    deal = await api.client.get(f"/manager/stores/{store}/deals/{deal_id}", headers=headers)
    order = await api.client.get(f"/manager/stores/{store}/orders/{order_id}", headers=headers)
    deals = await api.client.get(f"/manager/stores/{store}/deals", headers=headers)
    assert deal.status_code == order.status_code == 200
    return deal.json(), order.json(), len(deals.json()["items"])


async def test_every_manager_endpoint_refuses_another_stores_objects(api: Api) -> None:
    store_a, store_b = await api.store(), await api.store()
    manager_a, manager_b = await api.manager_of(store_a), await api.manager_of(store_b)
    deal_a = await api.deal(store_a, manager_a)
    deal_b = await api.deal(store_b, manager_b)
    order_b = (await api.order(deal_b["id"], api.customer())).json()
    async with api.sessions() as session, session.begin():
        item_b = MenuItem(store_id=store_b, name="B의 소금빵", price_krw=3000, source="csv")
        session.add(item_b)
        await session.flush()
        item_b_id = item_b.id
    before = await _snapshot(api, store_b, deal_b["id"], order_b["id"], manager_b)
    bodies = _valid_bodies()

    tried = 0
    for method, template, body_model in _manager_operations(api.app):
        assert body_model is None or body_model in bodies, f"no body for {template}: add it here"
        for store_in_path in (store_b, store_a):
            # B's objects under B's store id (not managed), and under A's id (wrong store).
            if store_in_path == store_a and not re.search(r"\{(deal|order|item)_id\}", template):
                continue  # A's own collection: allowed, and it touches none of B's objects
            path = template.format(
                store_id=store_in_path,
                deal_id=deal_b["id"],
                order_id=order_b["id"],
                item_id=item_b_id,
            )
            response = await api.client.request(
                method, path, json=bodies[body_model] if body_model else None, headers=manager_a
            )
            assert response.status_code in (403, 404), (method, template, response.text)
            assert response.json()["code"] in (
                "store_not_managed",
                "deal_not_found",
                "order_not_found",
                "menu_item_not_found",
            ), (method, template, response.json())
            tried += 1

    assert tried >= 12
    assert await _snapshot(api, store_b, deal_b["id"], order_b["id"], manager_b) == before
    assert deal_a["store_id"] == store_a


async def test_a_customer_never_reads_or_cancels_another_customers_order(api: Api) -> None:
    store = await api.store()
    deal = await api.deal(store, await api.manager_of(store))
    alice, bob = api.customer(), api.customer()
    order = (await api.order(deal["id"], alice)).json()

    read = await api.client.get(f"/customer/orders/{order['id']}", headers=bob)
    cancel = await api.client.post(f"/customer/orders/{order['id']}/cancel", headers=bob)
    listed = await api.client.get("/customer/orders", headers=bob)
    mine = await api.client.get(f"/customer/orders/{order['id']}", headers=alice)

    assert read.status_code == cancel.status_code == 404
    assert read.json()["code"] == "order_not_found"
    assert listed.json()["items"] == []
    assert mine.json()["status"] == "placed"


async def test_role_guards_keep_customers_out_of_manager_and_admin_routes(api: Api) -> None:
    store = await api.store()
    customer = api.customer()
    as_manager = await api.client.get(f"/manager/stores/{store}/deals", headers=customer)
    as_admin = await api.client.get("/admin/store-claims", headers=customer)
    anonymous = await api.client.get("/customer/orders")
    assert as_manager.status_code == as_admin.status_code == 403
    assert as_manager.json()["code"] == "role_required"
    assert anonymous.status_code == 401
