"""create_app(): lifespan, routers, error handler — nothing else."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from auth.db import Base
from auth.demo import seed_demo_users
from auth.settings import AuthSettings
from auth.token.keys import SigningKey
from auth.token.router import dev_router
from auth.token.router import router as token_router
from servicekit.bus import InProcessBus
from servicekit.config import ConfigError
from servicekit.db import build_engine, ping, prepare_schema, session_factory
from servicekit.errors import install_error_handlers
from servicekit.health import ReadinessCheck, health_router
from servicekit.logs import configure_logging
from servicekit.refresh import install_config_refresh
from servicekit.runner import uvicorn_server

log = logging.getLogger(__name__)


def _signing_key(settings: AuthSettings) -> SigningKey:
    pem = settings.token.signing_key_pem.get_secret_value()
    if pem:
        return SigningKey.from_pem(pem)
    if settings.uses_embedded_infrastructure:
        # A fresh key per start: local tokens simply expire with the process.
        return SigningKey.generate()
    raise ConfigError("auth: token.signing_key_pem is not set; set AUTH_TOKEN__SIGNING_KEY_PEM")


def create_app(settings: AuthSettings | None = None, bus: InProcessBus | None = None) -> FastAPI:
    """The auth app. ``bus`` is accepted for symmetry with the other services' factories."""
    settings = settings or AuthSettings()
    configure_logging("auth", settings.log.level)
    signing_key = _signing_key(settings)
    del bus  # auth consumes role events in a later step; the argument keeps factories alike

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = build_engine(settings)
        app.state.sessions = session_factory(engine)
        await prepare_schema(engine, Base.metadata)
        if settings.seed_demo_data:
            async with app.state.sessions() as session, session.begin():
                await seed_demo_users(session)
        app.state.readiness = [ReadinessCheck("database", lambda: ping(engine))]
        log.info("auth started", extra={"profile": settings.profile, "port": settings.http.port})
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="magam auth",
        version="0.1.0",
        description="Kakao login, then our own short-lived JWTs and rotating refresh tokens.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.signing_key = signing_key
    app.state.readiness = []
    install_error_handlers(app)
    app.include_router(health_router("auth", lambda: app.state.readiness))
    app.include_router(token_router)
    if settings.profile == "local":
        app.include_router(dev_router)
    install_config_refresh(app, settings)  # /admin/config + the config-bus listener
    return app


def serve() -> None:
    """Entry point of ``magam-auth``: serve on the configured port."""
    settings = AuthSettings()
    uvicorn_server(create_app(settings), settings).run()
