"""The async engine for a service's own database: PostgreSQL in prod, a SQLite file locally."""

from __future__ import annotations

from sqlalchemy import URL, MetaData, event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext import asyncio as sa_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from servicekit.config import ServiceSettings

# Stable constraint names, so Alembic autogenerate and the two dialects agree.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def database_url(settings: ServiceSettings) -> URL:
    db = settings.database
    if settings.uses_embedded_infrastructure:
        return URL.create("sqlite+aiosqlite", database=str(db.sqlite_dir / f"{db.name}.db"))
    return URL.create(
        "postgresql+psycopg",
        username=db.user,
        password=db.password.get_secret_value(),
        host=db.host,
        port=db.port,
        database=db.name,
    )


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def build_engine(settings: ServiceSettings) -> AsyncEngine:
    url = database_url(settings)
    if url.get_backend_name() == "sqlite":
        settings.database.sqlite_dir.mkdir(parents=True, exist_ok=True)
        engine = sa_asyncio.create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # Looked up at call time: tracing wraps create_async_engine after this module is imported.
    return sa_asyncio.create_async_engine(
        url,
        pool_size=settings.database.pool_size,
        max_overflow=settings.database.pool_size,
        # A connection broken by a database restart is replaced, not handed out.
        pool_pre_ping=True,
        pool_timeout=settings.database.pool_timeout_s,
        connect_args={"connect_timeout": 3, "application_name": settings.service_name},
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    """Raises when the database does not answer a trivial query."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def prepare_schema(engine: AsyncEngine, metadata: MetaData) -> None:
    """Creates the tables (and PostGIS) that do not exist yet; idempotent."""
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql" and any(
            "geography" in str(c.type.compile(dialect=engine.dialect))
            for t in metadata.tables.values()
            for c in t.columns
        ):
            await conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        await conn.run_sync(metadata.create_all)
