from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class TargetKind(StrEnum):
    TOKEN = "token"  # noqa: S105 — an FCM registration token, the kind not a secret
    FID = "fid"  # a Firebase installation id


class Platform(StrEnum):
    ANDROID = "android"
    IOS = "ios"
    WEB = "web"


class DeviceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_kind: TargetKind
    target: str = Field(min_length=8, max_length=4096, pattern=r"^[A-Za-z0-9_:\-\.]+$")
    platform: Platform
    locale: str = Field(default="ko-KR", pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


class DeviceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    target_kind: TargetKind
    platform: Platform
    locale: str
    created_at: datetime
    last_seen_at: datetime
