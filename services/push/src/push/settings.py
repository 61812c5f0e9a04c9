"""push's typed settings (see servicekit.config for the layers)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from servicekit.config import ConfigError, DatabaseSettings, HttpSettings, ServiceSettings


class ConsumerSettings(BaseModel):
    group_id: str = "push"
    #: order and stock carry what people hear about; identity tells push who manages a store.
    topics: list[str] = ["order", "stock", "identity"]
    enabled: bool = True
    max_batch: int = Field(default=500, ge=1, le=5000, description="records per poll")
    #: How long the broker holds a fetch with nothing new. Data answers a fetch at once; this
    #: bounds how late a partition resumed after back-pressure joins the fetches.
    fetch_max_wait_ms: int = Field(default=100, ge=10, le=5_000)
    #: A dead replica's partitions move to the survivor after this long without heartbeats.
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    dlq_suffix: str = ".dlq"
    #: Where a new consumer group starts: the whole retained history, or only what comes next.
    offset_reset: Literal["earliest", "latest"] = "earliest"


class AuthSettings(BaseModel):
    jwks_url: str = "http://127.0.0.1:8001/.well-known/jwks.json"
    issuer: str = "https://auth.magam.kr"
    audience: str = "magam"


class FcmSettings(BaseModel):
    """Where notifications go: ``log`` (local profile) or FCM through firebase-admin."""

    sender: Literal["log", "fcm"] = "log"
    project_id: str = "magam"
    #: The service-account JSON (in a cluster, a Vault-provided file). Its ``token_uri`` is used.
    credentials_file: Path | None = None
    #: Override of FCM's send URL, ``{project}`` filled in; only for the local stand-in.
    send_url: str | None = None
    #: Cleartext HTTP/2 with prior knowledge for an ``http://`` send_url (the stand-in's
    #: ``--http2``); real FCM negotiates HTTP/2 over TLS by itself.
    h2c: bool = False
    batch_size: int = Field(default=500, ge=1, le=500, description="messages per send_each_async")
    #: send_each_async calls in flight at once per sender; a crash may repeat up to
    #: batch_size × concurrent_batches messages (the pipeline records each group's answers).
    #: 1 measured best on the shared 2-core box (more in flight costs the client more CPU per
    #: message); raise it where FCM's latency, not the CPU, is the limit.
    concurrent_batches: int = Field(default=1, ge=1, le=32)
    #: HTTP/2 connections to FCM, and requests in flight per connection (FCM allows 100+
    #: concurrent streams; more queued requests only cost the client's pool).
    connections: int = Field(default=1, ge=1, le=64)
    streams_per_connection: int = Field(default=100, ge=1, le=1000)
    max_attempts: int = Field(default=5, ge=1, description="tries per message before the DLQ")
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    http_timeout_s: float = Field(default=10.0, gt=0)


class SlackSettings(BaseModel):
    """The operator channel: a Slack incoming webhook; unset, reports go to the log only."""

    webhook_url: SecretStr | None = None


class NotifySettings(BaseModel):
    timezone: str = "Asia/Seoul"
    #: Deals and restocks per user per local day; order news is never capped.
    default_daily_cap: int = Field(default=10, ge=0)
    device_stale_after_days: int = Field(default=90, ge=1)
    prune_interval_s: float = Field(default=3600.0, gt=0)
    #: How often held notifications are checked against their users' quiet hours.
    release_interval_s: float = Field(default=30.0, gt=0)
    #: A held restock is dropped this long after it was held (deals: at their pickup end).
    held_max_age_h: float = Field(default=12.0, gt=0)


class PushSettings(ServiceSettings):
    service_name: ClassVar[str] = "push"
    model_config = SettingsConfigDict(env_prefix="PUSH_")

    http: HttpSettings = HttpSettings(port=8002)
    database: DatabaseSettings = DatabaseSettings(name="push")
    consumer: ConsumerSettings = ConsumerSettings()
    auth: AuthSettings = AuthSettings()
    fcm: FcmSettings = FcmSettings()
    slack: SlackSettings = SlackSettings()
    notify: NotifySettings = NotifySettings()

    @model_validator(mode="after")
    def _fcm_needs_credentials(self) -> Self:
        if self.fcm.sender == "fcm" and self.fcm.credentials_file is None:
            raise ConfigError(
                "fcm.sender is 'fcm' but fcm.credentials_file is not set: set "
                "PUSH_FCM__CREDENTIALS_FILE to the service-account JSON (or PUSH_FCM__SENDER=log)"
            )
        return self
