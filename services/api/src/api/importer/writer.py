"""Loading prepared store records into the api database, all or nothing.

PostgreSQL: the records are COPied into an unlogged staging table (committed: the checkpoint a
re-run after an interrupt resumes from), then one transaction upserts them by store id, closes the
stores a full file no longer lists and marks the import done. Readers see the old stores or the new
ones, never half a file. Store rows are never deleted, so claims, managers and deals that reference
them are untouched.

SQLite (the local profile, for demo data): the same statements row-set-wise in one transaction,
without the checkpoint.
"""

# Table names in the SQL below are module constants, never input; values are always parameters.
# ruff: noqa: S608

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.csv as pacsv  # type: ignore[import-untyped]
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url

from api.db import Base
from api.importer.plan import Checkpoint, ImportBusy, LoadOptions, Outcome
from api.importer.rows import Prepared, StoreRecord
from api.menu.models import MenuItem
from api.settings import ApiSettings
from api.store.models import Store
from servicekit.db import database_url

# One import at a time (the advisory lock): the staging table holds the rows of the run whose
# status is 'staged' in the runs table, and nothing else.
STAGING = "store_import_rows"
IMPORTS = "store_import_runs"
# pg_try_advisory_lock key: one store import at a time per database ("magam-import-stores").
LOCK_KEY = 0x6D61_6761_6D49


def sync_engine(settings: ApiSettings) -> Engine:
    """A synchronous engine on the api database (the CLI needs no event loop)."""
    url = database_url(settings)
    if url.get_backend_name() == "sqlite":
        settings.database.sqlite_dir.mkdir(parents=True, exist_ok=True)
        return create_engine(make_url(str(url).replace("sqlite+aiosqlite", "sqlite", 1)))
    return create_engine(
        url.render_as_string(hide_password=False),
        connect_args={"connect_timeout": 5, "application_name": "import-stores"},
    )


_STORE_COLUMNS = {
    "large_category_code": "VARCHAR(4) NOT NULL DEFAULT ''",
    "middle_category_code": "VARCHAR(6) NOT NULL DEFAULT ''",
    "road_address": "VARCHAR(300) NOT NULL DEFAULT ''",
    "lot_address": "VARCHAR(300) NOT NULL DEFAULT ''",
    "source_date": "DATE",
}


def ensure_schema(engine: Engine) -> None:
    """Creates missing tables, the import's columns of ``stores`` and the staging tables."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        tables = [Base.metadata.tables[t.__tablename__] for t in (Store, MenuItem)]
        Base.metadata.create_all(conn, tables=tables)
        # Databases created before these columns existed (no migrations yet for api).
        if engine.dialect.name != "postgresql":
            have = {row[1] for row in conn.execute(text("PRAGMA table_info(stores)"))}
            for column, spec in _STORE_COLUMNS.items():
                if column not in have:
                    conn.execute(text(f"ALTER TABLE stores ADD COLUMN {column} {spec}"))
            return
        have = set(
            conn.execute(
                text(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = 'stores'"
                )
            ).scalars()
        )
        # ALTER TABLE locks stores even when the column exists: only for a column still missing.
        for column, spec in _STORE_COLUMNS.items():
            if column not in have:
                conn.execute(text(f"ALTER TABLE stores ADD COLUMN IF NOT EXISTS {column} {spec}"))
        conn.execute(
            text(
                # Unlogged, no index: COPY speed; the merge joins it by hash.
                f"""CREATE UNLOGGED TABLE IF NOT EXISTS {STAGING} (
                    id text NOT NULL, rejected boolean NOT NULL,
                    name text, branch text, large_code text, middle_code text, small_code text,
                    road_address text, lot_address text, district_code text, dong_code text,
                    lon double precision, lat double precision)"""
            )
        )
        conn.execute(
            text(
                f"""CREATE TABLE IF NOT EXISTS {IMPORTS} (
                    key text PRIMARY KEY, status text NOT NULL, as_of date NOT NULL,
                    summary jsonb NOT NULL DEFAULT '{{}}',
                    started_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz)"""
            )
        )


def checkpoint(engine: Engine, key: str) -> Checkpoint | None:
    """The staged import with this key, if a previous run stopped between staging and merge."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        row = conn.execute(
            text(f"SELECT summary FROM {IMPORTS} WHERE key = :key AND status = 'staged'"),
            {"key": key},
        ).first()
    return None if row is None else Checkpoint(key, dict(row[0]))


