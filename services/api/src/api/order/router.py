from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from api.clock import utcnow
from api.db import SessionDep
from api.errors import IdempotencyKeyMissing
from api.order import service
from api.order.idempotency import request_hash, run_once
from api.order.schemas import (
    OrderCreate,
    OrderDetail,
    OrderPage,
    OrderRead,
    OrderReject,
    PickupCheck,
)
from api.pagination import Limit, UuidCursor
from api.settings import ApiSettings
from contracts import OrderStatus
from servicekit.errors import PROBLEM_JSON
from servicekit.security import CurrentCustomer, CurrentManager

customer_router = APIRouter(prefix="/customer/orders", tags=["customer: orders"])
manager_router = APIRouter(prefix="/manager/stores/{store_id}/orders", tags=["manager: orders"])

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=100,
        description="Required. A retry with the same key and body replays the first answer.",
    ),
]


@customer_router.post(
    "",
    status_code=201,
    summary="Reserve units of a deal (Idempotency-Key required)",
    responses={
        409: {
            "description": "`insufficient_stock`, `deal_not_live`, `price_changed` or "
            "`idempotency_key_in_flight`"
        },
        422: {"description": "Invalid body, or `idempotency_key_reused` with another body"},
    },
)
async def place_order(
    request: Request,
    actor: CurrentCustomer,
    body: OrderCreate,
    idempotency_key: IdempotencyKeyHeader = None,
) -> OrderRead:
    if not idempotency_key or not idempotency_key.strip():
        raise IdempotencyKeyMissing(
            "send an Idempotency-Key header (a fresh UUID per order attempt)",
            field="Idempotency-Key",
        )
    settings: ApiSettings = request.app.state.settings
    now = utcnow()
    key = idempotency_key.strip()

    async def operation(db: AsyncConnection) -> tuple[int, dict[str, Any]]:
        order = await service.place_order(
            db,
            actor,
            body,
            now,
            answer_key=key,
            max_quantity=settings.orders.max_quantity_per_order,
            reservation=settings.orders.reservation,
        )
        return 201, order.model_dump(mode="json")

    answer = await run_once(
        request.app.state.sessions,
        customer_id=actor.user_id,
        key=key,
        digest=request_hash("POST", request.url.path, body.model_dump_json().encode()),
        now=now,
        in_flight_timeout=timedelta(seconds=settings.orders.idempotency_in_flight_timeout_s),
        operation=operation,
        instance=request.url.path,
        # The SELECT … FOR UPDATE baseline needs a transaction around its lock and write.
        single_statement=settings.orders.reservation == "atomic_update",
    )
    return JSONResponse(  # type: ignore[return-value]  # the stored answer, byte for byte
        answer.body,
        status_code=answer.status,
        media_type="application/json" if answer.status < 400 else PROBLEM_JSON,
        headers={"Idempotent-Replayed": "true"} if answer.replayed else None,
    )


@customer_router.get("", summary="Your orders")
async def list_my_orders(
    session: SessionDep, actor: CurrentCustomer, cursor: UuidCursor = None, limit: Limit = 20
) -> OrderPage:
    return await service.list_my_orders(session, actor, cursor, limit)


@customer_router.get("/{order_id}", summary="One of your orders, with its history")
async def get_my_order(
    session: SessionDep, actor: CurrentCustomer, order_id: uuid.UUID
) -> OrderDetail:
    return await service.get_my_order(session, actor, order_id)


@customer_router.post("/{order_id}/cancel", summary="Cancel before the store accepts")
async def cancel_my_order(
    session: SessionDep, actor: CurrentCustomer, order_id: uuid.UUID
) -> OrderDetail:
    return await service.cancel_my_order(session, actor, order_id, utcnow())


@manager_router.get("", summary="The store's orders")
async def list_store_orders(
    session: SessionDep,
    actor: CurrentManager,
    store_id: str,
    status: Annotated[OrderStatus | None, Query()] = None,
    cursor: UuidCursor = None,
    limit: Limit = 20,
) -> OrderPage:
    return await service.list_store_orders(session, actor, store_id, status, cursor, limit)


@manager_router.get("/{order_id}", summary="One order of the store, with its history")
async def get_store_order(
    session: SessionDep, actor: CurrentManager, store_id: str, order_id: uuid.UUID
) -> OrderDetail:
    return await service.get_store_order(session, actor, store_id, order_id)


@manager_router.post("/{order_id}/accept", summary="Accept a placed order")
async def accept_order(
    session: SessionDep, actor: CurrentManager, store_id: str, order_id: uuid.UUID
) -> OrderDetail:
    return await service.accept_order(session, actor, store_id, order_id, utcnow())


@manager_router.post("/{order_id}/ready", summary="The order is ready for pickup")
async def mark_ready(
    session: SessionDep, actor: CurrentManager, store_id: str, order_id: uuid.UUID
) -> OrderDetail:
    return await service.mark_ready(session, actor, store_id, order_id, utcnow())


@manager_router.post("/{order_id}/pickup", summary="Hand over after checking the pickup code")
async def hand_over(
    session: SessionDep,
    actor: CurrentManager,
    store_id: str,
    order_id: uuid.UUID,
    body: PickupCheck,
) -> OrderDetail:
    return await service.hand_over(session, actor, store_id, order_id, body, utcnow())


@manager_router.post("/{order_id}/reject", summary="Reject with a reason code")
async def reject_order(
    session: SessionDep,
    actor: CurrentManager,
    store_id: str,
    order_id: uuid.UUID,
    body: OrderReject,
) -> OrderDetail:
    return await service.reject_order(session, actor, store_id, order_id, body, utcnow())
