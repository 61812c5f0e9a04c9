"""Serving an ASGI stand-in over cleartext HTTP/2 with prior knowledge (h2c), and HTTP/1.1 on
the same port.

FCM speaks HTTP/2 and firebase-admin's ``send_each_async`` multiplexes its requests over it; a
stand-in that only speaks HTTP/1.1 measures a connection pool FCM clients never use. Google's
OAuth token endpoint is asked over HTTP/1.1 (google-auth uses ``requests``), so a connection that
does not open with the HTTP/2 preface is served as HTTP/1.1 (h11). Minimal by design: one request
body in, one response out per stream, which is all FCM's API needs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, cast

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h11
import hpack

Scope = MutableMapping[str, Any]
App = Callable[
    [Scope, Callable[[], Awaitable[MutableMapping[str, Any]]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class _RememberingDecoder(hpack.Decoder):
    """hpack's decoder that remembers header blocks which neither use nor change the dynamic
    table — static references and literals that are not indexed, what push's sender sends: such
    a block decodes to the same headers every time, so each distinct one is decoded once.
    Blocks from clients that index (httpx, curl) take hpack's full path, as before."""

    _MEMO_SIZE = 1024

    def __init__(self) -> None:
        super().__init__()
        self._memo: dict[tuple[bytes, bool, int, int], list[Any]] = {}

    def decode(self, data: bytes, raw: bool = False) -> Any:
        table = self.header_table
        if table.dynamic_entries:
            return super().decode(data, raw)
        key = (bytes(data), raw, table.maxsize, self.max_header_list_size)
        headers = self._memo.get(key)
        if headers is None:
            headers = list(super().decode(data, raw))
            if table.dynamic_entries or (table.maxsize, self.max_header_list_size) != key[2:]:
                return headers  # the block changed the table: not a pure function of its bytes
            if len(self._memo) >= self._MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = headers
        return list(headers)


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


class _Protocol(asyncio.Protocol):
    """One connection: HTTP/2 if it opens with the preface, else HTTP/1.1."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._transport: asyncio.Transport | None = None
        self._head = b""
        self._h2: h2.connection.H2Connection | None = None
        self._h11: h11.Connection | None = None
        self._requests: dict[int, tuple[list[tuple[bytes, bytes]], bytearray]] = {}
        self._window = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._h11_busy = False
        # The request being read: its head and body may come in separate packets.
        self._h11_request: h11.Request | None = None
        self._h11_body = bytearray()
        self._flush_scheduled = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

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
                self._h2 = h2.connection.H2Connection(
                    h2.config.H2Configuration(
                        client_side=False,
                        header_encoding=None,
                        # What clients send is still validated; our own answers need not be.
                        validate_outbound_headers=False,
                        normalize_outbound_headers=False,
                    )
                )
                decoder = _RememberingDecoder()
                decoder.max_header_list_size = self._h2.decoder.max_header_list_size
                self._h2.decoder = decoder
                self._h2.initiate_connection()
            else:
                self._h11 = h11.Connection(h11.SERVER)
        if self._h2 is not None:
            self._h2_received(self._h2, data)
        elif self._h11 is not None:
            self._h11.receive_data(data)
            self._h11_next()

    # -- HTTP/2 -------------------------------------------------------------------------------

    def _h2_received(self, conn: h2.connection.H2Connection, data: bytes) -> None:
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._write(conn.data_to_send())
            if self._transport is not None:
                self._transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                headers = [(bytes(k), bytes(v)) for k, v in event.headers]
                self._requests[event.stream_id] = (headers, bytearray())
            elif isinstance(event, h2.events.DataReceived):
                self._requests[event.stream_id][1].extend(event.data)
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self._spawn(self._h2_respond(conn, event.stream_id))
            elif isinstance(event, h2.events.WindowUpdated):
                self._window.set()
            elif isinstance(event, h2.events.ConnectionTerminated) and self._transport:
                self._transport.close()
        self._flush_soon()

    def _flush_soon(self) -> None:
        """Writes what h2 has queued once this loop turn is over: one write for every stream
        answered in the turn, not one per stream."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._h2 is not None:
            self._write(self._h2.data_to_send())

    async def _h2_respond(self, conn: h2.connection.H2Connection, stream_id: int) -> None:
        raw_headers, body = self._requests.pop(stream_id)
        pseudo = {k.decode(): v.decode() for k, v in raw_headers if k.startswith(b":")}
        headers = [(k, v) for k, v in raw_headers if not k.startswith(b":")]
        status, out_headers, payload = await _call(
            self._app, pseudo.get(":method", "GET"), pseudo.get(":path", "/"), headers, bytes(body)
        )
        conn.send_headers(
            stream_id,
            [
                (b":status", str(status).encode()),
                *[(k, v) for k, v in out_headers if k != b"connection"],
            ],
        )
        while conn.local_flow_control_window(stream_id) < len(payload):
            self._window.clear()
            self._write(conn.data_to_send())
            await self._window.wait()
        conn.send_data(stream_id, payload, end_stream=True)
        self._flush_soon()

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


async def serve_h2c(app: App, host: str, port: int) -> None:
    """Serves ``app`` over h2c (and HTTP/1.1) on host:port until cancelled."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Protocol(app), host, port)
    async with server:
        await server.serve_forever()


@contextmanager
def serve_h2c_in_thread(app: App, port: int) -> Iterator[str]:
    """Serves ``app`` over h2c (and HTTP/1.1) on 127.0.0.1:port from a background thread with its
    own event loop, until the block ends; yields the base URL."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    servers: list[asyncio.Server] = []

    async def start() -> None:
        servers.append(await loop.create_server(lambda: _Protocol(app), "127.0.0.1", port))

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
