"""Building OpenAPI examples from the examples of the models they contain."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def example_of(model: type[BaseModel]) -> Any:
    """The first example a model declares in its ``json_schema_extra``."""
    extra: Any = model.model_config.get("json_schema_extra") or {}
    return extra["examples"][0]


def page_example(item: type[BaseModel]) -> dict[str, Any]:
    return {"examples": [{"items": [example_of(item)], "next_cursor": None}]}
