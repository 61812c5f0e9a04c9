"""Verifying our access tokens (RFC 9068 / RFC 8725) and guarding routes by role.

api and push verify tokens that auth signed, against auth's JWKS: the keys are cached, and an
unknown ``kid`` triggers at most one refetch per ``min_refetch_interval_s`` (a key rotation is seen
quickly; a flood of forged kids cannot hammer auth). Every rejection is a 401 with its own code.

A verified token is remembered (bounded, keyed by the exact token string) so that a client
sending the same token on every request pays the signature check once, not per request: an ES256
verification costs ~100 µs, more than the nearby search itself. A remembered token is still
refused once it expires, once its session or user is revoked (checked on every request), and once
the key that signed it is no longer in the JWKS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import httpx
import jwt
from fastapi import Depends, Request
from pydantic import ValidationError

from contracts import TOPIC_IDENTITY, AccessTokenClaims, Role, SessionRevoked, parse_event
from servicekit.bus import IncomingRecord, InProcessBus, Subscription
from servicekit.errors import Forbidden, Unauthorized
from servicekit.kafka import KafkaSubscription

log = logging.getLogger(__name__)

ALLOWED_ALGORITHMS = ("ES256", "RS256")
ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 — a JOSE type, not a secret


class InvalidToken(Unauthorized):
    """A rejected access token; ``code`` says why (token_expired, token_unknown_key, …)."""

    title = "Invalid access token"

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code  # type: ignore[misc]  # per-instance code: one class, many reasons
        self.headers = {
            "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{code}"'
        }


class RoleRequired(Forbidden):
    code = "role_required"
    title = "Role required"


@dataclass(frozen=True)
class Principal:
    """The verified caller of a request."""

    user_id: str
    roles: frozenset[str]
    session_id: str | None
    token_id: str
    claims: AccessTokenClaims

    def has_role(self, role: Role) -> bool:
        return role in self.roles


class JwksSource(Protocol):
    async def fetch(self) -> dict[str, Any]:
        """The JWKS document: ``{"keys": [...]}``."""
        ...


class HttpJwks:
    """auth's ``/.well-known/jwks.json`` over HTTP."""

    def __init__(self, url: str, client: httpx.AsyncClient | None = None) -> None:
        self.url = url
        self._client = client or httpx.AsyncClient(timeout=3.0)

    async def fetch(self) -> dict[str, Any]:
        response = await self._client.get(self.url)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    async def aclose(self) -> None:
        await self._client.aclose()


