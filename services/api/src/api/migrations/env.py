"""Alembic environment for api's PostgreSQL + PostGIS database (prod profile settings)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from api.models import Base
from api.settings import ApiSettings
from servicekit.db import build_engine

# PostGIS owns these tables; autogenerate must not try to drop them.
_POSTGIS_TABLES = {"spatial_ref_sys"}


def _include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    return not (type_ == "table" and name in _POSTGIS_TABLES)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_object=_include_object,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _online() -> None:
    settings = context.config.attributes.get("settings") or ApiSettings()
    engine = build_engine(settings)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


asyncio.run(_online())
