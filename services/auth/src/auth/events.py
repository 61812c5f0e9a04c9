"""Events auth publishes (session.revoked), sent once the transaction that caused them commits.

auth has no outbox: a revocation is also enforced by auth's own verifier and by refresh, and a lost
event only means api/push accept the revoked session's access token until it expires (≤ 15 min).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Event
from servicekit.bus import Publisher, record_for

log = logging.getLogger(__name__)

_PENDING: Final = "pending_events"
SEND_TIMEOUT_S: Final = 10.0


def add_event(session: AsyncSession, event: Event) -> None:
    """Queue ``event`` to be published after ``session`` commits."""
    session.info.setdefault(_PENDING, []).append(event)


def take_events(session: AsyncSession) -> list[Event]:
    events: list[Event] = session.info.pop(_PENDING, [])
    return events


class EventSender:
    """Publishes in the background so a slow broker never delays an HTTP answer."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self._tasks: set[asyncio.Task[None]] = set()

    def send_later(self, events: list[Event]) -> None:
        for event in events:
            task = asyncio.create_task(self._send(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, event: Event) -> None:
        try:
            await asyncio.wait_for(self.publisher.send(record_for(event)), SEND_TIMEOUT_S)
        except Exception as exc:
            log.warning(
                "event not published",
                extra={
                    "event_type": event.type,
                    "event_id": str(event.event_id),
                    "error": str(exc),
                },
            )

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
