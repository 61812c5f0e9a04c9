"""The documented flows, recorded into docs/api/ as they really answer."""

import pytest

from .api_docs import record
from .conftest import Api

pytestmark = pytest.mark.integration


async def test_document_a_deal_from_listing_to_pickup(api: Api) -> None:
    store = await api.store()
    manager = await api.manager_of(store)
    customer = api.customer()
    created = await api.client.post(
        f"/manager/stores/{store}/deals",
        headers=manager,
        json={
            "name": "제육 도시락",
            "description": "오늘 점심에 만든 도시락",
            "original_price_krw": 8000,
            "discount_percent": 30,
            "quantity": 3,
            "pickup_start_at": "2099-11-25T20:00:00+09:00",
            "pickup_end_at": "2099-11-25T22:00:00+09:00",
            "allergens": ["돼지고기"],
            "markdown": [
                {"minutes_before_end": 120, "percent_off": 50},
                {"minutes_before_end": 30, "percent_off": 70},
            ],
        },
    )
    deal_id = created.json()["id"]
    shown = await api.client.get(f"/deals/{deal_id}")
    order_body = {"deal_id": deal_id, "quantity": 2, "expected_unit_price_krw": 5600}
    first = await api.client.post(
        "/customer/orders", json=order_body, headers={**customer, "Idempotency-Key": "order-1"}
    )
    replay = await api.client.post(
        "/customer/orders", json=order_body, headers={**customer, "Idempotency-Key": "order-1"}
    )
    too_many = await api.client.post(
        "/customer/orders",
        json={"deal_id": deal_id, "quantity": 2},
        headers={**customer, "Idempotency-Key": "order-2"},
    )
    order_id = first.json()["id"]
    base = f"/manager/stores/{store}/orders/{order_id}"
    accepted = await api.client.post(f"{base}/accept", headers=manager)
    ready = await api.client.post(f"{base}/ready", headers=manager)
    picked = await api.client.post(
        f"{base}/pickup", json={"pickup_code": first.json()["pickup_code"]}, headers=manager
    )

    assert [r.status_code for r in (created, shown, first, replay, too_many, picked)] == [
        201,
        200,
        201,
        201,
        409,
        200,
    ]
    record("deals", "Listing a deal (manager) and reading it (customer)", created, shown)
    record(
        "orders",
        "Placing an order: Idempotency-Key, replay, not enough left",
        first,
        replay,
        too_many,
    )
    record("pickup", "From accepted to picked up (manager)", accepted, ready, picked)


async def test_document_claims_and_favorites(api: Api) -> None:
    store = await api.store()
    user = api.customer()
    admin = api.admin()
    claim = await api.client.post(
        f"/stores/{store}/claims", json={"business_number": "220-81-62517"}, headers=user
    )
    typo = await api.client.post(
        f"/stores/{store}/claims", json={"business_number": "220-81-62518"}, headers=user
    )
    approved = await api.client.post(
        f"/admin/store-claims/{claim.json()['id']}/approve",
        json={"reason": "사업자등록증 확인"},
        headers=admin,
    )
    added = await api.client.post("/customer/favorites", json={"store_id": store}, headers=user)
    listed = await api.client.get("/customer/favorites", headers=user)
    removed = await api.client.delete(f"/customer/favorites/{store}", headers=user)

    assert [r.status_code for r in (claim, typo, approved, added, removed)] == [
        201,
        422,
        200,
        201,
        204,
    ]
    record("store-claims", "Claiming a store and an admin approving it", claim, typo, approved)
    record("favorites", "Favorite stores", added, listed, removed)
