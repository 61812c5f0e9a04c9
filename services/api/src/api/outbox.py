"""The transactional outbox: events are rows written with the change, published by a relay.

``add(session, event)`` runs inside the business transaction, so an event exists if and only if
its change committed. The relay publishes rows in id order per shard (shard = hash of the key,
i.e. the store) and holds a transaction-scoped advisory lock per shard, so several relays can run
at once without reordering one store's events; rows are marked sent only after the broker acked.
A relay crash between the ack and the mark re-sends those rows: duplicates are possible only as the
same event_id, which consumers deduplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import zlib
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Uuid,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base
from contracts import Event
from servicekit.bus import OutgoingRecord, Publisher, record_for
from servicekit.metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE

log = logging.getLogger(__name__)

# Fixed for the table's life: changing it would move keys between shards mid-flight.
SHARDS = 16


def shard_of(key: str) -> int:
    return zlib.crc32(key.encode()) % SHARDS


class OutboxEvent(Base):
    __tablename__ = "outbox_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    type: Mapped[str] = mapped_column(String(40))
    topic: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(40))
    shard: Mapped[int] = mapped_column(Integer)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[list[list[str]]] = mapped_column(JSON)
    traceparent: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)

    __table_args__ = (
        Index(
            "ix_outbox_events_unsent",
            "shard",
            "id",
            postgresql_where=text("sent_at IS NULL"),
            sqlite_where=text("sent_at IS NULL"),
        ),
    )


def row_values(event: Event) -> dict[str, Any]:
    """The outbox row of an event as column values (for statements that insert it themselves)."""
    record = record_for(event)
    return {
        "event_id": event.event_id,
        "type": event.type,
        "topic": record.topic,
        "key": event.key,
        "shard": shard_of(event.key),
        "payload": record.value,
        "headers": [[k, v.decode()] for k, v in record.headers],
        "traceparent": event.traceparent,
    }


def add(session: AsyncSession, event: Event) -> None:
    """Stages an event in the caller's transaction."""
    session.add(OutboxEvent(**row_values(event)))


async def backlog(session: AsyncSession) -> tuple[int, datetime | None]:
    """How many events wait to be published, and when the oldest was written."""
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(OutboxEvent.created_at)).where(
                OutboxEvent.sent_at.is_(None)
            )
        )
    ).one()
    return int(count), oldest


# Advisory locks of the relay: (space, shard) per shard, (space, _DDL_LOCK) while the trigger is
# installed. Kept as they were: relays of the previous release share the shards safely.
_LOCK_SPACE = 0x6D61_6761
_DDL_LOCK = 1_000
#: NOTIFY channel of the insert trigger; its payload is empty (a wake-up, not data).
CHANNEL = "magam_outbox"

# Two statements per pass. First the free shards' locks; then, in a statement of its own, each
# locked shard's oldest unsent rows (a bounded index scan per shard, whatever the backlog), the
# oldest ``limit`` of them overall. Each shard's rows are a prefix of its unsent rows in id order,
# so per-shard order holds. Not one statement: READ COMMITTED takes a statement's snapshot when it
# starts, so a lock won inside it (just released by another relay's commit) would read that
# relay's rows as still unsent and publish them again, out of order.
_LOCK_SHARDS = (
    "SELECT s FROM generate_series(0, %(last_shard)s) AS s"
    " WHERE pg_try_advisory_xact_lock(%(space)s, s)"
)
# headers as text: orjson parses it ~10x faster than psycopg's json loader (stdlib json).
_CLAIM = """
    SELECT o.id, o.topic, o.key, o.payload, o.headers::text
    FROM unnest(%(shards)s::integer[]) AS mine(s), LATERAL (
        SELECT id, topic, key, payload, headers FROM outbox_events
        WHERE sent_at IS NULL AND shard = mine.s
        ORDER BY id LIMIT %(limit)s
    ) AS o
    ORDER BY o.id LIMIT %(limit)s
"""
# clock_timestamp(): when the broker had acked, not when the pass began.
_MARK_SENT = "UPDATE outbox_events SET sent_at = clock_timestamp() WHERE id = ANY(%(ids)s)"

