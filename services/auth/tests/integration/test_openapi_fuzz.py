"""schemathesis over auth's OpenAPI, prod profile on the real PostgreSQL, Kakao at the stand-in:
whatever a client sends, auth never answers 5xx."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from auth.main import create_app
from auth.settings import AuthSettings
from standins.server import serve_in_thread

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 30


# schemathesis' strategies draw from `random` (its own choice, not ours to fix).
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
def test_no_input_makes_auth_answer_5xx(prod_settings: Callable[..., AuthSettings]) -> None:
    # Driven by hand rather than schemathesis' pytest plugin, whose lazy fixture loader does not
    # work with this pytest; the generation and the check are schemathesis' own.
    from schemathesis.checks import not_a_server_error  # noqa: PLC0415

    tried: list[str] = []
    with serve_in_thread(create_app(prod_settings()), lifespan="on") as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), f"the OpenAPI has an invalid operation: {result}"
            operation = result.ok()
            tried.append(operation.label)

            @given(case=operation.as_strategy())
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def no_5xx(case: schemathesis.Case[Any]) -> None:
                case.call_and_validate(checks=[not_a_server_error], timeout=10)

            no_5xx()

    assert "POST /auth/kakao/token" in tried
    assert "POST /auth/refresh" in tried
