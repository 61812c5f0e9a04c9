from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from push.db import SessionDep
from push.device import service
from push.device.schemas import DeviceCreate, DeviceRead
from servicekit.security import CurrentUser

router = APIRouter(prefix="/devices", tags=["devices"])


@router.post("", status_code=status.HTTP_201_CREATED, summary="Register this device")
async def register_device(data: DeviceCreate, user: CurrentUser, session: SessionDep) -> DeviceRead:
    return DeviceRead.model_validate(await service.register_device(session, user.user_id, data))


@router.get("", summary="My devices")
async def list_devices(user: CurrentUser, session: SessionDep) -> list[DeviceRead]:
    return [DeviceRead.model_validate(d) for d in await service.list_devices(session, user.user_id)]


@router.delete(
    "/{device_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Unregister a device",
    responses={404: {"description": "No such device of yours (`device_not_found`)"}},
)
async def delete_device(device_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> Response:
    await service.delete_device(session, user.user_id, device_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
