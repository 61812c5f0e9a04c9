"""Our signing keys and the JWKS that publishes their public halves."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def from_pem(cls, pem: str) -> SigningKey:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError("the signing key must be an EC P-256 private key (ES256)")
        return cls(kid=thumbprint(key.public_key()), private_key=key)

    @classmethod
    def generate(cls) -> SigningKey:
        key = ec.generate_private_key(ec.SECP256R1())
        return cls(kid=thumbprint(key.public_key()), private_key=key)

    def public_jwk(self) -> dict[str, Any]:
        return public_jwk(self.private_key.public_key(), self.kid)


@dataclass(frozen=True)
class VerificationKey:
    """A public key we publish but no longer (or not yet) sign with."""

    kid: str
    public_key: ec.EllipticCurvePublicKey

    @classmethod
    def from_pem(cls, pem: str) -> VerificationKey:
        """From a private or a public PEM (a retired key's private half need not be kept)."""
        raw = pem.encode()
        loaded: object
        if b"PRIVATE KEY" in raw:
            loaded = serialization.load_pem_private_key(raw, password=None).public_key()
        else:
            loaded = serialization.load_pem_public_key(raw)
        if not isinstance(loaded, ec.EllipticCurvePublicKey) or loaded.curve.name != "secp256r1":
            raise ValueError("the previous key must be an EC P-256 key (ES256)")
        return cls(kid=thumbprint(loaded), public_key=loaded)

    def public_jwk(self) -> dict[str, Any]:
        return public_jwk(self.public_key, self.kid)


@dataclass(frozen=True)
class KeyRing:
    """The current signing key, the next one and the previous one (RFC 7517 key rotation).

    Rotation by configuration: next → current, current → previous, a new next. Verifiers that
    cached the JWKS already know the new current key (it was "next"), and tokens signed with the
    old current key still verify (it is "previous") until it is removed: nobody is logged out.
    """

    current: SigningKey
    next: VerificationKey | None = None
    previous: VerificationKey | None = None

    def jwks(self) -> dict[str, Any]:
        keys = [self.current.public_jwk()]
        for extra in (self.next, self.previous):
            if extra is not None and extra.kid != self.current.kid:
                keys.append(extra.public_jwk())
        return {"keys": keys}


def _coordinates(public_key: ec.EllipticCurvePublicKey) -> tuple[str, str]:
    numbers = public_key.public_numbers()
    return _b64url(numbers.x.to_bytes(32, "big")), _b64url(numbers.y.to_bytes(32, "big"))


def thumbprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 JWK thumbprint: a kid that is the same wherever the key is loaded."""
    x, y = _coordinates(public_key)
    canonical = json.dumps({"crv": "P-256", "kty": "EC", "x": x, "y": y}, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def public_jwk(public_key: ec.EllipticCurvePublicKey, kid: str) -> dict[str, Any]:
    x, y = _coordinates(public_key)
    return {"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"}
