"""The FCM stand-in over h2c: HTTP/2 sends and the HTTP/1.1 token exchange on one port."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import h2.config
import h2.connection
import h2.events
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

    from servicekit.http2wire import RememberingDecoder  # noqa: PLC0415

    headers = [(b":method", b"POST"), (b":path", b"/v1/x"), (b"authorization", b"Bearer t")]
    stateless = Encoder().encode([NeverIndexedHeaderTuple(n, v) for n, v in headers])
    decoder = RememberingDecoder()
    first, again = decoder.decode(stateless, raw=True), decoder.decode(stateless, raw=True)
    assert first == again == Decoder().decode(stateless, raw=True) == headers
    assert len(decoder._memo) == 1
    # A client that indexes (httpx, curl) changes the table: decoded in full every time.
    encoder, indexing = Encoder(), RememberingDecoder()
    for _ in range(3):
        assert indexing.decode(encoder.encode(headers), raw=True) == headers
    assert indexing._memo == {}


class _RawClient:
    """An HTTP/2 client on h2 that sends what it is told, valid or not, and collects events."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=True,
                header_encoding=None,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        self.events: list[Any] = []

    async def flush(self) -> None:
        self.writer.write(self.conn.data_to_send())
        await self.writer.drain()

    async def until(self, done: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not done():
                data = await self.reader.read(65_536)
                assert data, "the stand-in closed the connection"
                for event in self.conn.receive_data(data):
                    self.events.append(event)
                    if isinstance(event, h2.events.DataReceived) and event.stream_id:
                        self.conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                await self.flush()

    def of(self, kind: str, stream_id: int | None = None) -> list[Any]:
        return [
            e
            for e in self.events
            if type(e).__name__ == kind and (stream_id is None or e.stream_id == stream_id)
        ]


async def test_h2_refuses_malformed_header_blocks_and_honours_the_clients_window(
    h2c: tuple[FakeFcm, str],
) -> None:
    from h2.errors import ErrorCodes  # noqa: PLC0415
    from h2.settings import SettingCodes  # noqa: PLC0415

    fake, base = h2c
    reader, writer = await asyncio.open_connection("127.0.0.1", int(base.rsplit(":", 1)[1]))
    client = _RawClient(reader, writer)
    try:
        client.conn.initiate_connection()
        # A window of 10 bytes: the error body must come in pieces, each after our ack.
        client.conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 10})
        client.conn.ping(b"12345678")
        head = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"x")]
        path = (b":path", b"/v1/projects/p/messages:send")
        bad = {
            1: [*head],  # no :path
            3: [*head, path, (b"Authorization", b"Bearer x")],  # uppercase name
            5: [*head, path, (b"connection", b"keep-alive")],  # connection-specific
            7: [(b"x-early", b"1"), *head, path],  # a regular header before pseudo-headers
        }
        for stream_id, headers in bad.items():
            client.conn.send_headers(stream_id, headers, end_stream=True)
        client.conn.send_headers(9, [*head, path, (b"authorization", b"Bearer nope")])
        client.conn.send_data(9, b'{"message": {"token": "t"}}', end_stream=True)
        await client.flush()
        await client.until(
            lambda: bool(client.of("StreamEnded", 9)) and len(client.of("StreamReset")) == 4
        )
    finally:
        writer.close()
    resets = {e.stream_id: e.error_code for e in client.of("StreamReset")}
    assert resets == dict.fromkeys(bad, ErrorCodes.PROTOCOL_ERROR)
    assert client.of("PingAckReceived")
    status = dict(client.of("ResponseReceived", 9)[0].headers)[b":status"]
    body = b"".join(e.data for e in client.of("DataReceived", 9))
    assert len(client.of("DataReceived", 9)) > 1  # held back by the 10-byte window
    assert (status, json.loads(body)["error"]["status"]) == (b"401", "UNAUTHENTICATED")
    assert fake.accepted() == []


async def test_h2_refuses_streams_beyond_its_limit_and_serves_the_rest(
    h2c: tuple[FakeFcm, str],
) -> None:
    from hpack import Encoder  # noqa: PLC0415

    from servicekit.http2wire import PREFACE, frame  # noqa: PLC0415

    fake, base = h2c
    reader, writer = await asyncio.open_connection("127.0.0.1", int(base.rsplit(":", 1)[1]))
    encoder = Encoder()
    block = encoder.encode(
        [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"x"), (b":path", b"/p")]
    )
    # 101 requests left open (no END_STREAM), written before the server's SETTINGS are read.
    frames = [frame(0x1, 0x4, 2 * i + 1, block) for i in range(101)]
    writer.write(PREFACE + frame(0x4, 0, 0) + b"".join(frames))
    await writer.drain()
    received = b""
    try:
        async with asyncio.timeout(10):
            while (rst := received.find(b"\x00\x00\x04\x03\x00\x00\x00\x00\xc9")) < 0:
                chunk = await reader.read(65_536)
                assert chunk, "the stand-in closed the connection"
                received += chunk
    finally:
        writer.close()
    # RST_STREAM on stream 201 (the 101st) with REFUSED_STREAM (7).
    assert received[rst + 9 : rst + 13] == b"\x00\x00\x00\x07"
    assert fake.accepted() == []
