"""Live configuration refresh, as spring-cloud-config + spring-cloud-bus did it.

``POST /admin/config/refresh`` on any replica publishes a ``ConfigRefreshRequested`` record on the
``config-bus`` topic. Every replica of every service listens to that topic as a *broadcast*: it
assigns itself all partitions with no consumer group (a group would hand each record to one member
only), starting at the end. On a record for it, a replica re-reads config-repo (and the environment,
which still outranks it) and applies the refreshable subset in place:

- ``log.level``: set on the root logger at once;
- ``features``, ``rate_limits``, ``markdown``: a new frozen ``Refreshable`` snapshot in the
  ``RefreshableSettings`` holder (``app.state.refreshable``), which code reads at use time.

Everything else (``STATIC_SETTINGS``: ports, database, Kafka, tracing, profile, secrets) is bound
at start; a refresh that sees one of those changed in config-repo logs that a restart is needed and
says so in ``GET /admin/config``. In the local profile the same code runs over the ``InProcessBus``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

import yaml
from fastapi import APIRouter, FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from servicekit.bus import Handler, IncomingRecord, InProcessBus, OutgoingRecord, Publisher
from servicekit.bus import Subscription as BusSubscription
from servicekit.config import (
    ConfigError,
    ConfigRepoSource,
    LogSettings,
    ServiceSettings,
    current_profile,
    find_config_repo,
    read_config_repo,
)
from servicekit.errors import AppError
from servicekit.security import CurrentAdmin

log = logging.getLogger(__name__)

CONFIG_BUS_TOPIC = "config-bus"
EVENT_TYPE: Final = "config.refresh_requested"
#: Top-level settings bound at start; a change in config-repo needs a restart to take effect.
STATIC_SETTINGS: tuple[str, ...] = ("profile", "http", "database", "kafka", "vault", "tracing")
#: Top-level settings a refresh applies live.
REFRESHABLE_SETTINGS: tuple[str, ...] = ("log", "features", "rate_limits", "markdown")


class MarkdownStep(BaseModel):
    """From ``minutes_before_end`` before a deal ends, sell at ``percent_off``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    minutes_before_end: int = Field(ge=1, le=24 * 60)
    percent_off: int = Field(ge=1, le=90)