def load(
    engine: Engine,
    prepared: Prepared | None,
    options: LoadOptions,
    summary: dict[str, Any],
    progress: Callable[[int], None] | None = None,
    merging: Callable[[], None] | None = None,
) -> Outcome:
    """Stages (unless resuming: ``prepared`` is None) and merges one import.

    ``progress`` counts staged rows; ``merging`` is called when the merge starts.
    """
    if engine.dialect.name == "postgresql":
        return _load_postgres(engine, prepared, options, summary, progress, merging)
    if prepared is None:
        raise ValueError("SQLite imports have no checkpoint to resume from")
    return _load_sqlite(engine, prepared, options, progress)


def stage_only(
    engine: Engine, prepared: Prepared, options: LoadOptions, summary: dict[str, Any]
) -> None:
    """Commits the staging step alone: what an import interrupted before its merge leaves."""
    with engine.connect() as conn, conn.begin():
        _stage(conn, prepared, options, summary, None)


# --- PostgreSQL -----------------------------------------------------------------------------

_COPY_FIELDS = (
    "name",
    "branch",
    "large_code",
    "middle_code",
    "small_code",
    "road_address",
    "lot_address",
    "district_code",
    "dong_code",
    "lon",
    "lat",
)
_COPY_COLUMNS = ", ".join(("id", "rejected", *_COPY_FIELDS))

# Only new and changed rows reach the upsert: a hash join against stores drops the unchanged
# ones first (a re-import of the same file writes nothing; ON CONFLICT would lock every row).
# The ON CONFLICT clause repeats the test for a row that changed in between.
_MERGE = f"""
WITH changed AS (
  SELECT g.* FROM {STAGING} g LEFT JOIN stores s ON s.id = g.id
  WHERE NOT g.rejected
    AND (s.id IS NULL
      OR ((s.source_date IS NULL OR s.source_date <= %(as_of)s)
        AND (s.closed_at IS NOT NULL
          OR (s.name, s.branch, s.category_code, s.address, s.district_code, s.dong_code,
              s.large_category_code, s.middle_category_code, s.road_address, s.lot_address)
             IS DISTINCT FROM
             (g.name, g.branch, g.small_code, coalesce(nullif(g.road_address, ''), g.lot_address),
              g.district_code, g.dong_code, g.large_code, g.middle_code, g.road_address,
              g.lot_address)
          OR ST_X(s.location::geometry) IS DISTINCT FROM g.lon
          OR ST_Y(s.location::geometry) IS DISTINCT FROM g.lat)))
), up AS (
  INSERT INTO stores AS s (id, name, branch, category_code, address, district_code, dong_code,
      location, large_category_code, middle_category_code, road_address, lot_address,
      source_date, closed_at, updated_at)
  SELECT id, name, branch, small_code, coalesce(nullif(road_address, ''), lot_address),
      district_code, dong_code, ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography,
      large_code, middle_code, road_address, lot_address, %(as_of)s, NULL, now()
  FROM changed
  -- In file order: sorting by geohash first (for the GiST index's sake) measured slower, the
  -- sort costing more than it saves (bench/import/results.md).
  ON CONFLICT (id) DO UPDATE SET
      name = excluded.name, branch = excluded.branch, category_code = excluded.category_code,
      address = excluded.address, district_code = excluded.district_code,
      dong_code = excluded.dong_code, location = excluded.location,
      large_category_code = excluded.large_category_code,
      middle_category_code = excluded.middle_category_code,
      road_address = excluded.road_address, lot_address = excluded.lot_address,
      source_date = excluded.source_date, closed_at = NULL, updated_at = now()
  WHERE (s.source_date IS NULL OR s.source_date <= excluded.source_date)
    AND ((s.name, s.branch, s.category_code, s.address, s.district_code, s.dong_code,
          s.large_category_code, s.middle_category_code, s.road_address, s.lot_address)
         IS DISTINCT FROM
         (excluded.name, excluded.branch, excluded.category_code, excluded.address,
          excluded.district_code, excluded.dong_code, excluded.large_category_code,
          excluded.middle_category_code, excluded.road_address, excluded.lot_address)
      OR NOT ST_Equals(s.location::geometry, excluded.location::geometry)
      OR s.closed_at IS NOT NULL)
  RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up
"""

