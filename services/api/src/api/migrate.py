"""``magam-api-migrate``: bring api's PostgreSQL schema to the latest migration (Alembic).

Run once per release before the new replicas start (a Kubernetes Job or initContainer); the
local profile needs none — it creates its SQLite tables from the same models.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

from api.settings import ApiSettings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(settings: ApiSettings | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["settings"] = settings
    return config


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="magam-api-migrate",
        description="Apply api's database migrations (prod profile settings: API_DATABASE__*).",
    )
    parser.add_argument("target", nargs="?", default="head", help="revision to upgrade to")
    parser.add_argument("--sql", action="store_true", help="print the SQL instead of running it")
    args = parser.parse_args(argv)
    settings = ApiSettings()
    if settings.uses_embedded_infrastructure:
        print("the local profile needs no migrations; set MAGAM_PROFILE=prod", file=sys.stderr)
        return 2
    command.upgrade(alembic_config(settings), args.target, sql=args.sql)
    return 0


if __name__ == "__main__":
    sys.exit(run())
