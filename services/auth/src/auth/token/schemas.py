from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

RefreshTokenField = Annotated[str, Field(min_length=1, max_length=200)]


class TokenResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOiJFUzI1NiIs…",
                    "token_type": "Bearer",
                    "expires_in": 600,
                    "refresh_token": "p3cT…",
                    "refresh_expires_in": 2592000,
                }
            ]
        }
    )

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 — the OAuth token type, not a secret
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


class DevLoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"user": "manager"}]})

    user: Literal["customer", "manager", "admin"]


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: RefreshTokenField


class MeResponse(BaseModel):
    id: str
    roles: list[str]
    nickname: str | None
    email: str | None
    session_id: str | None
