import asyncio

import httpx
from fastapi import FastAPI

from servicekit.health import ReadinessCheck, health_router


async def _up() -> None:
    return None


async def _refused() -> None:
    raise ConnectionRefusedError("connection refused")


async def _hangs() -> None:
    await asyncio.sleep(10)


def _client(*checks: ReadinessCheck) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(health_router("api", lambda: checks))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_readyz_is_200_when_every_dependency_answers() -> None:
    async with _client(ReadinessCheck("database", _up), ReadinessCheck("kafka", _up)) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "up", "kafka": "up"}


async def test_readyz_is_503_naming_each_failing_dependency() -> None:
    checks = (
        ReadinessCheck("database", _refused),
        ReadinessCheck("kafka", _hangs, timeout_s=0.05),
        ReadinessCheck("cache", _up),
    )
    async with _client(*checks) as client:
        response = await client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert set(body["failing"]) == {"database", "kafka"}
    assert "connection refused" in body["failing"]["database"]
    assert "no answer within 0.05s" in body["failing"]["kafka"]
    assert body["checks"]["cache"] == "up"


async def test_healthz_answers_without_checking_dependencies() -> None:
    async with _client(ReadinessCheck("database", _refused)) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": "api"}
