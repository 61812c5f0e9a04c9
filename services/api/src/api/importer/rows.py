"""From store file columns to checked store records: selection, validation, district assignment.

No database here: the result (the records as an Arrow table, the rejects, the counts) is what the
writers load. The checks run on whole columns at once (pyarrow.compute and numpy), a third of a
554,092-row file in well under a second; the rows either reader produced go through the same code.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
from numpy.typing import NDArray

from api.importer import boundaries
from api.importer.columnar import StoreFile, from_raw
from api.importer.formats import RawFile

# Whole codes at any level (대/중/소분류). Food is I2 (Q before 2023); the food retailers are
# supermarkets (G20404), convenience stores (G20405) and food retail (G205) — sellers of near-expiry
# food too. Old retail codes (D…) are not selected by default: their table is not in our data.
DEFAULT_CATEGORIES: tuple[str, ...] = ("I2", "Q", "G20404", "G20405", "G205")

# Korea's mainland and islands (Jeju, Ulleung, Dokdo) with a small margin, WGS84.
KOREA_LON = (124.5, 132.0)
KOREA_LAT = (33.0, 38.7)

# 20-character ids (2023+: MA0101…) or plain numbers (older files).
VALID_ID = r"^(?:[A-Z]{2}[0-9A-Z]{18}|[0-9]{1,20})$"
# What both Arrow's and Python's float parsers read alike (correctly rounded); any other
# non-blank text is handed to Python's float() one value at a time.
_PLAIN_NUMBER = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"

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
_REASON = {reason: code for code, reason in enumerate(REJECT_REASONS, start=1)}

# The file's columns under the names the records use, in StoreRecord's order.
FIELDS: dict[str, str] = {
    "id": "상가업소번호",
    "name": "상호명",
    "branch": "지점명",
    "large_code": "상권업종대분류코드",
    "middle_code": "상권업종중분류코드",
    "small_code": "상권업종소분류코드",
    "road_address": "도로명주소",
    "lot_address": "지번주소",
    "district_code": "시군구코드",
    "dong_code": "행정동코드",
    "lon": "경도",
    "lat": "위도",
}
TEXT_FIELDS = tuple(name for name in FIELDS if name not in ("lon", "lat"))
_CODES = ("large_code", "middle_code", "small_code")


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


def _empty_table() -> pa.Table:
    return pa.table(
        {name: pa.array([], pa.string()) for name in TEXT_FIELDS}
        | {"lon": pa.array([], pa.float64()), "lat": pa.array([], pa.float64())}
    )


@dataclass
class Prepared:
    """Everything the writers need, and the counts of the summary."""

    # The accepted stores in file order: FIELDS' names, strings and float64 lon/lat.
    table: pa.Table = field(default_factory=_empty_table)
    rejects: list[Reject] = field(default_factory=list)
    read: int = 0
    selected: int = 0
    district_from_polygon: int = 0
    district_mismatch: int = 0
    dong_from_polygon: int = 0
    header: tuple[str, ...] = ()

    @property
    def records(self) -> list[StoreRecord]:
        """The accepted stores as objects (tests, the SQLite writer, the bench's baseline)."""
        return [StoreRecord(**row) for row in self.table.select(list(FIELDS)).to_pylist()]

    @property
    def rejected(self) -> Counter[str]:
        return Counter(reject.reason for reject in self.rejects)


def parse_categories(text: str) -> tuple[str, ...]:
    """``I2,G20404`` → ``("I2", "G20404")``; ``all`` selects every row (empty tuple)."""
    codes = tuple(code.strip().upper() for code in text.split(",") if code.strip())
    return () if codes == ("ALL",) else codes


def source_date_from_name(path: Path) -> date | None:
    """``…_서울_202606.csv`` → 2026-06-01: the files carry their month in the name."""
    match = re.search(r"(20[0-9]{2})(0[1-9]|1[0-2])(?![0-9])", path.stem)
    return date(int(match[1]), int(match[2]), 1) if match else None


def prepare(
    files: Iterable[StoreFile | RawFile],
    categories: tuple[str, ...] = DEFAULT_CATEGORIES,
    progress: Callable[[int], None] | None = None,
) -> Prepared:
    """Selects, checks and places the rows of all files; a store id's first good row wins."""
    out = Prepared()
    sources: list[StoreFile] = []
    parts: list[pa.Table] = []
    wanted = pa.array(categories, pa.string())
    for n, given in enumerate(files):
        source = given if isinstance(given, StoreFile) else from_raw(given)
        out.header = out.header or source.header
        out.read += source.rows
        columns = source.columns
        codes = {name: pc.utf8_trim_whitespace(columns[FIELDS[name]]) for name in _CODES}
        if categories:
            # Whole codes only: "Q" must not select "Q1" (healthcare in the 2023 scheme).
            chosen = pc.or_(
                pc.or_(
                    pc.is_in(codes["large_code"], wanted), pc.is_in(codes["middle_code"], wanted)
                ),
                pc.is_in(codes["small_code"], wanted),
            )
            columns = columns.filter(chosen)
            codes = {name: values.filter(chosen) for name, values in codes.items()}
        table = pa.table(
            {
                name: codes[name]
                if name in codes
                else pc.utf8_trim_whitespace(columns[FIELDS[name]])
                for name in TEXT_FIELDS
            }
            | {"lon": columns["경도"], "lat": columns["위도"], "line": columns["line"]}
        )
        out.selected += table.num_rows
        parts.append(table.append_column("file", pa.array(np.full(table.num_rows, n, np.int32))))
        sources.append(source)
        if progress is not None:
            progress(source.rows // 2)  # selected; the checks are the other half
    if not parts:
        return out
    table = pa.concat_tables(parts)
    reasons, lon, lat = _check_rows(table)
    if progress is not None:
        progress(out.read // 4)
    good = reasons == 0
    accepted = table.filter(pa.array(good)).drop_columns(["lon", "lat"])
    accepted = accepted.append_column("lon", pa.array(lon[good])).append_column(
        "lat", pa.array(lat[good])
    )
    accepted, late = _assign_areas(accepted, out)
    if progress is not None:
        progress(out.read)  # the bar stops at its total
    # Rejected rows in file order, then those only the polygons could reject (as before).
    rows = [(i, REJECT_REASONS[reasons[i] - 1]) for i in np.flatnonzero(~good).tolist()]
    rows += [(i, "unknown_district") for i in np.flatnonzero(good)[late].tolist()]
    out.rejects = _rejects(table, rows, sources)
    out.table = accepted.filter(pa.array(~late)).select(list(FIELDS))
    return out


def _check_rows(
    table: pa.Table,
) -> tuple[NDArray[np.int8], NDArray[np.float64], NDArray[np.float64]]:
    """Each row's reject reason (0: good) in the order the checks apply, and its coordinates."""
    ids = table["id"]
    missing_id = _np(pc.equal(ids, ""))
    bad_id = ~missing_id & ~_np(pc.match_substring_regex(ids, VALID_ID))
    missing_name = _np(pc.equal(table["name"], ""))
    lon, lon_ok, lon_blank = _coordinates(table["lon"])
    lat, lat_ok, lat_blank = _coordinates(table["lat"])
    unparsed = ~(lon_ok & lat_ok)
    min_lon, max_lon = KOREA_LON
    min_lat, max_lat = KOREA_LAT
    with np.errstate(invalid="ignore"):
        inside = (min_lon <= lon) & (lon <= max_lon) & (min_lat <= lat) & (lat <= max_lat)
    passes = ~missing_id & ~bad_id & ~missing_name & ~unparsed & inside
    # A duplicate: an earlier row with the same id was accepted (a rejected one does not count).
    position = np.arange(len(table), dtype=np.int64)
    firsts = (
        pa.table({"id": ids.filter(pa.array(passes)), "at": position[passes]})
        .group_by("id", use_threads=False)
        .aggregate([("at", "min")])
    )
    first = pc.index_in(ids, value_set=firsts["id"])
    first_at = firsts["at_min"].take(pc.fill_null(first, 0)).to_numpy()
    duplicate = ~missing_id & ~bad_id & _np(pc.is_valid(first)) & (first_at < position)
    reasons = np.zeros(len(table), dtype=np.int8)
    # Later checks first, so that the earliest failing check names the row.
    reasons[~inside] = _REASON["outside_korea"]
    reasons[unparsed] = np.where(
        (lon_blank | lat_blank)[unparsed],
        _REASON["missing_coordinates"],
        _REASON["bad_coordinates"],
    )
    reasons[missing_name] = _REASON["missing_name"]
    reasons[duplicate] = _REASON["duplicate_id"]
    reasons[bad_id] = _REASON["bad_id"]
    reasons[missing_id] = _REASON["missing_id"]
    return reasons, lon, lat


def _np(array: pa.ChunkedArray | pa.Array) -> NDArray[np.bool_]:
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.bool_)


def _coordinates(
    text: pa.ChunkedArray,
) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_]]:
    """The numbers (NaN where unreadable), which ones were read, which cells were blank."""
    trimmed = pc.utf8_trim_whitespace(text)
    blank = _np(pc.equal(trimmed, ""))
    plain = pc.match_substring_regex(trimmed, _PLAIN_NUMBER)
    values = np.array(
        pc.cast(pc.if_else(plain, trimmed, pa.scalar(None, pa.string())), pa.float64()).to_numpy(
            zero_copy_only=False
        ),
        dtype=np.float64,
    )
    read = _np(plain)
    for i in np.flatnonzero(~read & ~blank):
        # What Python's float() still reads ("1_000", "nan", full-width digits) it reads here too.
        try:
            values[i] = float(text[int(i)].as_py())
            read[i] = True
        except ValueError:
            pass
    return values, read, blank


