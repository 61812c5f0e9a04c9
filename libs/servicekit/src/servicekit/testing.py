"""Test support: an issuer of real ES256 access tokens and the verifier that trusts it.

Services' tests use it to call guarded endpoints without running auth; the tokens and the
verification are the real ones, only the key is the test's.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from servicekit.security import StaticJwks, TokenVerifier

TEST_ISSUER = "https://auth.test.magam.kr"
TEST_AUDIENCE = "magam"


def _b64url_uint(value: int) -> str:
    return base64.urlsafe_b64encode(value.to_bytes(32, "big")).rstrip(b"=").decode()


class TokenFactory:
    """Signs access tokens as auth would, with a key generated for the test run."""

    def __init__(self, kid: str = "test-key", issuer: str = TEST_ISSUER) -> None:
        self.kid = kid
        self.issuer = issuer
        self.private_key = ec.generate_private_key(ec.SECP256R1())

    def jwks(self) -> dict[str, Any]:
        numbers = self.private_key.public_key().public_numbers()
        jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64url_uint(numbers.x),
            "y": _b64url_uint(numbers.y),
            "kid": self.kid,
            "alg": "ES256",
            "use": "sig",
        }
        return {"keys": [jwk]}

    def verifier(self, **kwargs: Any) -> TokenVerifier:
        return TokenVerifier(
            StaticJwks(self.jwks()), issuer=self.issuer, audience=TEST_AUDIENCE, **kwargs
        )

    def token(self, sub: str, roles: list[str], *, ttl_s: int = 600, **claims: Any) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": TEST_AUDIENCE,
            "sub": sub,
            "iat": now,
            "exp": now + ttl_s,
            "jti": str(uuid.uuid4()),
            "roles": roles,
            **claims,
        }
        return jwt.encode(
            payload, self.private_key, algorithm="ES256", headers={"kid": self.kid, "typ": "at+jwt"}
        )

    def headers(self, sub: str, roles: list[str], **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, roles, **claims)}"}
