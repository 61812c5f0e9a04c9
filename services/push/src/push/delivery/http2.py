"""A lean HTTP/2 transport for the httpx client under firebase-admin's ``send_each_async``.

httpx's default transport (httpcore on anyio) spent most of a send's CPU on its own layers: a
pool that rescans its queue per request, anyio locks and checkpoints around every read and
write, and one socket write per request. This transport speaks HTTP/2 straight on an asyncio
protocol with framing of its own (RFC 9113; h2's state machine, which httpcore uses, was half
of what remained per message): one write per loop turn for every stream that has something to
send, responses read as they come, no pool queue to rescan. HPACK is the ``hpack`` package's.

It is an ``httpx.AsyncBaseTransport`` — httpx's documented extension point — so everything above
it (firebase-admin's request building, google-auth's Bearer, error mapping) is unchanged.
``https://`` negotiates HTTP/2 by ALPN, as FCM does; ``http://`` uses HTTP/2 with prior knowledge
(h2c: the local stand-in). Requests the server provably did not process (streams above a GOAWAY's
last stream id, or refused) are sent again on a fresh connection; any other failure is raised
as the httpx error it is, and the caller decides (push retries it later).
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from collections import deque
from typing import cast

import httpx

from servicekit.http2wire import (
    ACK,
    CANCEL,
    CONTINUATION,
    DATA,
    DEFAULT_FRAME_SIZE,
    DEFAULT_WINDOW,
    ENABLE_PUSH,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADER_TABLE_SIZE,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_CONCURRENT_STREAMS,
    MAX_FRAME_SIZE,
    MAX_STREAM_ID,
    NO_ERROR,
    PING,
    PREFACE,
    PROTOCOL_ERROR,
    PUSH_PROMISE,
    REFUSED_STREAM,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    Http2ConnectionError,
    RememberingDecoder,
    StatelessEncoder,
    code_payload,
    decode_block,
    frame,
    header_fragment,
    header_frames,
    read_frames,
    settings_pairs,
    unpad,
    window_increment,
)

# Connection-specific headers HTTP/2 forbids (RFC 9113 §8.2.2); httpx adds none but "host"
# (carried as :authority).
_DROPPED = frozenset({b"host", b"connection", b"keep-alive", b"proxy-connection"})
_DROPPED |= frozenset({b"transfer-encoding", b"upgrade"})
_WINDOW = 16 * 1024 * 1024  # what we let the server send before it waits for our acks
_RETRIES = 3  # sends of a request the server did not process


class _NotProcessed(Exception):
    """The server did not process this stream (GOAWAY above it, or REFUSED_STREAM): safe to
    send again on another connection."""


class _Stream:
    __slots__ = ("body", "done", "headers", "status", "window")

    def __init__(self, done: asyncio.Future[None], window: int) -> None:
        self.done = done
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()
        self.window = window  # what we may still send on this stream


class _Connection(asyncio.Protocol):
    """One HTTP/2 connection (client side): many streams at once, at most ``max_streams`` of
    ours.

    The framing is our own (RFC 9113), not h2's state machine, which cost about half the
    sender's CPU per message: the preface and SETTINGS, their acks, PING, flow control both
    ways, CONTINUATION, padding, RST_STREAM and GOAWAY, and the server's limits
    (SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_MAX_FRAME_SIZE, windows). HPACK is hpack's.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, max_streams: int) -> None:
        self._loop = loop
        self._encoder = StatelessEncoder()
        self._decoder = RememberingDecoder()
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, _Stream] = {}
        self._next_stream_id = 1
        self._max_streams = max_streams
        self._server_streams = 100  # until its SETTINGS say otherwise
        self._stream_limit = min(max_streams, self._server_streams)
        self._server_frame_size = DEFAULT_FRAME_SIZE
        self._server_window = DEFAULT_WINDOW  # its SETTINGS_INITIAL_WINDOW_SIZE: a new stream's
        self._send_window = DEFAULT_WINDOW  # the connection's, for our DATA
        self._received = 0  # DATA bytes not yet given back to the server's connection window
        self._buffer = b""
        self._block: tuple[int, int, bytearray] | None = None  # stream, flags, header block
        self._out: list[bytes] = []
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._window_waiters: list[asyncio.Future[None]] = []
        self._flush_scheduled = False
        self._failure: Exception | None = None  # set once the connection cannot take more
        self.waiting = 0  # requests queued for a stream slot

    # -- state --------------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return self._failure is None

    @property
    def load(self) -> int:
        return len(self._streams) + self.waiting

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        settings = struct.pack(">HLHL", ENABLE_PUSH, 0, INITIAL_WINDOW_SIZE, _WINDOW)
        self._send(PREFACE)
        self._send(frame(SETTINGS, 0, 0, settings))
        self._send(frame(WINDOW_UPDATE, 0, 0, code_payload(_WINDOW - DEFAULT_WINDOW)))
        self._flush()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        try:
            used = read_frames(buffer, self._on_frame)
        except Http2ConnectionError as exc:
            goaway = struct.pack(">LL", 0, exc.code) + str(exc).encode()
            self._send(frame(GOAWAY, 0, 0, goaway))
            self._flush()
            self._fail(httpx.RemoteProtocolError(f"HTTP/2 protocol error from FCM: {exc}"))
            return
        self._buffer = buffer[used:]
        if self._received:
            self._send(frame(WINDOW_UPDATE, 0, 0, code_payload(self._received)))
            self._received = 0

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(httpx.ReadError(f"the HTTP/2 connection closed: {exc or 'by the server'}"))

    # -- reading ------------------------------------------------------------------------------

    def _on_frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:  # noqa: PLR0912
        if self._block is not None and kind != CONTINUATION:
            raise Http2ConnectionError(PROTOCOL_ERROR, "a header block was interrupted")
        if kind == DATA:
            self._on_data(flags, stream_id, payload)
        elif kind == HEADERS:
            if not stream_id:
                raise Http2ConnectionError(PROTOCOL_ERROR, "HEADERS on stream 0")
            block = header_fragment(flags, payload)
            if flags & END_HEADERS:
                self._on_header_block(stream_id, flags, block)
            else:
                self._block = (stream_id, flags, bytearray(block))
        elif kind == CONTINUATION:
            if self._block is None or self._block[0] != stream_id:
                raise Http2ConnectionError(PROTOCOL_ERROR, "CONTINUATION without its HEADERS")
            self._block[2].extend(payload)
            if flags & END_HEADERS:
                block_stream, block_flags, block_bytes = self._block
                self._block = None
                self._on_header_block(block_stream, block_flags, bytes(block_bytes))
        elif kind == SETTINGS:
            self._on_settings(flags, stream_id, payload)
        elif kind == PING:
            if stream_id or len(payload) != 8:
                raise Http2ConnectionError(PROTOCOL_ERROR, "a malformed PING")
            if not flags & ACK:
                self._send(frame(PING, ACK, 0, payload))
        elif kind == WINDOW_UPDATE:
            self._on_window_update(stream_id, payload)
        elif kind == RST_STREAM:
            if not stream_id or len(payload) != 4:
                raise Http2ConnectionError(PROTOCOL_ERROR, "a malformed RST_STREAM")
            self._on_reset(stream_id, struct.unpack(">L", payload)[0])
        elif kind == GOAWAY:
            if stream_id or len(payload) < 8:
                raise Http2ConnectionError(PROTOCOL_ERROR, "a malformed GOAWAY")
            last_stream_id, code = struct.unpack_from(">LL", payload)
            self._goaway(last_stream_id & 0x7FFF_FFFF, code)
        elif kind == PUSH_PROMISE:
            raise Http2ConnectionError(PROTOCOL_ERROR, "a push we disabled")
        # PRIORITY and unknown frame types are ignored (RFC 9113 §5.5, §6.3).

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if not stream_id:
            raise Http2ConnectionError(PROTOCOL_ERROR, "DATA on stream 0")
        self._received += len(payload)
        stream = self._streams.get(stream_id)
        if stream is None:
            return  # a stream we gave up on (cancelled): its window is given back above
        stream.body += unpad(flags, payload)
        if flags & END_STREAM:
            self._finish(stream)
        elif payload:
            self._send(frame(WINDOW_UPDATE, 0, stream_id, code_payload(len(payload))))

    def _on_header_block(self, stream_id: int, flags: int, block: bytes) -> None:
        # Every block is decoded, even of a stream we gave up on: it may change the table.
        headers = decode_block(self._decoder, block)
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        if stream.status == 0 or stream.status < 200:  # the response's head (1xx: informational)
            status = next((v for n, v in headers if n == b":status"), b"")
            if not status.isdigit():
                self._reset(stream_id, stream, "a response without a valid :status")
                return
            stream.status = int(status)
            if stream.status >= 200:
                stream.headers = [(n, v) for n, v in headers if not n.startswith(b":")]
        # Trailers carry nothing FCM sends; they only end the stream.
        if flags & END_STREAM:
            self._finish(stream)

    def _finish(self, stream: _Stream) -> None:
        if not stream.done.done():
            if stream.status < 200:
                stream.done.set_exception(httpx.RemoteProtocolError("a response without a head"))
            else:
                stream.done.set_result(None)

    def _reset(self, stream_id: int, stream: _Stream, reason: str) -> None:
        self._send(frame(RST_STREAM, 0, stream_id, code_payload(PROTOCOL_ERROR)))
        if not stream.done.done():
            stream.done.set_exception(httpx.RemoteProtocolError(reason))

    def _on_reset(self, stream_id: int, code: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.done.done():
            return
        if code == REFUSED_STREAM:
            stream.done.set_exception(_NotProcessed())
        else:
            stream.done.set_exception(httpx.RemoteProtocolError(f"FCM reset the stream: {code}"))

    def _on_settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        pairs = settings_pairs(flags, stream_id, payload)
        if pairs is None:  # the server's ack of ours
            return
        for code, value in pairs:
            if code == MAX_CONCURRENT_STREAMS:  # the client's own: how many streams it opens
                self._server_streams = value
                self._stream_limit = min(self._max_streams, value)
            elif code == INITIAL_WINDOW_SIZE:
                for stream in self._streams.values():
                    stream.window += value - self._server_window
                self._server_window = value
            elif code == MAX_FRAME_SIZE:
                self._server_frame_size = value
            elif code == HEADER_TABLE_SIZE:
                self._encoder.header_table_size = value
        self._send(frame(SETTINGS, ACK, 0))
        self._wake_window_waiters()
        self._wake_slot_waiters()

    def _on_window_update(self, stream_id: int, payload: bytes) -> None:
        increment = window_increment(stream_id, payload)
        if not stream_id:
            self._send_window += increment
        elif stream_id in self._streams:
            self._streams[stream_id].window += increment
        self._wake_window_waiters()

    def _goaway(self, last_stream_id: int, error_code: int) -> None:
        """No new streams here; those above ``last_stream_id`` were never processed."""
        if self._failure is None:
            self._failure = httpx.RemoteProtocolError(f"FCM closed the connection: {error_code}")
        for stream_id, stream in self._streams.items():
            if stream_id > last_stream_id and not stream.done.done():
                stream.done.set_exception(_NotProcessed())
        self._wake_slot_waiters(everyone=True)
        self._close_when_idle()

    def _fail(self, error: Exception) -> None:
        """The connection is gone: every unfinished stream fails with ``error``."""
        if self._failure is None:
            self._failure = error
        for stream in self._streams.values():
            if not stream.done.done():
                stream.done.set_exception(error)
        self._wake_window_waiters()
        self._wake_slot_waiters(everyone=True)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    # -- writing ------------------------------------------------------------------------------

    def _send(self, frame: bytes) -> None:
        """Queues a frame; everything queued in a loop turn goes out in one write."""
        self._out.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        data, self._out = b"".join(self._out), []
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _wake_window_waiters(self) -> None:
        waiters, self._window_waiters = self._window_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _wake_slot_waiters(self, *, everyone: bool = False) -> None:
        free = len(self._slot_waiters) if everyone else self._stream_limit - len(self._streams)
        while free > 0 and self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

    def _close_when_idle(self) -> None:
        if not self._streams and self._transport is not None:
            self._transport.close()

    # -- one exchange -------------------------------------------------------------------------

    async def _slot(self) -> None:
        while self._failure is None and len(self._streams) >= self._stream_limit:
            waiter = self._loop.create_future()
            self._slot_waiters.append(waiter)
            self.waiting += 1
            try:
                await waiter
            finally:
                self.waiting -= 1
        if self._failure is not None:
            raise _NotProcessed  # nothing was sent on this connection

    async def exchange(
        self, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        await self._slot()
        stream_id = self._next_stream_id
        if stream_id > MAX_STREAM_ID:
            self._goaway(stream_id, NO_ERROR)  # ids used up: new requests go elsewhere
            raise _NotProcessed
        self._next_stream_id += 2
        stream = _Stream(self._loop.create_future(), self._server_window)
        self._streams[stream_id] = stream
        try:
            block = self._encoder.encode(headers)
            self._send(
                header_frames(stream_id, block, self._server_frame_size, end_stream=not body)
            )
            if body:
                await self._send_body(stream_id, stream, body)
            await stream.done
            return stream.status, stream.headers, bytes(stream.body)
        finally:
            del self._streams[stream_id]
            if not stream.done.done() and self._failure is None:
                # Cancelled (a timeout): tell the server, free the stream.
                self._send(frame(RST_STREAM, 0, stream_id, code_payload(CANCEL)))
            self._wake_slot_waiters()
            if self._failure is not None:
                self._close_when_idle()

    async def _send_body(self, stream_id: int, stream: _Stream, body: bytes) -> None:
        view = memoryview(body)
        while view:
            if stream.done.done():
                return  # the server answered (or failed) before taking the whole body
            room = min(self._send_window, stream.window, self._server_frame_size)
            if room <= 0:
                self._flush()
                waiter = self._loop.create_future()
                self._window_waiters.append(waiter)
                await asyncio.wait([waiter, stream.done], return_when=asyncio.FIRST_COMPLETED)
                continue
            chunk, view = view[:room], view[room:]
            self._send_window -= len(chunk)
            stream.window -= len(chunk)
            self._send(frame(DATA, 0 if view else END_STREAM, stream_id, bytes(chunk)))

    def close(self) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self._send(frame(GOAWAY, 0, 0, struct.pack(">LL", 0, NO_ERROR)))
        self._flush()
        self._transport.close()


class Http2Transport(httpx.AsyncBaseTransport):
    """HTTP/2 to one or more origins over up to ``connections`` connections each, at most
    ``streams_per_connection`` requests in flight per connection (the server's own limit, when
    lower, wins); requests beyond that wait in a queue that costs O(1) each.

    ``prior_knowledge`` speaks HTTP/2 on ``http://`` URLs without negotiation (h2c); ``https://``
    always negotiates ``h2`` by ALPN and refuses a server that does not speak it.
    """

    def __init__(
        self,
        *,
        connections: int = 1,
        streams_per_connection: int = 100,
        prior_knowledge: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_connections = connections
        self._streams = streams_per_connection
        self._prior_knowledge = prior_knowledge
        self._ssl_context = ssl_context
        self._pools: dict[tuple[bytes, bytes, int], list[_Connection]] = {}
        self._opening = asyncio.Lock()

    def _ssl(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
            self._ssl_context.set_alpn_protocols(["h2"])
        return self._ssl_context

    async def _open(
        self, scheme: bytes, host: str, port: int, connect_timeout_s: float | None
    ) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = scheme == b"https"
        try:
            async with asyncio.timeout(connect_timeout_s):
                transport, connection = await loop.create_connection(
                    lambda: _Connection(loop, self._streams),
                    host,
                    port,
                    ssl=self._ssl() if tls else None,
                    server_hostname=host if tls else None,
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from exc
        if tls:
            tls_object = transport.get_extra_info("ssl_object")
            if tls_object is None or tls_object.selected_alpn_protocol() != "h2":
                transport.close()
                raise httpx.ConnectError(f"{host}:{port} did not negotiate HTTP/2 (ALPN h2)")
        return connection

    async def _connection(self, url: httpx.URL, connect_timeout_s: float | None) -> _Connection:
        key = (url.raw_scheme, url.raw_host, url.port or (443 if url.scheme == "https" else 80))
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = []
        best = min((c for c in pool if c.usable), key=lambda c: c.load, default=None)
        if best is not None and (best.load < self._streams or len(pool) >= self._max_connections):
            return best
        async with self._opening:
            pool[:] = [c for c in pool if c.usable]
            best = min(pool, key=lambda c: c.load, default=None)
            if best is not None and (
                best.load < self._streams or len(pool) >= self._max_connections
            ):
                return best
            connection = await self._open(key[0], url.host, key[2], connect_timeout_s)
            pool.append(connection)
            return connection

    def wire_headers(self, request: httpx.Request) -> list[tuple[bytes, bytes]]:
        """The HTTP/2 header list this transport sends for ``request`` (pseudo-headers first,
        names lowercased, connection-specific headers dropped)."""
        url = request.url
        authority = url.raw_host if url.port is None else b"%s:%d" % (url.raw_host, url.port)
        headers = [
            (b":method", request.method.encode("ascii")),
            (b":scheme", url.raw_scheme),
            (b":authority", authority),
            (b":path", url.raw_path),
        ]
        headers.extend(
            (name.lower(), value)
            for name, value in request.headers.raw
            if name.lower() not in _DROPPED
        )
        return headers

    async def exchange(
        self,
        url: httpx.URL,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeouts: dict[str, float | None],
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Sends one request (``headers`` as ``wire_headers`` makes them) and returns the
        status, the response headers and the whole body; what ``handle_async_request`` does
        below httpx's objects, for a caller that builds the header list once."""
        if url.scheme == "http" and not self._prior_knowledge:
            raise httpx.UnsupportedProtocol("http:// needs prior_knowledge (h2c) on this transport")
        for _ in range(_RETRIES):
            connection = await self._connection(url, timeouts.get("connect"))
            try:
                async with asyncio.timeout(timeouts.get("read")):
                    return await connection.exchange(headers, body)
            except _NotProcessed:
                continue
            except TimeoutError as exc:
                raise httpx.ReadTimeout(f"no answer from {url.host} in time") from exc
        raise httpx.RemoteProtocolError(
            f"{url.host} refused the request on {_RETRIES} connections in a row (GOAWAY)"
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme == "http" and not self._prior_knowledge:
            raise httpx.UnsupportedProtocol("http:// needs prior_knowledge (h2c) on this transport")
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        body = await request.aread()
        status, response_headers, content = await self.exchange(
            url, self.wire_headers(request), body, timeouts
        )
        return httpx.Response(
            status,
            headers=response_headers,
            content=content,
            extensions={"http_version": b"HTTP/2"},
        )

    async def aclose(self) -> None:
        for pool in self._pools.values():
            for connection in pool:
                connection.close()
        self._pools.clear()
