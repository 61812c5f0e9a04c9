"""push's database: the declarative base."""

from __future__ import annotations

from servicekit.db import new_metadata
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    metadata = new_metadata()
