"""Demo users of the local profile: one of each role, signed in through ``/auth/dev/login``."""

from __future__ import annotations

from typing import Final, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from auth.user import repository

DemoUser = Literal["customer", "manager", "admin"]
DEV_PROVIDER: Final = "dev"

DEMO_USERS: Final[dict[DemoUser, tuple[str, list[str]]]] = {
    "customer": ("지하철 손님", ["customer"]),
    "manager": ("빵집 사장님", ["customer", "manager"]),
    "admin": ("운영자", ["customer", "admin"]),
}


async def seed_demo_users(session: AsyncSession) -> None:
    for name, (nickname, roles) in DEMO_USERS.items():
        user = await repository.find_by_identity(session, DEV_PROVIDER, f"demo-{name}")
        if user is None:
            await repository.upsert_identity(
                session, DEV_PROVIDER, f"demo-{name}", nickname=nickname, email=None, roles=roles
            )
