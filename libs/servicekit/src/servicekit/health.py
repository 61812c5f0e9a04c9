"""Liveness and readiness: ``/healthz`` says the process is alive, ``/readyz`` that its
dependencies answer — or 503 naming each one that does not."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True)
class ReadinessCheck:
    """A named dependency probe; ``probe`` raises (or times out) when the dependency is down."""

    name: str
    probe: Callable[[], Awaitable[None]]
    timeout_s: float = 2.0


async def _run(check: ReadinessCheck) -> tuple[str, str | None]:
    try:
        await asyncio.wait_for(check.probe(), timeout=check.timeout_s)
    except TimeoutError:
        return check.name, f"no answer within {check.timeout_s:g}s"
    except Exception as exc:
        return check.name, f"{type(exc).__name__}: {exc}".strip()[:300]
    return check.name, None


class Liveness(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok", "service": "api"}]})

    status: str
    service: str


class Readiness(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "unavailable",
                    "service": "api",
                    "checks": {"database": "down", "kafka": "up"},
                    "failing": {"database": "OperationalError: connection refused"},
                }
            ]
        }
    )

    status: str
    service: str
    checks: dict[str, str]
    failing: dict[str, str]


def health_router(service: str, checks: Callable[[], Sequence[ReadinessCheck]]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> Liveness:
        return Liveness(status="ok", service=service)

    @router.get(
        "/readyz",
        summary="Readiness: every dependency answers",
        response_model=Readiness,
        responses={
            503: {
                "description": "A dependency is down; `failing` names it",
                "model": Readiness,
            }
        },
    )
    async def readyz() -> JSONResponse:
        results = await asyncio.gather(*(_run(c) for c in checks()))
        failing = {name: error for name, error in results if error is not None}
        body = {
            "status": "unavailable" if failing else "ready",
            "service": service,
            "checks": {name: ("down" if error else "up") for name, error in results},
            "failing": failing,
        }
        return JSONResponse(body, status_code=503 if failing else 200)

    return router
