"""Archive benchmark: one month of ``core.documents`` to Parquet, ours beside pandas, in one run (issue 7).

A throw-away database ``pulse_bench_archive`` on the local stack's PostgreSQL is created and migrated to
head with the project's migrations, so the partition is the real one (indexes, collations). ``--rows``
documents (default 1,000,000) are generated in SQL into June 2026 with realistic sizes (title ~60 chars,
body ~300, metrics ~200 B and payload ~400 B of jsonb, URL, pseudonym, numbers), then ``VACUUM ANALYZE``.

Methods, each timed in a fresh child process (so its peak RSS, ``ru_maxrss``, is its own; imports are done
before the clock starts and the RSS they take, the same for every method, is printed beside it), writing to a
temporary folder on the same disk:

* ``ours``: :func:`pulse.archive.parquet.write_archive` of ``core.documents_p2026_06`` to ``file://``
  (primary key order, zstd, row groups of 100,000 rows, SHA-256 while writing).
* ``pandas``: the baseline, ``pandas.read_sql("SELECT * FROM core.documents_p2026_06", engine)`` on a
  SQLAlchemy engine over psycopg, then ``DataFrame.to_parquet(path, engine="pyarrow", compression="zstd")``.
* ``verify``: :func:`pulse.archive.parquet.verify_archive` of the archive ``ours`` wrote in the same
  repetition (download, SHA-256, decode, counts, COPY into a TEMP table, EXCEPT ALL both ways).
* ``restore``: :func:`pulse.archive.parquet.restore_archive` of that archive into an empty copy of the
  partition (same columns, primary key and index; truncated before each repetition).

A CHECKPOINT precedes every timed method. Repetitions are interleaved (rep 1: every method, rep 2: every
method ...); medians and paired ratios (median of per-repetition ratios) are printed, with file sizes. The
database is dropped at the end. Usage: ``python -m bench.archive [--rows N] [--reps R]`` (or ``make bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.loader import WORDS  # the same vocabulary as the loader benchmark

BENCH_DB = "pulse_bench_archive"
PARTITION = "core.documents_p2026_06"
RESTORE_TARGET = "public.bench_restore"
METHODS = ("ours", "pandas", "verify", "restore")


def bench_dsn() -> dict[str, Any]:
    from dev import stack

    return {**stack.warehouse_dsn(), "dbname": BENCH_DB}


def bench_uri(driver: str = "postgresql") -> str:
    d = bench_dsn()
    return f"{driver}://{d['user']}:{d['password']}@{d['host']}:{d['port']}/{d['dbname']}"


def connect(**kwargs: Any) -> Any:
    import psycopg

    return psycopg.connect(**bench_dsn(), application_name="pulse-bench-archive", **kwargs)


def checkpoint() -> None:
    from dev import stack

    stack._admin_sql("CHECKPOINT", db=BENCH_DB)  # CHECKPOINT needs pg_checkpoint rights: ask the superuser


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------

GENERATE = """
INSERT INTO core.documents (source, external_id, kind, channel, created_at, title, body, url, author_pseudonym,
                            score, metrics, payload, content_sha256, raw_response_id, dag_run_id)
SELECT (ARRAY['reddit','x','newsapi','github'])[1 + g % 4],
       'id_' || lpad(g::text, 9, '0'),
       (ARRAY['post','tweet','article','issue'])[1 + g % 4],
       w[1 + (g / 3) % 20],
       timestamptz '2026-06-01 00:00:00+00' + (g - 1) * (interval '30 days' / %(rows)s),
       left(initcap(w[1 + g % 20]) || ' ' || w[1 + (g / 20) % 20] || ' ' || w[1 + (g / 7) % 20] || ' report '
            || substr(md5(g::text), 1, 10) || ' ' || w[1 + (g / 400) % 20] || ' and ' || w[1 + (g / 11) % 20]
            || ' today', 60),
       left(repeat(w[1 + g % 20] || ' ' || w[1 + (g / 3) % 20] || ' ' || substr(md5((g * 3)::text), 1, 6) || ' '
                   || w[1 + (g / 13) % 20] || ', ', 12), 300),
       'https://example.com/' || w[1 + g % 20] || '/' || g || '/' || substr(md5((g * 7)::text), 1, 16),
       encode(sha256(convert_to('author' || (g % 50000), 'UTF8')), 'hex'),
       (g::bigint * 7919 % 10000)::int,
       jsonb_build_object('comments', g % 500, 'shares', g % 97, 'upvote_ratio', round(((g % 100) / 100.0), 2),
                          'awards', g % 7, 'views', g::bigint * 13 % 1000003, 'quotes', g % 11,
                          'ratios', jsonb_build_object('reply', round(((g % 37) / 37.0), 3),
                                                       'like', round(((g % 53) / 53.0), 3)),
                          'flags', jsonb_build_array(w[1 + g % 20], w[1 + (g / 5) % 20]), 'rank', g % 1000),
       jsonb_build_object('subreddit_id', 't5_' || lpad((g % 1000000)::text, 6, '0'),
                          'flair', (ARRAY['News','Discussion','Meta',NULL])[1 + g % 4],
                          'domain', (ARRAY['example.com','news.example.org','self.python'])[1 + g % 3],
                          'lang', 'en',
                          'thumbnail', 'https://img.example.com/' || md5((g * 11)::text),
                          'hashtags', jsonb_build_array(w[1 + (g / 2) % 20], w[1 + (g / 9) % 20], w[1 + (g / 17) % 20]),
                          'urls', jsonb_build_array('https://example.com/' || (g::bigint * 31 % 1000000007),
                                                    'https://example.org/a/' || (g::bigint * 17 % 999983)),
                          'edited', g % 10 = 0,
                          'text_excerpt', left(repeat(w[1 + (g / 19) % 20] || ' ' || w[1 + (g / 23) % 20] || ' ', 10), 80)),
       md5('content' || g),
       g,
       'bench'
  FROM generate_series(1, %(rows)s) g, (SELECT %(words)s::text[] AS w) words
