"""create_app(): lifespan, routers, error handler — nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import PARTITIONS
from push.alerts import LogChannel, OperatorChannel, SlackWebhook
from push.consumer import BatchConsumer
from push.db import Base
from push.delivery.pipeline import Clock, Deliver, Pipeline, RetryPolicy, utc_now
from push.delivery.sender import LogSender, Sender, tune_gc_for_sending
from push.delivery.service import Policy
from push.device.router import router as device_router
from push.device.service import prune_stale_devices
from push.settings import PushSettings
from push.subscription.router import router as subscription_router
from servicekit.bus import IncomingRecord, InProcessBus, Publisher
from servicekit.db import build_engine, ping, prepare_schema, session_factory
from servicekit.errors import install_error_handlers
from servicekit.health import ReadinessCheck, health_router
from servicekit.kafka import KafkaPublisher, ensure_topics, ping_broker
from servicekit.logs import configure_logging
from servicekit.metrics import install_metrics
from servicekit.refresh import install_config_refresh
from servicekit.runner import serve_service
from servicekit.security import HttpJwks, RevocationFeed, TokenVerifier
from servicekit.telemetry import flush as flush_spans
from servicekit.telemetry import instrument, setup_tracing

log = logging.getLogger(__name__)

#: Plans a batch and returns its delivery (``Pipeline.plan_batch``).
BatchHandler = Callable[[Sequence[IncomingRecord]], Awaitable[Deliver]]


class BatchSource(Protocol):
    async def run(self, handler: BatchHandler) -> None: ...
    async def stop(self) -> None: ...


class _OneByOne:
    """The in-process bus (local profile) as a batch source: batches of one."""

    def __init__(self, bus: InProcessBus, group_id: str, topics: Sequence[str]) -> None:
        self._subscription = bus.subscription(group_id, topics)

    async def run(self, handler: BatchHandler) -> None:
        async def one(record: IncomingRecord) -> None:
            deliver = await handler([record])
            await deliver()

        await self._subscription.run(one)

    async def stop(self) -> None:
        await self._subscription.stop()


async def consume_forever(
    make_source: Callable[[], BatchSource], handler: BatchHandler, current: list[BatchSource]
) -> None:
    """Runs a fresh consumer after each failure (uncommitted records come again)."""
    delay = 0.5
    while True:
        source = make_source()
        current[:] = [source]
        try:
            await source.run(handler)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("consumer failed; restarting", extra={"retry_in_s": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15.0)


async def prune_forever(
    sessions: async_sessionmaker[AsyncSession], stale_after: timedelta, every_s: float
) -> None:
    while True:
        try:
            async with sessions() as session, session.begin():
                pruned = await prune_stale_devices(
                    session, now=datetime.now(UTC), stale_after=stale_after
                )
            if pruned:
                log.info("stale devices pruned", extra={"count": pruned})
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pruning devices failed; will try again")
        await asyncio.sleep(every_s)


async def release_forever(pipeline: Pipeline, every_s: float) -> None:
    """Sends what quiet hours held back, once they are over (the first check after one
    interval, so a starting replica does not race the one already running)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await pipeline.release_held()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("releasing held notifications failed; will try again")


def build_sender(settings: PushSettings) -> Sender:
    if settings.fcm.sender == "fcm":
        from push.delivery.fcm import FcmSender  # noqa: PLC0415 — firebase-admin only when used

        return FcmSender(settings.fcm)
    return LogSender()


