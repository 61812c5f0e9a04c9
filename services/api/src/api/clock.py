"""The time, in one place: services take ``now`` so tests can put it anywhere."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
