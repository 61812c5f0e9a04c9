"""auth's test fixtures: the Kakao stand-in on a socket, settings pointing at it, the app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from pydantic import SecretStr

from auth.main import create_app
from auth.settings import (
    AuthSettings,
    KakaoSettings,
    RateLimitSettings,
    TokenSettings,
    WebSettings,
)
from conftest import Infra
from standins.kakao import OUR_APP, FakeKakao
from standins.server import serve_in_thread

APP_URL = "https://app.magam.test/signed-in"


def new_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def kakao_settings(base_url: str, **overrides: Any) -> KakaoSettings:
    values: dict[str, Any] = {
        "auth_base_url": base_url,
        "api_base_url": base_url,
        "app_id": OUR_APP.app_id,
        "rest_api_key": OUR_APP.rest_api_key,
        "native_app_key": OUR_APP.native_app_key,
        "client_secret": SecretStr(OUR_APP.client_secret or ""),
        "admin_key": SecretStr(OUR_APP.admin_key),
        "redirect_uri": "http://testserver/auth/kakao/callback",
        "timeout_s": 1.0,
        **overrides,
    }
    return KakaoSettings(**values)


def auth_settings(kakao_base_url: str, **overrides: Any) -> AuthSettings:
    """Settings of the current profile (prod under the ``prod_profile`` fixture)."""
    values: dict[str, Any] = {
        "token": TokenSettings(signing_key_pem=SecretStr(new_pem())),
        "kakao": kakao_settings(kakao_base_url),
        "web": WebSettings(cookie_secure=False),
        "rate_limit": RateLimitSettings(login_per_ip=1000, refresh_per_ip=1000),
        **overrides,
    }
    return AuthSettings(**values)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run, and a client that talks to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@asynccontextmanager
async def auth_client(settings: AuthSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings)) as client:
        yield client


@dataclass
class Kakao:
    fake: FakeKakao
    url: str


@pytest.fixture
def kakao() -> Iterator[Kakao]:
    """A Kakao stand-in on a real local socket (timeouts and refused connections are real)."""
    fake = FakeKakao()
    with serve_in_thread(fake.app) as url:
        yield Kakao(fake, url)


@pytest.fixture
def prod_settings(prod_profile: Infra, kakao: Kakao) -> Callable[..., AuthSettings]:
    """Builds prod-profile settings on the real PostgreSQL, Kakao at the stand-in."""

    def build(**overrides: Any) -> AuthSettings:
        return auth_settings(kakao.url, **overrides)

    return build


@pytest.fixture
def client_for() -> Callable[[AuthSettings], Any]:
    """``async with client_for(settings) as client``: auth with its lifespan, in-process."""
    return auth_client


@pytest.fixture
def pem() -> Callable[[], str]:
    return new_pem


@pytest.fixture
def kakao_config() -> Callable[..., KakaoSettings]:
    """``kakao_config(base_url, **overrides)``: our Kakao app's settings against ``base_url``."""
    return kakao_settings


@pytest.fixture
def run_app() -> Callable[[FastAPI], Any]:
    """``async with run_app(app) as client``: a built app with its lifespan, in-process."""
    return running
