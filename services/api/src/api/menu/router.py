from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.db import SessionDep
from api.menu import service
from api.menu.schemas import MenuRead

router = APIRouter(prefix="/stores", tags=["menus"])


@router.get(
    "/{store_id}/menu",
    summary="A store's menu (items a manager can start a deal from)",
    responses={404: {"description": "No such store, or it is closed"}},
)
async def get_menu(session: SessionDep, store_id: Annotated[str, Path(max_length=40)]) -> MenuRead:
    return await service.get_menu(session, store_id)
