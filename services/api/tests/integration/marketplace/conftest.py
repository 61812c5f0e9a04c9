"""An api on the real PostgreSQL and Kafka, called in-process, with real tokens of a test key."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.claim.models import StoreManager
from api.geo import LonLat
from api.main import create_app
from api.settings import ApiSettings
from api.store.models import Store
from conftest import Infra
from servicekit.testing import TokenFactory


@dataclass
class Api:
    app: FastAPI
    client: httpx.AsyncClient
    tokens: TokenFactory

    @property
    def sessions(self) -> Any:
        return self.app.state.sessions

    async def store(
        self, lon: float = 127.0447, lat: float = 37.5477, district_code: str = "11200"
    ) -> str:
        store_id = f"T{uuid.uuid4().hex[:19].upper()}"
        async with self.sessions() as session, session.begin():
            session.add(
                Store(
                    id=store_id,
                    name=f"테스트가게 {store_id[-4:]}",
                    branch="",
                    category_code="I21001",
                    address="서울특별시 성동구 왕십리로 114",
                    district_code=district_code,
                    dong_code=f"{district_code}660",
                    location=LonLat(lon, lat),
                )
            )
        return store_id

    async def manager_of(self, *store_ids: str) -> dict[str, str]:
        user_id = f"m-{uuid.uuid4().hex[:12]}"
        async with self.sessions() as session, session.begin():
            session.add_all([StoreManager(store_id=s, user_id=user_id) for s in store_ids])
        return self.tokens.headers(user_id, ["customer", "manager"])

    def customer(self) -> dict[str, str]:
        return self.tokens.headers(f"c-{uuid.uuid4().hex[:12]}", ["customer"])

    def admin(self) -> dict[str, str]:
        return self.tokens.headers(f"a-{uuid.uuid4().hex[:12]}", ["customer", "admin"])

    async def deal(
        self, store_id: str, headers: dict[str, str], **overrides: Any
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        body: dict[str, Any] = {
            "name": "제육 도시락",
            "original_price_krw": 8000,
            "discount_percent": 30,
            "quantity": 10,
            "pickup_start_at": (now - timedelta(minutes=10)).isoformat(),
            "pickup_end_at": (now + timedelta(hours=3)).isoformat(),
        }
        body.update(overrides)
        response = await self.client.post(
            f"/manager/stores/{store_id}/deals", json=body, headers=headers
        )
        assert response.status_code == 201, response.text
        deal: dict[str, Any] = response.json()
        return deal

    async def order(
        self,
        deal_id: str,
        headers: dict[str, str],
        quantity: int = 1,
        key: str | None = None,
        **extra: Any,
    ) -> httpx.Response:
        return await self.client.post(
            "/customer/orders",
            json={"deal_id": deal_id, "quantity": quantity, **extra},
            headers={**headers, "Idempotency-Key": key or str(uuid.uuid4())},
        )


@pytest.fixture
async def api(
    prod_profile: Infra, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> AsyncIterator[Api]:
    # Races queue hundreds of requests for the pool; on a busy CI machine let them wait.
    monkeypatch.setenv("API_DATABASE__POOL_TIMEOUT_S", "120")
    if "geofence" not in request.module.__name__:
        # The geofence cache cold-loads every live deal at start: only its own tests pay that.
        monkeypatch.setenv("API_GEOFENCE__ENABLED", "false")
    app = create_app(ApiSettings())
    tokens = TokenFactory()
    app.state.token_verifier = tokens.verifier()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield Api(app, client, tokens)
