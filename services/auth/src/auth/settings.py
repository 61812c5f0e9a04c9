"""auth's typed settings (see servicekit.config for the layers)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from servicekit.config import DatabaseSettings, HttpSettings, ServiceSettings


class TokenSettings(BaseModel):
    issuer: str = "https://auth.magam.kr"
    audience: str = "magam"
    access_ttl_s: int = Field(default=600, ge=60, le=900, description="At most 15 minutes")
    #: PEM of the current ES256 signing key; empty in the local profile, which generates one.
    signing_key_pem: SecretStr = SecretStr("")


class AuthSettings(ServiceSettings):
    service_name: ClassVar[str] = "auth"
    model_config = SettingsConfigDict(env_prefix="AUTH_")

    http: HttpSettings = HttpSettings(port=8001)
    database: DatabaseSettings = DatabaseSettings(name="auth")
    token: TokenSettings = TokenSettings()
    seed_demo_data: bool = False