def _assign_areas(table: pa.Table, out: Prepared) -> tuple[pa.Table, NDArray[np.bool_]]:
    """Checks districts and dongs against Seoul's boundaries, filling unknown codes from the
    polygons; also returns the rows to reject as ``unknown_district``."""
    if table.num_rows == 0:
        return table, np.zeros(0, dtype=np.bool_)
    lon, lat = table["lon"].to_numpy(), table["lat"].to_numpy()
    codes_of = table["district_code"]
    district = _np_str(pc.if_else(pc.match_substring_regex(codes_of, r"^[0-9]{5}$"), codes_of, ""))
    # Old files have 10-digit dong codes: their first 8 digits are today's code.
    dongs_of = table["dong_code"]
    dong = _np_str(
        pc.if_else(
            pc.match_substring_regex(dongs_of, r"^(?:[0-9]{8}|[0-9]{10})$"),
            pc.utf8_slice_codeunits(dongs_of, 0, 8),
            "",
        )
    )
    seoul = boundaries.districts()
    area = seoul.locate_index(lon, lat)
    codes = np.array([a.code for a in seoul.areas] + [""], dtype=object)
    located = codes[area]  # area -1 → ""
    known = _np(pc.is_in(pa.array(district, pa.string()), pa.array(list(seoul.by_code))))
    inside = area >= 0
    # Border stores fall on the simplified polygon's wrong side: trust the file.
    out.district_mismatch += int(np.count_nonzero(known & inside & (located != district)))
    from_polygon = ~known & inside
    out.district_from_polygon += int(np.count_nonzero(from_polygon))
    district = np.where(from_polygon, located, district)
    unknown = ~known & ~inside & (district == "")
    dongs = boundaries.dongs()
    listed = _np(pc.is_in(pa.array(dong, pa.string()), pa.array(list(dongs.by_code))))
    need = ~listed & (inside | (dong == ""))
    need &= ~unknown
    found = dongs.locate_index(lon[need], lat[need])
    dong_codes = np.array([a.code for a in dongs.areas] + [""], dtype=object)
    fill = np.flatnonzero(need)[found >= 0]
    dong[fill] = dong_codes[found[found >= 0]]
    out.dong_from_polygon += len(fill)
    for name, values in (("district_code", district), ("dong_code", dong)):
        position = table.schema.get_field_index(name)
        table = table.set_column(position, name, pa.array(values, pa.string()))
    return table, unknown


def _np_str(array: pa.ChunkedArray | pa.Array) -> NDArray[np.object_]:
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=object)


def _rejects(
    table: pa.Table, rows: list[tuple[int, str]], sources: list[StoreFile]
) -> list[Reject]:
    """The rejected rows with every field the file has (read again by line: they are few)."""
    if not rows:
        return []
    at = pa.array([i for i, _ in rows], pa.int64())
    files = table["file"].take(at).to_pylist()
    lines = table["line"].take(at).to_pylist()
    ids = table["id"].take(at).to_pylist()
    fields: dict[tuple[int, int], list[str]] = {}
    for n, source in enumerate(sources):
        wanted = sorted({line for f, line in zip(files, lines, strict=True) if f == n})
        if wanted:
            fields |= {
                (n, line): row for line, row in zip(wanted, source.raw_rows(wanted), strict=True)
            }
    return [
        Reject(sources[f].path, line, reason, fields[f, line], store_id)
        for (_, reason), f, line, store_id in zip(rows, files, lines, ids, strict=True)
    ]
