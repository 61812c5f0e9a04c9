"""Every generation of the public store file reads into the same checked store records."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from api.importer import boundaries
from api.importer.formats import COLUMNS, MalformedFile, read_file
from api.importer.generate import generate_rows, to_generation, write_rows
from api.importer.rows import DEFAULT_CATEGORIES, StoreRecord, prepare, source_date_from_name

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "import"
NATIONAL = FIXTURES / "national_2024_sample4.csv"
SEOUL = FIXTURES / "seoul_202606_head3.csv"


def real_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def records(path: Path, categories: tuple[str, ...] = DEFAULT_CATEGORIES) -> list[StoreRecord]:
    return prepare([read_file(path, only_codes=categories)], categories).records


def by_id(found: list[StoreRecord]) -> dict[str, StoreRecord]:
    return {r.id: r for r in found}


def test_the_current_format_reads_field_by_field_and_selects_food_by_whole_code() -> None:
    raw = read_file(NATIONAL)
    prepared = prepare([raw])

    assert raw.format.encoding == "utf-8-sig"
    assert raw.format.delimiter == ","
    assert prepared.read == 4
    # Default selection: the two I2 rows; not G2 clothing, not Q1 (a hospital in the 2023 scheme).
    assert sorted(r.id for r in prepared.records) == [
        "MA010120220805431535",
        "MA010120220805433603",
    ]
    bakery = by_id(prepared.records)["MA010120220805431535"]
    assert bakery == StoreRecord(
        id="MA010120220805431535",
        name="오미당꽈배기",
        branch="",
        large_code="I2",
        middle_code="I210",
        small_code="I21001",
        road_address="경상남도 김해시 율하6로 56",
        lot_address="경상남도 김해시 장유동 826-4",
        district_code="48250",
        dong_code="48250630",
        lon=128.824132234696,
        lat=35.1718364660764,
    )
    assert bakery.address == "경상남도 김해시 율하6로 56"


def test_old_food_code_q_does_not_select_healthcare_q1() -> None:
    found = records(NATIONAL, ("Q",))
    assert found == []
    assert [r.id for r in records(NATIONAL, ("Q1",))] == ["MA010120220805432253"]


def test_seoul_rows_keep_their_district_and_dong_checked_against_the_boundaries() -> None:
    found = by_id(records(SEOUL, ("G2",)))

    store = found["MA0106202201A2069228"]
    assert (store.name, store.branch) == ("쥬씨&고망고", "서울숲점")
    assert (store.district_code, store.dong_code) == ("11200", "11200660")
    assert (store.large_code, store.middle_code, store.small_code) == ("G2", "G221", "G22199")
    assert store.road_address == "서울특별시 성동구 왕십리로 114"
    # The file's district agrees with the polygon the point falls in.
    located = boundaries.districts().locate(np.array([store.lon]), np.array([store.lat]))
    assert located[0] is not None
    assert located[0].code == "11200"
    assert found["MA0106202201A0016575"].district_code == "11680"


@pytest.mark.parametrize("generation", ["current", "2020-pipe", "2017-cp949"])
def test_each_generation_of_the_real_rows_reads_the_same_stores(
    tmp_path: Path, generation: str
) -> None:
    food = {
        "상권업종대분류코드": "I2",
        "상권업종중분류코드": "I201",
        "상권업종소분류코드": "I20101",
    }
    rows = [row | food for row in real_rows(SEOUL)]
    path = tmp_path / f"stores_{generation}.csv"
    write_rows([to_generation(row, generation, n) for n, row in enumerate(rows)], path, generation)

    raw = read_file(path, only_codes=DEFAULT_CATEGORIES)
    found = prepare([raw]).records

    assert (
        raw.format
        == {
            "current": raw.format.__class__("utf-8-sig", ","),
            "2020-pipe": raw.format.__class__("utf-8-sig", "|"),
            "2017-cp949": raw.format.__class__("cp949", ","),
        }[generation]
    )
    assert len(found) == 3
    first = found[0]
    assert first.name == "쥬씨&고망고"
    assert first.branch == "서울숲점"
    assert first.district_code == "11200"
    # Old files have 10-digit dong codes: their first 8 digits are today's code.
    assert first.dong_code == "11200660"
    assert first.lon == 127.044744101547
    assert first.lat == 37.5476804712386
    if generation == "current":
        assert first.id == "MA0106202201A2069228"
        assert (first.large_code, first.small_code) == ("I2", "I20101")
    else:
        assert first.id == "10000000"
        assert (first.large_code, first.middle_code) == ("Q", "Q01")


def test_generated_rows_of_old_generations_select_q_food_and_not_q1(tmp_path: Path) -> None:
    rows = generate_rows(400, seed=7)
    path = tmp_path / "old.txt"
    write_rows([to_generation(r, "2020-pipe", n) for n, r in enumerate(rows)], path, "2020-pipe")

    found = records(path)

    food = [r for r in rows if r["상권업종대분류코드"] == "I2"]
    retail = [r for r in rows if r["상권업종소분류코드"] in ("G20404", "G20405")]
    assert len(found) == len(food)  # old retail codes (D…) are not selected by default
    assert retail  # …though the generated file has them
    assert {r.large_code for r in found} == {"Q"}
    assert all(r.id.isdigit() for r in found)


def test_a_file_without_bom_and_a_file_with_bom_read_alike(tmp_path: Path) -> None:
    rows = generate_rows(30, seed=3)
    with_bom, without = tmp_path / "a.csv", tmp_path / "b.csv"
    write_rows(rows, with_bom, bom=True)
    write_rows(rows, without, bom=False)

    assert with_bom.read_bytes().startswith(b"\xef\xbb\xbf")
    assert not without.read_bytes().startswith(b"\xef\xbb\xbf")
    assert records(with_bom) == records(without)


def test_generated_stores_lie_in_the_district_and_dong_their_codes_name() -> None:
    rows = generate_rows(2_000, seed=11)
    lon = np.array([float(r["경도"]) for r in rows])
    lat = np.array([float(r["위도"]) for r in rows])

    districts = boundaries.districts().locate(lon, lat)
    dongs = boundaries.dongs().locate(lon, lat)

    assert len({r["상가업소번호"] for r in rows}) == 2_000
    assert all(len(r["상가업소번호"]) == 20 for r in rows)
    assert all(len(r["행정동코드"]) == 8 for r in rows)
    assert [d.code if d else None for d in districts] == [r["시군구코드"] for r in rows]
    assert (
        sum(d is not None and d.code == r["행정동코드"] for d, r in zip(dongs, rows, strict=True))
        > 1_950
    )
    food_share = sum(r["상권업종대분류코드"] == "I2" for r in rows) / len(rows)
    assert 0.28 < food_share < 0.40
    # Clustered like a city: the busiest 10% of dongs hold far more than 10% of the stores.
    per_dong = sorted(np.unique([r["행정동코드"] for r in rows], return_counts=True)[1])[::-1]
    assert sum(per_dong[: len(per_dong) // 10]) > 0.25 * len(rows)


def _row(**changes: str) -> dict[str, str]:
    base = real_rows(SEOUL)[0] | {"상권업종대분류코드": "I2", "상권업종소분류코드": "I20101"}
    return base | changes


def test_bad_rows_are_rejected_with_their_reason_and_line(tmp_path: Path) -> None:
    rows = [
        _row(상가업소번호="MA0000000000000000A1"),
        _row(상가업소번호="MA0000000000000000A2", 경도="", 위도=""),
        _row(상가업소번호="MA0000000000000000A3", 경도="2.35", 위도="48.85"),  # Paris
        _row(상가업소번호="MA0000000000000000A1", 상호명="same id again"),
        _row(상가업소번호="MA0000000000000000A4", 상호명=""),
        _row(상가업소번호="MA0000000000000000A5", 경도="abc"),
        _row(상가업소번호="not an id"),
    ]
    path = tmp_path / "bad.csv"
    write_rows(rows, path)

    prepared = prepare([read_file(path)])

    assert [r.id for r in prepared.records] == ["MA0000000000000000A1"]
    assert [(r.line, r.reason) for r in prepared.rejects] == [
        (3, "missing_coordinates"),
        (4, "outside_korea"),
        (5, "duplicate_id"),
        (6, "missing_name"),
        (7, "bad_coordinates"),
        (8, "bad_id"),
    ]
    assert prepared.rejects[1].row[COLUMNS.index("상가업소번호")] == "MA0000000000000000A3"


def test_unknown_codes_fall_back_to_the_polygon_the_point_lies_in(tmp_path: Path) -> None:
    rows = [
        _row(상가업소번호="MA0000000000000000B1", 시군구코드="", 행정동코드="11200999"),
        _row(상가업소번호="MA0000000000000000B2", 시군구코드="99999"),
        # Busan: outside Seoul's polygons, the file's codes are kept.
        _row(
            상가업소번호="MA0000000000000000B3",
            시군구코드="26350",
            행정동코드="26350525",
            경도="129.1603",
            위도="35.1587",
        ),
        _row(상가업소번호="MA0000000000000000B4", 시군구코드="", 경도="129.1603", 위도="35.1587"),
    ]
    path = tmp_path / "codes.csv"
    write_rows(rows, path)

    prepared = prepare([read_file(path)])
    found = by_id(prepared.records)

    assert (
        found["MA0000000000000000B1"].district_code,
        found["MA0000000000000000B1"].dong_code,
    ) == (
        "11200",
        "11200660",
    )
    assert found["MA0000000000000000B2"].district_code == "11200"
    assert (
        found["MA0000000000000000B3"].district_code,
        found["MA0000000000000000B3"].dong_code,
    ) == (
        "26350",
        "26350525",
    )
    assert [(r.line, r.reason) for r in prepared.rejects] == [(5, "unknown_district")]
    assert prepared.district_from_polygon == 2
    assert prepared.dong_from_polygon == 1


@pytest.mark.parametrize("prefilter", [(), DEFAULT_CATEGORIES])
def test_a_truncated_line_is_an_error_naming_the_line(
    tmp_path: Path, prefilter: tuple[str, ...]
) -> None:
    path = tmp_path / "cut.csv"
    write_rows(generate_rows(20, seed=5), path)
    lines = path.read_bytes().split(b"\n")
    text = lines[7].decode()
    lines[7] = text[: text.index(",127.")].encode()  # line 8, cut before its coordinates
    path.write_bytes(b"\n".join(lines))

    with pytest.raises(MalformedFile, match="expected 39 fields") as caught:
        read_file(path, only_codes=prefilter)
    assert caught.value.line == 8


def test_a_cut_quote_at_the_end_of_the_file_is_an_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "cut.csv"
    write_rows(generate_rows(5, seed=5), path)
    path.write_bytes(path.read_bytes()[:-60])

    with pytest.raises(MalformedFile) as caught:
        read_file(path, only_codes=DEFAULT_CATEGORIES)
    assert caught.value.line == 6


def test_undecodable_bytes_are_an_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bytes.csv"
    write_rows(generate_rows(10, seed=5), path)
    lines = path.read_bytes().split(b"\n")
    lines[4] = lines[4].replace(b'"', b'"\xff\xfe', 1)
    path.write_bytes(b"\n".join(lines))

    with pytest.raises(MalformedFile, match="not utf-8") as caught:
        read_file(path, encoding="utf-8-sig")
    assert caught.value.line == 5


def test_a_wrong_header_is_an_error_naming_line_one(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("id,name,lon,lat\n1,a,127.0,37.5\n", encoding="utf-8")

    with pytest.raises(MalformedFile, match="wrong header: missing column") as caught:
        read_file(path)
    assert caught.value.line == 1


def test_the_source_date_comes_from_the_file_name() -> None:
    assert str(
        source_date_from_name(Path("소상공인시장진흥공단_상가(상권)정보_서울_202606.csv"))
    ) == ("2026-06-01")
    assert source_date_from_name(Path("stores.csv")) is None
