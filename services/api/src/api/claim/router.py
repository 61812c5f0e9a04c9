from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from api.claim import service
from api.claim.models import ClaimStatus
from api.claim.schemas import ClaimCreate, ClaimDecision, ClaimPage, ClaimRead
from api.clock import utcnow
from api.db import SessionDep
from api.pagination import Limit, UuidCursor
from servicekit.security import CurrentAdmin, CurrentUser

router = APIRouter(tags=["store claims"])
admin_router = APIRouter(prefix="/admin/store-claims", tags=["admin"])


@router.post("/stores/{store_id}/claims", status_code=201, summary="Claim a store you run")
async def claim_store(
    session: SessionDep, actor: CurrentUser, store_id: str, body: ClaimCreate
) -> ClaimRead:
    return await service.claim_store(session, actor, store_id, body)


@router.get("/me/store-claims", summary="Your store claims and their decisions")
async def my_claims(session: SessionDep, actor: CurrentUser) -> list[ClaimRead]:
    return await service.list_my_claims(session, actor)


@admin_router.get("", summary="Store claims, oldest first")
async def list_claims(
    session: SessionDep,
    actor: CurrentAdmin,
    status: Annotated[ClaimStatus | None, Query()] = ClaimStatus.PENDING,
    cursor: UuidCursor = None,
    limit: Limit = 20,
) -> ClaimPage:
    return await service.list_claims(session, status, cursor, limit)


@admin_router.post("/{claim_id}/approve", summary="Approve: the claimant manages the store")
async def approve_claim(
    session: SessionDep, actor: CurrentAdmin, claim_id: uuid.UUID, body: ClaimDecision
) -> ClaimRead:
    return await service.approve_claim(session, actor, claim_id, body, utcnow())


@admin_router.post("/{claim_id}/reject", summary="Reject a claim, with a reason")
async def reject_claim(
    session: SessionDep, actor: CurrentAdmin, claim_id: uuid.UUID, body: ClaimDecision
) -> ClaimRead:
    return await service.reject_claim(session, actor, claim_id, body, utcnow())
