"""Store claims and who manages which store — object-level authorization lives here."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from api import outbox
from api.claim import repository
from api.claim.models import ClaimStatus, StoreClaim, StoreManager
from api.claim.schemas import ClaimCreate, ClaimDecision, ClaimPage, ClaimRead
from api.errors import (
    ClaimAlreadyDecided,
    ClaimNotFound,
    ClaimPending,
    StoreNotFound,
    StoreNotManaged,
)
from api.store import repository as stores
from contracts import ManagerApproved, ManagerApprovedData
from servicekit.security import Principal
from servicekit.telemetry import current_traceparent


async def ensure_manages(session: AsyncSession, actor: Principal, store_id: str) -> None:
    """Raises StoreNotManaged unless ``actor`` manages ``store_id`` — every manager use case
    calls this first, for the store the object belongs to."""
    if not await repository.is_manager(session, store_id, actor.user_id):
        raise StoreNotManaged(f"you do not manage store {store_id!r}", field="store_id")


async def claim_store(
    session: AsyncSession, actor: Principal, store_id: str, data: ClaimCreate
) -> ClaimRead:
    """A signed-in user asks to manage a store."""
    store = await stores.get(session, store_id)
    if store is None or store.closed_at is not None:
        raise StoreNotFound(f"store {store_id!r} does not exist or is closed", field="store_id")
    if await repository.pending_claim(session, store_id, actor.user_id) is not None:
        raise ClaimPending("wait for an admin to decide your earlier claim", field="store_id")
    claim = StoreClaim(
        store_id=store_id, user_id=actor.user_id, business_number=data.business_number
    )
    session.add(claim)
    await session.flush()
    await session.refresh(claim)
    return ClaimRead.model_validate(claim)


async def list_my_claims(session: AsyncSession, actor: Principal) -> list[ClaimRead]:
    return [
        ClaimRead.model_validate(c) for c in await repository.list_for_user(session, actor.user_id)
    ]


async def list_claims(
    session: AsyncSession, status: ClaimStatus | None, cursor: uuid.UUID | None, limit: int
) -> ClaimPage:
    claims = await repository.list_claims(session, status, cursor, limit + 1)
    items = [ClaimRead.model_validate(c) for c in claims[:limit]]
    return ClaimPage(items=items, next_cursor=str(items[-1].id) if len(claims) > limit else None)


async def _decide(session: AsyncSession, claim_id: uuid.UUID) -> StoreClaim:
    claim = await repository.get_for_update(session, claim_id)
    if claim is None:
        raise ClaimNotFound(f"no store claim {claim_id}", field="claim_id")
    if claim.status != ClaimStatus.PENDING:
        raise ClaimAlreadyDecided(f"the claim is already {claim.status}", field="claim_id")
    return claim


async def approve_claim(
    session: AsyncSession, actor: Principal, claim_id: uuid.UUID, data: ClaimDecision, now: datetime
) -> ClaimRead:
    """The claimant becomes a manager of the store; auth grants the role from the event."""
    claim = await _decide(session, claim_id)
    claim.status, claim.reason = ClaimStatus.APPROVED, data.reason
    claim.decided_by, claim.decided_at = actor.user_id, now
    if not await repository.is_manager(session, claim.store_id, claim.user_id):
        session.add(StoreManager(store_id=claim.store_id, user_id=claim.user_id))
    outbox.add(
        session,
        ManagerApproved(
            key=claim.store_id,
            traceparent=current_traceparent(),
            data=ManagerApprovedData(
                claim_id=claim.id,
                store_id=claim.store_id,
                user_id=claim.user_id,
                approved_by=actor.user_id,
            ),
        ),
    )
    await session.flush()
    return ClaimRead.model_validate(claim)


async def reject_claim(
    session: AsyncSession, actor: Principal, claim_id: uuid.UUID, data: ClaimDecision, now: datetime
) -> ClaimRead:
    claim = await _decide(session, claim_id)
    claim.status, claim.reason = ClaimStatus.REJECTED, data.reason
    claim.decided_by, claim.decided_at = actor.user_id, now
    await session.flush()
    return ClaimRead.model_validate(claim)
