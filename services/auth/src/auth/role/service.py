"""Roles decided elsewhere: api approves a store claim → the user becomes a manager."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from auth.role.models import ProcessedEvent
from auth.user.models import User
from contracts import ManagerApproved

log = logging.getLogger(__name__)


async def grant_manager(session: AsyncSession, event: ManagerApproved) -> bool:
    """Adds the manager role once per event id; False for a replayed event or an unknown user."""
    event_id = str(event.event_id)
    if await session.get(ProcessedEvent, event_id) is not None:
        return False
    session.add(ProcessedEvent(event_id=event_id, event_type=event.type))
    user = await session.get(User, event.data.user_id)
    if user is None:
        log.warning("manager approval for an unknown user", extra={"user_id": event.data.user_id})
        return False
    if "manager" not in user.roles:
        user.roles = [*user.roles, "manager"]  # a new list: JSON columns track assignment only
    await session.flush()
    log.info(
        "manager role granted",
        extra={"user_id": user.id, "store_id": event.data.store_id, "event_id": event_id},
    )
    return True
