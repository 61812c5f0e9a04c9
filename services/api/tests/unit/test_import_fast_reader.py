"""The fast reader (pyarrow) and the Python reader give the same stores, rejects and errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import shapely

from api.importer import boundaries
from api.importer.columnar import StoreFile, read_store_file
from api.importer.formats import COLUMNS, MalformedFile
from api.importer.generate import generate_rows, to_generation, write_rows
from api.importer.rows import DEFAULT_CATEGORIES, Prepared, prepare

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "import"
NATIONAL = FIXTURES / "national_2024_sample4.csv"
SEOUL = FIXTURES / "seoul_202606_head3.csv"


def real_rows(path: Path = SEOUL) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def both(path: Path, categories: tuple[str, ...] = DEFAULT_CATEGORIES) -> tuple[Prepared, ...]:
    """The same file through each reader; asserts which reader answered."""
    fast = read_store_file(path, only_codes=categories)
    slow = read_store_file(path, only_codes=categories, fast=False)
    assert (fast.reader, slow.reader) == ("arrow", "python")
    assert (fast.format, fast.header) == (slow.format, slow.header)
    return prepare([fast], categories), prepare([slow], categories)


def assert_same(fast: Prepared, slow: Prepared) -> None:
    assert fast.records == slow.records
    assert fast.rejects == slow.rejects
    assert (fast.read, fast.selected) == (slow.read, slow.selected)
    assert (fast.district_from_polygon, fast.district_mismatch, fast.dong_from_polygon) == (
        slow.district_from_polygon,
        slow.district_mismatch,
        slow.dong_from_polygon,
    )


@pytest.mark.parametrize("path", [NATIONAL, SEOUL], ids=["national", "seoul"])
@pytest.mark.parametrize("categories", [DEFAULT_CATEGORIES, ("G2",), ()], ids=str)
def test_the_real_sample_files_read_alike_through_both_readers(
    path: Path, categories: tuple[str, ...]
) -> None:
    fast, slow = both(path, categories)

    assert_same(fast, slow)
    assert fast.read == len(real_rows(path))


@pytest.mark.parametrize("generation", ["current", "2020-pipe", "2017-cp949"])
def test_each_generation_reads_alike_through_both_readers(tmp_path: Path, generation: str) -> None:
    rows = [r | {"상권업종대분류코드": "I2"} for r in real_rows()] + generate_rows(600, seed=8)
    path = tmp_path / f"stores_{generation}.csv"
    write_rows([to_generation(r, generation, n) for n, r in enumerate(rows)], path, generation)

    fast, slow = both(path)

    assert_same(fast, slow)
    assert len(fast.records) > 150
    if generation != "current":
        assert all(r.id.isdigit() and len(r.dong_code) == 8 for r in fast.records)


def test_rejects_name_the_same_line_and_keep_every_field_through_both_readers(
    tmp_path: Path,
) -> None:
    base = real_rows()[0] | {"상권업종대분류코드": "I2", "상권업종소분류코드": "I20101"}
    rows = [
        base | {"상가업소번호": "MA0000000000000000A1", "경도": "200", "위도": "37.5"},
        base | {"상가업소번호": "MA0000000000000000A1"},  # the first A1 was rejected: no duplicate
        base | {"상가업소번호": "MA0000000000000000A1", "상호명": "again"},  # a duplicate
        base | {"상가업소번호": "MA0000000000000000A2", "경도": "", "위도": "37.5"},
        base | {"상가업소번호": "MA0000000000000000A3", "경도": "127.0x"},
        base | {"상가업소번호": "MA0000000000000000A4", "상호명": "  "},
        base | {"상가업소번호": "MA0000000000000000A5", "경도": " 1_27.0447 "},  # float() reads it
        base | {"상가업소번호": "MA0000000000000000A6", "경도": "nan"},
        base | {"상가업소번호": "mA0000000000000000A7"},
        base | {"상가업소번호": " "},
        base
        | {
            "상가업소번호": "MA0000000000000000A8",
            "시군구코드": "",
            "경도": "129.16",
            "위도": "35.16",
        },
    ]
    path = tmp_path / "bad.csv"
    write_rows(rows, path)

    fast, slow = both(path)

    assert_same(fast, slow)
    assert [r.id for r in fast.records] == ["MA0000000000000000A1", "MA0000000000000000A5"]
    assert fast.records[1].lon == 127.0447
    assert [(r.line, r.reason) for r in fast.rejects] == [
        (2, "outside_korea"),
        (4, "duplicate_id"),
        (5, "missing_coordinates"),
        (6, "bad_coordinates"),
        (7, "missing_name"),
        (9, "outside_korea"),
        (10, "bad_id"),
        (11, "missing_id"),
        (12, "unknown_district"),
    ]
    assert all(len(r.row) == len(COLUMNS) for r in fast.rejects)
    assert fast.rejects[1].row[COLUMNS.index("상호명")] == "again"
    assert fast.rejects[-1].store_id == "MA0000000000000000A8"


def test_a_line_break_inside_a_quoted_field_goes_to_the_python_reader_with_its_lines(
    tmp_path: Path,
) -> None:
    rows = generate_rows(40, seed=12)
    food = [n for n, r in enumerate(rows) if r["상권업종대분류코드"] == "I2"]
    rows[food[0]] = rows[food[0]] | {"상호명": "두 줄\n이름"}
    rows[food[-1]] = rows[food[-1]] | {"경도": ""}
    path = tmp_path / "multiline.csv"
    write_rows(rows, path)

    read = read_store_file(path, only_codes=DEFAULT_CATEGORIES)
    prepared = prepare([read])

    assert read.reader == "python"
    assert "두 줄\n이름" in [r.name for r in prepared.records]
    # The row after the two-line one starts a line later than its position says.
    assert [(r.line, r.reason) for r in prepared.rejects] == [(food[-1] + 3, "missing_coordinates")]


def test_a_blank_line_goes_to_the_python_reader_and_trailing_ones_do_not(tmp_path: Path) -> None:
    path = tmp_path / "blank.csv"
    write_rows(generate_rows(20, seed=13), path)
    data = path.read_bytes()
    path.write_bytes(data + b"\n\r\n")
    assert read_store_file(path).reader == "arrow"

    lines = data.split(b"\n")
    path.write_bytes(b"\n".join([*lines[:5], b"", *lines[5:]]))
    read = read_store_file(path)

    assert read.reader == "python"
    assert read.rows == 20
    assert read.columns["line"].to_pylist()[3:5] == [5, 7]  # line 6 is the blank one


def test_a_truncated_line_is_an_error_naming_the_line_through_the_fast_reader(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cut.csv"
    write_rows(generate_rows(20, seed=5), path)
    lines = path.read_bytes().split(b"\n")
    text = lines[7].decode()
    lines[7] = text[: text.index(",127.")].encode()
    path.write_bytes(b"\n".join(lines))

    with pytest.raises(MalformedFile, match="expected 39 fields") as caught:
        read_store_file(path)
    assert caught.value.line == 8


def test_a_cut_quote_at_the_end_is_an_error_naming_the_line_through_the_fast_reader(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cut.csv"
    write_rows(generate_rows(5, seed=5), path)
    path.write_bytes(path.read_bytes()[:-60])

    with pytest.raises(MalformedFile) as caught:
        read_store_file(path)
    assert caught.value.line == 6


@pytest.mark.parametrize("encoding", [None, "utf-8-sig"])
def test_undecodable_bytes_anywhere_are_an_error_naming_the_line(
    tmp_path: Path, encoding: str | None
) -> None:
    path = tmp_path / "bytes.csv"
    write_rows(generate_rows(10, seed=5), path)
    lines = path.read_bytes().split(b"\n")
    # In 표준산업분류명, a column the importer does not read: the whole file is checked.
    column = COLUMNS.index("표준산업분류명")
    cells = lines[4].split(b'","')
    cells[column] = cells[column] + b"\xff"
    lines[4] = b'","'.join(cells)
    path.write_bytes(b"\n".join(lines))

    with pytest.raises(MalformedFile, match="not utf-8") as caught:
        read_store_file(path, encoding=encoding)
    assert caught.value.line == 5


def test_undecodable_cp949_bytes_are_an_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "old.csv"
    rows = generate_rows(10, seed=5)
    write_rows([to_generation(r, "2017-cp949", n) for n, r in enumerate(rows)], path, "2017-cp949")
    lines = path.read_bytes().split(b"\n")
    lines[6] = lines[6] + b"\x80"
    path.write_bytes(b"\n".join(lines))

    with pytest.raises(MalformedFile, match="not cp949") as caught:
        read_store_file(path, encoding="cp949")
    assert caught.value.line == 7


def test_a_wrong_header_is_an_error_naming_line_one_through_the_fast_reader(
    tmp_path: Path,
) -> None:
    path = tmp_path / "header.csv"
    path.write_text("id,name,lon,lat\n1,a,127.0,37.5\n", encoding="utf-8")

    with pytest.raises(MalformedFile, match="wrong header: missing column") as caught:
        read_store_file(path)
    assert caught.value.line == 1


def test_progress_counts_the_whole_file_in_bytes(tmp_path: Path) -> None:
    path = tmp_path / "old.csv"
    rows = generate_rows(50, seed=6)
    write_rows([to_generation(r, "2017-cp949", n) for n, r in enumerate(rows)], path, "2017-cp949")
    seen: list[int] = []

    read: StoreFile = read_store_file(path, progress=seen.append)

    assert read.reader == "arrow"  # transcoded to UTF-8 first
    assert sum(seen) == path.stat().st_size


def test_areas_are_located_as_an_strtree_intersects_query_finds_them() -> None:
    rng = np.random.default_rng(3)
    for index in (boundaries.districts(), boundaries.dongs()):
        lon = rng.uniform(126.7, 127.3, 20_000)
        lat = rng.uniform(37.4, 37.75, 20_000)
        # Polygon vertices lie on shared borders: the lowest area position wins there.
        vertices = shapely.get_coordinates(index._geometries[:3])
        lon, lat = np.concatenate([lon, vertices[:, 0]]), np.concatenate([lat, vertices[:, 1]])

        found = index.locate_index(lon, lat)

        points, areas = shapely.STRtree(index._geometries).query(
            shapely.points(lon, lat), predicate="intersects"
        )
        expected = np.full(len(lon), len(index.areas))
        np.minimum.at(expected, points, areas)
        expected[expected == len(index.areas)] = -1
        assert np.array_equal(found, expected)
        assert (found >= 0).sum() > 1_000
