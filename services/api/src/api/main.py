"""create_app(): lifespan, routers, error handler — nothing else."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.db import Base
from api.demo import seed_demo_stores
from api.settings import ApiSettings
from api.store.router import router as store_router
from servicekit.bus import InProcessBus, Publisher
from servicekit.db import build_engine, ping, prepare_schema, session_factory
from servicekit.errors import install_error_handlers
from servicekit.health import ReadinessCheck, health_router
from servicekit.kafka import KafkaPublisher
from servicekit.logs import configure_logging
from servicekit.runner import uvicorn_server

log = logging.getLogger(__name__)


def create_app(settings: ApiSettings | None = None, bus: InProcessBus | None = None) -> FastAPI:
    """The api app; ``bus`` lets the local launcher share one in-process bus among services."""
    settings = settings or ApiSettings()
    configure_logging("api", settings.log.level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = build_engine(settings)
        app.state.sessions = session_factory(engine)
        publisher: Publisher
        await prepare_schema(engine, Base.metadata)
        if settings.uses_embedded_infrastructure:
            publisher = (bus or InProcessBus()).publisher()
        else:
            publisher = KafkaPublisher(settings.kafka.bootstrap_servers, client_id="api")
        if settings.seed_demo_data:
            async with app.state.sessions() as session, session.begin():
                added = await seed_demo_stores(session)
            log.info("demo data seeded", extra={"stores_added": added})
        await publisher.start()
        app.state.publisher = publisher
        app.state.readiness = [ReadinessCheck("database", lambda: ping(engine))]
        if not settings.uses_embedded_infrastructure:
            app.state.readiness.append(ReadinessCheck("kafka", publisher.ping))
        log.info("api started", extra={"profile": settings.profile, "port": settings.http.port})
        try:
            yield
        finally:
            await publisher.stop()
            await engine.dispose()

    app = FastAPI(
        title="magam api",
        version="0.1.0",
        description="Stores, discounted deals and orders near their closing time.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.readiness = []
    install_error_handlers(app)
    app.include_router(health_router("api", lambda: app.state.readiness))
    app.include_router(store_router)
    return app


def serve() -> None:
    """Entry point of ``magam-api``: serve on the configured port."""
    settings = ApiSettings()
    uvicorn_server(create_app(settings), settings).run()
