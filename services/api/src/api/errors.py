"""api's business errors: each class carries its HTTP status and a stable code."""

from __future__ import annotations

from servicekit.errors import AppError, Conflict, Forbidden, NotFound


class StoreNotFound(NotFound):
    code = "store_not_found"
    title = "Store not found"


class DealNotFound(NotFound):
    code = "deal_not_found"
    title = "Deal not found"


class MenuItemNotFound(NotFound):
    code = "menu_item_not_found"
    title = "Menu item not found"


class OrderNotFound(NotFound):
    code = "order_not_found"
    title = "Order not found"


class ClaimNotFound(NotFound):
    code = "claim_not_found"
    title = "Store claim not found"


class StoreNotManaged(Forbidden):
    code = "store_not_managed"
    title = "You do not manage this store"


class InsufficientStock(Conflict):
    code = "insufficient_stock"
    title = "Not enough left"


class DealNotLive(Conflict):
    code = "deal_not_live"
    title = "Deal is closed or past its pickup window"


class PriceChanged(Conflict):
    code = "price_changed"
    title = "The price changed"


class InvalidTransition(Conflict):
    code = "invalid_transition"
    title = "The order cannot move to that status"


class ClaimAlreadyDecided(Conflict):
    code = "claim_already_decided"
    title = "The claim was already decided"


class ClaimPending(Conflict):
    code = "claim_pending"
    title = "A claim for this store by you is already pending"


class QuantityBelowReserved(Conflict):
    code = "quantity_below_reserved"
    title = "Quantity below what is already reserved"


class WrongPickupCode(AppError):
    status, code, title = 422, "wrong_pickup_code", "Wrong pickup code"


class InvalidInput(AppError):
    status, code, title = 422, "invalid_input", "Invalid input"


class IdempotencyKeyMissing(AppError):
    status, code, title = 400, "idempotency_key_required", "Idempotency-Key header required"


class IdempotencyKeyReused(AppError):
    status, code, title = 422, "idempotency_key_reused", "Idempotency-Key reused with another body"


class IdempotencyKeyInFlight(Conflict):
    code = "idempotency_key_in_flight"
    title = "A request with this Idempotency-Key is still being processed"
