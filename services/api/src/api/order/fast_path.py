"""``POST /customer/orders`` without FastAPI's routing, dependency solving and the ORM.

Placing an order is the hot write (a flash sale: many customers, one deal). For a plain,
well-formed order from a customer, FastAPI's request handling cost several times what the order's
own work does (bench/orders/README.md). This pure-ASGI middleware places exactly that case
itself — the same token verifier, the same price, the same rows, the same answer bytes — and
writes it in one statement that claims the ``Idempotency-Key`` with its stored answer, takes the
stock and writes the order, its history and its outbox events, or writes nothing at all.

Anything else goes to the FastAPI route unchanged, which answers it as before: a body or header
it does not recognise as plainly valid, a missing or refused token, a key seen before (replay,
409 in flight, 422), too few units, a closed deal, a changed price, a traced request (the route's
statements carry the database spans), the local profile, the SELECT … FOR UPDATE baseline. The
route stays the documented one (OpenAPI, examples); this is the same endpoint, answered sooner.

It sits inside the metrics and tracing middlewares and names the route for them.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

import orjson
import psycopg
from fastapi.routing import APIRoute
from opentelemetry import trace
from psycopg.conninfo import make_conninfo
from psycopg.pq import TransactionStatus
from sqlalchemy import URL
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.clock import utcnow
from api.order import service
from api.order.idempotency import request_hash
from api.order.router import customer_router
from api.order.schemas import OrderCreate
from api.settings import ApiSettings
from servicekit.security import Principal, TokenVerifier

ORDERS_PATH = "/customer/orders"
# The plain spellings only (pydantic accepts more; those go to the route and get its answer).
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_FIELDS = frozenset({"deal_id", "quantity", "expected_unit_price_krw"})
# Printable ASCII without spaces: nothing for the route to strip, within its max_length.
_KEY = re.compile(rb"[\x21-\x7e]{1,100}")
_MAX_BODY = 1024


def parse_order(body: bytes) -> tuple[OrderCreate, bytes] | None:
    """The order and its canonical JSON (what the route hashes for the key) when the body is
    plainly valid for ``OrderCreate``; None to let the route decide."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict or not data.keys() <= _FIELDS:
        return None
    deal_id = data.get("deal_id")
    quantity = data.get("quantity")
    price = data.get("expected_unit_price_krw")
    if (
        type(deal_id) is not str
        or not _UUID.fullmatch(deal_id)
        or type(quantity) is not int
        or not 1 <= quantity <= 100
        or (price is not None and (type(price) is not int or price < 0))
    ):
        return None
    order = OrderCreate.model_construct(
        deal_id=uuid.UUID(deal_id), quantity=quantity, expected_unit_price_krw=price
    )
    canonical = b'{"deal_id":"%s","quantity":%d,"expected_unit_price_krw":%s}' % (
        deal_id.encode(),
        quantity,
        b"null" if price is None else str(price).encode(),
    )
    return order, canonical


def _plain_headers(scope: Scope) -> tuple[str, str] | None:
    """(bearer token, idempotency key) when the headers are plain; None to let the route decide."""
    token: str | None = None
    key: bytes | None = None
    json_body = False
    for name, value in scope["headers"]:
        if name == b"authorization":
            if token is not None:
                return None
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            credentials = credentials.strip()
            if scheme.lower() != "bearer" or not credentials:
                return None
            token = credentials
        elif name == b"idempotency-key":
            if key is not None or not _KEY.fullmatch(value):
                return None
            key = value
        elif name == b"content-type":
            if json_body or value != b"application/json":
                return None
            json_body = True
    if token is None or key is None or not json_body:
        return None
    return token, key.decode("ascii")


@cache
def order_route() -> APIRoute:
    """The documented route of placing an order (this middleware answers its common case)."""
    return next(
        r
        for r in customer_router.routes
        if isinstance(r, APIRoute) and r.path == ORDERS_PATH and "POST" in (r.methods or ())
    )


