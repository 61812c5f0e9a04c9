from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.claim import brn
from api.claim.models import ClaimStatus
from api.examples import page_example


class ClaimCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"business_number": "220-81-62517"}]}
    )

    business_number: str = Field(
        max_length=12, description="사업자등록번호, with or without dashes"
    )

    @field_validator("business_number")
    @classmethod
    def _valid(cls, value: str) -> str:
        return brn.normalize(value)


class ClaimDecision(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "사업자등록증 확인 완료"}]}
    )

    reason: str | None = Field(default=None, max_length=500)


class ClaimRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "6f1c2b9e-2f0c-4f7e-8d6a-1c2b3d4e5f60",
                    "store_id": "DEMO0000000000000001",
                    "user_id": "a5c1…",
                    "business_number": "2208162517",
                    "status": "pending",
                    "reason": None,
                    "decided_by": None,
                    "decided_at": None,
                    "created_at": "2026-11-25T12:00:00Z",
                }
            ]
        },
    )

    id: uuid.UUID
    store_id: str
    user_id: str
    business_number: str
    status: ClaimStatus
    reason: str | None
    decided_by: str | None
    decided_at: datetime | None
    created_at: datetime


class ClaimPage(BaseModel):
    model_config = ConfigDict(json_schema_extra=page_example(ClaimRead))

    items: list[ClaimRead]
    next_cursor: str | None