"""


def fresh_database(rows: int) -> dict[str, Any]:
    """(Re)create the bench database, migrate it, fill one month; return the data's sizes."""
    from dev import stack
    from pulse.warehouse.migrate import upgrade

    stack.pg_up()
    stack._admin_sql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    stack._admin_sql(f"CREATE DATABASE {BENCH_DB} OWNER {stack.WAREHOUSE_ROLE}")
    upgrade(bench_uri())
    with connect(autocommit=True) as conn:
        conn.execute("SELECT ops.ensure_month_partitions('core.documents', '2026-06-01', '2026-06-01')")
        conn.execute(f"ALTER TABLE {PARTITION} SET (autovacuum_enabled = false)")
        t0 = time.perf_counter()
        words = "ARRAY[" + ", ".join(f"'{w}'" for w in WORDS) + "]"
        conn.execute(GENERATE.replace("%(rows)s", str(int(rows))).replace("%(words)s", words))
        generated = time.perf_counter() - t0
        conn.execute(f"VACUUM ANALYZE {PARTITION}")
        conn.execute(
            f"CREATE TABLE {RESTORE_TARGET} (LIKE {PARTITION} INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
            " INCLUDING INDEXES)"
        )
        conn.execute(f"ALTER TABLE {RESTORE_TARGET} SET (autovacuum_enabled = false)")
        sizes = conn.execute(
            f"SELECT count(*), avg(pg_column_size(d.*))::int, avg(length(title))::int, avg(length(body))::int,"
            f" avg(length(metrics::text))::int, avg(length(payload::text))::int,"
            f" pg_total_relation_size('{PARTITION}') FROM {PARTITION} d"
        ).fetchone()
    keys = ("rows", "row_bytes", "title_chars", "body_chars", "metrics_bytes", "payload_bytes", "table_bytes")
    return {**dict(zip(keys, sizes, strict=True)), "generate_s": generated}


# ------------------------------------------------------------------------------------------------
# methods (each runs in a child process)
# ------------------------------------------------------------------------------------------------


def _archive_record(folder: Path) -> Any:
    from pulse.archive.parquet import ArchiveFile

    return ArchiveFile.from_dict(json.loads((folder / "ours.json").read_text()))


