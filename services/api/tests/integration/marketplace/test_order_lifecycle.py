from datetime import UTC, datetime, timedelta

import pytest

from api.menu.models import MenuItem

from .conftest import Api

pytestmark = pytest.mark.integration


async def test_pickup_flow_records_who_and_when_and_checks_the_code(api: Api) -> None:
    store = await api.store()
    manager = await api.manager_of(store)
    deal = await api.deal(store, manager, quantity=5)
    customer = api.customer()
    order = (await api.order(deal["id"], customer, quantity=2)).json()
    base = f"/manager/stores/{store}/orders/{order['id']}"

    manager_view = (await api.client.get(base, headers=manager)).json()
    accepted = await api.client.post(f"{base}/accept", headers=manager)
    ready = await api.client.post(f"{base}/ready", headers=manager)
    wrong = await api.client.post(
        f"{base}/pickup",
        json={"pickup_code": "999999" if order["pickup_code"] != "999999" else "000000"},
        headers=manager,
    )
    picked = await api.client.post(
        f"{base}/pickup", json={"pickup_code": order["pickup_code"]}, headers=manager
    )

    assert manager_view["pickup_code"] is None  # the customer shows it; the manager checks it
    assert accepted.json()["status"] == "accepted"
    assert ready.json()["status"] == "ready"
    assert wrong.status_code == 422
    assert wrong.json()["code"] == "wrong_pickup_code"
    assert picked.json()["status"] == "picked_up"
    history = picked.json()["history"]
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        (None, "placed"),
        ("placed", "accepted"),
        ("accepted", "ready"),
        ("ready", "picked_up"),
    ]
    assert history[0]["actor_id"] == order["customer_id"]
    assert all(h["actor_id"].startswith("m-") for h in history[1:])


async def test_cancel_returns_stock_and_is_refused_after_acceptance(api: Api) -> None:
    store = await api.store()
    manager = await api.manager_of(store)
    deal = await api.deal(store, manager, quantity=5)
    customer = api.customer()
    first = (await api.order(deal["id"], customer, quantity=2)).json()
    second = (await api.order(deal["id"], customer, quantity=1)).json()

    cancelled = await api.client.post(f"/customer/orders/{first['id']}/cancel", headers=customer)
    await api.client.post(f"/manager/stores/{store}/orders/{second['id']}/accept", headers=manager)
    too_late = await api.client.post(f"/customer/orders/{second['id']}/cancel", headers=customer)
    stock = (await api.client.get(f"/deals/{deal['id']}")).json()["stock"]

    assert cancelled.json()["status"] == "cancelled"
    assert too_late.status_code == 409
    assert too_late.json()["code"] == "invalid_transition"
    assert stock == 4


async def test_reject_with_a_reason_code_and_sold_out_takes_the_rest_off_sale(api: Api) -> None:
    store = await api.store()
    manager = await api.manager_of(store)
    deal = await api.deal(store, manager, quantity=5)
    order = (await api.order(deal["id"], api.customer(), quantity=2)).json()

    bad = await api.client.post(
        f"/manager/stores/{store}/orders/{order['id']}/reject",
        json={"reason": "because"},
        headers=manager,
    )
    rejected = await api.client.post(
        f"/manager/stores/{store}/orders/{order['id']}/reject",
        json={"reason": "sold_out"},
        headers=manager,
    )
    after = (await api.client.get(f"/deals/{deal['id']}")).json()

    assert bad.status_code == 422
    assert bad.json()["field"] == "reason"
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["reason"] == "sold_out"
    assert (after["stock"], after["status"], after["reserved"]) == (0, "sold_out", 0)


async def test_editing_never_goes_below_what_is_reserved(api: Api) -> None:
    store = await api.store()
    manager = await api.manager_of(store)
    deal = await api.deal(store, manager, quantity=10)
    await api.order(deal["id"], api.customer(), quantity=4)
    url = f"/manager/stores/{store}/deals/{deal['id']}"

    too_low = await api.client.patch(url, json={"quantity": 3}, headers=manager)
    ok = await api.client.patch(url, json={"quantity": 6}, headers=manager)

    assert too_low.status_code == 409
    assert too_low.json()["code"] == "quantity_below_reserved"
    assert too_low.json()["reserved"] == 4
    assert (ok.json()["quantity"], ok.json()["stock"], ok.json()["reserved"]) == (6, 2, 4)


