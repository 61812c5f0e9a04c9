"""api's typed settings (see servicekit.config for the layers)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from servicekit.config import DatabaseSettings, HttpSettings, ServiceSettings


class ApiSettings(ServiceSettings):
    service_name: ClassVar[str] = "api"
    model_config = SettingsConfigDict(env_prefix="API_")

    http: HttpSettings = HttpSettings(port=8000)
    database: DatabaseSettings = DatabaseSettings(name="api")
    seed_demo_data: bool = False
