"""Secrets from Vault / OpenBao (KV v2, through hvac), as a pydantic-settings source.

Every ``SecretStr`` field of a service's settings is a secret: ``database.password``,
``token.signing_key_pem``, ``kakao.client_secret``, ``fcm.service_account_json``,
``slack.webhook_url``, … With Vault enabled, each is read from the KV v2 secret
``<kv_mount>/<path>`` (default ``secret/magam/<service>``) under the key named by its dotted path
with ``_`` for ``.`` (``database.password`` → ``database_password``). The source ranks above the
environment: defaults < config-repo < environment < Vault. A secret missing from Vault stops the
start with a ``ConfigError`` naming its path and key (``vault.optional`` lists the ones a
deployment may leave out). A library that wants a file (firebase-admin's service-account JSON)
gets one: ``vault.files`` maps a setting to a key, whose value is written to an in-memory
``files_dir`` (mode 0600) and the setting set to that path.

How the service logs in: ``token`` (locally: ``VAULT_TOKEN`` or ``<SVC>_VAULT__TOKEN``) or
``kubernetes`` (in a cluster: the pod's service-account JWT, exchanged for a token under
``kubernetes_role``). Off unless ``vault.enabled`` (the local profile needs no server).

Vault's own settings come from config-repo's ``vault:`` section and ``<SVC>_VAULT__*`` variables
(``VAULT_ADDR`` / ``VAULT_TOKEN`` as the usual fallbacks); never from Vault itself.
"""

from __future__ import annotations

import os
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, Literal

import hvac
import hvac.exceptions
import requests
from pydantic import BaseModel, Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from servicekit.config import ConfigError, current_profile, find_config_repo, read_config_repo

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class VaultSettings(BaseSettings):
    """Where the secrets are and how to log in; layered config-repo ``vault:`` < environment."""

    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="ignore")

    enabled: bool = False
    addr: str = Field(default_factory=lambda: os.environ.get("VAULT_ADDR", "http://127.0.0.1:8200"))
    auth_method: Literal["token", "kubernetes"] = "token"
    token: SecretStr = Field(default_factory=lambda: SecretStr(os.environ.get("VAULT_TOKEN", "")))
    kubernetes_role: str = ""
    kubernetes_mount: str = "kubernetes"
    kubernetes_jwt_path: Path = SERVICE_ACCOUNT_TOKEN
    kv_mount: str = "secret"
    #: KV v2 path under ``kv_mount``; ``{service}`` is replaced by the service's name.
    path: str = "magam/{service}"
    #: Secrets (dotted setting paths) a deployment may leave out of Vault.
    optional: list[str] = Field(default_factory=list)
    #: Secrets a library wants as a file (``{"fcm.credentials_file": "fcm_service_account_json"}``):
    #: the value is written to ``files_dir/<key>`` (mode 0600) and the setting gets that path.
    files: dict[str, str] = Field(default_factory=dict)
    files_dir: Path = Field(default_factory=lambda: Path(tempfile.gettempdir()) / "magam-secrets")
    timeout_s: int = Field(default=5, gt=0)


def vault_settings(service: str) -> VaultSettings:
    """The service's Vault settings: config-repo ``vault:`` section, then ``<SVC>_VAULT__*``."""
    layered = read_config_repo(find_config_repo(), service, current_profile()).get("vault") or {}
    from_env = VaultSettings(_env_prefix=f"{service.upper()}_VAULT__")
    explicit = from_env.model_dump(exclude_unset=True)
    merged = {**layered, **explicit}
    return VaultSettings.model_validate(merged) if merged else from_env


