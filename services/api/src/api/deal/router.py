from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from api.clock import utcnow
from api.db import SessionDep
from api.deal import service
from api.deal.schemas import DealCreate, DealFromMenu, DealPage, DealRead, DealUpdate, Restock
from api.pagination import Limit, UuidCursor
from servicekit.security import CurrentManager

router = APIRouter(prefix="/manager/stores/{store_id}/deals", tags=["manager: deals"])
public_router = APIRouter(prefix="/deals", tags=["deals"])

_NOT_YOURS: dict[int | str, dict[str, Any]] = {
    403: {"description": "You do not manage this store (`store_not_managed`)"}
}


@router.post("", status_code=201, summary="List a new deal", responses=_NOT_YOURS)
async def create_deal(
    session: SessionDep, actor: CurrentManager, store_id: str, body: DealCreate
) -> DealRead:
    return await service.create_deal(session, actor, store_id, body, utcnow())


@router.post(
    "/from-menu/{item_id}",
    status_code=201,
    summary="Start a deal from one of the store's menu items",
    responses=_NOT_YOURS,
)
async def create_deal_from_menu(
    session: SessionDep, actor: CurrentManager, store_id: str, item_id: int, body: DealFromMenu
) -> DealRead:
    return await service.create_deal_from_menu(session, actor, store_id, item_id, body, utcnow())


@router.get("", summary="The store's deals", responses=_NOT_YOURS)
async def list_deals(
    session: SessionDep,
    actor: CurrentManager,
    store_id: str,
    cursor: UuidCursor = None,
    limit: Limit = 20,
) -> DealPage:
    return await service.list_deals(session, actor, store_id, cursor, limit, utcnow())


@router.get("/{deal_id}", summary="One deal", responses=_NOT_YOURS)
async def get_deal(
    session: SessionDep, actor: CurrentManager, store_id: str, deal_id: uuid.UUID
) -> DealRead:
    return await service.get_deal(session, actor, store_id, deal_id, utcnow())


@router.patch("/{deal_id}", summary="Edit a deal", responses=_NOT_YOURS)
async def update_deal(
    session: SessionDep, actor: CurrentManager, store_id: str, deal_id: uuid.UUID, body: DealUpdate
) -> DealRead:
    return await service.update_deal(session, actor, store_id, deal_id, body, utcnow())


@router.post("/{deal_id}/restock", summary="Add units to a deal", responses=_NOT_YOURS)
async def restock_deal(
    session: SessionDep, actor: CurrentManager, store_id: str, deal_id: uuid.UUID, body: Restock
) -> DealRead:
    return await service.restock_deal(session, actor, store_id, deal_id, body, utcnow())


@router.post("/{deal_id}/close", summary="Stop selling a deal", responses=_NOT_YOURS)
async def close_deal(
    session: SessionDep, actor: CurrentManager, store_id: str, deal_id: uuid.UUID
) -> DealRead:
    return await service.close_deal(session, actor, store_id, deal_id, utcnow())


@public_router.get("/{deal_id}", summary="A deal as customers see it (price now, stock)")
async def get_public_deal(session: SessionDep, deal_id: uuid.UUID) -> DealRead:
    return await service.get_public_deal(session, deal_id, utcnow())
