"""Issuing our access tokens (RFC 9068 JWT profile)."""

from __future__ import annotations

import time
import uuid

import jwt

from auth.token.keys import SigningKey
from contracts import AccessTokenClaims, Role


def issue_access_token(
    key: SigningKey,
    *,
    issuer: str,
    audience: str,
    subject: str,
    roles: list[Role],
    ttl_s: int,
    session_id: str | None = None,
    now: int | None = None,
) -> tuple[str, AccessTokenClaims]:
    """A signed ES256 access token and its claims."""
    issued_at = int(time.time()) if now is None else now
    claims = AccessTokenClaims(
        iss=issuer,
        aud=audience,
        sub=subject,
        iat=issued_at,
        exp=issued_at + ttl_s,
        jti=str(uuid.uuid4()),
        roles=roles,
        sid=session_id,
    )
    token = jwt.encode(
        claims.model_dump(exclude_none=True),
        key.private_key,
        algorithm="ES256",
        headers={"kid": key.kid, "typ": "at+jwt"},
    )
    return token, claims