async def test_the_price_charged_is_the_markdown_price_shown_at_order_time(api: Api) -> None:
    store = await api.store()
    manager = await api.manager_of(store)
    now = datetime.now(UTC)
    deal = await api.deal(
        store,
        manager,
        original_price_krw=8000,
        discount_percent=30,
        pickup_end_at=(now + timedelta(minutes=90)).isoformat(),  # inside the -2 h step
        markdown=[
            {"minutes_before_end": 120, "percent_off": 50},
            {"minutes_before_end": 30, "percent_off": 70},
        ],
    )
    shown = (await api.client.get(f"/deals/{deal['id']}")).json()
    stale = await api.order(deal["id"], api.customer(), expected_unit_price_krw=5600)
    order = await api.order(
        deal["id"], api.customer(), quantity=2, expected_unit_price_krw=shown["price_krw"]
    )

    assert shown["price_krw"] == 4000
    assert shown["discount_percent"] == 50
    assert stale.status_code == 409
    assert stale.json()["code"] == "price_changed"
    assert stale.json()["price_krw"] == 4000
    assert (order.json()["unit_price_krw"], order.json()["total_krw"]) == (4000, 8000)


async def test_an_invalid_schedule_names_the_problem(api: Api) -> None:
    store = await api.store()
    manager = await api.manager_of(store)
    now = datetime.now(UTC)
    response = await api.client.post(
        f"/manager/stores/{store}/deals",
        json={
            "name": "x",
            "original_price_krw": 8000,
            "discount_percent": 50,
            "quantity": 1,
            "pickup_start_at": now.isoformat(),
            "pickup_end_at": (now + timedelta(hours=2)).isoformat(),
            "markdown": [{"minutes_before_end": 60, "percent_off": 40}],
            "surprise": True,
        },
        headers=manager,
    )
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert "surprise" in fields  # unknown fields are refused (mass assignment)


async def test_claim_approval_makes_the_claimant_a_manager(api: Api) -> None:
    store = await api.store()
    user = api.tokens.headers("u-claimant-" + store[-6:], ["customer", "manager"])
    before = await api.client.get(f"/manager/stores/{store}/deals", headers=user)
    bad = await api.client.post(
        f"/stores/{store}/claims", json={"business_number": "220-81-62518"}, headers=user
    )
    claim = await api.client.post(
        f"/stores/{store}/claims", json={"business_number": "220-81-62517"}, headers=user
    )
    admin = api.admin()
    approved = await api.client.post(
        f"/admin/store-claims/{claim.json()['id']}/approve", json={}, headers=admin
    )
    twice = await api.client.post(
        f"/admin/store-claims/{claim.json()['id']}/reject", json={"reason": "late"}, headers=admin
    )
    after = await api.client.get(f"/manager/stores/{store}/deals", headers=user)

    assert before.status_code == 403
    assert bad.status_code == 422
    assert bad.json()["field"] == "business_number"
    assert claim.status_code == 201
    assert approved.json()["status"] == "approved"
    assert twice.status_code == 409
    assert after.status_code == 200


async def test_a_manager_starts_a_deal_from_a_menu_item(api: Api) -> None:
    store, other = await api.store(), await api.store()
    manager = await api.manager_of(store)
    async with api.sessions() as session, session.begin():
        bread = MenuItem(store_id=store, name="소금빵", price_krw=3500, source="csv")
        market_price = MenuItem(store_id=store, name="모둠회", price_krw=None, source="csv")
        foreign = MenuItem(store_id=other, name="남의 빵", price_krw=2000, source="csv")
        session.add_all([bread, market_price, foreign])
        await session.flush()
        ids = bread.id, market_price.id, foreign.id
    now = datetime.now(UTC)
    window = {
        "quantity": 6,
        "pickup_start_at": now.isoformat(),
        "pickup_end_at": (now + timedelta(hours=2)).isoformat(),
    }
    base = f"/manager/stores/{store}/deals/from-menu"

    deal = await api.client.post(
        f"{base}/{ids[0]}", json={**window, "discount_percent": 40}, headers=manager
    )
    no_price = await api.client.post(
        f"{base}/{ids[1]}", json={**window, "discount_percent": 40}, headers=manager
    )
    priced = await api.client.post(
        f"{base}/{ids[1]}",
        json={**window, "discount_percent": 40, "original_price_krw": 30000},
        headers=manager,
    )
    borrowed = await api.client.post(
        f"{base}/{ids[2]}", json={**window, "discount_percent": 40}, headers=manager
    )

    assert deal.status_code == 201, deal.text
    assert (deal.json()["name"], deal.json()["original_price_krw"], deal.json()["price_krw"]) == (
        "소금빵",
        3500,
        2100,
    )
    assert no_price.status_code == 422
    assert no_price.json()["field"] == "original_price_krw"
    assert priced.json()["price_krw"] == 18000
    assert borrowed.status_code == 404
    assert borrowed.json()["code"] == "menu_item_not_found"
