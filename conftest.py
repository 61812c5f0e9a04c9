"""Fixtures every member's tests share: where the real local infrastructure listens.

Integration tests run against the servers `scripts/infra up` starts (PostgreSQL + PostGIS, Kafka,
Zipkin, OpenBao); they fail, not skip, when those are down — `make test` starts them first.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Infra:
    pg_host: str
    pg_port: int
    pg_user: str
    pg_password: str
    kafka_bootstrap: str

    def pg_env(self, service: str) -> dict[str, str]:
        """Environment that points a service's prod profile at the local PostgreSQL."""
        prefix = service.upper()
        return {
            f"{prefix}_DATABASE__HOST": self.pg_host,
            f"{prefix}_DATABASE__PORT": str(self.pg_port),
            f"{prefix}_DATABASE__USER": self.pg_user,
            f"{prefix}_DATABASE__PASSWORD": self.pg_password,
            f"{prefix}_KAFKA__BOOTSTRAP_SERVERS": self.kafka_bootstrap,
        }

    def dsn(self, dbname: str) -> str:
        return (
            f"host={self.pg_host} port={self.pg_port} user={self.pg_user}"
            f" password={self.pg_password} dbname={dbname}"
        )

    @contextlib.contextmanager
    def scratch_database(self, prefix: str) -> Iterator[str]:
        """A new, empty database of its own (``<prefix>_<random>``), dropped afterwards: its
        name."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def infra() -> Infra:
    found = Infra(
        pg_host="127.0.0.1",
        pg_port=int(os.environ.get("MAGAM_PG_PORT", "5433")),
        pg_user="magam",
        pg_password=os.environ.get("MAGAM_PG_PASSWORD", "magam"),
        kafka_bootstrap=f"127.0.0.1:{os.environ.get('MAGAM_KAFKA_PORT', '9092')}",
    )
    kafka_host, kafka_port = found.kafka_bootstrap.split(":")
    down = [
        name
        for name, host, port in (
            ("postgres", found.pg_host, found.pg_port),
            ("kafka", kafka_host, int(kafka_port)),
        )
        if not _reachable(host, port)
    ]
    if down:
        pytest.fail(f"{', '.join(down)} not reachable: run `scripts/infra up` (make test does)")
    return found


@pytest.fixture
def prod_profile(monkeypatch: pytest.MonkeyPatch, infra: Infra) -> Infra:
    """Selects the prod profile for settings built in the test, against the local servers."""
    monkeypatch.setenv("MAGAM_PROFILE", "prod")
    monkeypatch.setenv("MAGAM_ALLOW_DEV_SECRETS", "1")
    monkeypatch.setenv("MAGAM_CONFIG_REPO", str(REPO / "config-repo"))
    for service in ("api", "auth", "push"):
        for key, value in infra.pg_env(service).items():
            monkeypatch.setenv(key, value)
        # Tracing installs process-wide instrumentation: once one in-process app turned it on,
        # every later test's SQL and HTTP went to Zipkin (100,000+ spans a suite). Tests that
        # check traces run the services as processes and turn it on there.
        monkeypatch.setenv(f"{service.upper()}_TRACING__ENABLED", "false")
    return infra
