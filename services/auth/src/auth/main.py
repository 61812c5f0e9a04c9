"""create_app(): lifespan, routers, error handler — nothing else."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

import auth.role.models
import auth.session.models  # noqa: F401 — their tables join Base.metadata
from auth.db import Base
from auth.demo import seed_demo_users
from auth.events import EventSender
from auth.kakao.client import HttpKakao
from auth.kakao.router import router as kakao_router
from auth.ratelimit import RateLimiter
from auth.role.consumer import IdentityConsumer
from auth.session.service import is_access_revoked
from auth.settings import AuthSettings
from auth.token.keys import KeyRing, SigningKey, VerificationKey
from auth.token.router import dev_router
from auth.token.router import router as token_router
from contracts import PARTITIONS, TOPIC_IDENTITY, AccessTokenClaims
from servicekit.bus import InProcessBus, Publisher, Subscription
from servicekit.config import ConfigError
from servicekit.db import build_engine, ping, prepare_schema, session_factory
from servicekit.errors import install_error_handlers
from servicekit.health import ReadinessCheck, health_router
from servicekit.kafka import KafkaPublisher, KafkaSubscription, ensure_topics
from servicekit.logs import configure_logging
from servicekit.metrics import install_metrics
from servicekit.refresh import install_config_refresh
from servicekit.runner import serve_service
from servicekit.security import StaticJwks, TokenVerifier
from servicekit.telemetry import flush as flush_spans
from servicekit.telemetry import instrument, setup_tracing

log = logging.getLogger(__name__)

CONSUMER_STOP_TIMEOUT_S = 15.0


def _key_ring(settings: AuthSettings) -> KeyRing:
    token = settings.token
    pem = token.signing_key_pem.get_secret_value()
    if pem:
        current = SigningKey.from_pem(pem)
    elif settings.uses_embedded_infrastructure:
        # A fresh key per start: local tokens simply expire with the process.
        current = SigningKey.generate()
    else:
        raise ConfigError("auth: token.signing_key_pem is not set; set AUTH_TOKEN__SIGNING_KEY_PEM")
    extra = {}
    for name in ("next_signing_key_pem", "previous_signing_key_pem"):
        value = getattr(token, name).get_secret_value()
        try:
            extra[name] = VerificationKey.from_pem(value) if value else None
        except ValueError as exc:
            raise ConfigError(f"auth: token.{name}: {exc}") from exc
    return KeyRing(
        current, next=extra["next_signing_key_pem"], previous=extra["previous_signing_key_pem"]
    )


def create_app(settings: AuthSettings | None = None, bus: InProcessBus | None = None) -> FastAPI:
    """The auth app; ``bus`` is the local launcher's shared in-process bus (identity topic)."""
    settings = settings or AuthSettings()
    configure_logging("auth", settings.log.level)
    setup_tracing("auth", settings.tracing)
    keys = _key_ring(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = build_engine(settings)
        sessions = session_factory(engine)
        app.state.sessions = sessions
        await prepare_schema(engine, Base.metadata)
        if settings.seed_demo_data:
            async with sessions() as session, session.begin():
                await seed_demo_users(session)

        async def revoked(claims: AccessTokenClaims) -> bool:
            async with sessions() as session:
                return await is_access_revoked(session, claims.sub, claims.sid)

        app.state.token_verifier = TokenVerifier(
            StaticJwks(keys.jwks()),
            issuer=settings.token.issuer,
            audience=settings.token.audience,
            is_revoked=revoked,
        )
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.kakao.timeout_s),
            headers={"User-Agent": "magam-auth"},
            follow_redirects=False,
        )
        app.state.kakao = HttpKakao(settings.kakao, http)

        publisher: Publisher
        new_subscription: Callable[[], Subscription]
        local_bus = bus or InProcessBus()
        if settings.uses_embedded_infrastructure:
            publisher = local_bus.publisher()
            subscription = local_bus.subscription(
                settings.identity_consumer_group, [TOPIC_IDENTITY]
            )

            def new_subscription() -> Subscription:
                return subscription
        else:
            bootstrap = settings.kafka.bootstrap_servers
            publisher = KafkaPublisher(bootstrap, client_id="auth")

            def new_subscription() -> Subscription:
                return KafkaSubscription(
                    bootstrap, settings.identity_consumer_group, [TOPIC_IDENTITY], client_id="auth"
                )

        await publisher.start()
        app.state.events = EventSender(publisher)

        async def prepare() -> None:
            if not settings.uses_embedded_infrastructure:
                await ensure_topics(settings.kafka.bootstrap_servers, [TOPIC_IDENTITY], PARTITIONS)

        identity = IdentityConsumer(new_subscription, sessions, prepare)
        consumer = asyncio.create_task(identity.run(), name="auth-identity-consumer")
        app.state.readiness = [ReadinessCheck("database", lambda: ping(engine))]
        log.info("auth started", extra={"profile": settings.profile, "port": settings.http.port})
        try:
            yield
        finally:
            await identity.stop()
            try:
                await asyncio.wait_for(consumer, CONSUMER_STOP_TIMEOUT_S)
            except TimeoutError:
                log.warning("identity consumer did not stop in time; cancelled")
            except Exception as exc:
                log.warning("identity consumer ended with an error", extra={"error": str(exc)})
            await app.state.events.drain()
            await publisher.stop()
            await http.aclose()
            await engine.dispose()
            flush_spans()

    app = FastAPI(
        title="magam auth",
        version="0.1.0",
        description="Kakao login, then our own short-lived JWTs and rotating refresh tokens.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.keys = keys
    app.state.limiter = RateLimiter(settings.rate_limit.window_s)
    app.state.readiness = []
    install_error_handlers(app)
    install_metrics(app, "auth")
    instrument(app)
    app.include_router(health_router("auth", lambda: app.state.readiness))
    app.include_router(token_router)
    app.include_router(kakao_router)
    if settings.profile == "local":
        app.include_router(dev_router)
    install_config_refresh(app, settings, bus)  # /admin/config + the config-bus listener
    return app


def serve() -> None:
    """Entry point of ``magam-auth``: serve on the configured port."""
    serve_service("auth", AuthSettings, create_app)
