from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _hhmm(value: str) -> str:
    if not _HHMM.match(value):
        raise ValueError("use 24-hour HH:MM, e.g. 22:30")
    return value


HhMm = Annotated[str, AfterValidator(_hhmm)]


class PlaceLabel(StrEnum):
    HOME = "home"
    WORK = "work"


class SubscriptionPut(BaseModel):
    """A saved place and how far from it a deal may be to be worth a notification."""

    model_config = ConfigDict(extra="forbid")

    lat: float = Field(ge=33.0, le=39.0, description="WGS84 latitude (Korea)")
    lon: float = Field(ge=124.0, le=132.0, description="WGS84 longitude (Korea)")
    radius_m: int = Field(ge=100, le=10_000, description="metres from the place")


class SubscriptionRead(BaseModel):
    label: PlaceLabel
    lat: float
    lon: float
    radius_m: int
    updated_at: datetime | None = None


class PreferencesPut(BaseModel):
    """Quiet hours in Korean wall-clock time (may wrap midnight) and the daily cap on deals."""

    model_config = ConfigDict(extra="forbid")

    quiet_start: HhMm | None = None
    quiet_end: HhMm | None = None
    daily_cap: int | None = Field(default=None, ge=0, le=100)


class PreferencesRead(BaseModel):
    quiet_start: str | None
    quiet_end: str | None
    daily_cap: int
