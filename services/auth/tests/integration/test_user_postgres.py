"""auth writes and reads PostgreSQL: users keyed on the provider identity."""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.db import Base
from auth.settings import AuthSettings
from auth.user import repository
from auth.user.models import User
from conftest import Infra
from servicekit.db import build_engine, prepare_schema, session_factory

pytestmark = pytest.mark.integration


@pytest.fixture
async def engine(prod_profile: Infra) -> AsyncIterator[AsyncEngine]:
    engine = build_engine(AuthSettings())
    await prepare_schema(engine, Base.metadata)
    async with engine.begin() as conn:
        await conn.execute(delete(User).where(User.provider == "test"))
    yield engine
    await engine.dispose()


async def test_the_same_identity_is_the_same_user_and_its_profile_is_refreshed(
    engine: AsyncEngine,
) -> None:
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        first = await repository.upsert_identity(
            session, "test", "4242", nickname="마감러", email=None
        )
    async with sessions() as session, session.begin():
        second = await repository.upsert_identity(
            session, "test", "4242", nickname="마감러2", email="a@example.com"
        )

    async with sessions() as session:
        stored = await repository.find_by_identity(session, "test", "4242")

    assert second.id == first.id
    assert stored is not None
    assert (stored.id, stored.nickname, stored.email) == (first.id, "마감러2", "a@example.com")
    assert stored.roles == ["customer"]
    assert stored.active


async def test_a_missing_email_never_merges_two_identities(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        a = await repository.upsert_identity(session, "test", "1", nickname=None, email=None)
        b = await repository.upsert_identity(session, "test", "2", nickname=None, email=None)
    assert a.id != b.id
