"""Where notifications go: FCM in prod, the log in the local profile (same interface)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notification:
    target_kind: str  # "token" (FCM registration token) or "fid" (Firebase installation id)
    target: str
    title: str
    body: str
    data: dict[str, str] = field(default_factory=dict)


class Sender(Protocol):
    async def send(self, notifications: list[Notification]) -> None: ...


class LogSender:
    """The local profile's sender: writes each notification as a log line instead of calling FCM."""

    async def send(self, notifications: list[Notification]) -> None:
        for n in notifications:
            log.info(
                "notification (log sender)",
                extra={
                    "target_kind": n.target_kind,
                    "title": n.title,
                    "body": n.body,
                    "data": n.data,
                },
            )
