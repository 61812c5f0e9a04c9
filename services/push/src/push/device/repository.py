"""The SQL of the device registry."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from push.device.models import Device


async def by_target(session: AsyncSession, target_kind: str, target: str) -> Device | None:
    found: Device | None = await session.scalar(
        select(Device).where(Device.target_kind == target_kind, Device.target == target)
    )
    return found


async def by_id(session: AsyncSession, device_id: uuid.UUID) -> Device | None:
    return await session.get(Device, device_id)


async def of_user(session: AsyncSession, user_id: str) -> list[Device]:
    rows = await session.scalars(
        select(Device).where(Device.user_id == user_id).order_by(Device.created_at)
    )
    return list(rows)


async def of_users(session: AsyncSession, user_ids: Collection[str]) -> list[Device]:
    if not user_ids:
        return []
    rows = await session.scalars(
        select(Device).where(Device.user_id.in_(list(user_ids))).order_by(Device.id)
    )
    return list(rows)


async def delete_targets(session: AsyncSession, targets: Collection[tuple[str, str]]) -> int:
    deleted = 0
    for kind, target in targets:
        result = await session.execute(
            delete(Device).where(Device.target_kind == kind, Device.target == target)
        )
        deleted += result.rowcount  # type: ignore[attr-defined]
    return deleted


async def delete_unseen_since(session: AsyncSession, cutoff: datetime) -> int:
    result = await session.execute(delete(Device).where(Device.last_seen_at < cutoff))
    return int(result.rowcount)  # type: ignore[attr-defined]
