"""api's business errors (status and stable code per class)."""

from __future__ import annotations

from servicekit.errors import NotFound


class StoreNotFound(NotFound):
    code = "store_not_found"
    title = "Store not found"