class MarkdownDefaults(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    #: Offered to a manager who creates a deal without a schedule of their own.
    default_schedule: tuple[MarkdownStep, ...] = (
        MarkdownStep(minutes_before_end=120, percent_off=20),
        MarkdownStep(minutes_before_end=60, percent_off=40),
        MarkdownStep(minutes_before_end=30, percent_off=60),
    )

    @field_validator("default_schedule")
    @classmethod
    def _earliest_first(cls, steps: tuple[MarkdownStep, ...]) -> tuple[MarkdownStep, ...]:
        befores = [s.minutes_before_end for s in steps]
        if befores != sorted(befores, reverse=True) or len(set(befores)) != len(befores):
            raise ValueError(
                "steps must go from the earliest (most minutes before end) to the last"
            )
        offs = [s.percent_off for s in steps]
        if offs != sorted(offs):
            raise ValueError("a later step may not discount less than an earlier one")
        return steps


class Refreshable(BaseModel):
    """One immutable snapshot of the settings that change without a restart."""

    model_config = ConfigDict(frozen=True)
    log: LogSettings = LogSettings()
    #: Feature flags by name; an unknown flag reads as off.
    features: dict[str, bool] = Field(default_factory=dict)
    #: Requests per minute per caller, by limit name.
    rate_limits: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    markdown: MarkdownDefaults = MarkdownDefaults()

    def feature(self, name: str) -> bool:
        return self.features.get(name, False)

    def rate_limit(self, name: str, default: int) -> int:
        return self.rate_limits.get(name, default)


def load_refreshable(service: str) -> Refreshable:
    """The refreshable settings as a fresh start would see them: config-repo < environment."""

    class _Loader(BaseSettings):
        model_config = SettingsConfigDict(
            env_prefix=f"{service.upper()}_", env_nested_delimiter="__", extra="ignore"
        )
        log: LogSettings = LogSettings()
        features: dict[str, bool] = Field(default_factory=dict)
        rate_limits: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
        markdown: MarkdownDefaults = MarkdownDefaults()

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (env_settings, ConfigRepoSource(settings_cls, service))

    return Refreshable.model_validate(_Loader().model_dump())


def static_snapshot(service: str) -> dict[str, Any]:
    """The config-repo values of the settings bound at start (to tell when a restart is due)."""
    merged = read_config_repo(find_config_repo(), service, current_profile())
    return {key: merged.get(key) for key in STATIC_SETTINGS}


def apply_log_level(level: str) -> None:
    logging.getLogger().setLevel(level)
    # Mirrors configure_logging: aiokafka's reconnect noise stays at WARNING or above.
    logging.getLogger("aiokafka").setLevel(max(logging.getLevelName(level), logging.WARNING))


class RefreshableSettings:
    """The holder services read at use time: ``app.state.refreshable.current.feature("x")``."""

    def __init__(self, service: str, initial: Refreshable, static: dict[str, Any]) -> None:
        self.service = service
        self._current = initial
        self._static = static
        self.version = 0
        self.last_event_id: str | None = None
        self.refreshed_at: datetime | None = None
        self.restart_required: list[str] = []
        self._lock = threading.Lock()

    @property
    def current(self) -> Refreshable:
        return self._current

    def refresh(self, event_id: str | None = None) -> list[str]:
        """Re-reads config-repo, applies the refreshable subset; returns the changed keys."""
        try:
            fresh = load_refreshable(self.service)
            static_now = static_snapshot(self.service)
        except ValidationError as exc:
            # A bad edit in config-repo must not take a running replica down: keep the last good.
            log.error(
                "config refresh rejected: config-repo has invalid values; keeping the current ones",
                extra={"event_id": event_id, "errors": exc.errors(include_url=False)},
            )
            return []
        except (yaml.YAMLError, ConfigError, OSError) as exc:
            log.error(
                "config refresh rejected: config-repo cannot be read; keeping the current values",
                extra={"event_id": event_id, "error": str(exc)},
            )
            return []
        with self._lock:
            before = self._current.model_dump()
            after = fresh.model_dump()
            changed = sorted(k for k in after if after[k] != before.get(k))
            self._current = fresh
            self.version += 1
            self.last_event_id = event_id
            self.refreshed_at = datetime.now(UTC)
            self.restart_required = sorted(
                k for k in STATIC_SETTINGS if static_now.get(k) != self._static.get(k)
            )
        apply_log_level(fresh.log.level)
        log.info(
            "configuration refreshed",
            extra={"event_id": event_id, "changed": changed, "version": self.version},
        )
        if self.restart_required:
            log.warning(
                "config-repo changed settings that only a restart applies",
                extra={"restart_required": self.restart_required},
            )
        return changed


class ConfigRefreshRequested(BaseModel):
    """The config-bus record. ``destination``: ``*`` (everyone) or one service's name."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    type: Literal["config.refresh_requested"] = EVENT_TYPE
    event_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    destination: str = "*"
    origin: str
    requested_by: str
    requested_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def record(self) -> OutgoingRecord:
        return OutgoingRecord(
            topic=CONFIG_BUS_TOPIC,
            key=self.destination.encode(),
            value=self.model_dump_json().encode(),
            headers=[("event_type", EVENT_TYPE.encode())],
        )


class UnknownDestination(AppError):
    status, code, title = 422, "unknown_destination", "Unknown refresh destination"


class KafkaBroadcastSubscription:
    """Every record of a topic to this replica: all partitions assigned, no group, from the end.

    ``ready`` is set once the start position is fixed; a refresh published after that is seen.
    """

    def __init__(self, bootstrap_servers: str, topic: str, client_id: str) -> None:
        self.topic = topic
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()

    async def _partitions(self) -> list[int]:
        """The topic's partitions, waiting for the topic to exist."""
        from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415 — prod only

        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, request_timeout_ms=10_000)
        await admin.start()
        try:
            while True:
                (topic,) = await admin.describe_topics([self.topic])
                if topic["error_code"] == 0 and topic["partitions"]:
                    return sorted(p["partition"] for p in topic["partitions"])
                log.info("waiting for the topic to exist", extra={"topic": self.topic})
                await asyncio.sleep(1.0)
        finally:
            await admin.close()

    async def run(self, handler: Handler) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: PLC0415 — prod only

        partitions = await self._partitions()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            group_id=None,
            enable_auto_commit=False,
        )
        try:
            # Inside the try: a stop (cancel) during start must still close the consumer.
            await consumer.start()
            tps = [TopicPartition(self.topic, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            for tp in tps:  # resolve the positions now, not lazily at the first fetch
                await consumer.position(tp)
            self.ready.set()
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for msg in records:
                        await handler(
                            IncomingRecord(
                                msg.topic,
                                msg.partition,
                                msg.offset,
                                msg.key,
                                msg.value,
                                list(msg.headers),
                            )
                        )
        finally:
            self.ready.clear()
            await consumer.stop()

    async def stop(self) -> None:
        self._stopping.set()


def _instance_name(service: str) -> str:
    return f"{service}@{os.environ.get('HOSTNAME') or socket.gethostname()}:{os.getpid()}"


class ConfigBus:
    """This replica's end of the config bus: publishes refresh requests, applies those it gets."""

    def __init__(
        self,
        service: str,
        holder: RefreshableSettings,
        publisher: Publisher,
        subscription: BusSubscription,
        ready: Callable[[], bool],
    ) -> None:
        self.service = service
        self.instance = _instance_name(service)
        self.holder = holder
        self._publisher = publisher
        self._subscription = subscription
        self._ready = ready
        self._task: asyncio.Task[None] | None = None

    async def request_refresh(self, requested_by: str, destination: str = "*") -> str:
        event = ConfigRefreshRequested(
            destination=destination, origin=self.instance, requested_by=requested_by
        )
        await self._publisher.send(event.record())
        log.info(
            "config refresh requested",
            extra={"event_id": event.event_id, "destination": destination},
        )
        return event.event_id

    async def _handle(self, record: IncomingRecord) -> None:
        try:
            event = ConfigRefreshRequested.model_validate_json(record.value)
        except ValidationError:
            log.warning("ignoring a config-bus record that is not a refresh request")
            return
        if event.destination not in ("*", self.service):
            return
        await asyncio.to_thread(self.holder.refresh, event.event_id)

    async def _listen_forever(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._subscription.run(self._handle)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("config-bus listener failed; restarting", extra={"retry_in_s": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)

    async def start(self) -> None:
        await self._publisher.start()
        self._task = asyncio.create_task(self._listen_forever())

    async def stop(self) -> None:
        await self._subscription.stop()
        if self._task is not None:
            # Let the listener close its consumer itself; cancel only one that hangs.
            done, _ = await asyncio.wait({self._task}, timeout=3)
            if not done:
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._publisher.stop()

    @property
    def listening(self) -> bool:
        """True once a refresh published now would reach this replica."""
        return self._ready()


KNOWN_DESTINATIONS = ("*", "auth", "api", "push")


def admin_config_router(bus: Callable[[], ConfigBus]) -> APIRouter:
    router = APIRouter(prefix="/admin/config", tags=["admin"])

    @router.post(
        "/refresh",
        status_code=202,
        summary="Reload refreshable settings from config-repo on every replica",
        responses={
            202: {
                "content": {
                    "application/json": {
                        "example": {
                            "event_id": "3f0b8c52-93a4-4b8e-9a51-0c3c1b6f2e11",
                            "topic": CONFIG_BUS_TOPIC,
                            "destination": "*",
                        }
                    }
                }
            },
            422: {"description": "`unknown_destination`: not a service name or `*`"},
        },
    )
    async def refresh(
        admin: CurrentAdmin,
        destination: Annotated[
            str, Query(description="`*` for every service, or one service's name")
        ] = "*",
    ) -> dict[str, str]:
        if destination not in KNOWN_DESTINATIONS:
            raise UnknownDestination(
                f"destination must be one of {', '.join(KNOWN_DESTINATIONS)}",
                field="destination",
            )
        event_id = await bus().request_refresh(admin.user_id, destination)
        return {"event_id": event_id, "topic": CONFIG_BUS_TOPIC, "destination": destination}

    @router.get(
        "",
        summary="The live refreshable settings of this replica",
        responses={
            200: {
                "content": {
                    "application/json": {
                        "example": {
                            "service": "api",
                            "instance": "api-7d9f-1a2b",
                            "listening": True,
                            "version": 3,
                            "last_event_id": "3f0b8c52-93a4-4b8e-9a51-0c3c1b6f2e11",
                            "refreshed_at": "2026-11-25T12:00:00Z",
                            "refreshable": {"log_level": "INFO", "features": {}},
                            "effective_log_level": "INFO",
                            "static_settings": ["database", "kafka", "http"],
                            "restart_required": [],
                        }
                    }
                }
            }
        },
    )
    async def current(admin: CurrentAdmin) -> dict[str, Any]:
        config_bus = bus()
        holder = config_bus.holder
        return {
            "service": holder.service,
            "instance": config_bus.instance,
            "listening": config_bus.listening,
            "version": holder.version,
            "last_event_id": holder.last_event_id,
            "refreshed_at": holder.refreshed_at,
            "refreshable": holder.current.model_dump(mode="json"),
            "effective_log_level": logging.getLevelName(logging.getLogger().getEffectiveLevel()),
            "static_settings": list(STATIC_SETTINGS),
            "restart_required": holder.restart_required,
        }

    return router


def _build_bus(
    service: str, settings: ServiceSettings, holder: RefreshableSettings, bus: InProcessBus | None
) -> ConfigBus:
    if settings.uses_embedded_infrastructure:
        local = bus or InProcessBus()
        subscription = local.subscription(f"config-bus.{uuid.uuid4().hex}", [CONFIG_BUS_TOPIC])
        return ConfigBus(service, holder, local.publisher(), subscription, ready=lambda: True)

    from servicekit.kafka import KafkaPublisher  # noqa: PLC0415 — keeps aiokafka off local imports

    bootstrap = settings.kafka.bootstrap_servers
    broadcast = KafkaBroadcastSubscription(bootstrap, CONFIG_BUS_TOPIC, f"{service}-config-bus")
    publisher = KafkaPublisher(bootstrap, client_id=f"{service}-config-bus")
    return ConfigBus(service, holder, publisher, broadcast, ready=broadcast.ready.is_set)


async def _ensure_config_bus_topic(settings: ServiceSettings) -> None:
    if settings.uses_embedded_infrastructure:
        return
    from servicekit.kafka import ensure_topics  # noqa: PLC0415

    # One partition: refreshes stay in order, and every replica reads all of them anyway.
    with contextlib.suppress(Exception):  # the broker may be away; the listener retries
        await asyncio.wait_for(
            ensure_topics(settings.kafka.bootstrap_servers, [CONFIG_BUS_TOPIC], partitions=1), 10
        )


def install_config_refresh(
    app: FastAPI, settings: ServiceSettings, bus: InProcessBus | None = None
) -> RefreshableSettings:
    """Adds ``/admin/config`` and the config-bus listener to a service's app.

    Wraps the app's lifespan: after the service's own startup, the listener starts. It is not a
    readiness check: a replica that misses refreshes still serves traffic correctly with the
    settings it has; ``GET /admin/config`` says whether it is listening.
    """
    service = type(settings).service_name
    holder = RefreshableSettings(service, load_refreshable(service), static_snapshot(service))
    apply_log_level(holder.current.log.level)
    app.state.refreshable = holder
    app.include_router(admin_config_router(lambda: app.state.config_bus))
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[Any]:
        async with inner(app_) as state:
            await _ensure_config_bus_topic(settings)
            config_bus = _build_bus(service, settings, holder, bus)
            app_.state.config_bus = config_bus
            await config_bus.start()
            try:
                yield state
            finally:
                await config_bus.stop()

    app.router.lifespan_context = lifespan
    return holder


__all__: Sequence[str] = (
    "CONFIG_BUS_TOPIC",
    "REFRESHABLE_SETTINGS",
    "STATIC_SETTINGS",
    "ConfigBus",
    "ConfigRefreshRequested",
    "MarkdownDefaults",
    "MarkdownStep",
    "Refreshable",
    "RefreshableSettings",
    "install_config_refresh",
    "load_refreshable",
)
