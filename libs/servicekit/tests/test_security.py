import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from contracts import SessionRevoked, SessionRevokedData
from servicekit.bus import IncomingRecord, record_for
from servicekit.errors import install_error_handlers
from servicekit.security import (
    CurrentManager,
    InvalidToken,
    Principal,
    RevocationList,
    TokenVerifier,
)
from servicekit.testing import TEST_AUDIENCE, TokenFactory


class CountingJwks:
    def __init__(self, *factories: TokenFactory) -> None:
        self.factories = list(factories)
        self.calls = 0

    async def fetch(self) -> dict[str, Any]:
        self.calls += 1
        return {"keys": [k for f in self.factories for k in f.jwks()["keys"]]}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _code_of(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as err:
        await verifier.verify(token)
    return err.value.code


async def test_a_valid_token_gives_its_principal() -> None:
    factory = TokenFactory()
    principal = await factory.verifier().verify(factory.token("u-1", ["customer"], sid="fam-1"))
    assert principal.user_id == "u-1"
    assert principal.roles == {"customer"}
    assert principal.session_id == "fam-1"


async def test_each_kind_of_bad_token_has_its_own_code() -> None:
    factory = TokenFactory()
    verifier = factory.verifier()
    now = int(time.time())
    good: dict[str, Any] = {
        "iss": factory.issuer,
        "aud": TEST_AUDIENCE,
        "sub": "u",
        "iat": now,
        "exp": now + 60,
        "jti": "j",
        "roles": ["customer"],
    }

    def signed(payload: dict[str, Any], **headers: Any) -> str:
        return jwt.encode(
            payload,
            factory.private_key,
            algorithm="ES256",
            headers={"kid": factory.kid, "typ": "at+jwt", **headers},
        )

    assert await _code_of(verifier, factory.token("u", ["customer"], ttl_s=-10)) == "token_expired"
    assert await _code_of(verifier, signed({**good, "iss": "evil"})) == "token_invalid_issuer"
    assert await _code_of(verifier, signed({**good, "aud": "other"})) == "token_invalid_audience"
    assert await _code_of(verifier, signed(good, kid="nope")) == "token_unknown_key"
    assert await _code_of(verifier, signed(good, typ="JWT")) == "token_bad_type"
    unsigned = jwt.encode(good, "", algorithm="none", headers={"typ": "at+jwt"})
    assert await _code_of(verifier, unsigned) == "token_bad_algorithm"
    head, _, sig = signed(good).split(".")
    tampered_payload = jwt.utils.base64url_encode(b'{"sub":"admin"}').decode()
    assert await _code_of(verifier, f"{head}.{tampered_payload}.{sig}") == "token_bad_signature"
    assert await _code_of(verifier, "not-a-jwt") == "token_malformed"


async def test_an_unknown_kid_refetches_at_most_once_per_interval() -> None:
    old, new = TokenFactory(kid="k1"), TokenFactory(kid="k2")
    jwks, clock = CountingJwks(old), FakeClock()
    verifier = TokenVerifier(
        jwks,
        issuer=old.issuer,
        audience=TEST_AUDIENCE,
        min_refetch_interval_s=30,
        clock=clock,
    )
    await verifier.verify(old.token("u", ["customer"]))
    for _ in range(20):
        await _code_of(verifier, new.token("u", ["customer"]))
    assert jwks.calls == 1  # forged or unknown kids do not hammer the key endpoint

    jwks.factories.append(new)  # the key rotation auth publishes
    clock.now += 31
    assert (await verifier.verify(new.token("u", ["customer"]))).user_id == "u"
    assert jwks.calls == 2


async def test_a_revoked_session_is_rejected() -> None:
    factory = TokenFactory()

    async def revoked(claims: Any) -> bool:
        return bool(claims.sid == "gone")

    verifier = factory.verifier(is_revoked=revoked)
    assert await _code_of(verifier, factory.token("u", ["customer"], sid="gone")) == "token_revoked"


async def test_role_dependency_answers_401_without_token_and_403_without_role() -> None:
    factory = TokenFactory()
    app = FastAPI()
    app.state.token_verifier = factory.verifier()
    install_error_handlers(app)

    @app.get("/manager/ping")
    async def ping(principal: CurrentManager) -> dict[str, str]:
        assert isinstance(principal, Principal)
        return {"user": principal.user_id}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        missing = await client.get("/manager/ping")
        customer = await client.get("/manager/ping", headers=factory.headers("u", ["customer"]))
        manager = await client.get("/manager/ping", headers=factory.headers("m", ["manager"]))

    assert missing.status_code == 401
    assert missing.json()["code"] == "token_missing"
    assert "Bearer" in missing.headers["WWW-Authenticate"]
    assert customer.status_code == 403
    assert customer.json()["code"] == "role_required"
    assert manager.json() == {"user": "m"}


async def test_a_revoked_session_or_user_is_denied_until_no_token_can_outlive_it() -> None:
    factory = TokenFactory()
    clock = FakeClock()
    clock.now = time.time()
    denied = RevocationList(max_token_lifetime_s=900, clock=clock)
    verifier = factory.verifier(is_revoked=denied.is_revoked)
    before = factory.token("u-1", ["customer"], sid="fam-1")
    other_session = factory.token("u-2", ["customer"], sid="fam-2")

    for event in (
        SessionRevoked(
            key="u-1",
            data=SessionRevokedData(
                user_id="u-1",
                session_id="fam-1",
                reason="logout",
                revoked_at=datetime.fromtimestamp(clock.now, UTC),
            ),
        ),
        SessionRevoked(
            key="u-3",
            data=SessionRevokedData(
                user_id="u-3", reason="user_unlinked", revoked_at=datetime.now(UTC)
            ),
        ),
    ):
        record = record_for(event)
        await denied.handle(
            IncomingRecord(record.topic, 0, 0, record.key, record.value, record.headers)
        )

    assert await _code_of(verifier, before) == "token_revoked"
    assert (await verifier.verify(other_session)).user_id == "u-2"
    assert await _code_of(verifier, factory.token("u-3", ["customer"])) == "token_revoked"
    assert len(denied) == 2

    clock.now += 901  # every token the revocation could match has expired by now
    claims = (await factory.verifier().verify(before)).claims
    assert await denied.is_revoked(claims) is False
    assert len(denied) == 0


class CountingDecode:
    """Counts signature checks (jwt.decode) while passing every call through."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self._decode = jwt.decode
        monkeypatch.setattr(jwt, "decode", self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self._decode(*args, **kwargs)


async def test_a_token_seen_before_skips_the_signature_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    factory = TokenFactory()
    verifier = factory.verifier()
    decode = CountingDecode(monkeypatch)
    token = factory.token("u-1", ["customer"], sid="fam-1")

    first = await verifier.verify(token)
    again = await verifier.verify(token)

    assert again == first
    assert decode.calls == 1
    assert await _code_of(verifier, token[:-4] + "AAAA") == "token_bad_signature"  # not the same


async def test_a_remembered_token_is_refused_once_revoked() -> None:
    factory = TokenFactory()
    clock = FakeClock()
    clock.now = time.time()
    denied = RevocationList(clock=clock)
    verifier = factory.verifier(is_revoked=denied.is_revoked)
    session_token = factory.token("u-1", ["customer"], sid="fam-1")
    user_token = factory.token("u-2", ["customer"], sid="fam-2")
    await verifier.verify(session_token)
    await verifier.verify(user_token)

    denied.revoke_session("fam-1", clock.now)
    denied.revoke_user("u-2", clock.now + 1)

    assert await _code_of(verifier, session_token) == "token_revoked"
    assert await _code_of(verifier, user_token) == "token_revoked"


async def test_a_remembered_token_is_refused_once_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    factory = TokenFactory()
    wall = FakeClock()
    wall.now = time.time()
    verifier = factory.verifier(wall_clock=wall)
    decode = CountingDecode(monkeypatch)
    token = factory.token("u-1", ["customer"], ttl_s=60)
    await verifier.verify(token)

    wall.now += 59
    assert (await verifier.verify(token)).user_id == "u-1"
    wall.now += 2
    assert await _code_of(verifier, token) == "token_expired"
    assert decode.calls == 1  # the expiry was decided from the remembered claims
    assert verifier.remembered == 0


async def test_a_remembered_token_is_refused_once_its_key_left_the_jwks() -> None:
    old, new = TokenFactory(kid="k1"), TokenFactory(kid="k2")
    jwks, clock = CountingJwks(old), FakeClock()
    verifier = TokenVerifier(
        jwks, issuer=old.issuer, audience=TEST_AUDIENCE, cache_ttl_s=300, clock=clock
    )
    token = old.token("u", ["customer"])
    await verifier.verify(token)

    jwks.factories = [new]  # auth rotated k1 out
    clock.now += 299
    assert (await verifier.verify(token)).user_id == "u"  # the JWKS is not due yet
    clock.now += 2
    assert await _code_of(verifier, token) == "token_unknown_key"
    assert jwks.calls == 2


async def test_remembered_tokens_are_bounded() -> None:
    factory = TokenFactory()
    verifier = factory.verifier(max_remembered=3)
    tokens = [factory.token(f"u-{i}", ["customer"]) for i in range(5)]
    for token in tokens:
        await verifier.verify(token)
    assert verifier.remembered == 3
    for token in tokens:  # the forgotten ones verify again, the same way
        assert (await verifier.verify(token)).user_id.startswith("u-")
    assert verifier.remembered == 3


class SlowJwks(CountingJwks):
    async def fetch(self) -> dict[str, Any]:
        await asyncio.sleep(0.01)  # requests with the same token meet across the fetch
        return await super().fetch()


async def test_concurrent_requests_with_a_remembered_token_survive_a_jwks_refresh() -> None:
    factory = TokenFactory()
    jwks, clock = SlowJwks(factory), FakeClock()
    verifier = TokenVerifier(
        jwks, issuer=factory.issuer, audience=TEST_AUDIENCE, cache_ttl_s=300, clock=clock
    )
    token = factory.token("u", ["customer"])
    await verifier.verify(token)

    clock.now += 301  # the JWKS is due: the refetched key object is new, the token re-verifies
    principals = await asyncio.gather(*(verifier.verify(token) for _ in range(5)))

    assert {p.user_id for p in principals} == {"u"}
    assert jwks.calls == 2
