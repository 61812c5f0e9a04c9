"""From raw file rows to checked store records: selection, validation, district assignment.

No database here: the result (records, rejects, counts) is what the writers load.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from api.importer import boundaries
from api.importer.formats import RawFile

# Whole codes at any level (대/중/소분류). Food is I2 (Q before 2023); the food retailers are
# supermarkets (G20404), convenience stores (G20405) and food retail (G205) — sellers of near-expiry
# food too. Old retail codes (D…) are not selected by default: their table is not in our data.
DEFAULT_CATEGORIES: tuple[str, ...] = ("I2", "Q", "G20404", "G20405", "G205")

# Korea's mainland and islands (Jeju, Ulleung, Dokdo) with a small margin, WGS84.
KOREA_LON = (124.5, 132.0)
KOREA_LAT = (33.0, 38.7)

# 20-character ids (2023+: MA0101…) or plain numbers (older files).
_VALID_ID = re.compile(r"[A-Z]{2}[0-9A-Z]{18}|[0-9]{1,20}").fullmatch

REJECT_REASONS = (
    "missing_id",
    "bad_id",
    "duplicate_id",
    "missing_name",
    "missing_coordinates",
    "bad_coordinates",
    "outside_korea",
    "unknown_district",
)


@dataclass(slots=True)
class StoreRecord:
    id: str
    name: str
    branch: str
    large_code: str
    middle_code: str
    small_code: str
    road_address: str
    lot_address: str
    district_code: str
    dong_code: str
    lon: float
    lat: float

    @property
    def address(self) -> str:
        return self.road_address or self.lot_address


@dataclass(frozen=True)
class Reject:
    path: Path
    line: int
    reason: str
    row: list[str]
    store_id: str = ""  # as the file has it (a rejected row still says "this store exists")


@dataclass
class Prepared:
    """Everything the writers need, and the counts of the summary."""

    records: list[StoreRecord] = field(default_factory=list)
    # (file, line, raw row) of each record, for a reject decided after the polygon lookup.
    origins: list[tuple[Path, int, list[str]]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    read: int = 0
    selected: int = 0
    district_from_polygon: int = 0
    district_mismatch: int = 0
    dong_from_polygon: int = 0
    header: tuple[str, ...] = ()

    @property
    def rejected(self) -> Counter[str]:
        return Counter(reject.reason for reject in self.rejects)


def parse_categories(text: str) -> tuple[str, ...]:
    """``I2,G20404`` → ``("I2", "G20404")``; ``all`` selects every row (empty tuple)."""
    codes = tuple(code.strip().upper() for code in text.split(",") if code.strip())
    return () if codes == ("ALL",) else codes


def selects(categories: tuple[str, ...], large: str, middle: str, small: str) -> bool:
    # Whole codes only: "Q" must not select "Q1" (healthcare in the 2023 scheme).
    return not categories or large in categories or middle in categories or small in categories


def source_date_from_name(path: Path) -> date | None:
    """``…_서울_202606.csv`` → 2026-06-01: the files carry their month in the name."""
    match = re.search(r"(20[0-9]{2})(0[1-9]|1[0-2])(?![0-9])", path.stem)
    return date(int(match[1]), int(match[2]), 1) if match else None


def prepare(
    files: Iterable[RawFile],
    categories: tuple[str, ...] = DEFAULT_CATEGORIES,
    progress: Callable[[int], None] | None = None,
) -> Prepared:
    """Selects, checks and places the rows of all files; later files win nothing over earlier."""
    out = Prepared()
    seen: set[str] = set()
    for raw in files:
        out.header = out.header or raw.header
        _prepare_file(raw, categories, out, seen, progress)
    _assign_areas(out)
    return out


def _prepare_file(
    raw: RawFile,
    categories: tuple[str, ...],
    out: Prepared,
    seen: set[str],
    progress: Callable[[int], None] | None,
) -> None:
    ix = raw.index
    c_id, c_name, c_branch = ix["상가업소번호"], ix["상호명"], ix["지점명"]
    c_large, c_middle, c_small = (
        ix["상권업종대분류코드"],
        ix["상권업종중분류코드"],
        ix["상권업종소분류코드"],
    )
    c_district, c_dong = ix["시군구코드"], ix["행정동코드"]
    c_road, c_lot, c_lon, c_lat = ix["도로명주소"], ix["지번주소"], ix["경도"], ix["위도"]

    def reject(row: list[str], line: int, reason: str) -> None:
        out.rejects.append(Reject(raw.path, line, reason, row, row[c_id].strip()))

    out.read += raw.skipped + len(raw.rows)
    if progress is not None:
        progress(raw.skipped)
    wanted = frozenset(categories)
    records, origins, path = out.records, out.origins, raw.path
    min_lon, max_lon = KOREA_LON
    min_lat, max_lat = KOREA_LAT
    valid_id = _VALID_ID
    selected = 0
    step = max(1, len(raw.rows) // 100)
    # The hot loop of the import (a third of 554,092 rows): locals, no helper calls per row.
    for n, (row, line) in enumerate(zip(raw.rows, raw.lines, strict=True)):
        if progress is not None and n % step == 0:
            progress(min(step, len(raw.rows) - n))
        large, middle, small = row[c_large].strip(), row[c_middle].strip(), row[c_small].strip()
        # Whole codes only: "Q" must not select "Q1" (healthcare in the 2023 scheme).
        if wanted and large not in wanted and middle not in wanted and small not in wanted:
            continue
        selected += 1
        store_id = row[c_id].strip()
        if not store_id:
            reject(row, line, "missing_id")
            continue
        if not valid_id(store_id):
            reject(row, line, "bad_id")
            continue
        if store_id in seen:
            reject(row, line, "duplicate_id")
            continue
        name = row[c_name].strip()
        if not name:
            reject(row, line, "missing_name")
            continue
        try:
            lon, lat = float(row[c_lon]), float(row[c_lat])
        except ValueError:
            empty = not row[c_lon].strip() or not row[c_lat].strip()
            reject(row, line, "missing_coordinates" if empty else "bad_coordinates")
            continue
        if not (min_lon <= lon <= max_lon and min_lat <= lat <= max_lat):
            reject(row, line, "outside_korea")
            continue
        district = row[c_district].strip()
        dong = row[c_dong].strip()
        seen.add(store_id)
        records.append(
            StoreRecord(
                store_id,
                name,
                row[c_branch].strip(),
                large,
                middle,
                small,
                row[c_road].strip(),
                row[c_lot].strip(),
                district if len(district) == 5 and district.isdigit() else "",
                # Old files have 10-digit dong codes: their first 8 digits are today's code.
                dong[:8] if len(dong) in (8, 10) and dong.isdigit() else "",
                lon,
                lat,
            )
        )
        origins.append((path, line, row))
    out.selected += selected


def _assign_areas(out: Prepared) -> None:
    """Checks each store's district and dong against Seoul's boundaries, filling unknown codes."""
    records = out.records
    if not records:
        return
    lon = np.fromiter((r.lon for r in records), dtype=np.float64, count=len(records))
    lat = np.fromiter((r.lat for r in records), dtype=np.float64, count=len(records))
    seoul_districts = boundaries.districts()
    located = seoul_districts.locate(lon, lat)
    seoul_dongs = boundaries.dongs()
    need_dong = [
        i
        for i, r in enumerate(records)
        if r.dong_code not in seoul_dongs.by_code and (located[i] is not None or not r.dong_code)
    ]
    dong_found = seoul_dongs.locate(lon[need_dong], lat[need_dong])
    dong_for = dict(zip(need_dong, dong_found, strict=True))
    kept: list[StoreRecord] = []
    for i, record in enumerate(records):
        area = located[i]
        if record.district_code in seoul_districts.by_code:
            if area is not None and area.code != record.district_code:
                # Border stores fall on the simplified polygon's wrong side: trust the file.
                out.district_mismatch += 1
        elif area is not None:
            record.district_code = area.code
            out.district_from_polygon += 1
        elif not record.district_code:
            path, line, row = out.origins[i]
            out.rejects.append(Reject(path, line, "unknown_district", row, record.id))
            continue
        if i in dong_for:
            dong = dong_for[i]
            if dong is not None:
                record.dong_code = dong.code
                out.dong_from_polygon += 1
        kept.append(record)
    out.records = kept
    out.origins = []
