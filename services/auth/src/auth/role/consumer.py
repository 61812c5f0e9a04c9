"""The identity-topic consumer: one transaction per message, committed before the offset."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth.role.service import grant_manager
from contracts import ManagerApproved, parse_event
from servicekit.bus import Handler, IncomingRecord, Subscription

log = logging.getLogger(__name__)


def identity_handler(sessions: async_sessionmaker[AsyncSession]) -> Handler:
    async def handle(record: IncomingRecord) -> None:
        if record.header("event_type") not in (None, b"store.manager_approved"):
            return  # session.revoked is ours; other types are not for auth
        try:
            event = parse_event(record.value)
        except ValidationError:
            log.error(
                "unreadable identity event skipped",
                extra={"partition": record.partition, "offset": record.offset},
            )
            return
        if isinstance(event, ManagerApproved):
            async with sessions() as session, session.begin():
                await grant_manager(session, event)

    return handle


class IdentityConsumer:
    """Runs the subscription; after a failure (database or broker away) starts a new one.

    ``stop`` lets the running subscription finish its batch and close its consumer: cancelling
    it instead could leave the Kafka consumer half-started and never closed.
    """

    def __init__(
        self,
        new_subscription: Callable[[], Subscription],
        sessions: async_sessionmaker[AsyncSession],
        prepare: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._new_subscription = new_subscription
        self._handler = identity_handler(sessions)
        self._prepare = prepare
        self._stopping = asyncio.Event()
        self._current: Subscription | None = None

    async def run(self) -> None:
        delay = 1.0
        while not self._stopping.is_set():
            try:
                if self._prepare is not None:
                    await self._prepare()
                    self._prepare = None
                if self._stopping.is_set():
                    return  # a Kafka subscription opens its consumer when created
                self._current = self._new_subscription()
                await self._current.run(self._handler)
            except Exception as exc:
                log.warning("identity consumer failed; restarting", extra={"error": str(exc)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, 30.0)

    async def stop(self) -> None:
        self._stopping.set()
        if self._current is not None:
            await self._current.stop()