def create_app(
    settings: PushSettings | None = None, bus: InProcessBus | None = None, clock: Clock = utc_now
) -> FastAPI:
    """The push app; ``bus`` lets the local launcher share one in-process bus among services,
    ``clock`` lets tests move time for quiet hours and daily caps."""
    settings = settings or PushSettings()
    configure_logging("push", settings.log.level)
    setup_tracing("push", settings.tracing)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = build_engine(settings)
        sessions = session_factory(engine)
        app.state.sessions = sessions
        await prepare_schema(engine, Base.metadata)
        revocations = RevocationFeed.for_service(
            "push",
            None if settings.uses_embedded_infrastructure else settings.kafka.bootstrap_servers,
            bus,
        )
        await revocations.start()
        if getattr(app.state, "token_verifier", None) is None:
            app.state.token_verifier = TokenVerifier(
                HttpJwks(settings.auth.jwks_url),
                issuer=settings.auth.issuer,
                audience=settings.auth.audience,
                is_revoked=revocations.revocations.is_revoked,
            )
        sender = build_sender(settings)
        operators: OperatorChannel = (
            SlackWebhook(settings.slack.webhook_url.get_secret_value())
            if settings.slack.webhook_url
            else LogChannel()
        )
        checks = [ReadinessCheck("database", lambda: ping(engine))]
        consumer_settings = settings.consumer
        make_source: Callable[[], BatchSource]
        dlq: Publisher
        if settings.uses_embedded_infrastructure:
            local_bus = bus or InProcessBus()
            dlq = local_bus.publisher()

            def make_source() -> BatchSource:
                return _OneByOne(local_bus, consumer_settings.group_id, consumer_settings.topics)
        else:
            bootstrap = settings.kafka.bootstrap_servers
            dlq_topics = [f"{t}{consumer_settings.dlq_suffix}" for t in consumer_settings.topics]
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    ensure_topics(bootstrap, [*consumer_settings.topics, *dlq_topics], PARTITIONS),
                    10,
                )
            dlq = KafkaPublisher(bootstrap, client_id="push-dlq")

            def make_source() -> BatchSource:
                return BatchConsumer(bootstrap, consumer_settings, client_id="push")

            checks.append(ReadinessCheck("kafka", lambda: ping_broker(bootstrap)))
        await dlq.start()
        app.state.readiness = checks
        pipeline = Pipeline(
            sessions,
            sender,
            dlq,
            operators,
            Policy(
                ZoneInfo(settings.notify.timezone),
                settings.notify.default_daily_cap,
                held_max_age=timedelta(hours=settings.notify.held_max_age_h),
            ),
            RetryPolicy(
                settings.fcm.max_attempts, settings.fcm.backoff_base_s, settings.fcm.backoff_max_s
            ),
            consumer_settings.dlq_suffix,
            clock,
        )
        app.state.pipeline = pipeline
        current: list[BatchSource] = []
        background = [
            asyncio.create_task(
                prune_forever(
                    sessions,
                    timedelta(days=settings.notify.device_stale_after_days),
                    settings.notify.prune_interval_s,
                )
            ),
            asyncio.create_task(release_forever(pipeline, settings.notify.release_interval_s)),
        ]
        consuming = (
            asyncio.create_task(consume_forever(make_source, pipeline.plan_batch, current))
            if consumer_settings.enabled
            else None
        )
        log.info("push started", extra={"profile": settings.profile, "port": settings.http.port})
        try:
            yield
        finally:
            for source in current:
                await source.stop()
            if consuming is not None:  # let the batch in hand finish and commit
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(consuming, 10)
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await dlq.stop()
            await revocations.stop()
            await sender.aclose()
            await operators.aclose()
            await engine.dispose()
            flush_spans()

    app = FastAPI(
        title="magam push",
        version="0.1.0",
        description=(
            "Turns order and stock events into phone notifications; owns the device registry "
            "and customers' geo-subscriptions."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.readiness = []
    install_error_handlers(app)
    install_metrics(app, "push")
    instrument(app)
    app.include_router(health_router("push", lambda: app.state.readiness))
    app.include_router(device_router)
    app.include_router(subscription_router)
    install_config_refresh(app, settings, bus)  # /admin/config + the config-bus listener
    return app


def serve() -> None:
    """Entry point of ``magam-push``: serve on the configured port."""
    tune_gc_for_sending()
    serve_service("push", PushSettings, create_app)
