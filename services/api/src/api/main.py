"""create_app(): lifespan, routers, error handler — nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.claim.router import admin_router as claim_admin_router
from api.claim.router import router as claim_router
from api.clock import utcnow
from api.db import Base
from api.deal.router import public_router as deal_public_router
from api.deal.router import router as deal_router
from api.demo import seed_demo_stores
from api.favorite.router import router as favorite_router
from api.geofence.fast_path import NearbyFastPath
from api.geofence.router import admin_router as geofence_admin_router
from api.geofence.router import router as geofence_router
from api.geofence.runtime import GeofenceRuntime
from api.menu.router import router as menu_router
from api.order.fast_path import OrderFastPath
from api.order.router import customer_router as order_customer_router
from api.order.router import manager_router as order_manager_router
from api.outbox import OutboxRelay
from api.settings import ApiSettings
from api.store.router import router as store_router
from api.sweeper import Sweeper
from servicekit.bus import InProcessBus, Publisher
from servicekit.db import build_engine, ping, prepare_schema, session_factory
from servicekit.errors import install_error_handlers
from servicekit.health import ReadinessCheck, health_router
from servicekit.kafka import KafkaPublisher
from servicekit.logs import configure_logging
from servicekit.metrics import install_metrics
from servicekit.refresh import install_config_refresh
from servicekit.runner import serve_service
from servicekit.security import HttpJwks, RevocationFeed, TokenVerifier
from servicekit.telemetry import flush as flush_spans
from servicekit.telemetry import instrument, setup_tracing

log = logging.getLogger(__name__)


def create_app(settings: ApiSettings | None = None, bus: InProcessBus | None = None) -> FastAPI:
    """The api app; ``bus`` lets the local launcher share one in-process bus among services."""
    settings = settings or ApiSettings()
    configure_logging("api", settings.log.level)
    setup_tracing("api", settings.tracing)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = build_engine(settings)
        app.state.sessions = sessions = session_factory(engine)
        await prepare_schema(engine, Base.metadata)
        publisher: Publisher
        local_bus = bus or InProcessBus()
        if settings.uses_embedded_infrastructure:
            publisher = local_bus.publisher()
        else:
            publisher = KafkaPublisher(settings.kafka.bootstrap_servers, client_id="api")
        if settings.seed_demo_data:
            async with sessions() as session, session.begin():
                added = await seed_demo_stores(session)
            log.info("demo data seeded", extra={"stores_added": added})
        await publisher.start()
        app.state.publisher = publisher
        jwks = HttpJwks(settings.auth.jwks_url)
        revocations = RevocationFeed.for_service(
            "api",
            None if settings.uses_embedded_infrastructure else settings.kafka.bootstrap_servers,
            local_bus,
        )
        await revocations.start()
        app.state.revocations = revocations.revocations
        if getattr(app.state, "token_verifier", None) is None:
            app.state.token_verifier = TokenVerifier(
                jwks,
                issuer=settings.auth.issuer,
                audience=settings.auth.audience,
                is_revoked=revocations.revocations.is_revoked,
            )
        app.state.readiness = [ReadinessCheck("database", lambda: ping(engine))]
        if not settings.uses_embedded_infrastructure:
            app.state.readiness.append(ReadinessCheck("kafka", publisher.ping))
        relay = OutboxRelay(
            sessions,
            publisher,
            batch_size=settings.outbox.batch_size,
            idle_poll_s=settings.outbox.idle_poll_s,
            notify=settings.outbox.notify,
            listen_poll_s=settings.outbox.listen_poll_s,
        )
        app.state.relay = relay
        sweeper = Sweeper(sessions, settings.orders.sweep_interval_s, utcnow)
        tasks = []
        if settings.outbox.relay_enabled:
            tasks.append(asyncio.create_task(relay.run(), name="outbox-relay"))
        tasks.append(asyncio.create_task(sweeper.run(), name="sweeper"))
        geofence = None
        if settings.geofence.enabled:
            geofence = GeofenceRuntime(
                settings.geofence,
                sessions,
                kafka_bootstrap=None
                if settings.uses_embedded_infrastructure
                else settings.kafka.bootstrap_servers,
                bus=local_bus,
            )
            await geofence.start()
        app.state.geo_cache = geofence.cache if geofence else None
        # What startup built (modules, the app, its models: ~190k objects) lives as long as the
        # app: out of the cyclic collector's reach, a full collection stops scanning it (that was
        # 150-350 ms with the event loop stopped — the orders bench's p99). Back at shutdown.
        gc.freeze()
        log.info("api started", extra={"profile": settings.profile, "port": settings.http.port})
        try:
            yield
        finally:
            await relay.stop()
            await sweeper.stop()
            if geofence is not None:
                await geofence.stop()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await publisher.stop()
            await revocations.stop()
            await jwks.aclose()
            await engine.dispose()
            flush_spans()
            gc.unfreeze()  # an app started again in this process (tests) frees this one

    app = FastAPI(
        title="magam api",
        version="0.1.0",
        description="Stores, discounted deals and orders near their closing time.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.readiness = []
    app.state.token_verifier = None
    install_error_handlers(app)
    app.add_middleware(NearbyFastPath)  # innermost: inside metrics and tracing
    app.add_middleware(OrderFastPath)  # inside metrics and tracing too
    install_metrics(app, "api")
    instrument(app)
    app.include_router(health_router("api", lambda: app.state.readiness))
    for router in (
        store_router,
        deal_public_router,
        claim_router,
        claim_admin_router,
        deal_router,
        order_manager_router,
        order_customer_router,
        favorite_router,
        menu_router,
        geofence_router,
        geofence_admin_router,
    ):
        app.include_router(router)
    install_config_refresh(app, settings, bus)  # /admin/config + the config-bus listener
    return app


def serve() -> None:
    """Entry point of ``magam-api``: serve on the configured port."""
    serve_service("api", ApiSettings, create_app)
