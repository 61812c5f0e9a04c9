"""api's typed settings (see servicekit.config for the layers)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from api.geofence.settings import GeofenceSettings
from servicekit.config import DatabaseSettings, HttpSettings, ServiceSettings


class TokenVerifierSettings(BaseModel):
    jwks_url: str = "http://127.0.0.1:8001/.well-known/jwks.json"
    issuer: str = "https://auth.magam.kr"
    audience: str = "magam"


class OutboxSettings(BaseModel):
    relay_enabled: bool = True
    batch_size: int = Field(default=200, ge=1, le=5000)
    idle_poll_s: float = Field(default=0.05, gt=0, description="Pause when the outbox is empty")
    #: Wake the relay by LISTEN/NOTIFY (an insert trigger it installs once) instead of polling.
    #: Off, the trigger stays if it exists (DROP TRIGGER outbox_events_notify ON outbox_events).
    notify: bool = True
    listen_poll_s: float = Field(
        default=1.0, gt=0, description="Fallback poll while listening (a missed NOTIFY)"
    )


class OrderSettings(BaseModel):
    max_quantity_per_order: int = Field(default=10, ge=1, description="A bot cannot buy it all")
    idempotency_in_flight_timeout_s: float = Field(default=30, gt=0)
    sweep_interval_s: float = Field(default=5, gt=0, description="Closing and expiry sweeps")
    reservation: Literal["atomic_update", "select_for_update"] = Field(
        default="atomic_update",
        description="How stock is taken; select_for_update is the bench's baseline",
    )
    fast_path_batch: int = Field(
        default=64,
        ge=1,
        le=500,
        description="At most this many concurrent orders of one deal are written by one"
        " statement (api.order.fast_path); 1 writes each alone",
    )


class ApiSettings(ServiceSettings):
    service_name: ClassVar[str] = "api"
    model_config = SettingsConfigDict(env_prefix="API_")

    http: HttpSettings = HttpSettings(port=8000)
    database: DatabaseSettings = DatabaseSettings(name="api")
    auth: TokenVerifierSettings = TokenVerifierSettings()
    outbox: OutboxSettings = OutboxSettings()
    orders: OrderSettings = OrderSettings()
    geofence: GeofenceSettings = GeofenceSettings()
    seed_demo_data: bool = False
