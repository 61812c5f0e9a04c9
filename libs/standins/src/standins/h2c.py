"""Serving an ASGI stand-in over cleartext HTTP/2 with prior knowledge (h2c).

FCM speaks HTTP/2 and firebase-admin's ``send_each_async`` multiplexes its requests over it; a
stand-in that only speaks HTTP/1.1 measures a connection pool FCM clients never use. Minimal by
design: one request body in, one response out per stream, which is all FCM's API needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import h2.config
import h2.connection
import h2.events

Scope = MutableMapping[str, Any]
App = Callable[
    [Scope, Callable[[], Awaitable[MutableMapping[str, Any]]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class _H2Protocol(asyncio.Protocol):
    def __init__(self, app: App) -> None:
        self._app = app
        self._conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self._transport: asyncio.Transport | None = None
        self._requests: dict[int, tuple[dict[str, str], bytearray]] = {}
        self._window = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._conn.initiate_connection()
        self._flush()

    def _flush(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(self._conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        try:
            events = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._flush()
            if self._transport is not None:
                self._transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                headers = {str(k): str(v) for k, v in event.headers}
                self._requests[event.stream_id] = (headers, bytearray())
            elif isinstance(event, h2.events.DataReceived):
                self._requests[event.stream_id][1].extend(event.data)
                self._conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                task = asyncio.ensure_future(self._respond(event.stream_id))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif isinstance(event, h2.events.WindowUpdated):
                self._window.set()
            elif isinstance(event, h2.events.ConnectionTerminated) and self._transport:
                self._transport.close()
        self._flush()

    async def _respond(self, stream_id: int) -> None:
        headers, body = self._requests.pop(stream_id)
        path, _, query = headers.get(":path", "/").partition("?")
        scope: Scope = {
            "type": "http",
            "http_version": "2",
            "method": headers.get(":method", "GET"),
            "path": path,
            "query_string": query.encode(),
            "headers": [
                (k.encode(), v.encode()) for k, v in headers.items() if not k.startswith(":")
            ],
        }
        sent_body = False

        async def receive() -> MutableMapping[str, Any]:
            nonlocal sent_body
            if sent_body:
                await asyncio.Event().wait()  # no disconnects to report
            sent_body = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        status = 500
        out_headers: list[tuple[str, str]] = []
        chunks: list[bytes] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status, out_headers
            if message["type"] == "http.response.start":
                status = message["status"]
                out_headers = [
                    (k.decode().lower(), v.decode()) for k, v in message.get("headers", [])
                ]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self._app(scope, receive, send)
        payload = b"".join(chunks)
        self._conn.send_headers(
            stream_id,
            [(":status", str(status)), *[(k, v) for k, v in out_headers if k != "connection"]],
        )
        while self._conn.local_flow_control_window(stream_id) < len(payload):
            self._window.clear()
            self._flush()
            await self._window.wait()
        self._conn.send_data(stream_id, payload, end_stream=True)
        self._flush()


async def serve_h2c(app: App, host: str, port: int) -> None:
    """Serves ``app`` over h2c on host:port until cancelled."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _H2Protocol(app), host, port)
    async with server:
        await server.serve_forever()
