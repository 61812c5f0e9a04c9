"""Bench: import-stores on a Seoul-sized file vs row-by-row ORM inserts, same run, same database.

    uv run python bench/import/run.py --rows 554092

1. generates the file (generate-stores, the current format) unless --file is given;
2. imports it into a fresh PostgreSQL database (``api_bench``) with ``import-stores`` as a
   subprocess: wall time of the whole command (start-up, reading, checks, COPY, merge);
3. imports the same file again (nothing changed: the re-run cost);
4. baseline: the same records inserted one ORM ``session.add`` + ``flush`` at a time (one INSERT
   round trip a row, one commit at the end) for --baseline-rows rows, extrapolated per row to the
   full selection; the baseline's time excludes reading and checking the file (it favours the
   baseline);
5. writes bench/import/results.md and results.json with the machine, the load and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import delete
from sqlalchemy.orm import Session

from api.geo import LonLat
from api.importer.columnar import read_store_file
from api.importer.rows import DEFAULT_CATEGORIES, prepare
from api.importer.writer import ensure_schema, sync_engine
from api.settings import ApiSettings
from api.store.models import Store

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GOAL_SECONDS = 30.0
GOAL_SPEEDUP = 10.0
# The console scripts' entry points, run with this interpreter (no uv re-lock from a bench).
_IMPORT_STORES = "from api.importer.cli import run; run()"
_GENERATE_STORES = "from api.importer.generate import run; run()"


def _env(database: str) -> dict[str, str]:
    env = dict(os.environ)
    env |= {
        "MAGAM_PROFILE": "prod",
        "MAGAM_ALLOW_DEV_SECRETS": "1",
        "MAGAM_CONFIG_REPO": str(REPO / "config-repo"),
        "API_DATABASE__NAME": database,
        "API_DATABASE__PASSWORD": env.get("MAGAM_PG_PASSWORD", "magam"),
        "API_DATABASE__PORT": env.get("MAGAM_PG_PORT", "5433"),
    }
    return env


def _fresh_database(name: str, *, create: bool = True) -> None:
    port = os.environ.get("MAGAM_PG_PORT", "5433")
    password = os.environ.get("MAGAM_PG_PASSWORD", "magam")
    dsn = f"host=127.0.0.1 port={port} user=magam dbname=postgres"
    with psycopg.connect(dsn, password=password, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if create:
            admin.execute(f"CREATE DATABASE {name}")


def _timed_import(path: Path, env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    """Wall seconds of the whole command, and its summary plus the CPU seconds it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_STORES, str(path), "--json", "--no-progress"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"import-stores failed ({done.returncode}):\n{done.stderr}")
    summary: dict[str, Any] = json.loads(done.stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary["client_cpu_seconds"] = round(cpu, 2)
    return seconds, summary


def _baseline(path: Path, rows: int) -> tuple[int, float, int]:
    """Row-by-row ORM inserts of the first ``rows`` selected records: (rows, seconds, selected)."""
    prepared = prepare([read_store_file(path, only_codes=DEFAULT_CATEGORIES)])
    engine = sync_engine(ApiSettings())
    ensure_schema(engine)
    subset = prepared.records[:rows]
    with Session(engine) as session:
        session.execute(delete(Store))
        session.commit()
        started = time.monotonic()
        for r in subset:
            session.add(
                Store(
                    id=r.id,
                    name=r.name,
                    branch=r.branch,
                    category_code=r.small_code,
                    address=r.address,
                    district_code=r.district_code,
                    dong_code=r.dong_code,
                    location=LonLat(r.lon, r.lat),
                    large_category_code=r.large_code,
                    middle_category_code=r.middle_code,
                    road_address=r.road_address,
                    lot_address=r.lot_address,
                    source_date=date.today(),
                )
            )
            session.flush()
        session.commit()
        seconds = time.monotonic() - started
    engine.dispose()
    return len(subset), seconds, len(prepared.records)


def _machine() -> dict[str, object]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=554_092, help="rows of the generated file")
    parser.add_argument("--file", type=Path, help="use this store file instead of generating one")
    parser.add_argument("--baseline-rows", type=int, default=20_000)
    parser.add_argument("--database", default="api_bench")
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    args = parser.parse_args()
    machine = _machine()
    env = _env(args.database)
    os.environ.update({k: v for k, v in env.items() if k.startswith(("API_", "MAGAM_"))})

    with tempfile.TemporaryDirectory() as tmp:
        path = args.file or Path(tmp) / "seoul_generated_202606.csv"
        if args.file is None:
            print(f"generating {args.rows:,} rows …", file=sys.stderr)
            started = time.monotonic()
            subprocess.run(
                [sys.executable, "-c", _GENERATE_STORES, str(path), "--rows", str(args.rows)],
                cwd=REPO,
                check=True,
            )
            print(f"generated in {time.monotonic() - started:.1f} s", file=sys.stderr)
        size_mb = path.stat().st_size / 1e6
        _fresh_database(args.database)
        print("import-stores, empty database …", file=sys.stderr)
        first, summary = _timed_import(path, env)
        print(f"  {first:.1f} s", file=sys.stderr)
        print("import-stores again, nothing changed …", file=sys.stderr)
        again, summary_again = _timed_import(path, env)
        print(f"  {again:.1f} s", file=sys.stderr)
        print(f"baseline: {args.baseline_rows:,} row-by-row ORM inserts …", file=sys.stderr)
        base_rows, base_seconds, selected = _baseline(path, args.baseline_rows)
        _fresh_database(args.database, create=False)

    per_row = base_seconds / base_rows
    extrapolated = per_row * selected
    speedup = round(extrapolated / first, 1)
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "uv run python bench/import/run.py "
        + (f"--file {args.file}" if args.file else f"--rows {args.rows}")
        + f" --baseline-rows {args.baseline_rows}",
        "machine": machine,
        "file": {"rows": summary["read"], "megabytes": round(size_mb, 1)},
        "selected_rows": selected,
        "import_seconds": round(first, 2),
        "import_phases_seconds": summary.get("seconds"),
        "import_reader": [f.get("reader") for f in summary["files"]],
        "import_client_cpu_seconds": summary["client_cpu_seconds"],
        "reimport_unchanged_seconds": round(again, 2),
        "reimport_phases_seconds": summary_again.get("seconds"),
        "reimport_counts": {
            k: summary_again[k] for k in ("imported", "updated", "unchanged", "closed")
        },
        "baseline": {
            "method": "SQLAlchemy ORM session.add + flush per row, one commit",
            "rows": base_rows,
            "seconds": round(base_seconds, 2),
            "ms_per_row": round(per_row * 1000, 3),
            "extrapolated_seconds_for_selection": round(extrapolated, 1),
        },
        "speedup": speedup,
        "goals": {"import_seconds_max": GOAL_SECONDS, "speedup_min": GOAL_SPEEDUP},
    }
    result["goals_met"] = first <= GOAL_SECONDS and speedup >= GOAL_SPEEDUP
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.with_suffix(".json").write_text(
        json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    )
    args.out.write_text(_markdown(result))
    print(args.out.read_text())
    return 0


