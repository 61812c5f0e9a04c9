"""push's HTTP/2 transport against a scripted HTTP/2 server: what it sends again and what not.

A request the server provably did not process (a stream above a GOAWAY's last stream id, or
REFUSED_STREAM) is sent again on a fresh connection; one the server may have processed (the
connection dropped mid-exchange) is never sent again by the transport — it fails, and push's
retry policy decides. That is what keeps "no notification twice" true across reconnects.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.errors
import h2.events
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from push.delivery.http2 import Http2Transport

# What the scripted server does with a request: answer it, or misbehave (per connection number
# and request number on that connection).
Script = Callable[[int, int], str]
Serve = Callable[..., Awaitable[tuple["ScriptedServer", str]]]


@dataclass
class ScriptedServer:
    script: Script
    connections: int = 0
    processed: list[bytes] = field(default_factory=list)
    headers: list[dict[bytes, bytes]] = field(default_factory=list)
    settings: dict[int, int] = field(default_factory=dict)  # the server's SETTINGS
    open_streams: int = 0
    most_open_streams: int = 0
    pings_acked: int = 0


class _ServerProtocol(asyncio.Protocol):
    def __init__(self, server: ScriptedServer) -> None:
        self.server = server
        server.connections += 1
        self.number = server.connections
        self.requests = 0
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        self.bodies: dict[int, bytearray] = {}
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.conn.initiate_connection()
        if self.server.settings:
            self.conn.update_settings(self.server.settings)
        self.conn.ping(b"pingpong")
        transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.PingAckReceived):
                self.server.pings_acked += 1
            if isinstance(event, h2.events.RequestReceived):
                assert event.stream_id is not None
                self.bodies[event.stream_id] = bytearray()
                self.server.headers.append(dict(event.headers or []))
                self.server.open_streams += 1
                self.server.most_open_streams = max(
                    self.server.most_open_streams, self.server.open_streams
                )
            elif isinstance(event, h2.events.DataReceived):
                assert event.stream_id is not None
                self.bodies[event.stream_id] += event.data or b""
                self.conn.acknowledge_received_data(
                    event.flow_controlled_length or 0, event.stream_id
                )
            elif isinstance(event, h2.events.StreamEnded):
                assert event.stream_id is not None
                self.server.open_streams -= 1
                self.requests += 1
                self._act(event.stream_id, self.server.script(self.number, self.requests))
        if not self.transport.is_closing():
            self.transport.write(self.conn.data_to_send())

    def _act(self, stream_id: int, action: str) -> None:
        assert self.transport is not None
        if action == "goaway":  # closes before processing: the client may send it again
            self.conn.close_connection(last_stream_id=stream_id - 2 if stream_id > 1 else 0)
        elif action == "refuse":
            self.conn.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
        elif action == "drop":  # processed, then the connection breaks before the answer
            self.server.processed.append(bytes(self.bodies[stream_id]))
            self.transport.write(self.conn.data_to_send())
            self.transport.close()
        elif action == "padded":  # a 1xx first, a long padded head, a body in padded pieces
            self.server.processed.append(bytes(self.bodies[stream_id]))
            self.conn.send_headers(stream_id, [(b":status", b"103"), (b"link", b"</x>")])
            long = [(b"x-%d" % i, b"v" * 1000) for i in range(40)]  # > one frame: CONTINUATION
            self.conn.send_headers(stream_id, [(b":status", b"200"), *long])
            self.conn.send_data(stream_id, b'{"name":', pad_length=7)
            self.conn.send_data(stream_id, b'"m/%d"}' % stream_id, end_stream=True, pad_length=3)
        else:
            self.server.processed.append(bytes(self.bodies[stream_id]))
            self.conn.send_headers(
                stream_id, [(b":status", b"200"), (b"content-type", b"application/json")]
            )
            self.conn.send_data(stream_id, b'{"name":"m/%d"}' % stream_id, end_stream=True)


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(
        script: Script, settings: dict[int, int] | None = None
    ) -> tuple[ScriptedServer, str]:
        state = ScriptedServer(script, settings=settings or {})
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _ServerProtocol(state), "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return state, f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.close()


async def _post(client: httpx.AsyncClient, base: str, body: bytes) -> httpx.Response:
    return await client.post(f"{base}/v1/projects/p/messages:send", content=body)


async def test_many_requests_share_one_connection_with_their_own_answers(serve: Serve) -> None:
    server, base = await serve(lambda conn, n: "answer")
    transport = Http2Transport(prior_knowledge=True, streams_per_connection=10)
    async with httpx.AsyncClient(transport=transport) as client:
        answers = await asyncio.gather(*(_post(client, base, b"%d" % i) for i in range(50)))
    assert [a.status_code for a in answers] == [200] * 50
    assert {a.http_version for a in answers} == {"HTTP/2"}
    assert server.connections == 1
    assert sorted(server.processed) == sorted(b"%d" % i for i in range(50))
    assert all(h[b":method"] == b"POST" and b"host" not in h for h in server.headers)


async def test_the_servers_settings_windows_padding_and_continuation_are_honoured(
    serve: Serve,
) -> None:
    from h2.settings import SettingCodes  # noqa: PLC0415

    settings = {SettingCodes.INITIAL_WINDOW_SIZE: 100, SettingCodes.MAX_CONCURRENT_STREAMS: 3}
    server, base = await serve(lambda conn, n: "padded", settings)
    bodies = [bytes([65 + i]) * 5000 for i in range(8)]  # each 50 windows of 100 bytes
    async with httpx.AsyncClient(transport=Http2Transport(prior_knowledge=True)) as client:
        answers = await asyncio.gather(*(_post(client, base, body) for body in bodies))
    assert [a.status_code for a in answers] == [200] * 8
    assert all(a.json()["name"].startswith("m/") for a in answers)
    assert all(len(a.headers["x-39"]) == 1000 for a in answers)
    assert sorted(server.processed) == sorted(bodies)
    assert server.most_open_streams <= 3
    assert server.pings_acked == 1


async def test_a_request_above_the_goaway_is_sent_again_on_a_new_connection(serve: Serve) -> None:
    server, base = await serve(lambda conn, n: "goaway" if conn == 1 else "answer")
    async with httpx.AsyncClient(transport=Http2Transport(prior_knowledge=True)) as client:
        answer = await _post(client, base, b"once")
    assert answer.status_code == 200
    assert server.processed == [b"once"]
    assert server.connections == 2


async def test_a_refused_stream_is_sent_again(serve: Serve) -> None:
    server, base = await serve(lambda conn, n: "refuse" if (conn, n) == (1, 1) else "answer")
    async with httpx.AsyncClient(transport=Http2Transport(prior_knowledge=True)) as client:
        answer = await _post(client, base, b"once")
    assert answer.status_code == 200
    assert server.processed == [b"once"]


async def test_a_request_the_server_may_have_processed_is_not_sent_again(serve: Serve) -> None:
    server, base = await serve(lambda conn, n: "drop")
    async with httpx.AsyncClient(transport=Http2Transport(prior_knowledge=True)) as client:
        with pytest.raises(httpx.ReadError):
            await _post(client, base, b"once")
        # The next request opens a fresh connection.
        with pytest.raises(httpx.ReadError):
            await _post(client, base, b"twice")
    assert server.processed == [b"once", b"twice"]
    assert server.connections == 2


async def test_plain_http_without_prior_knowledge_is_refused() -> None:
    async with httpx.AsyncClient(transport=Http2Transport()) as client:
        with pytest.raises(httpx.UnsupportedProtocol):
            await client.get("http://127.0.0.1:9/")


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize("server_alpn", [["h2"], ["http/1.1"]])
async def test_https_negotiates_http2_by_alpn_and_refuses_a_server_without_it(
    tmp_path: Path, server_alpn: list[str]
) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    server_tls.set_alpn_protocols(server_alpn)
    state = ScriptedServer(lambda conn, n: "answer")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _ServerProtocol(state), "127.0.0.1", 0, ssl=server_tls
    )
    port = server.sockets[0].getsockname()[1]
    client_tls = ssl.create_default_context(cafile=str(cert))
    client_tls.set_alpn_protocols(["h2"])
    try:
        async with httpx.AsyncClient(transport=Http2Transport(ssl_context=client_tls)) as client:
            url = f"https://localhost:{port}/v1/projects/p/messages:send"
            if server_alpn == ["h2"]:
                answer = await client.post(url, content=b"over tls")
                assert answer.status_code == 200
                assert answer.http_version == "HTTP/2"
                assert state.processed == [b"over tls"]
            else:
                with pytest.raises(httpx.ConnectError, match="ALPN"):
                    await client.post(url, content=b"over tls")
                assert state.processed == []
    finally:
        server.close()
