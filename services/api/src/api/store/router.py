from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.db import SessionDep
from api.store import service
from api.store.schemas import StorePage, StoreRead

router = APIRouter(prefix="/stores", tags=["stores"])

MAX_PAGE = 100


@router.get("", summary="Open stores, a page at a time")
async def list_stores(
    session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
) -> StorePage:
    return await service.list_stores(session, cursor, limit)


@router.get("/{store_id}", summary="One store", responses={404: {"description": "No such store"}})
async def get_store(session: SessionDep, store_id: str) -> StoreRead:
    return await service.get_store(session, store_id)