def _markdown(r: dict[str, Any]) -> str:
    m, b = r["machine"], r["baseline"]
    rows = [
        ("file", f"{r['file']} (generated, current format)", "Seoul 2026-06: 554,092 rows, 302 MB"),
        ("selected (food + food retail)", f"{r['selected_rows']:,} rows", ""),
        (
            "**import-stores into an empty PostgreSQL** (the whole command)",
            f"**{r['import_seconds']} s** wall (phases {r['import_phases_seconds']}, the rest is "
            f"start-up and schema checks; {r['import_reader']} reader; the command's own CPU time "
            f"{r['import_client_cpu_seconds']} s)",
            "≤ 30 s",
        ),
        (
            "import-stores again, file unchanged",
            f"{r['reimport_unchanged_seconds']} s ({r['reimport_counts']}; phases "
            f"{r['reimport_phases_seconds']})",
            "",
        ),
        (
            f"baseline: {b['method']}",
            f"{b['rows']:,} rows in {b['seconds']} s = {b['ms_per_row']} ms/row → "
            f"{b['extrapolated_seconds_for_selection']} s for the selection "
            "(extrapolated per row; excludes reading the file)",
            "",
        ),
        ("**speed-up**", f"**{r['speedup']}×**", "≥ 10×"),
    ]
    table = "\n".join(f"| {a} | {v} | {g} |" for a, v, g in rows)
    return (
        "# import-stores bench\n\n"
        f"Command: `{r['command']}` (written {r['when']})\n\n"
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}, Python {m['python']}; load "
        f"average at start {m['load_average_at_start']}, at the end "
        f"{m.get('load_average_at_end')} (a load above the 2 cores means other work shared the "
        "machine: both sides of the comparison slow down, not necessarily alike).\n\n"
        "| what | result | goal |\n|---|---|---|\n"
        f"{table}\n\nGoals met: {r['goals_met']}.\n\n" + _NOTES
    )


_NOTES = """## How the import spends its time

- **read**: pyarrow's C++ CSV reader converts only the 12 columns the importer uses, as strings, in
  16 MB chunks (the progress steps), after Arrow has checked the whole file is UTF-8 (CP949 files
  are transcoded first). A file it cannot vouch for line by line (a parse error, a quoted line
  break, a blank line) goes to the Python csv reader, which reads it or names the broken line.
- **check**: selection by whole category codes, id/name/coordinate checks, duplicates, district
  and dong polygons: whole columns at once (pyarrow.compute, numpy, prepared shapely polygons).
- **stage**: Arrow writes the accepted rows as CSV; one `COPY … (FORMAT csv)` into the unlogged
  staging table, then `ANALYZE` (the committed checkpoint of an interrupted run).
- **merge**: one transaction; a hash join against `stores` drops unchanged rows before the
  `INSERT … ON CONFLICT` (a re-import of the same file writes nothing), then the close step's hash
  anti-join. Into an empty table most of it is index maintenance (GiST on `location`): dropping and
  rebuilding the indexes, or sorting by geohash first, measured no faster.
- The rest of the wall time is the interpreter's start and imports; the database side (SQLAlchemy,
  settings, schema check) is imported in a thread while the file is read.

Before this design (2026-11-25 04:40, same command, same machine): 28.77 s, 4.7× (the Python csv
reader and per-row checks took 16.4 s of CPU). Timings on the shared 2-core machine vary by a
factor of two or more with the load; compare the two sides of one run, not runs with each other.
"""


if __name__ == "__main__":
    raise SystemExit(main())
