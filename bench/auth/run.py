"""What auth's token endpoints cost, on the real PostgreSQL with the Kakao stand-in.

Starts the Kakao stand-in and auth (prod profile, the local PostgreSQL and Kafka of
`scripts/infra up`) on local sockets in this process, then measures sequentially: the mobile login
(Kakao token info + user info over HTTP, user upsert, new session), the refresh rotation, and
verifying an access token. Baseline for the verification: asking auth (`GET /auth/me`, which also
checks revocation in the database) — what a service would pay per request without the JWKS.

    uv run python bench/auth/run.py --n 200
Writes bench/auth/results.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GOALS_MS = {"mobile login": 250.0, "refresh": 100.0, "verify (JWKS, in process)": 5.0}


def _pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


async def _timed(n: int, step: Callable[[int], Awaitable[None]]) -> list[float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        await step(i)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 2),
        "max_ms": round(ordered[-1], 2),
        "n": len(ordered),
    }


async def bench(n: int) -> dict[str, dict[str, float]]:
    from auth.main import create_app  # noqa: PLC0415 — after the environment is set
    from auth.settings import (  # noqa: PLC0415
        AuthSettings,
        KakaoSettings,
        RateLimitSettings,
        TokenSettings,
    )
    from servicekit.security import HttpJwks, TokenVerifier  # noqa: PLC0415
    from standins.kakao import OUR_APP, FakeKakao  # noqa: PLC0415
    from standins.server import serve_in_thread  # noqa: PLC0415

    fake = FakeKakao()
    results: dict[str, dict[str, float]] = {}
    with serve_in_thread(fake.app) as kakao_url:
        settings = AuthSettings(
            token=TokenSettings(signing_key_pem=_pem()),
            kakao=KakaoSettings(
                auth_base_url=kakao_url,
                api_base_url=kakao_url,
                app_id=OUR_APP.app_id,
                rest_api_key=OUR_APP.rest_api_key,
                native_app_key=OUR_APP.native_app_key,
                admin_key=OUR_APP.admin_key,
            ),
            rate_limit=RateLimitSettings(
                login_per_ip=10**6, refresh_per_ip=10**6, refresh_per_user=10**6
            ),
        )
        with serve_in_thread(create_app(settings), lifespan="on") as auth_url:
            async with httpx.AsyncClient(base_url=auth_url, timeout=10) as client:
                sdk = [fake.sdk_login(fake.add_user()) for _ in range(n)]
                logins: list[dict[str, Any]] = []

                async def login(i: int) -> None:
                    answer = await client.post(
                        "/auth/kakao/token", json={"access_token": sdk[i]["access_token"]}
                    )
                    answer.raise_for_status()
                    logins.append(answer.json())

                results["mobile login"] = _summary(await _timed(n, login))
                refresh = logins[0]["refresh_token"]

                async def rotate(_: int) -> None:
                    nonlocal refresh
                    answer = await client.post("/auth/refresh", json={"refresh_token": refresh})
                    answer.raise_for_status()
                    refresh = answer.json()["refresh_token"]

                results["refresh"] = _summary(await _timed(n, rotate))
                verifier = TokenVerifier(
                    HttpJwks(f"{auth_url}/.well-known/jwks.json"),
                    issuer=settings.token.issuer,
                    audience=settings.token.audience,
                )
                token = logins[-1]["access_token"]

                async def verify(_: int) -> None:
                    await verifier.verify(token)

                await verify(0)  # the first call fetches the JWKS
                results["verify (JWKS, in process)"] = _summary(await _timed(n, verify))

                async def ask_auth(_: int) -> None:
                    answer = await client.get(
                        "/auth/me", headers={"Authorization": f"Bearer {token}"}
                    )
                    answer.raise_for_status()

                results["baseline: GET /auth/me (HTTP + DB)"] = _summary(await _timed(n, ask_auth))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="samples per measurement (200)")
    args = parser.parse_args()
    os.environ.update(
        MAGAM_PROFILE="prod",
        MAGAM_ALLOW_DEV_SECRETS="1",
        MAGAM_CONFIG_REPO=str(REPO / "config-repo"),
        AUTH_DATABASE__PASSWORD=os.environ.get("MAGAM_PG_PASSWORD", "magam"),
    )
    load = os.getloadavg()
    results = asyncio.run(bench(args.n))
    written = datetime.now(UTC).isoformat(timespec="seconds")
    (HERE / "results.json").write_text(
        json.dumps(
            {"written": written, "load": load, "results": results, "goals_ms": GOALS_MS}, indent=2
        )
        + "\n",
        encoding="utf-8",
    )
    rows = "\n".join(
        f"| {name} | p50 {r['p50_ms']} ms, p95 **{r['p95_ms']} ms**, "
        f"max {r['max_ms']} ms (n={r['n']}) "
        f"| {'p95 ≤ ' + str(GOALS_MS[name]) + ' ms' if name in GOALS_MS else ''} |"
        for name, r in results.items()
    )
    met = all(results[k]["p95_ms"] <= v for k, v in GOALS_MS.items())
    (HERE / "results.md").write_text(
        f"# auth bench\n\nCommand: `uv run python bench/auth/run.py --n {args.n}` "
        f"(written {written})\n\n"
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}; load average at "
        f"start {list(load)} (a shared machine: other suites may have been running).\n\n"
        f"| what | result | goal |\n|---|---|---|\n{rows}\n\nGoals met: {met}.\n",
        encoding="utf-8",
    )
    print((HERE / "results.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
