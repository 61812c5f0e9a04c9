"""A lean HTTP/2 transport for the httpx client under firebase-admin's ``send_each_async``.

httpx's default transport (httpcore on anyio) spent most of a send's CPU on its own layers: a
pool that rescans its queue per request, anyio locks and checkpoints around every read and
write, and one socket write per request. This transport speaks the same HTTP/2 (the ``h2``
state machine httpcore uses) straight on an asyncio protocol: one write per loop turn for every
stream that has something to send, responses read as they come, no pool queue to rescan.

It is an ``httpx.AsyncBaseTransport`` — httpx's documented extension point — so everything above
it (firebase-admin's request building, google-auth's Bearer, error mapping) is unchanged.
``https://`` negotiates HTTP/2 by ALPN, as FCM does; ``http://`` uses HTTP/2 with prior knowledge
(h2c: the local stand-in). Requests the server provably did not process (streams above a GOAWAY's
last stream id, or refused) are sent again on a fresh connection; any other failure is raised
as the httpx error it is, and the caller decides (push retries it later).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from typing import Any, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack
import httpx

# Connection-specific headers HTTP/2 forbids (RFC 9113 §8.2.2); httpx adds none but "host"
# (carried as :authority).
_DROPPED = frozenset({b"host", b"connection", b"keep-alive", b"proxy-connection"})
_DROPPED |= frozenset({b"transfer-encoding", b"upgrade"})
_WINDOW = 16 * 1024 * 1024  # what we let the server send before it waits for our acks
_RETRIES = 3  # sends of a request the server did not process


class _StatelessEncoder(hpack.Encoder):
    """HPACK that never adds to the dynamic table: each header is a static-table reference or a
    literal marked never-indexed (RFC 7541 §6.2.3), so a header block depends only on its
    headers and a repeated list (FCM's requests differ in content-length alone) is encoded once.
    A few hundred bytes more per request on the wire than indexing would send, for most of
    HPACK's CPU."""

    _MEMO_SIZE = 512

    def __init__(self) -> None:
        super().__init__()
        self._memo: dict[tuple[Any, ...], bytes] = {}

    def encode(self, headers: Any, huffman: bool = False) -> bytes:
        # Plain literals, no Huffman coding: the server copies them instead of decoding them
        # bit by bit for every request (a literal is sent each time, not an index).
        if self.table_size_changes:  # the block must start with a size update: not memoized
            return super().encode(_never_indexed(headers), huffman=False)
        key = tuple(headers)
        block = self._memo.get(key)
        if block is None:
            if len(self._memo) >= self._MEMO_SIZE:
                self._memo.clear()
            block = self._memo[key] = super().encode(_never_indexed(key), huffman=False)
        return block


def _never_indexed(headers: Any) -> list[hpack.NeverIndexedHeaderTuple]:
    return [hpack.NeverIndexedHeaderTuple(h[0], h[1]) for h in headers]


class _NotProcessed(Exception):
    """The server did not process this stream (GOAWAY above it, or REFUSED_STREAM): safe to
    send again on another connection."""


class _Stream:
    __slots__ = ("body", "done", "headers", "status")

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()


class _Connection(asyncio.Protocol):
    """One HTTP/2 connection: many streams at once, at most ``max_streams`` of ours."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_streams: int) -> None:
        self._loop = loop
        self._h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=True,
                header_encoding=None,
                # httpx already validated what we send, and we lowercase the names ourselves.
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        self._h2.encoder = _StatelessEncoder()
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, _Stream] = {}
        self._max_streams = max_streams
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._window_waiters: list[asyncio.Future[None]] = []
        self._flush_scheduled = False
        self._failure: Exception | None = None  # set once the connection cannot take more
        self.waiting = 0  # requests queued for a stream slot
        self._stream_limit = 0
        self._update_limit()

    # -- state --------------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return self._failure is None

    @property
    def load(self) -> int:
        return len(self._streams) + self.waiting

    def _limit(self) -> int:
        return self._stream_limit

    def _update_limit(self) -> None:
        # Kept, not read from h2's settings object on every request (a lookup chain per call).
        self._stream_limit = min(self._max_streams, self._h2.remote_settings.max_concurrent_streams)

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._h2.initiate_connection()
        self._h2.update_settings(
            {
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW,
            }
        )
        self._h2.increment_flow_control_window(_WINDOW - 65_535)
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._flush()
            self._fail(httpx.RemoteProtocolError(f"HTTP/2 protocol error from FCM: {exc!r}"))
            return
        for event in events:
            self._on_event(event)
        self._schedule_flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(httpx.ReadError(f"the HTTP/2 connection closed: {exc or 'by the server'}"))

    def _on_event(self, event: h2.events.Event) -> None:  # noqa: PLR0912 — one branch per event
        kind = type(event)
        if kind is h2.events.DataReceived:
            assert isinstance(event, h2.events.DataReceived)
            stream = self._streams.get(event.stream_id) if event.stream_id else None
            if stream is not None and event.data:
                stream.body += event.data
            if event.stream_id:
                self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif kind is h2.events.ResponseReceived:
            assert isinstance(event, h2.events.ResponseReceived)
            stream = self._streams.get(event.stream_id) if event.stream_id else None
            if stream is not None:
                for name, value in event.headers or ():
                    if name == b":status":
                        stream.status = int(value)
                    else:
                        stream.headers.append((bytes(name), bytes(value)))
        elif kind is h2.events.StreamEnded:
            assert isinstance(event, h2.events.StreamEnded)
            stream = self._streams.get(event.stream_id) if event.stream_id else None
            if stream is not None and not stream.done.done():
                stream.done.set_result(None)
        elif kind is h2.events.StreamReset:
            assert isinstance(event, h2.events.StreamReset)
            stream = self._streams.get(event.stream_id) if event.stream_id else None
            if stream is not None and not stream.done.done():
                if event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM:
                    stream.done.set_exception(_NotProcessed())
                else:
                    stream.done.set_exception(
                        httpx.RemoteProtocolError(f"FCM reset the stream: {event.error_code!r}")
                    )
        elif kind is h2.events.WindowUpdated:
            self._wake_window_waiters()
        elif kind is h2.events.RemoteSettingsChanged:
            self._update_limit()
            self._wake_window_waiters()
            self._wake_slot_waiters()
        elif kind is h2.events.ConnectionTerminated:
            assert isinstance(event, h2.events.ConnectionTerminated)
            self._goaway(event.last_stream_id or 0, event.error_code)

    def _goaway(self, last_stream_id: int, error_code: Any) -> None:
        """No new streams here; those above ``last_stream_id`` were never processed."""
        if self._failure is None:
            self._failure = httpx.RemoteProtocolError(f"FCM closed the connection: {error_code!r}")
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

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Writes everything h2 has queued: one write for all streams of this loop turn."""
        self._flush_scheduled = False
        data = self._h2.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _wake_window_waiters(self) -> None:
        waiters, self._window_waiters = self._window_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _wake_slot_waiters(self, *, everyone: bool = False) -> None:
        free = len(self._slot_waiters) if everyone else self._limit() - len(self._streams)
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
        while self._failure is None and len(self._streams) >= self._limit():
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
        stream_id = self._h2.get_next_available_stream_id()
        stream = _Stream(self._loop.create_future())
        self._streams[stream_id] = stream
        try:
            try:
                self._h2.send_headers(stream_id, headers, end_stream=not body)
                if body:
                    await self._send_body(stream_id, stream, body)
            except h2.exceptions.H2Error as exc:
                raise httpx.RemoteProtocolError(f"cannot send on this connection: {exc!r}") from exc
            self._schedule_flush()
            await stream.done
            return stream.status, stream.headers, bytes(stream.body)
        finally:
            del self._streams[stream_id]
            if not stream.done.done() and self._failure is None:
                # Cancelled (a timeout): tell the server, free the stream.
                with contextlib.suppress(h2.exceptions.H2Error):
                    self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
                self._schedule_flush()
            self._wake_slot_waiters()
            if self._failure is not None:
                self._close_when_idle()

    async def _send_body(self, stream_id: int, stream: _Stream, body: bytes) -> None:
        view = memoryview(body)
        while view:
            if stream.done.done():
                return  # the server answered (or failed) before taking the whole body
            try:
                room = min(
                    self._h2.local_flow_control_window(stream_id), self._h2.max_outbound_frame_size
                )
            except h2.exceptions.StreamClosedError:
                return
            if room <= 0:
                self._flush()
                waiter = self._loop.create_future()
                self._window_waiters.append(waiter)
                await asyncio.wait([waiter, stream.done], return_when=asyncio.FIRST_COMPLETED)
                continue
            chunk, view = view[:room], view[room:]
            self._h2.send_data(stream_id, bytes(chunk), end_stream=not view)

    def close(self) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        try:
            self._h2.close_connection()
            self._flush()
        except h2.exceptions.H2Error:
            pass
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
