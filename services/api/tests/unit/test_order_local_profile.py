"""The local profile (SQLite, no data-modifying WITH) places orders with the same writes as
PostgreSQL's single statement: order, history, both events and the stored answer, or nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from api.claim.models import StoreManager
from api.geo import LonLat
from api.main import create_app
from api.order.models import IdempotencyKey, Order, OrderChange
from api.outbox import OutboxEvent
from api.settings import ApiSettings
from api.store.models import Store
from servicekit.testing import TokenFactory

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture
async def local_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, TokenFactory, object]]:
    monkeypatch.setenv("MAGAM_PROFILE", "local")
    monkeypatch.setenv("MAGAM_CONFIG_REPO", str(REPO / "config-repo"))
    monkeypatch.setenv("API_DATABASE__SQLITE_DIR", str(tmp_path / "db"))
    monkeypatch.setenv("API_SEED_DEMO_DATA", "false")
    monkeypatch.setenv("API_GEOFENCE__ENABLED", "false")
    monkeypatch.setenv("API_OUTBOX__RELAY_ENABLED", "false")
    app = create_app(ApiSettings())
    tokens = TokenFactory()
    app.state.token_verifier = tokens.verifier()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client, tokens, app.state.sessions


async def test_place_order_on_sqlite_writes_order_history_events_and_answer_or_nothing(
    local_api: tuple[httpx.AsyncClient, TokenFactory, object],
) -> None:
    client, tokens, sessions = local_api
    async with sessions() as session, session.begin():  # type: ignore[operator]
        session.add(
            Store(
                id="LOCAL0000000000000001",
                name="로컬가게",
                category_code="I21001",
                district_code="11200",
                location=LonLat(127.04, 37.55),
            )
        )
        await session.flush()
        session.add(StoreManager(store_id="LOCAL0000000000000001", user_id="m-local"))
    now = datetime.now(UTC)
    deal = await client.post(
        "/manager/stores/LOCAL0000000000000001/deals",
        headers=tokens.headers("m-local", ["manager"]),
        json={
            "name": "김밥",
            "original_price_krw": 4000,
            "discount_percent": 50,
            "quantity": 1,
            "pickup_start_at": now.isoformat(),
            "pickup_end_at": (now + timedelta(hours=2)).isoformat(),
        },
    )
    assert deal.status_code == 201, deal.text
    customer = tokens.headers("c-local", ["customer"])
    body = {"deal_id": deal.json()["id"], "quantity": 1}

    first = await client.post(
        "/customer/orders", json=body, headers={**customer, "Idempotency-Key": "k1"}
    )
    replay = await client.post(
        "/customer/orders", json=body, headers={**customer, "Idempotency-Key": "k1"}
    )
    sold_out = await client.post(
        "/customer/orders", json=body, headers={**customer, "Idempotency-Key": "k2"}
    )

    assert first.status_code == replay.status_code == 201, first.text
    assert replay.json() == first.json()
    assert first.json()["unit_price_krw"] == 2000
    assert sold_out.status_code == 409
    assert sold_out.json()["code"] == "insufficient_stock"
    order_id = uuid.UUID(first.json()["id"])
    async with sessions() as session:  # type: ignore[operator]
        assert await session.scalar(select(func.count()).select_from(Order)) == 1
        change = (await session.scalars(select(OrderChange))).one()
        assert (change.order_id, change.to_status, change.actor_id) == (
            order_id,
            "placed",
            "c-local",
        )
        types = (await session.scalars(select(OutboxEvent.type).order_by(OutboxEvent.id))).all()
        assert types == ["deal.published", "order.placed", "stock.changed"]
        answers = {
            k.key: k.response_status for k in (await session.scalars(select(IdempotencyKey))).all()
        }
        assert answers == {"k1": 201, "k2": 409}
