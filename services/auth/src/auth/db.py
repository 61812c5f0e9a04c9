"""auth's database: the declarative base and the request session (the transaction boundary)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase

from auth.events import take_events
from servicekit.db import new_metadata
from servicekit.errors import AppError


class Base(DeclarativeBase):
    metadata = new_metadata()


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response (``scope="function"``).

    An error whose class sets ``keeps_writes`` (a replayed refresh token revokes its family)
    commits what was written before raising; every other error rolls back. Events queued with
    ``auth.events.add_event`` are published only after a commit.
    """
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with sessions() as session:
        try:
            yield session
        except AppError as exc:
            if getattr(exc, "keeps_writes", False):
                await session.commit()
                request.app.state.events.send_later(take_events(session))
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        await session.commit()
        request.app.state.events.send_later(take_events(session))


SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]
