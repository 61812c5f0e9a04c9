"""``import-stores FILE...``: 소상공인시장진흥공단_상가(상권)정보 files into the api database."""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api.importer.columnar import StoreFile, from_raw, read_store_file
from api.importer.formats import MalformedFile, RawFile
from api.importer.plan import ImportBusy, LoadOptions, Outcome
from api.importer.progress import Progress
from api.importer.rows import (
    DEFAULT_CATEGORIES,
    REJECT_REASONS,
    Prepared,
    parse_categories,
    prepare,
    source_date_from_name,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

EXIT_MALFORMED, EXIT_BUSY, EXIT_DATABASE = 2, 3, 4

DELIMITERS = {"comma": ",", ",": ",", "pipe": "|", "|": "|", "tab": "\t"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="import-stores",
        description=(
            "Import 소상공인시장진흥공단_상가(상권)정보 store files (data.go.kr 15083033) into the "
            "api database: upsert by store id, close stores a full file no longer lists, reject "
            "rows without usable coordinates. The database is the api's (MAGAM_PROFILE=prod: "
            "PostgreSQL from API_DATABASE__*; local: the SQLite file under .local/)."
        ),
        epilog=(
            "Format generations are detected: 2023+ (UTF-8, comma), 2019-2020 (UTF-8, pipe), "
            "2017 (CP949, comma). Several files are imported as one (e.g. a split national file). "
            "An interrupted run is safe: run the same command again."
        ),
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="store file(s)")
    parser.add_argument(
        "--categories",
        default=",".join(DEFAULT_CATEGORIES),
        help=(
            "comma-separated whole codes (대/중/소분류) to import, or 'all'; default: %(default)s "
            "(food I2, old food Q, supermarkets, convenience stores, food retail)"
        ),
    )
    parser.add_argument("--encoding", help="force the encoding (utf-8-sig, cp949); default: detect")
    parser.add_argument(
        "--delimiter", choices=sorted(DELIMITERS), help="force the delimiter; default: detect"
    )
    parser.add_argument(
        "--as-of",
        type=date.fromisoformat,
        help="the file's date (YYYY-MM-DD); default: the YYYYMM in the file name, else today",
    )
    parser.add_argument(
        "--partial",
        action="store_true",
        help="the file is not a full province file: do not close stores it does not list",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="do everything, report, then roll back"
    )
    parser.add_argument(
        "--rejects",
        type=Path,
        help="where rejected rows go (CSV with the reason); default: ./<first file>.rejects.csv",
    )
    parser.add_argument(
        "--python-reader",
        action="store_true",
        help=(
            "read with Python's csv module only (slow; the reference the fast Arrow reader is "
            "tested against). Files the fast reader cannot vouch for go there anyway"
        ),
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def import_key(files: Sequence[Path], args: argparse.Namespace, as_of: date) -> str:
    """Identifies an import: same files and same options → the same staged checkpoint.

    A file is known by its size, modification time and the hash of its first and last MiB:
    hashing all 300 MB would cost a second on every run for no practical gain.
    """
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        with path.open("rb") as handle:
            digest.update(handle.read(1 << 20))
            handle.seek(max(0, stat.st_size - (1 << 20)))
            digest.update(handle.read(1 << 20))
    digest.update(
        json.dumps(
            [args.categories, args.encoding, args.delimiter, as_of.isoformat(), args.partial]
        ).encode()
    )
    return digest.hexdigest()


def write_rejects(path: Path, prepared: Prepared) -> None:
    header = list(prepared.header)
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["reason", "file", "line", *header])
        for reject in prepared.rejects:
            writer.writerow([reject.reason, str(reject.path), reject.line, *reject.row])


def summarise(
    prepared: Prepared, files: Sequence[StoreFile | RawFile], rejects_path: Path
) -> dict[str, Any]:
    rejected = prepared.rejected
    read = [f if isinstance(f, StoreFile) else from_raw(f) for f in files]
    return {
        "files": [
            {
                "path": str(f.path),
                "format": f.format.describe(),
                "rows": f.rows,
                "reader": f.reader,
            }
            for f in read
        ],
        "read": prepared.read,
        "selected": prepared.selected,
        "rejected": sum(rejected.values()),
        "rejected_by_reason": {r: rejected[r] for r in REJECT_REASONS if rejected[r]},
        "rejects_file": str(rejects_path) if prepared.rejects else None,
        "district_from_polygon": prepared.district_from_polygon,
        "district_differs_from_polygon": prepared.district_mismatch,
        "dong_from_polygon": prepared.dong_from_polygon,
    }


def report(summary: dict[str, Any], outcome: Outcome, as_json: bool) -> None:
    full = summary | {
        "imported": outcome.inserted,
        "updated": outcome.updated,
        "unchanged": outcome.unchanged,
        "closed": outcome.closed,
        "resumed": outcome.resumed,
        "dry_run": outcome.dry_run,
        "seconds": outcome.seconds,
    }
    if as_json:
        print(json.dumps(full, ensure_ascii=False, indent=2))
        return
    for file in full["files"]:
        print(
            f"file      {file['path']} ({file['format']}, {file['rows']:,} rows, "
            f"{file.get('reader', 'python')} reader)"
        )
    print(f"read      {full['read']:,}")
    print(f"selected  {full['selected']:,} (in the chosen categories)")
    print(f"imported  {full['imported']:,} new")
    print(f"updated   {full['updated']:,}")
    print(f"unchanged {full['unchanged']:,}")
    print(f"closed    {full['closed']:,} (no longer in the file)")
    print(f"rejected  {full['rejected']:,}", end="")
    if full["rejected_by_reason"]:
        reasons = ", ".join(f"{k} {v:,}" for k, v in full["rejected_by_reason"].items())
        print(f" ({reasons}) -> {full['rejects_file']}")
    else:
        print()
    print(
        f"districts {full['district_from_polygon']:,} from the polygons (code unknown), "
        f"{full['district_differs_from_polygon']:,} near a border kept as in the file; "
        f"dongs {full['dong_from_polygon']:,} from the polygons"
    )
    if outcome.seconds:
        print("seconds   " + ", ".join(f"{k} {v:.1f} s" for k, v in outcome.seconds.items()))
    if outcome.resumed:
        print("resumed   from the staged checkpoint of an interrupted run")
    if outcome.dry_run:
        print("dry run   nothing was changed")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    files: list[Path] = args.files
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        print(f"import-stores: no such file: {', '.join(missing)}", file=sys.stderr)
        return EXIT_MALFORMED
    as_of = args.as_of or source_date_from_name(files[0]) or date.today()
    options = LoadOptions(
        import_key(files, args, as_of),
        as_of,
        parse_categories(args.categories),
        close_missing=not args.partial,
        dry_run=args.dry_run,
    )
    # The database side (SQLAlchemy, settings, models: a second or more of imports, then the
    # schema check) gets ready in a thread while this one reads the files: Arrow parses without
    # the GIL, so on two cores the start-up costs next to nothing.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-stores-db") as pool:
        database = pool.submit(_open_database)
        started = time.monotonic()
        try:
            work: _Checked | MalformedFile = _read_and_check(args, options)
        except MalformedFile as exc:
            work = exc
        seconds = {"read_and_check": round(time.monotonic() - started, 2)}
        engine = _database_or_report(database)
    if engine is None:
        return EXIT_DATABASE
    from sqlalchemy.exc import OperationalError  # noqa: PLC0415 — loaded by the thread by now

    try:
        summary, outcome = _load(engine, args, options, work)
    except MalformedFile as exc:
        print(f"import-stores: {exc}", file=sys.stderr)
        print("  nothing was imported", file=sys.stderr)
        return EXIT_MALFORMED
    except ImportBusy as exc:
        print(f"import-stores: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except OperationalError as exc:
        print(f"import-stores: database error: {exc.orig}", file=sys.stderr)
        print("  nothing was changed; run the same command again", file=sys.stderr)
        return EXIT_DATABASE
    finally:
        engine.dispose()
    if not outcome.resumed:
        outcome.seconds = work.seconds | outcome.seconds if isinstance(work, _Checked) else seconds
    report(summary, outcome, args.json)
    return 0


def _open_database() -> Engine:
    """The api database's engine, its schema checked (runs in the start-up thread)."""
    # Imported here, in the start-up thread, not at the top: see main().
    from api.importer.writer import ensure_schema, sync_engine  # noqa: PLC0415
    from api.settings import ApiSettings  # noqa: PLC0415

    engine = sync_engine(ApiSettings())
    try:
        ensure_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _database_or_report(database: Future[Engine]) -> Engine | None:
    from sqlalchemy.exc import OperationalError  # noqa: PLC0415 — see main()

    from servicekit.config import ConfigError  # noqa: PLC0415

    try:
        return database.result()
    except (ConfigError, OperationalError) as exc:
        print(f"import-stores: cannot use the api database: {exc}", file=sys.stderr)
        print(
            "  check MAGAM_PROFILE and API_DATABASE__* (is PostgreSQL up? scripts/infra up)",
            file=sys.stderr,
        )
        return None


@dataclass
class _Checked:
    files: list[StoreFile]
    prepared: Prepared
    seconds: dict[str, float]


def _read_and_check(args: argparse.Namespace, options: LoadOptions) -> _Checked:
    """Reads and checks every file; nothing here touches the database."""
    show = not args.no_progress
    delimiter = DELIMITERS[args.delimiter] if args.delimiter else None
    started = time.monotonic()
    read = []
    for path in args.files:
        if show:
            print(f"reading   {path}", file=sys.stderr)
        reading = Progress("reading", path.stat().st_size, enabled=show, unit="MB", scale=1e-6)
        read.append(
            read_store_file(
                path,
                args.encoding,
                delimiter,
                options.categories,
                reading,
                fast=not args.python_reader,
            )
        )
        reading.finish()
    have_read = time.monotonic()
    checking = Progress("checking", sum(f.rows for f in read), enabled=show)
    prepared = prepare(read, options.categories, checking)
    checking.finish()
    seconds = {
        "read": round(have_read - started, 2),
        "check": round(time.monotonic() - have_read, 2),
    }
    return _Checked(read, prepared, seconds)


def _load(
    engine: Engine,
    args: argparse.Namespace,
    options: LoadOptions,
    work: _Checked | MalformedFile,
) -> tuple[dict[str, Any], Outcome]:
    from api.importer.writer import checkpoint, load  # noqa: PLC0415 — see main()

    staged = None if args.dry_run else checkpoint(engine, options.key)
    if staged is not None:
        # The same files and options were staged by a run that stopped before its merge.
        print("import-stores: resuming an interrupted import of these files", file=sys.stderr)
        return staged.summary, load(engine, None, options, staged.summary)
    if isinstance(work, MalformedFile):
        raise work
    prepared = work.prepared
    rejects_path = args.rejects or Path(f"{args.files[0].name}.rejects.csv")
    if prepared.rejects:
        write_rejects(rejects_path, prepared)
    summary = summarise(prepared, work.files, rejects_path)
    show = not args.no_progress
    staging = Progress("staging", prepared.table.num_rows, enabled=show)
    merge_started = time.monotonic()

    def merging() -> None:
        nonlocal merge_started
        staging.finish()
        merge_started = time.monotonic()
        if show:
            print("merging   new and changed stores, in one transaction …", file=sys.stderr)

    outcome = load(engine, prepared, options, summary, staging, merging)
    if show:
        print(f"merged    ({time.monotonic() - merge_started:.1f} s)", file=sys.stderr)
    return summary, outcome


def run() -> None:
    """Console entry point."""
    sys.exit(main())