# Stores of the file's provinces and categories that the file no longer lists: closed, not
# deleted (claims and deals point at them). Only imported stores (source_date set) and only when
# this file is not older than the store's last change.
_CLOSE_MISSING = f"""
UPDATE stores AS s SET closed_at = now(), updated_at = now()
WHERE s.closed_at IS NULL AND s.source_date IS NOT NULL AND s.source_date <= %(as_of)s
  AND left(s.district_code, 2) = ANY(%(provinces)s)
  AND (cardinality(%(categories)s::text[]) = 0
       OR s.large_category_code = ANY(%(categories)s)
       OR s.middle_category_code = ANY(%(categories)s)
       OR s.category_code = ANY(%(categories)s))
  AND NOT EXISTS (SELECT 1 FROM {STAGING} g WHERE g.id = s.id)
"""


def _load_postgres(
    engine: Engine,
    prepared: Prepared | None,
    options: LoadOptions,
    summary: dict[str, Any],
    progress: Callable[[int], None] | None,
    merging: Callable[[], None] | None,
) -> Outcome:
    outcome = Outcome(resumed=prepared is None, dry_run=options.dry_run)
    with engine.connect() as conn:
        locked = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar()
        conn.commit()
        if not locked:
            raise ImportBusy("another import-stores run holds the lock; wait for it to finish")
        try:
            if options.dry_run:
                # Everything in one transaction, rolled back: exact counts, nothing changed.
                with conn.begin() as tx:
                    if prepared is not None:
                        _stage(conn, prepared, options, summary, progress)
                    if merging is not None:
                        merging()
                    _merge(conn, options, outcome)
                    tx.rollback()
                return outcome
            started = time.monotonic()
            if prepared is not None:
                with conn.begin():
                    _stage(conn, prepared, options, summary, progress)
            staged = time.monotonic()
            if merging is not None:
                merging()
            with conn.begin():
                _merge(conn, options, outcome)
            outcome.seconds = {
                "stage": round(staged - started, 2),
                "merge": round(time.monotonic() - staged, 2),
            }
            return outcome
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            conn.commit()


def _stage(
    conn: Connection,
    prepared: Prepared,
    options: LoadOptions,
    summary: dict[str, Any],
    progress: Callable[[int], None] | None,
) -> None:
    raw = conn.connection.driver_connection
    assert raw is not None
    key = options.key
    with raw.cursor() as cur:
        cur.execute(f"TRUNCATE {STAGING}")
        # Whatever was staged before is gone now: it can no longer be resumed.
        cur.execute(f"UPDATE {IMPORTS} SET status = 'abandoned' WHERE status = 'staged'")
        # CSV written by Arrow in C++: strings quoted ("" is an empty string, nothing is NULL),
        # floats in their shortest exact form (PostgreSQL reads the same double back).
        with cur.copy(f"COPY {STAGING} ({_COPY_COLUMNS}) FROM STDIN (FORMAT csv)") as copy:
            for done, chunk in _csv_chunks(_staging_table(prepared)):
                copy.write(chunk)
                if progress is not None:
                    progress(done)
        # Fresh statistics, or the merge's joins are planned for an empty table (quadratic).
        cur.execute(f"ANALYZE {STAGING}")
        cur.execute(
            f"""INSERT INTO {IMPORTS} (key, status, as_of, summary) VALUES (%s, 'staged', %s, %s)
                ON CONFLICT (key) DO UPDATE SET status = 'staged', summary = excluded.summary,
                    started_at = now(), finished_at = NULL""",
            (key, options.as_of, json.dumps(summary, ensure_ascii=False)),
        )


_STAGING_ROWS = 50_000  # rows per COPY chunk (a progress step)


