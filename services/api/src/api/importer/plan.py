"""What an import is asked to do and what it did: shared by the CLI and the writers.

Kept apart from the writers so that the CLI can read files while the database side (SQLAlchemy,
the settings, the models) is still being imported in another thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any


class ImportBusy(Exception):
    """Another import holds the lock."""


@dataclass
class Outcome:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    closed: int = 0
    resumed: bool = False
    dry_run: bool = False
    seconds: dict[str, float] = field(default_factory=dict)  # per phase: stage, merge


@dataclass
class Checkpoint:
    """What a staged-but-not-merged import saved about itself."""

    key: str
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadOptions:
    key: str
    as_of: date
    categories: tuple[str, ...]
    close_missing: bool = True
    dry_run: bool = False
