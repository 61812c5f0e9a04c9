"""create_app(): lifespan, routers, error handler — nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import PARTITIONS
from push.db import Base
from push.delivery.sender import LogSender
from push.delivery.service import handle_record
from push.settings import PushSettings
from servicekit.bus import IncomingRecord, InProcessBus, Subscription
from servicekit.db import build_engine, ping, prepare_schema, session_factory
from servicekit.errors import install_error_handlers
from servicekit.health import ReadinessCheck, health_router
from servicekit.kafka import KafkaSubscription, ensure_topics, ping_broker
from servicekit.logs import configure_logging
from servicekit.refresh import install_config_refresh
from servicekit.runner import uvicorn_server

log = logging.getLogger(__name__)


async def consume_forever(
    subscription: Subscription, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Runs the subscription, restarting it after a failure (the uncommitted record comes again)."""

    async def handle(record: IncomingRecord) -> None:
        # One transaction per message: the claim and its effects commit before the offset does.
        async with sessions() as session, session.begin():
            await handle_record(session, record)

    delay = 0.5
    while True:
        try:
            await subscription.run(handle)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("consumer failed; restarting", extra={"retry_in_s": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15.0)


def create_app(settings: PushSettings | None = None, bus: InProcessBus | None = None) -> FastAPI:
    """The push app; ``bus`` lets the local launcher share one in-process bus among services."""
    settings = settings or PushSettings()
    configure_logging("push", settings.log.level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = build_engine(settings)
        app.state.sessions = session_factory(engine)
        await prepare_schema(engine, Base.metadata)
        app.state.sender = LogSender()
        checks = [ReadinessCheck("database", lambda: ping(engine))]
        subscription: Subscription
        if settings.uses_embedded_infrastructure:
            subscription = (bus or InProcessBus()).subscription(
                settings.consumer.group_id, settings.consumer.topics
            )
        else:
            bootstrap = settings.kafka.bootstrap_servers
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    ensure_topics(bootstrap, settings.consumer.topics, PARTITIONS), 10
                )
            subscription = KafkaSubscription(
                bootstrap, settings.consumer.group_id, settings.consumer.topics, client_id="push"
            )
            checks.append(ReadinessCheck("kafka", lambda: ping_broker(bootstrap)))
        app.state.readiness = checks
        consumer: asyncio.Task[None] | None = None
        if settings.consumer.enabled:
            consumer = asyncio.create_task(consume_forever(subscription, app.state.sessions))
        log.info("push started", extra={"profile": settings.profile, "port": settings.http.port})
        try:
            yield
        finally:
            await subscription.stop()
            if consumer is not None:
                consumer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await consumer
            await engine.dispose()

    app = FastAPI(
        title="magam push",
        version="0.1.0",
        description=(
            "Turns order and stock events into phone notifications; owns the device registry."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.readiness = []
    install_error_handlers(app)
    app.include_router(health_router("push", lambda: app.state.readiness))
    install_config_refresh(app, settings, bus)  # /admin/config + the config-bus listener
    return app


def serve() -> None:
    """Entry point of ``magam-push``: serve on the configured port."""
    settings = PushSettings()
    uvicorn_server(create_app(settings), settings).run()
