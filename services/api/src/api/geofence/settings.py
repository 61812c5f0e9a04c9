from __future__ import annotations

from pydantic import BaseModel, Field


class GeofenceSettings(BaseModel):
    enabled: bool = Field(default=True, description="Keep the nearby cache (else PostGIS answers)")
    force_postgis: bool = Field(
        default=False, description="Answer nearby queries from PostGIS only (the bench baseline)"
    )
    max_deals: int = Field(default=2_000_000, ge=0, description="Memory bound of the cache")
    purge_every_s: float = Field(default=30, gt=0, description="Dropping expired deals")