class StaticJwks:
    """A fixed JWKS (tests, or keys distributed by configuration)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    async def fetch(self) -> dict[str, Any]:
        return self.document


RevocationCheck = Callable[[AccessTokenClaims], Awaitable[bool]]


#: The longest access-token lifetime auth issues (RFC 9068 tokens of at most 15 minutes): a
#: revocation older than this can no longer match a live token.
MAX_ACCESS_TOKEN_LIFETIME_S = 900


class RevocationList:
    """An in-memory deny-list fed by auth's ``session.revoked`` events (the identity topic).

    Use ``is_revoked`` as the verifier's hook and ``handle`` as the identity subscription's
    handler. Entries are dropped once no access token they could match can still be alive.
    """

    def __init__(
        self,
        max_token_lifetime_s: float = MAX_ACCESS_TOKEN_LIFETIME_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lifetime_s = max_token_lifetime_s
        self._clock = clock
        self._sessions: dict[str, float] = {}
        self._users: dict[str, float] = {}
        self._pruned_at = float("-inf")

    def revoke_session(self, session_id: str, at: float) -> None:
        self._sessions[session_id] = max(at, self._sessions.get(session_id, at))

    def revoke_user(self, user_id: str, at: float) -> None:
        """Every token of the user issued at or before ``at``."""
        self._users[user_id] = max(at, self._users.get(user_id, at))

    def apply(self, event: SessionRevoked) -> None:
        at = event.data.revoked_at.timestamp()
        if event.data.session_id is None:
            self.revoke_user(event.data.user_id, at)
        else:
            self.revoke_session(event.data.session_id, at)

    async def handle(self, record: IncomingRecord) -> None:
        """A bus handler: applies ``session.revoked`` events, ignores every other type."""
        if record.header("event_type") not in (None, b"session.revoked"):
            return
        try:
            event = parse_event(record.value)
        except ValidationError:
            return  # not ours to judge: the producer's tests own the wire format
        if isinstance(event, SessionRevoked):
            self.apply(event)

    def _prune(self) -> None:
        now = self._clock()
        if now - self._pruned_at < 1.0:
            return  # is_revoked runs on every request: sweep at most once a second
        self._pruned_at = now
        horizon = now - self._lifetime_s
        for table in (self._sessions, self._users):
            for key in [k for k, at in table.items() if at < horizon]:
                del table[key]

    async def is_revoked(self, claims: AccessTokenClaims) -> bool:
        self._prune()
        if claims.sid is not None and claims.sid in self._sessions:
            return True
        revoked_at = self._users.get(claims.sub)
        return revoked_at is not None and claims.iat <= revoked_at

    def __len__(self) -> int:
        return len(self._sessions) + len(self._users)


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    key: jwt.PyJWK  # the JWKS entry that verified it: a refreshed JWKS re-verifies
    exp: float


class TokenVerifier:
    def __init__(
        self,
        jwks: JwksSource,
        *,
        issuer: str,
        audience: str,
        cache_ttl_s: float = 300.0,
        min_refetch_interval_s: float = 30.0,
        leeway_s: float = 0.0,
        is_revoked: RevocationCheck | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        max_remembered: int = 4096,
    ) -> None:
        self._jwks = jwks
        self.issuer = issuer
        self.audience = audience
        self._cache_ttl_s = cache_ttl_s
        self._min_refetch_interval_s = min_refetch_interval_s
        self._leeway_s = leeway_s
        self._is_revoked = is_revoked
        self._clock = clock
        self._wall_clock = wall_clock
        self._max_remembered = max_remembered
        self._verified: dict[str, _Verified] = {}
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    @property
    def remembered(self) -> int:
        """Verified tokens held to skip their signature check next time (at most max_remembered)."""
        return len(self._verified)

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            now = self._clock()
            if self._fetched_at is not None:
                age = now - self._fetched_at
                if age < self._min_refetch_interval_s or (not force and age < self._cache_ttl_s):
                    return
            document = await self._jwks.fetch()
            self.fetches += 1
            keys: dict[str, jwt.PyJWK] = {}
            for jwk in document.get("keys", []):
                if jwk.get("kid") and jwk.get("alg") in ALLOWED_ALGORITHMS:
                    keys[jwk["kid"]] = jwt.PyJWK(jwk)
            self._keys = keys
            self._fetched_at = now

    async def _key_for(self, kid: str) -> jwt.PyJWK:
        if self._fetched_at is None or self._clock() - self._fetched_at >= self._cache_ttl_s:
            try:
                await self._refresh(force=False)
            except httpx.HTTPError as exc:
                if not self._keys:
                    raise InvalidToken(
                        "token_keys_unavailable", f"cannot fetch signing keys: {exc}"
                    ) from exc
        if kid not in self._keys:
            with contextlib.suppress(httpx.HTTPError):  # keep the cached keys; kid unknown anyway
                await self._refresh(force=True)
        key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("token_unknown_key", f"no signing key with kid {kid!r}")
        return key

    async def _checked_header(self, token: str) -> tuple[str, jwt.PyJWK]:
        """The algorithm and key of a token whose header is acceptable (RFC 8725 §3.1, §3.11)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise InvalidToken("token_malformed", "the token is not a JWT") from exc
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise InvalidToken("token_bad_algorithm", f"algorithm {alg!r} is not accepted")
        if header.get("typ") != ACCESS_TOKEN_TYPE:
            raise InvalidToken("token_bad_type", f"typ must be {ACCESS_TOKEN_TYPE!r}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("token_unknown_key", "the token has no kid")
        key = await self._key_for(kid)
        if key.algorithm_name != alg:
            raise InvalidToken("token_bad_algorithm", f"key {kid!r} does not sign with {alg}")
        return alg, key

    async def verify(self, token: str) -> Principal:
        """The principal of a valid access token; raises InvalidToken with a specific code."""
        known = self._verified.get(token)
        if known is not None:
            principal = await self._still_valid(token, known)
            if principal is not None:
                return principal
        alg, key = await self._checked_header(token)
        try:
            payload = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self._leeway_s,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token_expired", "the token has expired") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidToken(
                "token_invalid_issuer", "the token was issued by someone else"
            ) from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidToken("token_invalid_audience", "the token is not meant for us") from exc
        except jwt.InvalidSignatureError as exc:
            raise InvalidToken("token_bad_signature", "the signature does not verify") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken("token_missing_claim", str(exc)) from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidToken("token_malformed", str(exc)) from exc
        try:
            claims = AccessTokenClaims.model_validate(payload)
        except ValidationError as exc:
            raise InvalidToken("token_malformed", "the token's claims are invalid") from exc
        if self._is_revoked is not None and await self._is_revoked(claims):
            raise InvalidToken("token_revoked", "the session of this token was revoked")
        principal = Principal(
            user_id=claims.sub,
            roles=frozenset(claims.roles),
            session_id=claims.sid,
            token_id=claims.jti,
            claims=claims,
        )
        self._remember(token, principal, key)
        return principal

    async def _still_valid(self, token: str, known: _Verified) -> Principal | None:
        """A remembered principal if its token still passes; None to verify it afresh."""
        if self._wall_clock() >= known.exp + self._leeway_s:
            self._verified.pop(token, None)
            raise InvalidToken("token_expired", "the token has expired")
        kid = known.key.key_id or ""
        if self._fetched_at is None or self._clock() - self._fetched_at >= self._cache_ttl_s:
            await self._key_for(kid)  # the JWKS is due: refresh it before trusting its keys
        if self._keys.get(kid) is not known.key:
            # Rotated out, or refetched: check the signature again. (pop: concurrent requests
            # with this token may get here together across the JWKS fetch.)
            self._verified.pop(token, None)
            return None
        if self._is_revoked is not None and await self._is_revoked(known.principal.claims):
            raise InvalidToken("token_revoked", "the session of this token was revoked")
        return known.principal

    def _remember(self, token: str, principal: Principal, key: jwt.PyJWK) -> None:
        if self._max_remembered <= 0:
            return
        while len(self._verified) >= self._max_remembered:
            # The oldest first (dicts keep insertion order): bounded memory, O(1) per token.
            del self._verified[next(iter(self._verified))]
        self._verified[token] = _Verified(principal, key, float(principal.claims.exp))