async def _read_body(receive: Receive) -> tuple[list[Message], bytes | None]:
    """The request's messages as received, and its body when whole and small (else None)."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None  # a disconnect: the route sees it too
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY:
            return messages, None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return messages, b"".join(chunks)


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands the route what this middleware already read, then the rest."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


class Connections:
    """The fast path's own PostgreSQL connections: psycopg in autocommit, opened on demand, at
    most ``size`` in use at once. Not the engine's pool: its checkout pings the server first (a
    round trip per order) and runs through SQLAlchemy's async adaptation."""

    def __init__(self, url: URL, size: int) -> None:
        self._conninfo = make_conninfo(
            host=url.host,
            port=url.port,
            user=url.username,
            password=url.password,
            dbname=url.database,
            connect_timeout=3,
            application_name="api-orders",
        )
        self._slots = asyncio.Semaphore(size)
        self._idle: list[psycopg.AsyncConnection[Any]] = []

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with self._slots:
            pg = self._idle.pop() if self._idle else None
            if pg is None:
                pg = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            try:
                yield pg
            finally:
                if pg.broken or pg.info.transaction_status != TransactionStatus.IDLE:
                    await pg.close()  # broken by a restart, or cancelled mid-statement
                else:
                    self._idle.append(pg)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for pg in idle:
            await pg.close()


class OrderFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._connections: Connections | None = None
        self._fast: service.FastOrders | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == ORDERS_PATH and scope["method"] == "POST":
            messages, body = await _read_body(receive)
            receive = _replaying(messages, receive)
            if body is not None and await self._answer(scope, body, receive, send):
                return
        elif scope["type"] == "lifespan":
            send = self._closing_on_shutdown(send)
        await self.app(scope, receive, send)

    def _closing_on_shutdown(self, send: Send) -> Send:
        async def closing(message: Message) -> None:
            if message["type"].startswith("lifespan.shutdown") and self._connections is not None:
                await self._connections.close()
                self._connections = self._fast = None
            await send(message)

        return closing

    def _fast_orders(self, state: Any, settings: ApiSettings) -> service.FastOrders | None:
        if self._fast is None:
            engine: AsyncEngine = state.sessions.kw["bind"]
            if engine.dialect.name != "postgresql":
                return None
            self._connections = Connections(engine.url, settings.database.pool_size)
            self._fast = service.FastOrders(
                self._connections.connection, settings.orders.fast_path_batch
            )
        return self._fast

    async def _answer(self, scope: Scope, body: bytes, receive: Receive, send: Send) -> bool:
        """True when answered here; False leaves the request, untouched, to the route."""
        headers = _plain_headers(scope)
        parsed = parse_order(body)
        if headers is None or parsed is None or trace.get_current_span().is_recording():
            return False
        token, key = headers
        data, canonical = parsed
        state: Any = scope["app"].state
        settings: ApiSettings = state.settings
        verifier: TokenVerifier | None = state.token_verifier
        plain = verifier is not None and settings.orders.reservation == "atomic_update"
        fast = self._fast_orders(state, settings) if plain else None
        if verifier is None or fast is None:  # None on the local profile's SQLite too
            return False
        try:
            principal: Principal = await verifier.verify(token)
            if not principal.has_role("customer"):
                return False
            answer = await service.place_order_at_once(
                fast,
                principal,
                data,
                utcnow(),
                answer_key=key,
                request_hash=request_hash("POST", ORDERS_PATH, canonical),
                max_quantity=settings.orders.max_quantity_per_order,
            )
        except Exception:
            # A refused token, the database away: the route raises the same and its handlers
            # answer (401, 503 …) — one place decides what errors look like. Nothing was written
            # unless the statement committed, and then the route replays its stored answer.
            return False
        if answer is None:
            return False
        scope["route"] = order_route()  # metrics and spans name the route, as for any other
        await JSONResponse(answer, status_code=201)(scope, receive, send)
        return True
