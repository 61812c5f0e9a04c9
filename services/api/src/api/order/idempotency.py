"""``Idempotency-Key`` for placing orders (Stripe's semantics).

The first answer for a (customer, key) is stored and replayed — errors included; the same key with
another body is 422; a key whose first request is still running is 409. The key is claimed by a
statement of its own that commits at once (so concurrent retries see it), and a success answer is
stored by the operation in the same statement as the order: a stored success answer exists if and
only if the order committed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from api.errors import IdempotencyKeyInFlight, IdempotencyKeyReused
from api.order import repository
from api.order.models import IdempotencyKey
from servicekit.errors import AppError, app_error_body


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: dict[str, Any]
    replayed: bool


# Runs the request under the claimed key and stores its success answer with its own write.
Operation = Callable[[AsyncConnection], Awaitable[tuple[int, dict[str, Any]]]]


def request_hash(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\0".join([method.encode(), path.encode(), body])).hexdigest()


def _in_flight() -> IdempotencyKeyInFlight:
    return IdempotencyKeyInFlight(
        "the first request with this key is still running; retry shortly",
        field="Idempotency-Key",
    )


async def _claim(
    db: AsyncConnection,
    customer_id: str,
    key: str,
    digest: str,
    now: datetime,
    in_flight_timeout: timedelta,
) -> StoredAnswer | None:
    """None when this request now owns the key; else the answer to replay (or 409/422)."""
    if await repository.insert_idempotency_key(db, customer_id, key, digest, now):
        return None
    row = (
        await db.execute(
            select(
                IdempotencyKey.request_hash,
                IdempotencyKey.response_status,
                IdempotencyKey.response_body,
                IdempotencyKey.completed_at,
                IdempotencyKey.created_at,
            ).where(IdempotencyKey.customer_id == customer_id, IdempotencyKey.key == key)
        )
    ).one_or_none()
    if row is None:  # its first request failed unexpectedly and freed it just now
        raise _in_flight()
    if row.request_hash != digest:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used with another request; use a new key",
            field="Idempotency-Key",
        )
    if row.completed_at is not None and row.response_status is not None:
        return StoredAnswer(row.response_status, row.response_body or {}, replayed=True)
    if now - row.created_at < in_flight_timeout:
        raise _in_flight()
    # Its first request died: this one takes over — unless a concurrent retry took it first.
    taken_over = await db.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.customer_id == customer_id,
            IdempotencyKey.key == key,
            IdempotencyKey.created_at == row.created_at,
            IdempotencyKey.completed_at.is_(None),
        )
        .values(created_at=now)
        .returning(IdempotencyKey.key)
    )
    if taken_over.scalar_one_or_none() is None:
        raise _in_flight()
    return None


async def _store_error(
    db: AsyncConnection,
    customer_id: str,
    key: str,
    status: int,
    body: dict[str, Any],
    now: datetime,
) -> None:
    await db.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.customer_id == customer_id,
            IdempotencyKey.key == key,
            IdempotencyKey.completed_at.is_(None),
        )
        .values(response_status=status, response_body=body, completed_at=now)
    )


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
    single_statement: bool,
) -> StoredAnswer:
    """Runs ``operation`` at most once per (customer, key), on one pooled connection.

    ``single_statement``: the operation writes everything in one statement, so on PostgreSQL it
    runs in autocommit (no BEGIN/COMMIT round trips; each statement commits as it completes).
    Otherwise the claim and the operation each get a transaction of their own. A Core connection
    rather than a Session: nothing on this path loads ORM objects, and the Session's bookkeeping
    cost about a seventh of the path's CPU."""
    engine: AsyncEngine = sessions.kw["bind"]
    async with engine.connect() as db:
        autocommit = single_statement and db.dialect.name == "postgresql"
        if autocommit:
            await db.execution_options(isolation_level="AUTOCOMMIT")
        stored = await _claim(db, customer_id, key, digest, now, in_flight_timeout)
        await db.commit()  # a no-op in autocommit
        if stored is not None:
            return stored
        try:
            status, body = await operation(db)
            await db.commit()
            return StoredAnswer(status, body, replayed=False)
        except AppError as exc:
            await db.rollback()
            body = app_error_body(exc, instance)
            await _store_error(db, customer_id, key, exc.status, body, now)
            await db.commit()
            return StoredAnswer(exc.status, body, replayed=False)
        except BaseException:
            await db.rollback()
            # Unexpected: free the key so the client's retry runs the request again — unless
            # the answer was stored (in autocommit the order may have committed before this).
            await db.execute(
                delete(IdempotencyKey).where(
                    IdempotencyKey.customer_id == customer_id,
                    IdempotencyKey.key == key,
                    IdempotencyKey.completed_at.is_(None),
                )
            )
            await db.commit()
            raise
