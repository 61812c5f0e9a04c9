"""push's typed settings (see servicekit.config for the layers)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel
from pydantic_settings import SettingsConfigDict

from servicekit.config import DatabaseSettings, HttpSettings, ServiceSettings


class ConsumerSettings(BaseModel):
    group_id: str = "push"
    topics: list[str] = ["order", "stock"]
    enabled: bool = True


class PushSettings(ServiceSettings):
    service_name: ClassVar[str] = "push"
    model_config = SettingsConfigDict(env_prefix="PUSH_")

    http: HttpSettings = HttpSettings(port=8002)
    database: DatabaseSettings = DatabaseSettings(name="push")
    consumer: ConsumerSettings = ConsumerSettings()
