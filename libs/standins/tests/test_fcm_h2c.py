"""The FCM stand-in over h2c: HTTP/2 sends and the HTTP/1.1 token exchange on one port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from standins.fcm import JWT_BEARER_GRANT, FakeFcm
from standins.h2c import serve_h2c
from standins.server import free_port


@pytest.fixture
async def h2c() -> AsyncIterator[tuple[FakeFcm, str]]:
    fake = FakeFcm(project_id="p")
    port = free_port()
    task = asyncio.create_task(serve_h2c(fake.app, "127.0.0.1", port))
    await asyncio.sleep(0.05)
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_token_over_http1_then_sends_multiplexed_over_http2(
    h2c: tuple[FakeFcm, str],
) -> None:
    fake, base = h2c
    async with httpx.AsyncClient() as http1:
        tokens = [
            await http1.post(
                f"{base}/token", data={"grant_type": JWT_BEARER_GRANT, "assertion": "a.b.c"}
            )
            for _ in range(3)  # one keep-alive connection, head and body read separately
        ]
    assert [t.http_version for t in tokens] == ["HTTP/1.1"] * 3
    token = tokens[0].json()["access_token"]
    async with httpx.AsyncClient(http1=False, http2=True) as http2:
        answers = await asyncio.gather(
            *(
                http2.post(
                    f"{base}/v1/projects/p/messages:send",
                    json={"message": {"token": f"t{i}", "data": {"i": str(i)}}},
                    headers={"authorization": f"Bearer {token}"},
                )
                for i in range(150)  # more than one connection's default stream limit
            )
        )
    assert {a.http_version for a in answers} == {"HTTP/2"}
    assert [a.status_code for a in answers] == [200] * 150
    assert sorted(r.target for r in fake.accepted()) == sorted(f"t{i}" for i in range(150))


async def test_an_unknown_bearer_is_unauthenticated_over_http2(h2c: tuple[FakeFcm, str]) -> None:
    fake, base = h2c
    async with httpx.AsyncClient(http1=False, http2=True) as http2:
        answer = await http2.post(
            f"{base}/v1/projects/p/messages:send",
            json={"message": {"token": "t"}},
            headers={"authorization": "Bearer nope"},
        )
    assert answer.status_code == 401
    assert answer.json()["error"]["status"] == "UNAUTHENTICATED"
    assert fake.accepted() == []


def test_a_block_that_leaves_the_table_alone_decodes_the_same_from_memory() -> None:
    from hpack import Decoder, Encoder, NeverIndexedHeaderTuple  # noqa: PLC0415

    from standins.h2c import _RememberingDecoder  # noqa: PLC0415

    headers = [(b":method", b"POST"), (b":path", b"/v1/x"), (b"authorization", b"Bearer t")]
    stateless = Encoder().encode([NeverIndexedHeaderTuple(n, v) for n, v in headers])
    decoder = _RememberingDecoder()
    first, again = decoder.decode(stateless, raw=True), decoder.decode(stateless, raw=True)
    assert first == again == Decoder().decode(stateless, raw=True) == headers
    assert len(decoder._memo) == 1
    # A client that indexes (httpx, curl) changes the table: decoded in full every time.
    encoder, indexing = Encoder(), _RememberingDecoder()
    for _ in range(3):
        assert indexing.decode(encoder.encode(headers), raw=True) == headers
    assert indexing._memo == {}
