from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import BaseModel
from pydantic_settings import SettingsConfigDict

from servicekit.config import ConfigError, ServiceSettings


class FeatureSettings(BaseModel):
    flag: str = "default"
    other: str = "default"


class DemoSettings(ServiceSettings):
    service_name: ClassVar[str] = "demo"
    model_config = SettingsConfigDict(env_prefix="DEMO_")

    feature: FeatureSettings = FeatureSettings()
    only_default: str = "from-defaults"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MAGAM_CONFIG_REPO", str(tmp_path))
    monkeypatch.delenv("MAGAM_PROFILE", raising=False)
    (tmp_path / "application.yml").write_text(
        "feature: {flag: application, other: application}\nlog: {level: WARNING}\n"
    )
    (tmp_path / "demo.yml").write_text("feature: {flag: service}\nhttp: {port: 9100}\n")
    (tmp_path / "demo-prod.yml").write_text("feature: {flag: service-prod}\n")
    (tmp_path / "other.yml").write_text("feature: {flag: not-ours}\n")
    return tmp_path


def test_layers_apply_in_order_defaults_application_service_profile(repo: Path) -> None:
    local = DemoSettings()

    assert local.profile == "local"
    assert local.only_default == "from-defaults"
    assert local.feature.other == "application"  # nested keys merge, not replace
    assert local.feature.flag == "service"  # demo-local.yml does not exist
    assert local.log.level == "WARNING"
    assert local.http.port == 9100


def test_profile_file_overrides_service_file(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGAM_PROFILE", "prod")
    monkeypatch.setenv("DEMO_DATABASE__PASSWORD", "a-real-one")

    assert DemoSettings().feature.flag == "service-prod"


def test_environment_overrides_every_file(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_FEATURE__FLAG", "env")
    monkeypatch.setenv("DEMO_HTTP__PORT", "9200")

    settings = DemoSettings()

    assert settings.feature.flag == "env"
    assert settings.feature.other == "application"
    assert settings.http.port == 9200


def test_unknown_profile_is_refused_with_the_choices(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAGAM_PROFILE", "staging")
    with pytest.raises(ConfigError, match=r"'local', 'prod'"):
        DemoSettings()


def test_prod_refuses_a_missing_or_development_password(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAGAM_PROFILE", "prod")
    with pytest.raises(ConfigError, match="DEMO_DATABASE__PASSWORD"):
        DemoSettings()
    monkeypatch.setenv("DEMO_DATABASE__PASSWORD", "magam")
    with pytest.raises(ConfigError, match="development database password"):
        DemoSettings()
    monkeypatch.setenv("MAGAM_ALLOW_DEV_SECRETS", "1")
    assert DemoSettings().database.password.get_secret_value() == "magam"


def test_a_non_mapping_file_names_itself(repo: Path) -> None:
    (repo / "demo.yml").write_text("- a list\n")
    with pytest.raises(ConfigError, match=r"demo\.yml: the top level must be a mapping"):
        DemoSettings()