def _staging_table(prepared: Prepared) -> pa.Table:
    """The accepted records, then the ids of rejected rows (marked rejected, nothing else)."""
    table = prepared.table
    accepted = pa.table(
        {
            "id": table["id"],
            "rejected": pa.array(np.zeros(table.num_rows, dtype=np.bool_)),
            **{name: table[name] for name in _COPY_FIELDS},
        }
    )
    # Rejected rows still say "this store is in the file": they must not be closed.
    seen = set(table["id"].to_pylist()) if prepared.rejects else set()
    ids: list[str] = []
    for reject in prepared.rejects:
        if reject.store_id and reject.store_id not in seen:
            seen.add(reject.store_id)
            ids.append(reject.store_id)
    if not ids:
        return accepted
    rejected = pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "rejected": pa.array(np.ones(len(ids), dtype=np.bool_)),
            **{name: pa.nulls(len(ids), accepted.schema.field(name).type) for name in _COPY_FIELDS},
        }
    )
    return pa.concat_tables([accepted, rejected])


def _csv_chunks(table: pa.Table) -> Iterator[tuple[int, bytes]]:
    options = pacsv.WriteOptions(include_header=False)
    for start in range(0, table.num_rows, _STAGING_ROWS):
        part = table.slice(start, _STAGING_ROWS)
        sink = io.BytesIO()
        pacsv.write_csv(part, sink, options)
        yield part.num_rows, sink.getvalue()


def _merge(conn: Connection, options: LoadOptions, outcome: Outcome) -> None:
    raw = conn.connection.driver_connection
    assert raw is not None
    params = {"key": options.key, "as_of": options.as_of, "categories": list(options.categories)}
    with raw.cursor() as cur:
        # Both joins (changed rows, the close step's anti-join) hash every staged id: in memory,
        # whatever stale statistics say (a nested loop over 200,000 rows is quadratic).
        cur.execute("SET LOCAL work_mem = '128MB'")
        cur.execute("SET LOCAL enable_nestloop = off")
        cur.execute(_MERGE, params)
        inserted, updated = cur.fetchone() or (0, 0)
        cur.execute(
            f"""SELECT count(*), array_agg(DISTINCT left(district_code, 2)) FROM {STAGING}
                WHERE NOT rejected"""
        )
        total, provinces = cur.fetchone() or (0, None)
        total, provinces = int(total), provinces or []
        if options.close_missing:
            cur.execute(_CLOSE_MISSING, {**params, "provinces": provinces})
            outcome.closed = cur.rowcount
        cur.execute(f"TRUNCATE {STAGING}")
        cur.execute(
            f"UPDATE {IMPORTS} SET status = 'done', finished_at = now() WHERE key = %(key)s",
            params,
        )
    outcome.inserted, outcome.updated = int(inserted), int(updated)
    outcome.unchanged = total - outcome.inserted - outcome.updated


# --- SQLite (local profile) ---------------------------------------------------------------------