# A statement-level trigger: one NOTIFY per inserting statement, delivered at commit (so never
# for a rolled-back row) and folded into one per transaction by PostgreSQL.
_NOTIFY_FUNCTION = f"""
CREATE OR REPLACE FUNCTION outbox_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', '');
    RETURN NULL;
END
$$
"""
_NOTIFY_TRIGGER = """
CREATE TRIGGER outbox_events_notify AFTER INSERT ON outbox_events
FOR EACH STATEMENT EXECUTE FUNCTION outbox_events_notify()
"""


async def install_notify_trigger(session: AsyncSession) -> bool:
    """Creates the insert trigger that wakes relays, unless it exists; True if it created it.
    Serialised by an advisory lock, so replicas starting together do not race the DDL. Migration
    0002 creates the same trigger (a migrated database has it); this covers a database prepared
    by ``create_all`` (dev and test profiles)."""
    await session.execute(select(func.pg_advisory_xact_lock(_LOCK_SPACE, _DDL_LOCK)))
    exists = await session.scalar(
        text(
            "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'outbox_events_notify'"
            " AND tgrelid = 'outbox_events'::regclass)"
        )
    )
    if exists:
        return False
    await session.execute(text(_NOTIFY_FUNCTION))
    await session.execute(text(_NOTIFY_TRIGGER))
    return True


def _record(topic: str, key: str, payload: bytes, headers: list[list[str]]) -> OutgoingRecord:
    return OutgoingRecord(
        topic=topic, key=key.encode(), value=payload, headers=[(k, v.encode()) for k, v in headers]
    )


