"""Secrets from the real OpenBao dev server (scripts/infra up): token auth, KV v2, unique paths."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import ClassVar

import hvac
import pytest
import requests
from pydantic import BaseModel, SecretStr
from pydantic_settings import SettingsConfigDict

from servicekit.config import ConfigError, ServiceSettings
from servicekit.secrets import _secret_fields, vault_settings

pytestmark = pytest.mark.integration

BAO_ADDR = f"http://127.0.0.1:{os.environ.get('MAGAM_BAO_PORT', '8200')}"
BAO_TOKEN = os.environ.get("MAGAM_BAO_TOKEN", "magam-dev-root")


class TokenSettings(BaseModel):
    issuer: str = "https://auth.test"
    signing_key_pem: SecretStr = SecretStr("")


class SlackSettings(BaseModel):
    webhook_url: SecretStr | None = None


class VaultDemoSettings(ServiceSettings):
    service_name: ClassVar[str] = "vaultdemo"
    model_config = SettingsConfigDict(env_prefix="VAULTDEMO_")

    token: TokenSettings = TokenSettings()
    slack: SlackSettings = SlackSettings()


@pytest.fixture(scope="module")
def bao() -> hvac.Client:
    client = hvac.Client(url=BAO_ADDR, token=BAO_TOKEN, timeout=3)
    try:
        client.sys.read_health_status(method="GET")
    except requests.ConnectionError:
        pytest.fail(f"OpenBao is not reachable at {BAO_ADDR}: run `scripts/infra up`")
    return client


@pytest.fixture
def vault_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bao: hvac.Client
) -> tuple[hvac.Client, str]:
    """Prod profile, Vault on with token auth, secrets under a path unique to this test."""
    base = f"magam-test/{uuid.uuid4().hex}"
    (tmp_path / "application.yml").write_text(
        f"vault:\n  path: {base}/{{service}}\n", encoding="utf-8"
    )
    monkeypatch.setenv("MAGAM_CONFIG_REPO", str(tmp_path))
    monkeypatch.setenv("MAGAM_PROFILE", "prod")
    monkeypatch.setenv("VAULTDEMO_VAULT__ENABLED", "true")
    monkeypatch.setenv("VAULTDEMO_VAULT__ADDR", BAO_ADDR)
    monkeypatch.setenv("VAULT_TOKEN", BAO_TOKEN)
    return bao, f"{base}/vaultdemo"


def put(bao: hvac.Client, path: str, **secret: str) -> None:
    bao.secrets.kv.v2.create_or_update_secret(path=path, secret=secret, mount_point="secret")


def test_secrets_come_from_vault_and_outrank_the_environment(
    vault_env: tuple[hvac.Client, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bao, path = vault_env
    put(
        bao,
        path,
        database_password="from-vault",
        token_signing_key_pem="-----BEGIN PRIVATE KEY-----…",
        slack_webhook_url="http://127.0.0.1:9/hook",
    )
    monkeypatch.setenv("VAULTDEMO_DATABASE__PASSWORD", "from-env")
    monkeypatch.setenv("VAULTDEMO_DATABASE__HOST", "db.internal")

    settings = VaultDemoSettings()

    assert settings.database.password.get_secret_value() == "from-vault"
    assert settings.database.host == "db.internal"  # non-secret env values still apply
    assert settings.token.signing_key_pem.get_secret_value().startswith("-----BEGIN")
    assert settings.token.issuer == "https://auth.test"
    assert settings.slack.webhook_url is not None
    assert settings.slack.webhook_url.get_secret_value() == "http://127.0.0.1:9/hook"


def test_a_missing_secret_stops_startup_naming_its_path_and_key(
    vault_env: tuple[hvac.Client, str],
) -> None:
    bao, path = vault_env
    put(bao, path, database_password="from-vault", slack_webhook_url="http://127.0.0.1:9/hook")

    with pytest.raises(ConfigError) as failure:
        VaultDemoSettings()

    message = str(failure.value)
    assert f"secret/{path}#token_signing_key_pem" in message
    assert "token.signing_key_pem" in message
    assert "database_password" not in message


def test_a_secret_path_that_does_not_exist_names_every_secret(
    vault_env: tuple[hvac.Client, str],
) -> None:
    _, path = vault_env

    with pytest.raises(ConfigError, match=f"secret/{path}#database_password"):
        VaultDemoSettings()


def test_an_optional_secret_may_be_absent(
    vault_env: tuple[hvac.Client, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bao, path = vault_env
    put(bao, path, database_password="from-vault", token_signing_key_pem="pem")
    monkeypatch.setenv("VAULTDEMO_VAULT__OPTIONAL", '["slack.webhook_url"]')

    settings = VaultDemoSettings()

    assert settings.slack.webhook_url is None
    assert settings.database.password.get_secret_value() == "from-vault"


def test_a_token_without_read_policy_is_refused_with_what_to_grant(
    vault_env: tuple[hvac.Client, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bao, path = vault_env
    put(bao, path, database_password="x", token_signing_key_pem="y", slack_webhook_url="z")
    weak = bao.auth.token.create(policies=["default"], ttl="2m")["auth"]["client_token"]
    monkeypatch.setenv("VAULT_TOKEN", weak)

    with pytest.raises(ConfigError, match="refused to read secret/"):
        VaultDemoSettings()


def test_without_a_token_the_error_says_how_to_log_in(
    vault_env: tuple[hvac.Client, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAULT_TOKEN")

    with pytest.raises(ConfigError, match="VAULT_TOKEN"):
        VaultDemoSettings()


def test_kubernetes_auth_without_a_mounted_token_names_the_file(
    vault_env: tuple[hvac.Client, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VAULTDEMO_VAULT__AUTH_METHOD", "kubernetes")
    monkeypatch.setenv("VAULTDEMO_VAULT__KUBERNETES_ROLE", "magam-vaultdemo")
    monkeypatch.setenv("VAULTDEMO_VAULT__KUBERNETES_JWT_PATH", str(tmp_path / "no-token"))

    with pytest.raises(ConfigError, match="no-token"):
        VaultDemoSettings()


def test_vault_disabled_contacts_no_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "application.yml").write_text("vault:\n  addr: http://127.0.0.1:9\n")
    monkeypatch.setenv("MAGAM_CONFIG_REPO", str(tmp_path))
    monkeypatch.setenv("MAGAM_PROFILE", "local")

    settings = VaultDemoSettings()

    assert settings.database.password.get_secret_value() == ""
    assert vault_settings("vaultdemo").enabled is False


def test_every_secret_str_field_is_a_vault_secret() -> None:
    assert _secret_fields(VaultDemoSettings) == [
        "database.password",
        "token.signing_key_pem",
        "slack.webhook_url",
    ]


class FcmSettings(BaseModel):
    credentials_file: Path | None = None


class FileDemoSettings(ServiceSettings):
    service_name: ClassVar[str] = "vaultdemo"
    model_config = SettingsConfigDict(env_prefix="VAULTDEMO_")

    fcm: FcmSettings = FcmSettings()


def test_a_file_secret_is_written_privately_and_its_path_becomes_the_setting(
    vault_env: tuple[hvac.Client, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bao, path = vault_env
    put(bao, path, database_password="x", fcm_service_account_json='{"type": "service_account"}')
    monkeypatch.setenv(
        "VAULTDEMO_VAULT__FILES", '{"fcm.credentials_file": "fcm_service_account_json"}'
    )
    monkeypatch.setenv("VAULTDEMO_VAULT__FILES_DIR", str(tmp_path / "secrets"))

    settings = FileDemoSettings()

    assert settings.fcm.credentials_file == tmp_path / "secrets" / "fcm_service_account_json"
    assert settings.fcm.credentials_file.read_text() == '{"type": "service_account"}'
    assert settings.fcm.credentials_file.stat().st_mode & 0o777 == 0o600
