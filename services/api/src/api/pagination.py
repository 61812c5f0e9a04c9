"""Query parameters every list endpoint shares: an opaque cursor and a capped page size."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query

MAX_PAGE_SIZE = 100

Cursor = Annotated[str | None, Query(max_length=100, description="From the previous page")]
UuidCursor = Annotated[
    uuid.UUID | None, Query(alias="cursor", description="From the previous page")
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size, at most 100")]
