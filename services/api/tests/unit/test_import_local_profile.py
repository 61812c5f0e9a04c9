"""The local profile (SQLite) accepts an import too, so demo data can come from the generator."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from api.importer.cli import main as import_stores
from api.importer.generate import generate_rows, write_rows

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture
def local_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MAGAM_PROFILE", "local")
    monkeypatch.setenv("MAGAM_CONFIG_REPO", str(REPO / "config-repo"))
    monkeypatch.setenv("API_DATABASE__SQLITE_DIR", str(tmp_path / "db"))
    return tmp_path / "db" / "api.db"


def test_generated_stores_import_into_sqlite_and_a_reimport_updates_and_closes(
    local_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = generate_rows(300, seed=21)
    food = [r for r in rows if r["상권업종대분류코드"] == "I2"]
    first = tmp_path / "seoul_202603.csv"
    write_rows(rows, first)

    assert import_stores([str(first), "--no-progress", "--categories", "I2"]) == 0

    with sqlite3.connect(local_db) as db:
        stored = dict(db.execute("SELECT id, location FROM stores WHERE closed_at IS NULL"))
    assert len(stored) == len(food)
    assert (
        stored[food[0]["상가업소번호"]] == f"{float(food[0]['경도'])!r} {float(food[0]['위도'])!r}"
    )

    renamed = food[1] | {"상호명": "새 이름"}
    second = tmp_path / "seoul_202606.csv"
    write_rows([r for r in rows if r is not food[0] and r is not food[1]] + [renamed], second)
    capsys.readouterr()

    assert import_stores([str(second), "--no-progress", "--categories", "I2"]) == 0

    assert "updated   1" in capsys.readouterr().out
    with sqlite3.connect(local_db) as db:
        name = db.execute("SELECT name FROM stores WHERE id = ?", (renamed["상가업소번호"],))
        assert name.fetchone() == ("새 이름",)
        closed = db.execute("SELECT closed_at IS NOT NULL FROM stores WHERE id = ?",
                            (food[0]["상가업소번호"],))  # fmt: skip
        assert closed.fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM stores").fetchone() == (len(food),)