def run_method(method: str, folder: Path) -> dict[str, Any]:
    """Run one method once; return seconds, rows and bytes. Imports happen before the clock starts."""
    import pandas as pd
    import pyarrow.parquet  # noqa: F401  (imported up front, like pandas: not part of the timing)
    import sqlalchemy
    from airflow.sdk import ObjectStoragePath

    from pulse.archive.parquet import restore_archive, verify_archive, write_archive

    # One-off costs a running Airflow worker or a long-lived process has already paid are paid here, untimed:
    # attaching the file system and Airflow's hook-lineage collector (ObjectStoragePath), SQLAlchemy's
    # dialect set-up (pandas).
    warm = ObjectStoragePath(f"file://{folder}/warm-up-{method}")
    with warm.open("wb") as fh:
        fh.write(b"x")
    with warm.open("rb") as fh:
        fh.read()
    warm.unlink()
    engine = sqlalchemy.create_engine(bench_uri("postgresql+psycopg"))
    with engine.connect() as c:
        c.execute(sqlalchemy.text("SELECT 1"))

    result: dict[str, Any] = {"base_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if method == "ours":
        dest = ObjectStoragePath(f"file://{folder}/ours.parquet")
        with connect() as conn:
            t0 = time.perf_counter()
            archive = write_archive(conn, PARTITION, dest)
            result["seconds"] = time.perf_counter() - t0
        (folder / "ours.json").write_text(json.dumps(archive.as_dict()))
        result.update(rows=archive.rows, bytes=archive.bytes)
    elif method == "pandas":
        path = folder / "pandas.parquet"
        t0 = time.perf_counter()
        frame = pd.read_sql(f"SELECT * FROM {PARTITION}", engine)
        frame.to_parquet(path, engine="pyarrow", compression="zstd")
        result["seconds"] = time.perf_counter() - t0
        result.update(rows=len(frame), bytes=path.stat().st_size)
    elif method == "verify":
        archive = _archive_record(folder)
        with connect() as conn:
            t0 = time.perf_counter()
            check = verify_archive(conn, archive)
            result["seconds"] = time.perf_counter() - t0
        if not check.ok:
            raise SystemExit(f"verify failed: {check.problems}")
        result.update(rows=check.rows_in_file, bytes=archive.bytes)
    elif method == "restore":
        archive = _archive_record(folder)
        with connect() as conn:
            t0 = time.perf_counter()
            with conn.transaction():
                rows = restore_archive(
                    conn, ObjectStoragePath(archive.path), RESTORE_TARGET, expected=archive
                )
            result["seconds"] = time.perf_counter() - t0
        result.update(rows=rows, bytes=archive.bytes)
    else:
        raise SystemExit(f"unknown method {method}")
    engine.dispose()
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def in_child(method: str, folder: Path) -> dict[str, Any]:
    """Run ``method`` in a fresh interpreter; its last output line is the JSON result."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.archive", "--child", method, "--folder", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{method} failed:\n{out.stdout}\n{out.stderr}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def prepare(method: str) -> None:
    if method == "restore":
        with connect(autocommit=True) as conn:
            conn.execute(f"TRUNCATE {RESTORE_TARGET}")
    checkpoint()


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    if args.child:
        print(json.dumps(run_method(args.child, Path(args.folder))))
        return 0

    started = time.perf_counter()
    print(f"creating {BENCH_DB} and generating {args.rows:,} documents ...", flush=True)
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
    try:
        data = fresh_database(args.rows)
        print(
            f"{data['rows']:,} rows in {data['generate_s']:.1f} s: stored row {data['row_bytes']:,} B (title"
            f" {data['title_chars']} chars, body {data['body_chars']}, metrics {data['metrics_bytes']} B,"
            f" payload {data['payload_bytes']} B), partition with indexes {data['table_bytes'] / 2**20:,.0f} MiB",
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix="pulse-bench-archive-") as tmp:
            for rep in range(1, args.reps + 1):
                folder = Path(tmp) / f"rep{rep}"
                folder.mkdir()
                for method in METHODS:
                    prepare(method)
                    res = in_child(method, folder)
                    if res["rows"] != data["rows"]:
                        raise SystemExit(f"{method}: {res['rows']:,} rows, expected {data['rows']:,}")
                    results[method].append(res)
                    print(
                        f"rep {rep} {method:8s} {res['seconds']:7.2f} s {data['rows'] / res['seconds']:10,.0f} rows/s"
                        f"  peak RSS {res['maxrss_mb']:7,.0f} MiB  file {res['bytes'] / 2**20:7,.1f} MiB",
                        flush=True,
                    )
                for leftover in folder.iterdir():
                    leftover.unlink()
    finally:
        from dev import stack

        stack._admin_sql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")

    rows = data["rows"]

    def paired(a: str, b: str) -> float:
        """Median over repetitions of rate(a) / rate(b)."""
        return statistics.median(
            rb["seconds"] / ra["seconds"] for ra, rb in zip(results[a], results[b], strict=True)
        )

    print(f"\n## Archive benchmark: {rows:,} documents of {PARTITION}, {args.reps} interleaved repetitions\n")
    print(
        "| method | rows/s median | min | max | s median | peak RSS MiB median | of which imports | file MiB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    labels = {
        "ours": "ours: write_archive (COPY csv -> pyarrow -> Parquet zstd)",
        "pandas": "baseline: pandas read_sql + to_parquet (zstd)",
        "verify": "ours: verify_archive",
        "restore": "ours: restore_archive into an empty copy",
    }
    for method in METHODS:
        rates = [rows / r["seconds"] for r in results[method]]
        print(
            f"| {labels[method]} | {statistics.median(rates):,.0f} | {min(rates):,.0f} | {max(rates):,.0f} | "
            f"{statistics.median(r['seconds'] for r in results[method]):.2f} | "
            f"{statistics.median(r['maxrss_mb'] for r in results[method]):,.0f} | "
            f"{statistics.median(r['base_rss_mb'] for r in results[method]):,.0f} | "
            f"{statistics.median(r['bytes'] for r in results[method]) / 2**20:,.1f} |"
        )
    ratio = paired("ours", "pandas")
    rss = statistics.median(r["maxrss_mb"] for r in results["ours"]) / statistics.median(
        r["maxrss_mb"] for r in results["pandas"]
    )
    print("\nPaired ratios (median of per-repetition ratios):")
    print(
        f"  ours vs pandas baseline, rows/s   {ratio:6.2f}x   target > 1.00x  {'met' if ratio > 1 else 'MISSED'}"
    )
    print(f"  ours vs pandas baseline, peak RSS {rss:6.2f}x   (lower is better)")
    print(f"  verify vs ours, rows/s            {paired('verify', 'ours'):6.2f}x")
    print(f"  restore vs ours, rows/s           {paired('restore', 'ours'):6.2f}x")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
