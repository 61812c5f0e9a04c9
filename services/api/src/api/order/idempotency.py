"""``Idempotency-Key`` for placing orders (Stripe's semantics).

The first answer for a (customer, key) is stored and replayed — errors included; the same key with
another body is 422; a key whose first request is still running is 409. The key is claimed in its
own short transaction (so concurrent retries see it), and the answer is stored in the same
transaction as the order: a stored answer exists if and only if the order committed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.errors import IdempotencyKeyInFlight, IdempotencyKeyReused
from api.order import repository
from api.order.models import IdempotencyKey
from servicekit.errors import AppError, app_error_body


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: dict[str, Any]
    replayed: bool


Operation = Callable[[AsyncSession], Awaitable[tuple[int, dict[str, Any]]]]


def request_hash(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\0".join([method.encode(), path.encode(), body])).hexdigest()


async def _claim(
    sessions: async_sessionmaker[AsyncSession],
    customer_id: str,
    key: str,
    digest: str,
    now: datetime,
    in_flight_timeout: timedelta,
) -> StoredAnswer | None:
    try:
        async with sessions() as session, session.begin():
            row = await repository.idempotency_key(session, customer_id, key, lock=True)
            if row is None:
                session.add(
                    IdempotencyKey(
                        customer_id=customer_id, key=key, request_hash=digest, created_at=now
                    )
                )
                return None
            if row.request_hash != digest:
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was used with another request; use a new key",
                    field="Idempotency-Key",
                )
            if row.completed_at is not None and row.response_status is not None:
                return StoredAnswer(row.response_status, row.response_body or {}, replayed=True)
            if now - row.created_at < in_flight_timeout:
                raise IdempotencyKeyInFlight(
                    "the first request with this key is still running; retry shortly",
                    field="Idempotency-Key",
                )
            row.created_at = now  # its first request died: this one takes over
            return None
    except IntegrityError as exc:  # a concurrent first request inserted the key just now
        raise IdempotencyKeyInFlight(
            "the first request with this key is still running; retry shortly",
            field="Idempotency-Key",
        ) from exc


async def _store(
    session: AsyncSession,
    customer_id: str,
    key: str,
    status: int,
    body: dict[str, Any],
    now: datetime,
) -> None:
    row = await repository.idempotency_key(session, customer_id, key, lock=True)
    assert row is not None
    row.response_status, row.response_body, row.completed_at = status, body, now


async def run_once(
    sessions: async_sessionmaker[AsyncSession],
    *,
    customer_id: str,
    key: str,
    digest: str,
    now: datetime,
    in_flight_timeout: timedelta,
    operation: Operation,
    instance: str,
) -> StoredAnswer:
    """Runs ``operation`` in its own transaction at most once per (customer, key)."""
    stored = await _claim(sessions, customer_id, key, digest, now, in_flight_timeout)
    if stored is not None:
        return stored
    try:
        async with sessions() as session, session.begin():
            status, body = await operation(session)
            await _store(session, customer_id, key, status, body, now)
        return StoredAnswer(status, body, replayed=False)
    except AppError as exc:
        body = app_error_body(exc, instance)
        async with sessions() as session, session.begin():
            await _store(session, customer_id, key, exc.status, body, now)
        return StoredAnswer(exc.status, body, replayed=False)
    except BaseException:
        # Unexpected: free the key so the client's retry runs the request again.
        async with sessions() as session, session.begin():
            await session.execute(
                delete(IdempotencyKey).where(
                    IdempotencyKey.customer_id == customer_id, IdempotencyKey.key == key
                )
            )
        raise
