"""api's /readyz follows PostgreSQL going away and coming back, without an api restart."""

import subprocess
import time

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from conftest import REPO, Infra

pytestmark = [pytest.mark.integration, pytest.mark.disruptive]


def _infra(*args: str) -> None:
    subprocess.run([str(REPO / "scripts" / "infra"), *args], check=True, capture_output=True)


def _wait_for_status(client: TestClient, status: int, deadline_s: float) -> dict[str, object]:
    deadline = time.monotonic() + deadline_s
    while True:
        response = client.get("/readyz")
        if response.status_code == status or time.monotonic() > deadline:
            assert response.status_code == status, response.text
            return response.json()  # type: ignore[no-any-return]
        time.sleep(0.3)


def test_readyz_names_the_database_while_postgres_is_down_and_recovers(
    prod_profile: Infra,
) -> None:
    with TestClient(create_app(ApiSettings())) as client:
        _wait_for_status(client, 200, deadline_s=20)
        try:
            _infra("down", "postgres")

            down = _wait_for_status(client, 503, deadline_s=10)

            assert list(down["failing"]) == ["database"]  # type: ignore[call-overload]
            assert down["checks"] == {"database": "down", "kafka": "up"}
        finally:
            _infra("up", "postgres")

        up = _wait_for_status(client, 200, deadline_s=30)
        assert up["failing"] == {}
