"""auth's business errors (status and stable code per class)."""

from __future__ import annotations

from typing import Any, ClassVar

from servicekit.errors import AppError, NotFound, ServiceUnavailable, Unauthorized


class UserNotFound(NotFound):
    code = "user_not_found"
    title = "User not found"


class UserInactive(Unauthorized):
    code = "user_inactive"
    title = "The account was deactivated (unlinked from Kakao); sign in with Kakao again"


class RefreshTokenInvalid(Unauthorized):
    code = "refresh_token_invalid"
    title = "Unknown refresh token; sign in again"


class RefreshTokenExpired(Unauthorized):
    code = "refresh_token_expired"
    title = "The refresh token expired; sign in again"


class RefreshTokenRevoked(Unauthorized):
    code = "refresh_token_revoked"
    title = "The session of this refresh token was revoked; sign in again"


class RefreshTokenReused(Unauthorized):
    """A spent refresh token came back: its family is revoked, and that must be committed."""

    code = "refresh_token_reused"
    title = "This refresh token was already used; the whole session is revoked, sign in again"
    keeps_writes: ClassVar[bool] = True


class LoginStateMismatch(AppError):
    status, code, title = 400, "login_state_mismatch", "The login state does not match"


class RateLimited(AppError):
    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, detail: str, *, retry_after_s: int, **extra: Any) -> None:
        super().__init__(detail, retry_after_s=retry_after_s, **extra)
        self.headers = {"Retry-After": str(retry_after_s)}


class KakaoNotConfigured(ServiceUnavailable):
    code = "kakao_not_configured"
    title = "Kakao login is not configured on this server"


class _KakaoRetryable(AppError):
    """Kakao is down or slow: the client may retry after ``retry_after_s``."""

    def __init__(self, detail: str, *, retry_after_s: int = 5) -> None:
        super().__init__(detail, retry_after_s=retry_after_s)
        self.headers = {"Retry-After": str(retry_after_s)}


class KakaoUnavailable(_KakaoRetryable):
    status, code, title = 503, "kakao_unavailable", "Kakao is not answering; retry shortly"


class KakaoBadGateway(_KakaoRetryable):
    status, code, title = 502, "kakao_bad_gateway", "Kakao answered with an error; retry shortly"


class KakaoRejectedUs(AppError):
    """Kakao refused our client credentials: a configuration error on our side, not the user's."""

    status, code, title = 502, "kakao_client_rejected", "Kakao rejected our app's credentials"


class KakaoLoginDenied(Unauthorized):
    code = "kakao_login_denied"
    title = "The Kakao login was cancelled or denied"


class KakaoCodeInvalid(Unauthorized):
    code = "kakao_code_invalid"
    title = "The Kakao authorization code is invalid or was already used; sign in again"


class KakaoTokenInvalid(Unauthorized):
    code = "kakao_token_invalid"
    title = "The Kakao access token is invalid or expired"


class KakaoTokenForeignApp(Unauthorized):
    code = "kakao_token_foreign_app"
    title = "The Kakao access token was issued to another app"


class KakaoIdTokenInvalid(Unauthorized):
    code = "kakao_id_token_invalid"
    title = "The Kakao id_token does not verify"


class KakaoNonceMismatch(Unauthorized):
    code = "kakao_nonce_mismatch"
    title = "The id_token's nonce is not the one sent"


class KakaoConsentRequired(AppError):
    status, code, title = 403, "kakao_consent_required", "The user has not agreed to a scope"


class KakaoAdminKeyInvalid(Unauthorized):
    code = "kakao_admin_key_invalid"
    title = "The unlink callback did not carry our Kakao admin key"
