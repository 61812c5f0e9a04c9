from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class TokenResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"access_token": "eyJhbGciOiJFUzI1NiIs…", "token_type": "Bearer", "expires_in": 600}
            ]
        }
    )

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 — the OAuth token type, not a secret
    expires_in: int


class DevLoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"user": "manager"}]})

    user: Literal["customer", "manager", "admin"]