def _secret_fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted paths of every ``SecretStr`` field, nested models included."""
    found: list[str] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else ()
        candidates = args or (annotation,)
        for candidate in candidates:
            if candidate is SecretStr:
                found.append(f"{prefix}{name}")
            elif isinstance(candidate, type) and issubclass(candidate, BaseModel):
                found.extend(_secret_fields(candidate, f"{prefix}{name}."))
    return found


def secret_key(setting: str) -> str:
    """The Vault key of a setting: ``database.password`` → ``database_password``."""
    return setting.replace(".", "_")


def _client(settings: VaultSettings) -> hvac.Client:
    client = hvac.Client(url=settings.addr, timeout=settings.timeout_s)
    if settings.auth_method == "token":
        token = settings.token.get_secret_value()
        if not token:
            raise ConfigError(
                "vault: no token for token auth; set VAULT_TOKEN (or <SVC>_VAULT__TOKEN), "
                "or use auth_method=kubernetes in a cluster"
            )
        client.token = token
        return client
    if not settings.kubernetes_role:
        raise ConfigError("vault: auth_method=kubernetes needs vault.kubernetes_role")
    try:
        jwt = settings.kubernetes_jwt_path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"vault: cannot read the service-account token at {settings.kubernetes_jwt_path} "
            f"({exc.strerror}); is the pod's token mounted?"
        ) from exc
    try:
        client.auth.kubernetes.login(
            role=settings.kubernetes_role, jwt=jwt, mount_point=settings.kubernetes_mount
        )
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        raise ConfigError(
            f"vault: kubernetes login as role {settings.kubernetes_role!r} at {settings.addr} "
            f"failed: {exc}"
        ) from exc
    return client


def read_secrets(service: str, settings: VaultSettings, wanted: dict[str, str]) -> dict[str, str]:
    """``{setting: value}`` for ``wanted`` (``{setting: vault key}``); raises naming any missing."""
    path = settings.path.format(service=service)
    where = f"{settings.kv_mount}/{path}"
    client = _client(settings)
    try:
        response = client.secrets.kv.v2.read_secret_version(
            path=path, mount_point=settings.kv_mount, raise_on_deleted_version=True
        )
        data: dict[str, Any] = response["data"]["data"] or {}
    except hvac.exceptions.InvalidPath:
        data = {}
    except hvac.exceptions.Forbidden as exc:
        raise ConfigError(
            f"{service}: vault refused to read {where} ({exc}); grant the policy read on it"
        ) from exc
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        raise ConfigError(
            f"{service}: cannot read secrets from vault at {settings.addr} ({exc}); "
            "is it reachable and unsealed?"
        ) from exc
    found: dict[str, str] = {}
    missing: list[str] = []
    for setting, key in wanted.items():
        value = data.get(key)
        if isinstance(value, str) and value:
            found[setting] = value
        elif setting not in settings.optional:
            missing.append(setting)
    if missing:
        keys = ", ".join(f"{where}#{wanted[s]} (for {s})" for s in missing)
        raise ConfigError(
            f"{service}: missing secret {keys}; write it with "
            f"`bao kv put {where} {wanted[missing[0]]}=...` (or vault kv put)"
        )
    return found


def _write_secret_file(directory: Path, name: str, value: str) -> Path:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = directory / name
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(value)
    return target


def _nest(flat: dict[str, str]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        *parents, leaf = dotted.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


class VaultSource(PydanticBaseSettingsSource):
    """The settings' secret fields from Vault (nothing at all while Vault is disabled)."""

    def __init__(self, settings_cls: type[BaseSettings], service: str) -> None:
        super().__init__(settings_cls)
        self._data: dict[str, Any] = {}
        settings = vault_settings(service)
        if settings.enabled:
            wanted = {f: secret_key(f) for f in _secret_fields(settings_cls)}
            wanted.update(settings.files)
            values = read_secrets(service, settings, wanted)
            for setting, key in settings.files.items():
                if setting in values:
                    path = _write_secret_file(settings.files_dir, key, values[setting])
                    values[setting] = str(path)
            self._data = _nest(values)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


__all__ = ["VaultSettings", "VaultSource", "read_secrets", "secret_key", "vault_settings"]
