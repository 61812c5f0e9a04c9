"""import-stores against the real PostgreSQL + PostGIS: field by field, re-imports, failures.

Each test module gets its own database (created from scratch, dropped at the end): the import
closes stores a full file no longer lists, which must not touch anyone else's rows.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from api.importer.cli import build_parser, import_key, summarise
from api.importer.cli import main as import_stores
from api.importer.formats import read_file
from api.importer.generate import generate_rows, to_generation, write_rows
from api.importer.plan import LoadOptions
from api.importer.rows import DEFAULT_CATEGORIES, prepare
from api.importer.writer import checkpoint, ensure_schema, stage_only, sync_engine
from api.settings import ApiSettings
from conftest import Infra

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "import"
SEOUL = FIXTURES / "seoul_202606_head3.csv"
FOOD = {"상권업종대분류코드": "I2", "상권업종중분류코드": "I210", "상권업종소분류코드": "I21001"}


@pytest.fixture(scope="module")
def database(infra: Infra) -> Iterator[str]:
    with infra.scratch_database("api_import_test") as name:
        yield name


@pytest.fixture
def engine(prod_profile: Infra, database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("API_DATABASE__NAME", database)
    engine = sync_engine(ApiSettings())
    ensure_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS test_claims"))
        conn.execute(text("TRUNCATE stores, store_import_rows, store_import_runs CASCADE"))
    yield engine
    engine.dispose()


def real_rows() -> list[dict[str, str]]:
    with SEOUL.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def stores(engine: Engine) -> dict[str, dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                """SELECT id, name, branch, category_code, large_category_code,
                   middle_category_code, address, road_address, lot_address, district_code,
                   dong_code, ST_X(location::geometry) AS lon, ST_Y(location::geometry) AS lat,
                   source_date, closed_at FROM stores"""
            )
        ).mappings()
        return {row["id"]: dict(row) for row in rows}


def test_real_and_generated_rows_are_imported_field_by_field(
    engine: Engine, tmp_path: Path
) -> None:
    generated = generate_rows(300, seed=42)
    path = tmp_path / "소상공인시장진흥공단_상가(상권)정보_서울_202606.csv"
    write_rows(real_rows() + generated, path)
    rejects = tmp_path / "rejects.csv"

    assert import_stores([str(path), "--categories", "I2,G2", "--rejects", str(rejects)]) == 0

    found = stores(engine)
    assert found["MA0106202201A1955471"] == {
        "id": "MA0106202201A1955471",
        "name": "루42",
        "branch": "홍대점",
        "category_code": "G21503",
        "large_category_code": "G2",
        "middle_category_code": "G215",
        "address": "서울특별시 마포구 홍익로 5-1",
        "road_address": "서울특별시 마포구 홍익로 5-1",
        "lot_address": "서울특별시 마포구 서교동 358-18",
        "district_code": "11440",
        "dong_code": "11440660",
        "lon": 126.923610369027,
        "lat": 37.5531152785739,
        "source_date": date(2026, 6, 1),
        "closed_at": None,
    }
    expected = [r for r in generated if r["상권업종대분류코드"] in ("I2", "G2")]
    assert len(found) == 3 + len(expected)
    for row in expected:
        store = found[row["상가업소번호"]]
        assert store["name"] == row["상호명"]
        assert store["category_code"] == row["상권업종소분류코드"]
        assert store["district_code"] == row["시군구코드"]
        assert store["dong_code"] == row["행정동코드"]
        assert (store["lon"], store["lat"]) == (float(row["경도"]), float(row["위도"]))
    assert not rejects.exists()


@pytest.mark.parametrize("generation", ["2020-pipe", "2017-cp949"])
def test_old_generations_import_with_their_ids_and_todays_dong_codes(
    engine: Engine, tmp_path: Path, generation: str
) -> None:
    rows = [row | FOOD for row in real_rows()] + generate_rows(100, seed=9)
    path = tmp_path / f"상가업소_201712.{'txt' if generation == '2020-pipe' else 'csv'}"
    write_rows([to_generation(r, generation, n) for n, r in enumerate(rows)], path, generation)

    assert import_stores([str(path), "--no-progress"]) == 0

    found = stores(engine)
    first = found["10000000"]
    assert (first["name"], first["branch"]) == ("쥬씨&고망고", "서울숲점")
    assert (first["large_category_code"], first["middle_category_code"]) == ("Q", "Q08")
    assert (first["district_code"], first["dong_code"]) == ("11200", "11200660")
    assert first["source_date"] == date(2017, 12, 1)
    food = sum(r["상권업종대분류코드"] == "I2" for r in rows)
    assert len(found) == food


def test_reimport_updates_names_closes_missing_stores_and_keeps_claims(
    engine: Engine, tmp_path: Path
) -> None:
    rows = [row | FOOD for row in real_rows()]
    first = tmp_path / "stores_202603.csv"
    write_rows(rows, first)
    assert import_stores([str(first), "--no-progress"]) == 0
    with engine.begin() as conn:
        # A stand-in for claims/deals: any table referencing stores must survive a re-import.
        conn.execute(
            text(
                "CREATE TABLE test_claims (id serial PRIMARY KEY, "
                "store_id varchar(40) NOT NULL REFERENCES stores(id), manager text)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO test_claims (store_id, manager) VALUES "
                "('MA0106202201A2069228', 'kim'), ('MA0106202201A0016575', 'lee')"
            )
        )

    renamed = [rows[0] | {"상호명": "쥬씨&고망고 리뉴얼"}, rows[1]]  # rows[2] is gone
    second = tmp_path / "stores_202606.csv"
    write_rows(renamed, second)
    assert import_stores([str(second), "--no-progress", "--json"]) == 0

    found = stores(engine)
    assert found["MA0106202201A2069228"]["name"] == "쥬씨&고망고 리뉴얼"
    assert found["MA0106202201A2069228"]["closed_at"] is None
    assert found["MA0106202201A2069228"]["source_date"] == date(2026, 6, 1)
    assert found["MA0106202201A0016575"]["closed_at"] is not None  # closed, not deleted
    assert found["MA0106202201A1955471"]["closed_at"] is None
    assert found["MA0106202201A1955471"]["source_date"] == date(2026, 3, 1)  # unchanged row
    with engine.connect() as conn:
        claims = conn.execute(text("SELECT store_id, manager FROM test_claims ORDER BY id")).all()
    assert [tuple(c) for c in claims] == [
        ("MA0106202201A2069228", "kim"),
        ("MA0106202201A0016575", "lee"),
    ]

    # The store comes back in a later file: reopened.
    third = tmp_path / "stores_202609.csv"
    write_rows(rows, third)
    assert import_stores([str(third), "--no-progress"]) == 0
    assert stores(engine)["MA0106202201A0016575"]["closed_at"] is None


def test_an_older_file_neither_overwrites_nor_closes_newer_stores(
    engine: Engine, tmp_path: Path
) -> None:
    rows = [row | FOOD for row in real_rows()]
    newer, older = tmp_path / "s_202606.csv", tmp_path / "s_202512.csv"
    write_rows(rows, newer)
    write_rows([rows[0] | {"상호명": "옛 이름"}], older)

    assert import_stores([str(newer), "--no-progress"]) == 0
    assert import_stores([str(older), "--no-progress"]) == 0

    found = stores(engine)
    assert found["MA0106202201A2069228"]["name"] == "쥬씨&고망고"
    assert all(store["closed_at"] is None for store in found.values())


def test_a_partial_file_closes_nothing(engine: Engine, tmp_path: Path) -> None:
    rows = [row | FOOD for row in real_rows()]
    write_rows(rows, full := tmp_path / "s_202606.csv")
    write_rows(rows[:1], part := tmp_path / "s_202607.csv")

    assert import_stores([str(full), "--no-progress"]) == 0
    assert import_stores([str(part), "--no-progress", "--partial"]) == 0

    assert all(store["closed_at"] is None for store in stores(engine).values())


def test_a_malformed_file_names_the_line_and_imports_nothing(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "a_202606.csv"
    write_rows(generate_rows(50, seed=1), good)
    broken = tmp_path / "b_202606.csv"
    write_rows(generate_rows(50, seed=2), broken)
    lines = broken.read_bytes().split(b"\n")
    lines[30] = lines[30][:40]
    broken.write_bytes(b"\n".join(lines))

    assert import_stores([str(good), str(broken), "--no-progress"]) == 2

    err = capsys.readouterr().err
    assert f"{broken}:31: " in err  # cut inside a quoted field: "broken quoting"
    assert "nothing was imported" in err
    assert stores(engine) == {}


def test_rejected_rows_go_to_the_rejects_file_with_their_reason(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [row | FOOD for row in real_rows()]
    rows[1] = rows[1] | {"경도": "", "위도": ""}
    rows[2] = rows[2] | {"경도": "139.69", "위도": "35.68"}  # Tokyo
    path, rejects = tmp_path / "s_202606.csv", tmp_path / "rejects.csv"
    write_rows(rows, path)

    assert import_stores([str(path), "--no-progress", "--rejects", str(rejects)]) == 0

    assert list(stores(engine)) == ["MA0106202201A2069228"]
    with rejects.open(encoding="utf-8-sig", newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [(r["reason"], r["line"], r["상가업소번호"]) for r in written] == [
        ("missing_coordinates", "3", "MA0106202201A1955471"),
        ("outside_korea", "4", "MA0106202201A0016575"),
    ]
    out = capsys.readouterr().out
    assert "rejected  2 (missing_coordinates 1, outside_korea 1)" in out


def test_a_dry_run_reports_the_counts_and_changes_nothing(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s_202606.csv"
    write_rows([row | FOOD for row in real_rows()], path)

    assert import_stores([str(path), "--no-progress", "--dry-run"]) == 0

    out = capsys.readouterr().out
    assert "imported  3 new" in out
    assert "dry run" in out
    assert stores(engine) == {}


def test_an_interrupted_import_leaves_the_api_untouched_and_resumes(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s_202606.csv"
    write_rows([row | FOOD for row in real_rows()] + generate_rows(200, seed=4), path)
    # The run that was interrupted got as far as staging (committed) and no further.
    args = build_parser().parse_args([str(path)])
    key = import_key([path], args, date(2026, 6, 1))
    raw = read_file(path)
    prepared = prepare([raw], DEFAULT_CATEGORIES)
    summary = summarise(prepared, [raw], tmp_path / "rejects.csv")
    options = LoadOptions(key, date(2026, 6, 1), DEFAULT_CATEGORIES)
    stage_only(engine, prepared, options, summary)
    assert checkpoint(engine, key) is not None
    assert stores(engine) == {}  # readers see nothing of the staged file

    assert import_stores([str(path), "--no-progress"]) == 0

    captured = capsys.readouterr()
    assert "resuming" in captured.err
    assert "resumed   from the staged checkpoint" in captured.out
    assert f"read      {prepared.read:,}" in captured.out
    assert len(stores(engine)) == len(prepared.records)
    assert checkpoint(engine, key) is None


def test_a_store_whose_row_is_rejected_this_time_is_not_closed(
    engine: Engine, tmp_path: Path
) -> None:
    rows = [row | FOOD for row in real_rows()]
    write_rows(rows, first := tmp_path / "s_202603.csv")
    write_rows(
        [rows[0], rows[1] | {"경도": "", "위도": ""}, rows[2]], second := tmp_path / "s_202606.csv"
    )

    assert import_stores([str(first), "--no-progress"]) == 0
    assert import_stores([str(second), "--no-progress", "--rejects", str(tmp_path / "r.csv")]) == 0

    found = stores(engine)
    assert found["MA0106202201A1955471"]["closed_at"] is None
    assert found["MA0106202201A1955471"]["lon"] == 126.923610369027  # kept from the last good row


def test_a_reimport_writes_only_what_changed_and_both_readers_store_the_same(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [row | FOOD for row in real_rows()] + generate_rows(200, seed=14)
    write_rows(rows, first := tmp_path / "s_202606.csv")
    assert import_stores([str(first), "--no-progress", "--python-reader"]) == 0
    before = stores(engine)
    capsys.readouterr()

    # The same file through the fast reader: every store unchanged, not one row written.
    assert import_stores([str(first), "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["files"][0]["reader"] == "arrow"
    assert (summary["imported"], summary["updated"], summary["closed"]) == (0, 0, 0)
    assert summary["unchanged"] == len(before)
    assert stores(engine) == before

    moved = rows[0] | {"경도": "127.0447", "위도": "37.5477"}
    write_rows([moved, *rows[1:]], second := tmp_path / "s_202607.csv")
    assert import_stores([str(second), "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["imported"], summary["updated"]) == (0, 1)
    after = stores(engine)
    assert (after[moved["상가업소번호"]]["lon"], after[moved["상가업소번호"]]["lat"]) == (
        127.0447,
        37.5477,
    )
    assert after[moved["상가업소번호"]]["source_date"] == date(2026, 7, 1)
    assert after[rows[1]["상가업소번호"]] == before[rows[1]["상가업소번호"]]


def test_an_unreachable_database_is_reported_after_reading_and_writes_no_rejects(
    prod_profile: Infra,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = [row | FOOD for row in real_rows()]
    rows[1] = rows[1] | {"경도": ""}
    write_rows(rows, path := tmp_path / "s_202606.csv")
    # Port 9 (discard) on the loopback: nothing listens, the connection is refused at once.
    monkeypatch.setenv("API_DATABASE__PORT", "9")
    rejects = tmp_path / "rejects.csv"

    assert import_stores([str(path), "--no-progress", "--rejects", str(rejects)]) == 4

    err = capsys.readouterr().err
    assert "cannot use the api database" in err
    assert "scripts/infra up" in err
    assert not rejects.exists()
