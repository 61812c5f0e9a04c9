"""push's database: the declarative base, the request session, a portable insert-or-ignore."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.dml import Insert

from servicekit.db import new_metadata


class Base(DeclarativeBase):
    metadata = new_metadata()


def insert_ignoring_conflicts(session: AsyncSession, table: Any) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` in the session's dialect (PostgreSQL or SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    # The request is the transaction: committed here, before the response is sent.
    async with request.app.state.sessions() as session:
        yield session
        await session.commit()


SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]
