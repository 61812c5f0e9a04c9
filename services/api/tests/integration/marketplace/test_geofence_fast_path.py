"""The nearby fast path answers what the FastAPI route answers; errors stay the route's."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from api.geofence.cache import GeoCache
from api.geofence.fast_path import parse_nearby
from servicekit.security import RevocationList

from .conftest import Api

pytestmark = pytest.mark.integration


async def _warm(api: Api) -> None:
    cache: GeoCache = api.app.state.geo_cache
    for _ in range(200):
        if cache.serving:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the geofence cache never became warm")


async def test_the_fast_path_and_the_route_answer_the_same_bytes(api: Api) -> None:
    await _warm(api)
    lat, lon = random.uniform(37.45, 37.68), random.uniform(126.82, 127.15)
    store = await api.store(lon=lon + 0.001, lat=lat)
    manager = await api.manager_of(store)
    deal = await api.deal(store, manager)
    customer = api.customer()
    fast = f"lat={lat:.6f}&lon={lon:.6f}&radius=300&sort=discount&limit=5"
    routed = f"lat={lat:.6f}&{fast}"  # lat twice: not plainly valid, so the route answers
    assert parse_nearby(fast.encode()) is not None
    assert parse_nearby(routed.encode()) is None

    for _ in range(100):  # the relay publishes, the follower reloads
        first = await api.client.get(f"/customer/deals/nearby?{fast}", headers=customer)
        if deal["id"] in first.text:
            break
        await asyncio.sleep(0.05)
    second = await api.client.get(f"/customer/deals/nearby?{routed}", headers=customer)

    assert first.status_code == second.status_code == 200
    assert deal["id"] in first.text
    assert first.content == second.content
    assert first.headers["content-type"] == second.headers["content-type"] == "application/json"
    metrics = (await api.client.get("/metrics")).text
    assert 'route="/customer/deals/nearby",service="api",status="200"' in metrics


async def test_refused_callers_get_the_routes_problems(api: Api) -> None:
    query = "/customer/deals/nearby?lat=37.5&lon=127.0"
    no_token = await api.client.get(query)
    manager_only = await api.client.get(query, headers=api.tokens.headers("m-1", ["manager"]))
    bad_cursor = await api.client.get(f"{query}&cursor=nope", headers=api.customer())

    assert no_token.status_code == 401
    assert no_token.json()["code"] == "token_missing"
    assert manager_only.status_code == 403
    assert manager_only.json()["code"] == "role_required"
    assert bad_cursor.status_code == 422
    assert bad_cursor.headers["content-type"].startswith("application/problem+json")
    assert bad_cursor.json()["field"] == "cursor"


async def test_a_token_served_by_the_fast_path_is_refused_once_revoked(api: Api) -> None:
    denied = RevocationList()
    api.app.state.token_verifier = api.tokens.verifier(is_revoked=denied.is_revoked)
    headers = api.tokens.headers("c-revoked", ["customer"], sid="fam-revoked")
    query = "/customer/deals/nearby?lat=37.5&lon=127.0&radius=10"
    assert (await api.client.get(query, headers=headers)).status_code == 200

    denied.revoke_session("fam-revoked", time.time())

    refused = await api.client.get(query, headers=headers)
    assert refused.status_code == 401
    assert refused.json()["code"] == "token_revoked"
