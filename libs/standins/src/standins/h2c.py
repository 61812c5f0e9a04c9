"""Serving an ASGI stand-in over cleartext HTTP/2 with prior knowledge (h2c), and HTTP/1.1 on
the same port.

FCM speaks HTTP/2 and firebase-admin's ``send_each_async`` multiplexes its requests over it; a
stand-in that only speaks HTTP/1.1 measures a connection pool FCM clients never use. Google's
OAuth token endpoint is asked over HTTP/1.1 (google-auth uses ``requests``), so a connection that
does not open with the HTTP/2 preface is served as HTTP/1.1 (h11). Minimal by design: one request
body in, one response out per stream, which is all FCM's API needs.

The HTTP/2 side is a lean server of its own (``_H2Server``): it is part of the machine the push
bench measures, and the ``h2`` state machine cost it ~60% of its CPU per message. It still speaks
RFC 9113 as a server must — SETTINGS and their acks, PING, flow control both ways, CONTINUATION,
padding, the stream-id and concurrency rules (REFUSED_STREAM above 100 streams), RST_STREAM and
GOAWAY — and validates every request's header block (pseudo-headers, lowercase names, no
connection-specific headers), once per distinct block. HPACK is hpack's own decoder.
"""

from __future__ import annotations

import asyncio
import inspect
import struct
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, cast

import h11

