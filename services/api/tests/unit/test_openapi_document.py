"""The OpenAPI document has an example for every request and response, and errors are
documented as the problem+json they really are."""

from typing import Any

import pytest

from api.main import create_app
from api.settings import ApiSettings


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(ApiSettings(profile="local")).openapi()


def _has_example(schema: dict[str, Any], schemas: dict[str, Any]) -> bool:
    if "examples" in schema or "example" in schema:
        return True
    if "$ref" in schema:
        return _has_example(schemas[schema["$ref"].rsplit("/", 1)[-1]], schemas)
    if schema.get("type") == "array":
        return _has_example(schema["items"], schemas)
    return False


def test_every_request_and_response_body_has_an_example(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    missing = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            bodies = [("request", operation.get("requestBody", {}).get("content", {}))]
            bodies += [
                (status, r.get("content", {})) for status, r in operation["responses"].items()
            ]
            for where, content in bodies:
                for media_type, body in content.items():
                    if not ("example" in body or _has_example(body.get("schema", {}), schemas)):
                        missing.append(f"{method.upper()} {path} {where} {media_type}")
    assert missing == []


def test_errors_are_documented_as_problem_json(document: dict[str, Any]) -> None:
    order = document["paths"]["/customer/orders"]["post"]["responses"]
    assert set(order["422"]["content"]) == {"application/problem+json"}
    assert order["409"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }
    assert "HTTPValidationError" not in document["components"]["schemas"]