def _load_sqlite(
    engine: Engine,
    prepared: Prepared,
    options: LoadOptions,
    progress: Callable[[int], None] | None,
) -> Outcome:
    outcome = Outcome(dry_run=options.dry_run)
    with engine.connect() as conn, conn.begin() as tx:
        conn.execute(
            text(
                """CREATE TEMP TABLE IF NOT EXISTS import_staging (
                    id TEXT PRIMARY KEY, rejected INTEGER, name TEXT, branch TEXT, large_code TEXT,
                    middle_code TEXT, small_code TEXT, road_address TEXT, lot_address TEXT,
                    district_code TEXT, dong_code TEXT, location TEXT)"""
            )
        )
        conn.execute(text("DELETE FROM import_staging"))
        records = prepared.records
        rows = [_sqlite_row(r) for r in records]
        seen = {r.id for r in records}
        for reject in prepared.rejects:
            store_id = reject.store_id
            if store_id and store_id not in seen:
                seen.add(store_id)
                rows.append({"id": store_id, "rejected": 1} | dict.fromkeys(_SQLITE_FIELDS))
        if rows:
            conn.execute(
                text(
                    "INSERT INTO import_staging VALUES (:id, :rejected, :name, :branch, "
                    ":large_code, :middle_code, :small_code, :road_address, :lot_address, "
                    ":district_code, :dong_code, :location)"
                ),
                rows,
            )
        if progress is not None:
            progress(len(records))
        params = {"as_of": options.as_of.isoformat()}
        newer = "(s.source_date IS NULL OR s.source_date <= :as_of)"
        outcome.inserted = int(
            conn.execute(
                text(
                    "SELECT count(*) FROM import_staging g WHERE NOT g.rejected "
                    "AND NOT EXISTS (SELECT 1 FROM stores s WHERE s.id = g.id)"
                )
            ).scalar_one()
        )
        outcome.updated = int(
            conn.execute(
                text(
                    f"""SELECT count(*) FROM import_staging g JOIN stores s ON s.id = g.id
                    WHERE NOT g.rejected AND {newer} AND (s.name IS NOT g.name
                    OR s.branch IS NOT g.branch OR s.category_code IS NOT g.small_code
                    OR s.district_code IS NOT g.district_code OR s.dong_code IS NOT g.dong_code
                    OR s.location IS NOT g.location OR s.road_address IS NOT g.road_address
                    OR s.lot_address IS NOT g.lot_address OR s.closed_at IS NOT NULL
                    OR s.large_category_code IS NOT g.large_code
                    OR s.middle_category_code IS NOT g.middle_code)"""
                ),
                params,
            ).scalar_one()
        )
        conn.execute(
            text(
                f"""INSERT INTO stores (id, name, branch, category_code, address, district_code,
                    dong_code, location, large_category_code, middle_category_code, road_address,
                    lot_address, source_date, closed_at, updated_at)
                SELECT id, name, branch, small_code, coalesce(nullif(road_address, ''),
                    lot_address), district_code, dong_code, location, large_code, middle_code,
                    road_address, lot_address, :as_of, NULL, CURRENT_TIMESTAMP
                FROM import_staging WHERE NOT rejected
                ON CONFLICT (id) DO UPDATE SET name = excluded.name, branch = excluded.branch,
                    category_code = excluded.category_code, address = excluded.address,
                    district_code = excluded.district_code, dong_code = excluded.dong_code,
                    location = excluded.location,
                    large_category_code = excluded.large_category_code,
                    middle_category_code = excluded.middle_category_code,
                    road_address = excluded.road_address, lot_address = excluded.lot_address,
                    source_date = excluded.source_date, closed_at = NULL,
                    updated_at = CURRENT_TIMESTAMP
                WHERE {newer.replace("s.", "stores.")}"""
            ),
            params,
        )
        total = sum(1 for r in rows if not r["rejected"])
        outcome.unchanged = total - outcome.inserted - outcome.updated
        if options.close_missing and records:
            provinces = sorted({r.district_code[:2] for r in records})
            categories = list(options.categories)
            cat_clause = ""
            if categories:
                marks = ", ".join(f":c{i}" for i in range(len(categories)))
                cat_clause = (
                    f"AND (large_category_code IN ({marks}) OR middle_category_code IN ({marks}) "
                    f"OR category_code IN ({marks}))"
                )
            prov_marks = ", ".join(f":p{i}" for i in range(len(provinces)))
            result = conn.execute(
                text(
                    f"""UPDATE stores SET closed_at = CURRENT_TIMESTAMP,
                        updated_at = CURRENT_TIMESTAMP
                    WHERE closed_at IS NULL AND source_date IS NOT NULL AND source_date <= :as_of
                      AND substr(district_code, 1, 2) IN ({prov_marks}) {cat_clause}
                      AND id NOT IN (SELECT id FROM import_staging)"""
                ),
                params
                | {f"c{i}": c for i, c in enumerate(categories)}
                | {f"p{i}": p for i, p in enumerate(provinces)},
            )
            outcome.closed = result.rowcount
        conn.execute(text("DROP TABLE import_staging"))
        if options.dry_run:
            tx.rollback()
    return outcome


_SQLITE_FIELDS = (
    "name",
    "branch",
    "large_code",
    "middle_code",
    "small_code",
    "road_address",
    "lot_address",
    "district_code",
    "dong_code",
    "location",
)


def _sqlite_row(r: StoreRecord) -> dict[str, Any]:
    row = asdict(r)
    # GeoPoint's SQLite text form (api.geo): "lon lat" with repr floats.
    row["location"] = f"{r.lon!r} {r.lat!r}"
    row["small_code"] = row.pop("small_code")
    del row["lon"], row["lat"]
    row["rejected"] = 0
    return row
