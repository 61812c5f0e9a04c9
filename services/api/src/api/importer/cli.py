"""``import-stores FILE...``: 소상공인시장진흥공단_상가(상권)정보 files into the api database."""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from api.importer.columnar import StoreFile, from_raw, read_store_file
from api.importer.formats import MalformedFile, RawFile
from api.importer.progress import Progress
from api.importer.rows import (
    DEFAULT_CATEGORIES,
    REJECT_REASONS,
    Prepared,
    parse_categories,
    prepare,
    source_date_from_name,
)
from api.importer.writer import ImportBusy, LoadOptions, Outcome, checkpoint, ensure_schema, load
from api.importer.writer import sync_engine as make_engine
from api.settings import ApiSettings
from servicekit.config import ConfigError

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
        print("database  " + ", ".join(f"{k} {v:.1f} s" for k, v in outcome.seconds.items()))
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
    engine: Engine | None = None
    try:
        engine = make_engine(ApiSettings())
        ensure_schema(engine)
    except (ConfigError, OperationalError) as exc:
        if engine is not None:
            engine.dispose()
        print(f"import-stores: cannot use the api database: {exc}", file=sys.stderr)
        print(
            "  check MAGAM_PROFILE and API_DATABASE__* (is PostgreSQL up? scripts/infra up)",
            file=sys.stderr,
        )
        return EXIT_DATABASE
    options = LoadOptions(
        import_key(files, args, as_of),
        as_of,
        parse_categories(args.categories),
        close_missing=not args.partial,
        dry_run=args.dry_run,
    )
    try:
        summary, outcome = _import(engine, args, options)
        engine.dispose()
    except MalformedFile as exc:
        engine.dispose()
        print(f"import-stores: {exc}", file=sys.stderr)
        print("  nothing was imported", file=sys.stderr)
        return EXIT_MALFORMED
    except ImportBusy as exc:
        engine.dispose()
        print(f"import-stores: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except OperationalError as exc:
        engine.dispose()
        print(f"import-stores: database error: {exc.orig}", file=sys.stderr)
        print("  nothing was changed; run the same command again", file=sys.stderr)
        return EXIT_DATABASE
    report(summary, outcome, args.json)
    return 0


def _import(
    engine: Engine, args: argparse.Namespace, options: LoadOptions
) -> tuple[dict[str, Any], Outcome]:
    files: list[Path] = args.files
    show = not args.no_progress
    staged = None if args.dry_run else checkpoint(engine, options.key)
    if staged is not None:
        print("import-stores: resuming an interrupted import of these files", file=sys.stderr)
        return staged.summary, load(engine, None, options, staged.summary)
    delimiter = DELIMITERS[args.delimiter] if args.delimiter else None
    read = []
    for path in files:
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
    checking = Progress("checking", sum(f.rows for f in read), enabled=show)
    prepared = prepare(read, options.categories, checking)
    checking.finish()
    rejects_path = args.rejects or Path(f"{files[0].name}.rejects.csv")
    if prepared.rejects:
        write_rejects(rejects_path, prepared)
    summary = summarise(prepared, read, rejects_path)
    loading = Progress("loading", prepared.table.num_rows, enabled=show)
    outcome = load(engine, prepared, options, summary, loading)
    loading.finish()
    return summary, outcome


def run() -> None:
    """Console entry point."""
    sys.exit(main())
