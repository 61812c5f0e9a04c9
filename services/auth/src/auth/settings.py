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
    refresh_ttl_s: int = Field(default=30 * 24 * 3600, ge=300, description="Refresh token life")
    #: PEM of the current ES256 signing key; empty in the local profile, which generates one.
    signing_key_pem: SecretStr = SecretStr("")
    #: The key that becomes current at the next rotation: published now, so verifiers have it.
    next_signing_key_pem: SecretStr = SecretStr("")
    #: The key that was current before the last rotation (private or public PEM): published
    #: until every token it signed has expired, then removed (retired).
    previous_signing_key_pem: SecretStr = SecretStr("")


class KakaoSettings(BaseModel):
    """Our app on Kakao Developers; the base URLs point at the stand-in in tests.

    Unset keys do not stop the service (dev login and refresh still work): the Kakao endpoints
    answer 503 ``kakao_not_configured`` until they are set.
    """

    auth_base_url: str = "https://kauth.kakao.com"
    api_base_url: str = "https://kapi.kakao.com"
    #: The ``iss`` of Kakao's id_tokens (OIDC discovery's ``issuer``).
    oidc_issuer: str = "https://kauth.kakao.com"
    app_id: int = 0
    rest_api_key: str = ""
    native_app_key: str = ""
    client_secret: SecretStr = SecretStr("")
    #: Kakao sends it as ``Authorization: KakaoAK <admin key>`` on the unlink callback.
    admin_key: SecretStr = SecretStr("")
    #: Registered on Kakao Developers; where Kakao sends the browser back with the code.
    redirect_uri: str = "http://127.0.0.1:8001/auth/kakao/callback"
    scope: str = "profile_nickname account_email"

    @property
    def configured(self) -> bool:
        return bool(self.rest_api_key and self.app_id)

    timeout_s: float = Field(default=3.0, gt=0, le=30)
    #: Kakao blocks frequent JWKS fetches: cache the keys, refetch on an unknown kid at most
    #: once per ``jwks_min_refetch_s``.
    jwks_cache_s: float = Field(default=24 * 3600, gt=0)
    jwks_min_refetch_s: float = Field(default=300, ge=0)


class WebSettings(BaseModel):
    #: Where the web flow sends the browser after login, our tokens in the URL fragment. Empty:
    #: the callback answers JSON.
    app_redirect_url: str = ""
    #: The state cookie is ``Secure`` (HTTPS only); the local profile turns it off.
    cookie_secure: bool = True
    state_ttl_s: int = Field(default=600, ge=60)


class RateLimitSettings(BaseModel):
    """Requests allowed per ``window_s``, per client IP and per user (429 + Retry-After)."""

    window_s: float = Field(default=60, gt=0)
    login_per_ip: int = Field(default=30, ge=1)
    login_per_user: int = Field(default=10, ge=1)
    refresh_per_ip: int = Field(default=60, ge=1)
    refresh_per_user: int = Field(default=20, ge=1)


class AuthSettings(ServiceSettings):
    service_name: ClassVar[str] = "auth"
    model_config = SettingsConfigDict(env_prefix="AUTH_")

    http: HttpSettings = HttpSettings(port=8001)
    database: DatabaseSettings = DatabaseSettings(name="auth")
    token: TokenSettings = TokenSettings()
    kakao: KakaoSettings = KakaoSettings()
    web: WebSettings = WebSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    #: Identities that get the admin role, as ``provider:provider_user_id`` (``kakao:4100000001``).
    admins: list[str] = Field(default_factory=list)
    #: The consumer group reading the identity topic (role grants).
    identity_consumer_group: str = "auth-identity"
    seed_demo_data: bool = False
