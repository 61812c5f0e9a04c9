"""The SQL of the batch path: claiming events, inserting planned deliveries, recording FCM's
answers — one statement each, whatever the batch holds.

On PostgreSQL each statement takes the batch as one JSON document (``json_to_recordset``): its
text never changes, so psycopg converts it once and PostgreSQL prepares it once. A multi-row
``INSERT ... VALUES`` (SQLAlchemy's insertmanyvalues) has a new text per batch size, longer than
psycopg caches, and psycopg's Python query parser took ~1 ms of push's CPU per batch on it; an
``executemany`` UPDATE is a statement per row. SQLite (the local profile) runs the plain
statements.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from push.db import insert_ignoring_conflicts
from push.delivery.models import Delivery, ProcessedEvent

_CLAIM = text(
    'INSERT INTO processed_events (event_id, type, topic, partition, "offset")'
    ' SELECT event_id, type, topic, partition, "offset" FROM json_to_recordset(CAST(:doc AS json))'
    ' AS r(event_id uuid, type text, topic text, partition integer, "offset" bigint)'
    " ON CONFLICT DO NOTHING RETURNING event_id"
)

_INSERT_DELIVERIES = text(
    "INSERT INTO deliveries (event_id, device_id, user_id, target_kind, target, title, body,"
    " data, promotional, status, attempts, created_at) SELECT event_id, device_id, user_id,"
    " target_kind, target, title, body, data, promotional, status, attempts, created_at"
    " FROM json_to_recordset(CAST(:doc AS json)) AS r(event_id uuid, device_id uuid,"
    " user_id text, target_kind text, target text, title text, body text, data json,"
    " promotional boolean, status text, attempts integer, created_at timestamptz)"
    " ON CONFLICT DO NOTHING RETURNING id, event_id, device_id, status"
)

# A value a row does not carry stays as it is (as the ORM's bulk UPDATE by primary key leaves
# a key missing from a row's dict alone); nothing is ever set back to NULL here.
_RECORD = text(
    "UPDATE deliveries AS d SET status = r.status, attempts = r.attempts,"
    " error = coalesce(r.error, d.error), fcm_name = coalesce(r.fcm_name, d.fcm_name),"
    " sent_at = coalesce(r.sent_at, d.sent_at)"
    " FROM json_to_recordset(CAST(:doc AS json)) AS r(id bigint, status text, attempts integer,"
    " error text, fcm_name text, sent_at timestamptz) WHERE d.id = r.id"
)


def _postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _document(rows: Sequence[dict[str, Any]]) -> str:
    def plain(value: object) -> object:
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError("timestamps must be timezone-aware")
            return value.isoformat()
        raise TypeError(f"cannot put {type(value).__name__} in a row document")

    return json.dumps(rows, ensure_ascii=False, default=plain)


async def claim(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
    """Inserts processed_events rows (event_id, type, topic, partition, offset); returns the ids
    that were not there yet."""
    if not rows:
        return set()
    if _postgresql(session):
        result = await session.execute(_CLAIM, {"doc": _document(rows)})
    else:
        result = await session.execute(
            insert_ignoring_conflicts(session, ProcessedEvent).returning(ProcessedEvent.event_id),
            list(rows),
        )
    return set(result.scalars())


async def insert_deliveries(
    session: AsyncSession, rows: Sequence[dict[str, Any]]
) -> Sequence[Row[tuple[int, uuid.UUID, uuid.UUID, str]]]:
    """Inserts planned deliveries, skipping (event, device) pairs already planned; returns
    (id, event_id, device_id, status) of those inserted."""
    if _postgresql(session):
        result = await session.execute(_INSERT_DELIVERIES, {"doc": _document(rows)})
    else:
        result = await session.execute(
            insert_ignoring_conflicts(session, Delivery).returning(
                Delivery.id, Delivery.event_id, Delivery.device_id, Delivery.status
            ),
            list(rows),
        )
    return result.all()


async def record(session: AsyncSession, updates: Sequence[dict[str, Any]]) -> None:
    """Updates deliveries by ``id``: ``status`` and ``attempts``, and ``error``, ``fcm_name``,
    ``sent_at`` where a row gives them."""
    if not updates:
        return
    if _postgresql(session):
        await session.execute(_RECORD, {"doc": _document(updates)})
    else:
        await session.execute(update(Delivery), list(updates))
