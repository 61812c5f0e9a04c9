"""Use cases of the device registry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from push.device import repository
from push.device.models import Device
from push.device.schemas import DeviceCreate
from servicekit.errors import NotFound


class DeviceNotFound(NotFound):
    code = "device_not_found"


async def register_device(session: AsyncSession, user_id: str, data: DeviceCreate) -> Device:
    """Registers the caller's device; a known target moves to the caller and is seen now (a
    phone handed to another account must not keep notifying the old one)."""
    now = datetime.now(UTC)
    device = await repository.by_target(session, data.target_kind.value, data.target)
    if device is None:
        device = Device(
            user_id=user_id,
            target_kind=data.target_kind.value,
            target=data.target,
            created_at=now,
        )
        session.add(device)
    device.user_id = user_id
    device.platform = data.platform.value
    device.locale = data.locale
    device.last_seen_at = now
    await session.flush()
    return device


async def list_devices(session: AsyncSession, user_id: str) -> list[Device]:
    """The caller's devices."""
    return await repository.of_user(session, user_id)


async def delete_device(session: AsyncSession, user_id: str, device_id: uuid.UUID) -> None:
    """Removes one of the caller's devices; another user's device is as absent as a missing one."""
    device = await repository.by_id(session, device_id)
    if device is None or device.user_id != user_id:
        raise DeviceNotFound(f"no device {device_id} of yours", field="id")
    await session.delete(device)


async def prune_stale_devices(
    session: AsyncSession, *, now: datetime, stale_after: timedelta
) -> int:
    """Deletes devices not seen (registered again) for ``stale_after``; returns how many."""
    return await repository.delete_unseen_since(session, now - stale_after)