def bearer_token(request: Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("token_missing", "send 'Authorization: Bearer <access token>'")
    return token.strip()


async def current_principal(request: Request) -> Principal:
    verifier: TokenVerifier = request.app.state.token_verifier
    return await verifier.verify(bearer_token(request))


def require_role(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits only callers holding ``role``."""

    async def dependency(
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Principal:
        if not principal.has_role(role):
            raise RoleRequired(f"this endpoint needs the {role!r} role")
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency


CurrentUser = Annotated[Principal, Depends(current_principal)]
CurrentCustomer = Annotated[Principal, Depends(require_role("customer"))]
CurrentManager = Annotated[Principal, Depends(require_role("manager"))]
CurrentAdmin = Annotated[Principal, Depends(require_role("admin"))]

__all__: Sequence[str] = (
    "CurrentAdmin",
    "CurrentCustomer",
    "CurrentManager",
    "CurrentUser",
    "HttpJwks",
    "InvalidToken",
    "Principal",
    "RevocationList",
    "StaticJwks",
    "TokenVerifier",
    "require_role",
)


class RevocationFeed:
    """Keeps a RevocationList current from the identity topic, on every replica.

    Each replica reads the whole topic under its own consumer group (a deny-list must be complete
    on every replica, not shared out like work); the local profile reads the in-process bus.
    """

    def __init__(self, subscription: Subscription, revocations: RevocationList) -> None:
        self._subscription = subscription
        self.revocations = revocations
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def for_service(
        cls, service: str, kafka_bootstrap: str | None, bus: InProcessBus | None
    ) -> RevocationFeed:
        group = f"{service}-revocations-{uuid.uuid4().hex[:12]}"
        subscription: Subscription
        if kafka_bootstrap is None:
            subscription = (bus or InProcessBus()).subscription(group, [TOPIC_IDENTITY])
        else:
            subscription = KafkaSubscription(
                kafka_bootstrap, group, [TOPIC_IDENTITY], client_id=f"{service}-revocations"
            )
        return cls(subscription, RevocationList())

    async def _follow(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._subscription.run(self.revocations.handle)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("revocation feed failed; retrying", exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="revocation-feed")

    async def stop(self) -> None:
        await self._subscription.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
