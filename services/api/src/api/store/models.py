from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base
from api.geo import GeoPoint, LonLat


class Store(Base):
    """A food business, keyed by the public store file's id (상가업소번호)."""

    __tablename__ = "stores"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    branch: Mapped[str] = mapped_column(String(200), default="")
    category_code: Mapped[str] = mapped_column(
        String(10), comment="상권업종소분류코드, e.g. I21001"
    )
    address: Mapped[str] = mapped_column(String(300), default="")
    district_code: Mapped[str] = mapped_column(String(5), comment="시군구코드 (5 digits)")
    dong_code: Mapped[str] = mapped_column(String(10), default="", comment="행정동코드")
    location: Mapped[LonLat] = mapped_column(GeoPoint())
    # Columns the public store file import fills (api.importer); empty for hand-made stores.
    large_category_code: Mapped[str] = mapped_column(
        String(4), default="", comment="상권업종대분류코드, e.g. I2 (Q in files before 2023)"
    )
    middle_category_code: Mapped[str] = mapped_column(
        String(6), default="", comment="상권업종중분류코드, e.g. I210"
    )
    road_address: Mapped[str] = mapped_column(String(300), default="", comment="도로명주소")
    lot_address: Mapped[str] = mapped_column(String(300), default="", comment="지번주소")
    source_date: Mapped[date | None] = mapped_column(
        Date, default=None, comment="the date of the store file this row last came from"
    )
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        Index("ix_stores_location", "location", postgresql_using="gist"),
        Index("ix_stores_district_code", "district_code"),
    )