from servicekit.http2wire import (
    ACK,
    CONTINUATION,
    DATA,
    DEFAULT_FRAME_SIZE,
    DEFAULT_WINDOW,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADER_TABLE_SIZE,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_CONCURRENT_STREAMS,
    MAX_FRAME_SIZE,
    MAX_HEADER_LIST_SIZE,
    PING,
    PREFACE,
    PRIORITY,
    PROTOCOL_ERROR,
    PUSH_PROMISE,
    REFUSED_STREAM,
    RST_STREAM,
    SETTINGS,
    STREAM_CLOSED,
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

Scope = MutableMapping[str, Any]
App = Callable[
    [Scope, Callable[[], Awaitable[MutableMapping[str, Any]]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]

# The names tests and older callers import from here (the wire module is their home now).

Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, Headers, bytes]
#: A request handler: method, path (with the query), headers without pseudo-headers, body →
#: status, headers, body — or an awaitable of that (an answer that must wait).
Handler = Callable[[str, str, Headers, bytes], Answer | Awaitable[Answer]]


async def _call(
    app: App, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Runs one request through the ASGI app; returns status, headers and the whole body."""
    path, _, query = target.partition("?")
    scope: Scope = {
        "type": "http",
        "http_version": "2",
        "method": method,
        "path": path,
        "query_string": query.encode(),
        "headers": headers,
    }
    sent_body = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent_body
        if sent_body:
            await asyncio.Event().wait()  # no disconnects to report
        sent_body = True
        return {"type": "http.request", "body": body, "more_body": False}

    status = 500
    out_headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status, out_headers
        if message["type"] == "http.response.start":
            status = message["status"]
            out_headers = [(k.lower(), v) for k, v in message.get("headers", [])]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, out_headers, b"".join(chunks)


def _asgi_handler(app: App) -> Handler:
    def handle(method: str, target: str, headers: Headers, body: bytes) -> Awaitable[Answer]:
        return _call(app, method, target, headers, body)

    return handle


_MAX_STREAMS = 100  # what h2 (and FCM) advertise
_HEADER_LIST_SIZE = 65_536
_CONNECTION_HEADERS = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
_REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path"})


def _request_head(headers: Headers) -> tuple[str, str, Headers] | None:
    """A request's method, path and regular headers, or None when the block is malformed
    (RFC 9113 §8.2, §8.3): pseudo-headers first, known, once each, :method/:scheme/:path
    present; names lowercase; no connection-specific header; ``te`` only ``trailers``."""
    pseudo: dict[bytes, bytes] = {}
    regular: Headers = []
    for name, value in headers:
        if not name or name != name.lower() or b"\0" in value or b"\r" in value or b"\n" in value:
            return None
        if name.startswith(b":"):
            if regular or name not in _REQUEST_PSEUDO or name in pseudo:
                return None
            pseudo[name] = value
        elif name in _CONNECTION_HEADERS or (name == b"te" and value != b"trailers"):
            return None
        else:
            regular.append((name, value))
    if not all(pseudo.get(n) for n in (b":method", b":scheme", b":path")):
        return None
    try:
        return pseudo[b":method"].decode("ascii"), pseudo[b":path"].decode("ascii"), regular
    except UnicodeDecodeError:
        return None


class _Stream:
    __slots__ = ("body", "ended", "headers", "method", "path", "window")

    def __init__(self, method: str, path: str, headers: Headers, window: int) -> None:
        self.method, self.path, self.headers = method, path, headers
        self.body = bytearray()
        self.window = window  # what we may still send on this stream
        self.ended = False  # the request is complete (END_STREAM)


class _H2Server:
    """The server side of one HTTP/2 connection (after the client's preface)."""

    def __init__(
        self,
        transport: asyncio.Transport,
        handler: Handler,
        spawn: Callable[[Awaitable[None]], None],
    ) -> None:
        self._transport = transport
        self._handler = handler
        self._spawn = spawn
        self._loop = asyncio.get_running_loop()
        self._buffer = b""
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._decoder = RememberingDecoder()
        self._decoder.max_header_list_size = _HEADER_LIST_SIZE
        self._encoder = StatelessEncoder()
        self._heads: dict[bytes, tuple[str, str, Headers] | None] = {}
        self._streams: dict[int, _Stream] = {}
        self._last_stream = 0
        self._block: tuple[int, int, bytearray] | None = None  # stream, flags, header block
        self._send_window = DEFAULT_WINDOW  # the connection's, for our DATA
        self._stream_window = DEFAULT_WINDOW  # the client's SETTINGS_INITIAL_WINDOW_SIZE
        self._max_frame = DEFAULT_FRAME_SIZE  # the client's SETTINGS_MAX_FRAME_SIZE
        self._unacked = 0  # DATA bytes received and not yet given back by WINDOW_UPDATE
        self._blocked: dict[int, bytes] = {}  # stream → what flow control still holds back
        self.closed = False
        settings = struct.pack(
            ">HLHLHL",
            MAX_CONCURRENT_STREAMS,
            _MAX_STREAMS,
            MAX_HEADER_LIST_SIZE,
            _HEADER_LIST_SIZE,
            INITIAL_WINDOW_SIZE,
            DEFAULT_WINDOW,
        )
        self._send(frame(SETTINGS, 0, 0, settings))

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
        if data and not self._transport.is_closing():
            self._transport.write(data)

    def _goaway(self, code: int, reason: str) -> None:
        self._send(
            frame(GOAWAY, 0, 0, struct.pack(">LL", self._last_stream, code) + reason.encode())
        )
        self._flush()
        self._transport.close()
        self.closed = True

    # -- reading ------------------------------------------------------------------------------

    def received(self, data: bytes) -> None:
        if self.closed:
            return
        buffer = self._buffer + data if self._buffer else data
        try:
            used = read_frames(buffer, self._on_frame)
        except Http2ConnectionError as exc:
            self._goaway(exc.code, str(exc))
            return
        self._buffer = buffer[used:]
        if self._unacked:
            # Give the client's DATA back to its connection window at once: the body is
            # buffered in full anyway (a stream's own window is returned in _on_data).
            self._send(frame(WINDOW_UPDATE, 0, 0, code_payload(self._unacked)))
            self._unacked = 0

    def _on_frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:  # noqa: PLR0912
        if self._block is not None and kind != CONTINUATION:
            raise Http2ConnectionError(PROTOCOL_ERROR, "a header block was interrupted")
        if kind == DATA:
            self._on_data(flags, stream_id, payload)
        elif kind == HEADERS:
            self._on_headers(flags, stream_id, payload)
        elif kind == CONTINUATION:
            if self._block is None or self._block[0] != stream_id:
                raise Http2ConnectionError(PROTOCOL_ERROR, "CONTINUATION without its HEADERS")
            self._block[2].extend(payload)
            if flags & END_HEADERS:
                block_stream, block_flags, block = self._block
                self._block = None
                self._on_header_block(block_stream, block_flags, bytes(block))
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
            self._streams.pop(stream_id, None)
            self._blocked.pop(stream_id, None)
        elif kind == GOAWAY:
            self._transport.close()
            self.closed = True
        elif kind == PUSH_PROMISE:
            raise Http2ConnectionError(PROTOCOL_ERROR, "clients do not push")
        elif kind == PRIORITY and (not stream_id or len(payload) != 5):
            raise Http2ConnectionError(PROTOCOL_ERROR, "a malformed PRIORITY")
        # Other PRIORITY frames and unknown frame types are ignored (RFC 9113 §5.5).

    def _on_headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if not stream_id:
            raise Http2ConnectionError(PROTOCOL_ERROR, "HEADERS on stream 0")
        block = header_fragment(flags, payload)
        if flags & END_HEADERS:
            self._on_header_block(stream_id, flags, block)
        else:
            self._block = (stream_id, flags, bytearray(block))

    def _on_header_block(self, stream_id: int, flags: int, block: bytes) -> None:
        # Every block is decoded, even one we refuse: it may change HPACK's table.
        headers = decode_block(self._decoder, block)
        if stream_id in self._streams:  # trailers
            stream = self._streams[stream_id]
            if stream.ended or not flags & END_STREAM:
                raise Http2ConnectionError(PROTOCOL_ERROR, "HEADERS on a closed or open stream")
            self._end(stream_id, stream)
            return
        if stream_id % 2 == 0 or stream_id <= self._last_stream:
            raise Http2ConnectionError(PROTOCOL_ERROR, "a stream id that is not new and odd")
        self._last_stream = stream_id
        key = block if not self._decoder.header_table.dynamic_entries else b""
        head = self._heads.get(key) if key else None
        if head is None:
            head = _request_head([(bytes(n), bytes(v)) for n, v in headers])
            if key and len(self._heads) < 1024:
                self._heads[key] = head
        if head is None:
            self._send(frame(RST_STREAM, 0, stream_id, code_payload(PROTOCOL_ERROR)))
            return
        if len(self._streams) >= _MAX_STREAMS:
            self._send(frame(RST_STREAM, 0, stream_id, code_payload(REFUSED_STREAM)))
            return
        stream = _Stream(*head, window=self._stream_window)
        self._streams[stream_id] = stream
        if flags & END_STREAM:
            self._end(stream_id, stream)

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if not stream_id:
            raise Http2ConnectionError(PROTOCOL_ERROR, "DATA on stream 0")
        self._unacked += len(payload)
        stream = self._streams.get(stream_id)
        if stream is None:
            if stream_id > self._last_stream:
                raise Http2ConnectionError(PROTOCOL_ERROR, "DATA on an idle stream")
            return  # a stream we reset or answered: ignored (RFC 9113 §5.1, closed)
        if stream.ended:
            self._send(frame(RST_STREAM, 0, stream_id, code_payload(STREAM_CLOSED)))
            return
        stream.body += unpad(flags, payload)
        if flags & END_STREAM:
            self._end(stream_id, stream)
        elif payload:
            self._send(frame(WINDOW_UPDATE, 0, stream_id, code_payload(len(payload))))

    def _on_settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        pairs = settings_pairs(flags, stream_id, payload)
        if pairs is None:  # the client's ack of ours
            return
        for code, value in pairs:  # a server has no use for the client's MAX_CONCURRENT_STREAMS
            if code == INITIAL_WINDOW_SIZE:
                for stream in self._streams.values():
                    stream.window += value - self._stream_window
                self._stream_window = value
            elif code == MAX_FRAME_SIZE:
                self._max_frame = value
            elif code == HEADER_TABLE_SIZE:
                self._encoder.header_table_size = value
        self._send(frame(SETTINGS, ACK, 0))
        self._send_blocked()

    def _on_window_update(self, stream_id: int, payload: bytes) -> None:
        increment = window_increment(stream_id, payload)
        if not stream_id:
            self._send_window += increment
        elif stream_id in self._streams:
            self._streams[stream_id].window += increment
        self._send_blocked()

    # -- answering ----------------------------------------------------------------------------

    def _end(self, stream_id: int, stream: _Stream) -> None:
        stream.ended = True
        answer = self._handler(stream.method, stream.path, stream.headers, bytes(stream.body))
        if inspect.isawaitable(answer):
            self._spawn(self._answer_later(stream_id, answer))
        else:
            self._answer(stream_id, answer)

    async def _answer_later(self, stream_id: int, answer: Awaitable[Answer]) -> None:
        self._answer(stream_id, await answer)

    def _answer(self, stream_id: int, answer: Answer) -> None:
        if self.closed or stream_id not in self._streams:
            return  # the client reset the stream meanwhile
        status, headers, body = answer
        block = self._encoder.encode(
            [
                (b":status", str(status).encode()),
                *[(k, v) for k, v in headers if k != b"connection"],
            ]
        )
        self._send(header_frames(stream_id, block, self._max_frame, end_stream=not body))
        if not body:
            del self._streams[stream_id]
            return
        self._blocked[stream_id] = body
        self._send_blocked()

    def _send_blocked(self) -> None:
        """Sends what flow control now allows of the bodies waiting for window."""
        for stream_id in list(self._blocked):
            stream = self._streams.get(stream_id)
            if stream is None:
                del self._blocked[stream_id]
                continue
            body = self._blocked[stream_id]
            while body:
                room = min(self._send_window, stream.window, self._max_frame)
                if room <= 0:
                    break
                chunk, body = body[:room], body[room:]
                self._send_window -= len(chunk)
                stream.window -= len(chunk)
                self._send(frame(DATA, 0 if body else END_STREAM, stream_id, chunk))
            if body:
                self._blocked[stream_id] = body
            else:
                del self._blocked[stream_id]
                del self._streams[stream_id]


class _Protocol(asyncio.Protocol):
    """One connection: HTTP/2 if it opens with the preface, else HTTP/1.1."""

    def __init__(self, app: App, handler: Handler | None = None) -> None:
        self._app = app
        self._handler = handler
        self._transport: asyncio.Transport | None = None
        self._head = b""
        self._h2: _H2Server | None = None
        self._h11: h11.Connection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._h11_busy = False
        # The request being read: its head and body may come in separate packets.
        self._h11_request: h11.Request | None = None
        self._h11_body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if self._h2 is not None:
            self._h2.closed = True

    def _write(self, data: bytes) -> None:
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def data_received(self, data: bytes) -> None:
        if self._h2 is None and self._h11 is None:
            self._head += data
            if len(self._head) < len(PREFACE) and PREFACE.startswith(self._head):
                return  # not enough bytes to tell yet
            data, self._head = self._head, b""
            if data.startswith(PREFACE):
                assert self._transport is not None
                handler = self._handler or _asgi_handler(self._app)
                self._h2 = _H2Server(self._transport, handler, self._spawn)
                data = data[len(PREFACE) :]
            else:
                self._h11 = h11.Connection(h11.SERVER)
        if self._h2 is not None:
            self._h2.received(data)
        elif self._h11 is not None:
            self._h11.receive_data(data)
            self._h11_next()

    # -- HTTP/1.1 -----------------------------------------------------------------------------

    def _h11_next(self) -> None:
        """Starts answering the next complete request (HTTP/1.1 answers in order, one at a time)."""
        conn = self._h11
        if conn is None or self._h11_busy:
            return
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                if self._transport is not None:
                    self._transport.close()
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.ConnectionClosed):
                if self._transport is not None:
                    self._transport.close()
                return
            if isinstance(event, h11.Request):
                self._h11_request, self._h11_body = event, bytearray()
            elif isinstance(event, h11.Data):
                self._h11_body.extend(event.data)
            elif isinstance(event, h11.EndOfMessage) and self._h11_request is not None:
                self._h11_busy = True
                request, self._h11_request = self._h11_request, None
                self._spawn(self._h11_respond(conn, request, bytes(self._h11_body)))
                return

    async def _h11_respond(self, conn: h11.Connection, request: h11.Request, body: bytes) -> None:
        status, headers, payload = await _call(
            self._app,
            request.method.decode(),
            request.target.decode(),
            [(bytes(k), bytes(v)) for k, v in request.headers],
            body,
        )
        self._write(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
        self._write(conn.send(h11.Data(data=payload)) or b"")
        self._write(conn.send(h11.EndOfMessage()) or b"")
        self._h11_busy = False
        if conn.our_state is h11.MUST_CLOSE:
            if self._transport is not None:
                self._transport.close()
            return
        self._h11_next()


async def serve_h2c(app: App, host: str, port: int, handler: Handler | None = None) -> None:
    """Serves ``app`` over h2c (and HTTP/1.1) on host:port until cancelled; HTTP/2 requests go
    to ``handler`` when one is given (the same answers as ``app``, without ASGI's per-request
    objects)."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Protocol(app, handler), host, port)
    async with server:
        await server.serve_forever()


@contextmanager
def serve_h2c_in_thread(app: App, port: int, handler: Handler | None = None) -> Iterator[str]:
    """Serves ``app`` over h2c (and HTTP/1.1) on 127.0.0.1:port from a background thread with its
    own event loop, until the block ends; yields the base URL."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    servers: list[asyncio.Server] = []

    async def start() -> None:
        servers.append(await loop.create_server(lambda: _Protocol(app, handler), "127.0.0.1", port))

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        finally:
            started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name=f"standin-h2c-{port}", daemon=True)
    thread.start()
    started.wait(10)
    if not servers:
        raise RuntimeError(f"the h2c stand-in did not start on port {port}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:

        async def stop() -> None:
            servers[0].close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
