"""Layered settings, as spring-cloud-config did them.

Precedence, lowest first: the model's defaults < ``config-repo/application.yml`` <
``config-repo/<service>.yml`` < ``config-repo/<service>-<profile>.yml`` < environment variables
(``<SERVICE>_`` prefix, ``__`` for nesting, e.g. ``API_DATABASE__HOST``) < values passed in code.
The profile comes from ``MAGAM_PROFILE`` (``local`` when unset).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import yaml
from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from servicekit.telemetry import TracingSettings

Profile = Literal["local", "prod"]
PROFILES: tuple[Profile, ...] = ("local", "prod")
# The local infrastructure's password; refused outside the local profile unless opted in.
DEV_PASSWORD = "magam"  # noqa: S105


class ConfigError(RuntimeError):
    """A configuration problem the operator must fix before the service can start."""


def current_profile() -> Profile:
    profile = os.environ.get("MAGAM_PROFILE", "local")
    if profile not in PROFILES:
        raise ConfigError(f"MAGAM_PROFILE={profile!r} is not a profile; use one of {PROFILES}")
    return profile


def find_config_repo() -> Path:
    """``MAGAM_CONFIG_REPO`` if set, else the nearest ``config-repo/`` above the cwd or here."""
    explicit = os.environ.get("MAGAM_CONFIG_REPO")
    if explicit:
        return Path(explicit)
    for start in (Path.cwd(), Path(__file__).resolve()):
        for parent in (start, *start.parents):
            candidate = parent / "config-repo"
            if candidate.is_dir():
                return candidate
    raise ConfigError("no config-repo/ found; set MAGAM_CONFIG_REPO to its path")


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_config_repo(repo: Path, service: str, profile: str) -> dict[str, Any]:
    """The merged YAML layers for one service and profile (missing files are skipped)."""
    merged: dict[str, Any] = {}
    for name in ("application.yml", f"{service}.yml", f"{service}-{profile}.yml"):
        path = repo / name
        if not path.is_file():
            continue
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        merged = deep_merge(merged, loaded)
    return merged


class ConfigRepoSource(PydanticBaseSettingsSource):
    """A pydantic-settings source reading the config-repo layers for the settings' service."""

    def __init__(self, settings_cls: type[BaseSettings], service: str) -> None:
        super().__init__(settings_cls)
        self._data = read_config_repo(find_config_repo(), service, current_profile())

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


class HttpSettings(BaseModel):
    host: str = Field(default="127.0.0.1", description="Interface to listen on")
    port: int = Field(default=8000, ge=1, le=65535)


class LogSettings(BaseModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class DatabaseSettings(BaseModel):
    """PostgreSQL in prod; in the local profile a SQLite file under ``sqlite_dir``."""

    host: str = "127.0.0.1"
    port: int = 5433
    name: str = "magam"
    user: str = "magam"
    password: SecretStr = SecretStr("")
    sqlite_dir: Path = Path(".local")
    pool_size: int = Field(default=20, ge=1, description="And as many again in overflow")
    pool_timeout_s: float = Field(
        default=30, gt=0, description="How long a request waits for a connection before a 503"
    )


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"


class ServiceSettings(BaseSettings):
    """Settings every service has; each service subclasses it and sets ``service_name``."""

    service_name: ClassVar[str] = "service"
    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="ignore")

    profile: Profile = Field(default_factory=current_profile)
    http: HttpSettings = HttpSettings()
    log: LogSettings = LogSettings()
    database: DatabaseSettings = DatabaseSettings()
    kafka: KafkaSettings = KafkaSettings()
    tracing: TracingSettings = TracingSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First wins: code > Vault > environment > secrets files > config-repo layers > defaults.
        from servicekit.secrets import VaultSource  # noqa: PLC0415 — secrets imports this module

        return (
            init_settings,
            VaultSource(settings_cls, cls.service_name),
            env_settings,
            file_secret_settings,
            ConfigRepoSource(settings_cls, cls.service_name),
        )

    @model_validator(mode="after")
    def _refuse_development_secrets_outside_local(self) -> Self:
        if self.profile != "local":
            password = self.database.password.get_secret_value()
            if not password:
                raise ConfigError(
                    f"{self.service_name}: database.password is not set; set "
                    f"{self.service_name.upper()}_DATABASE__PASSWORD (or its Vault secret)"
                )
            if password == DEV_PASSWORD and os.environ.get("MAGAM_ALLOW_DEV_SECRETS") != "1":
                raise ConfigError(
                    f"{self.service_name}: the development database password is refused in the "
                    f"{self.profile!r} profile; set MAGAM_ALLOW_DEV_SECRETS=1 for the local stack"
                )
        return self

    @property
    def uses_embedded_infrastructure(self) -> bool:
        """The local profile runs on SQLite and the in-process bus; every other on real servers."""
        return self.profile == "local"
