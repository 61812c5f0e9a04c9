"""The claims of our access tokens (RFC 9068 profile), shared by auth (issuer) and verifiers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["customer", "manager", "admin"]


class AccessTokenClaims(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    iss: str
    aud: str | list[str]
    sub: str = Field(description="Our user id")
    exp: int
    iat: int
    jti: str
    roles: Annotated[list[Role], Field(min_length=1)]
    sid: str | None = Field(default=None, description="The refresh-token family (session) id")

    def has_role(self, role: Role) -> bool:
        return role in self.roles