class OutboxRelay:
    """Publishes committed outbox rows to the broker, oldest first per shard.

    On PostgreSQL a pass is one transaction: one statement takes the free shards' advisory locks,
    one reads their oldest unsent rows, the broker acks them, one statement marks them sent. Rows
    are not claimed one by one (``FOR UPDATE SKIP LOCKED``): skipping a locked row would let a
    second relay publish a store's later event before its earlier one; the shard lock keeps the
    order. The relay sleeps until the insert trigger's NOTIFY wakes it (``LISTEN`` on its own
    connection), polling every ``listen_poll_s`` as a fallback and every ``idle_poll_s`` while
    it is not listening (no connection yet, or ``notify`` off, or SQLite).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        publisher: Publisher,
        *,
        batch_size: int = 200,
        idle_poll_s: float = 0.05,
        notify: bool = True,
        listen_poll_s: float = 1.0,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._batch_size = batch_size
        self._idle_poll_s = idle_poll_s
        self._notify = notify
        self._listen_poll_s = listen_poll_s
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        #: True while the LISTEN connection is up (the long poll is safe only then).
        self.listening = False
        self.published = 0

    async def _publish_postgresql(self, session: AsyncSession) -> int:
        # The session's connection and transaction, its statements sent by psycopg itself
        # (prepared): SQLAlchemy's execution layer cost about as much CPU as the rows' reading.
        raw = await (await session.connection()).get_raw_connection()
        pg: psycopg.AsyncConnection[Any] = raw.driver_connection  # type: ignore[assignment]
        cursor = await pg.execute(
            _LOCK_SHARDS, {"last_shard": SHARDS - 1, "space": _LOCK_SPACE}, prepare=True
        )
        shards = [s for (s,) in await cursor.fetchall()]
        if not shards:
            return 0  # other relays own every shard right now
        cursor = await pg.execute(
            _CLAIM, {"shards": shards, "limit": self._batch_size}, prepare=True
        )
        rows = await cursor.fetchall()
        if not rows:
            return 0
        await self._publisher.send_batch(
            [
                _record(topic, key, payload, orjson.loads(headers))
                for _, topic, key, payload, headers in rows
            ]
        )
        await pg.execute(_MARK_SENT, {"ids": [r[0] for r in rows]}, prepare=True)
        return len(rows)

    async def _publish_portable(self, session: AsyncSession) -> int:
        """SQLite (the local profile's single process): no locks, the same order."""
        rows = (
            await session.execute(
                select(
                    OutboxEvent.id,
                    OutboxEvent.topic,
                    OutboxEvent.key,
                    OutboxEvent.payload,
                    OutboxEvent.headers,
                )
                .where(OutboxEvent.sent_at.is_(None))
                .order_by(OutboxEvent.id)
                .limit(self._batch_size)
            )
        ).all()
        if not rows:
            return 0
        await self._publisher.send_batch(
            [_record(r.topic, r.key, r.payload, r.headers) for r in rows]
        )
        await session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id.in_([r.id for r in rows]))
            .values(sent_at=func.now())
        )
        return len(rows)

    async def publish_pending(self) -> int:
        """One pass over every shard this relay can lock; returns how many events it published."""
        async with self._sessions() as session, session.begin():
            if session.get_bind().dialect.name == "postgresql":
                published = await self._publish_postgresql(session)
            else:
                published = await self._publish_portable(session)
        self.published += published
        return published

    async def report_backlog(self) -> None:
        """Updates the backlog gauges (a count of unsent rows; run about once a second)."""
        async with self._sessions() as session:
            count, oldest = await backlog(session)
        OUTBOX_BACKLOG.labels("api").set(count)
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        OUTBOX_OLDEST_AGE.labels("api").set(max(age, 0.0))

    async def _report_forever(self) -> None:
        # Its own loop: while the broker is away a relay pass can block for seconds, and the
        # backlog must still be visible, rising, in /metrics.
        while not self._stopping.is_set():
            with contextlib.suppress(Exception):
                await self.report_backlog()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=1.0)

    async def _listen_forever(self) -> None:
        """Holds a LISTEN connection; every notification (and every reconnect: rows may have
        been committed while nobody listened) wakes the relay."""
        async with self._sessions() as session:
            engine = (await session.connection()).engine
        if engine.dialect.name != "postgresql":
            return
        url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        installed = False
        delay = 0.5
        while not self._stopping.is_set():
            try:
                if not installed:
                    async with self._sessions() as session, session.begin():
                        if await install_notify_trigger(session):
                            log.info("outbox notify trigger installed")
                    installed = True
                async with await psycopg.AsyncConnection.connect(
                    url, autocommit=True, connect_timeout=3, application_name="api-outbox-listen"
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening = True
                    self._wake.set()
                    delay = 0.5
                    async for _ in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away (or refused the DDL): poll meanwhile
                log.warning("outbox listener failed", extra={"error": repr(exc)[:300]})
            finally:
                self.listening = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            delay = min(delay * 2, 10.0)

    async def run(self) -> None:
        helpers = [asyncio.create_task(self._report_forever(), name="outbox-backlog")]
        if self._notify:
            helpers.append(asyncio.create_task(self._listen_forever(), name="outbox-listen"))
        try:
            await self._relay_forever()
        finally:
            for task in helpers:
                task.cancel()
            for task in helpers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _relay_forever(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._wake.clear()  # a notification from here on means another pass
            try:
                published = await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker or the database is away: back off, keep rows
                log.warning("outbox relay pass failed", extra={"error": repr(exc)[:300]})
                failures += 1
                # Not woken by notifications: while the broker is away they would be a spin.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._stopping.wait(), timeout=min(0.5 * 2 ** (failures - 1), 5.0)
                    )
                continue
            failures = 0
            if published:
                continue  # maybe more behind them
            poll = self._listen_poll_s if self.listening else self._idle_poll_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=poll)

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
