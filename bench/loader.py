"""Loader benchmark: 200,000 documents (about 1.5 kB each, 1 kB jsonb payload), side by side in one run.

Methods, each loading the same Document objects into an empty ``core.documents`` (partitioned, with its
indexes) of a throw-away database ``pulse_bench`` on the local stack's PostgreSQL:

* ``pulse_loader``: ours, :func:`pulse.warehouse.loader.upsert_documents` (validation and cleaning, dedupe,
  binary COPY into a stage, one INSERT ... ON CONFLICT DO UPDATE per batch), timed from Document objects.
* ``pulse_loader_reload``: ours again with the same, unchanged rows on the populated table.
* ``pulse_loader_50k``: ours with batches of 50,000 (the first batch finds the table empty in its time range
  and skips the key probe; the other three probe every key).
* ``raw_binary_copy``: ``COPY core.documents FROM STDIN (FORMAT BINARY)`` of rows built beforehand (building
  not timed): the ceiling, no conflict handling at all.
* ``raw_binary_copy_incl_rows``: the same, with building the rows timed (the same row builder ours uses).
* ``insert_rows``: ``PostgresHook.insert_rows(..., replace=True)`` what an Airflow user would write.
* ``dlt_merge``: dlt's postgres destination, ``write_disposition="merge"`` on the same key, whole
  ``pipeline.run`` (extract, normalise, load) timed.

Before timing, the partitions of the data's months exist and autovacuum is off on them, so no method is
timed while autovacuum analyses what the previous one loaded. Repetitions are interleaved (rep 1: every method, rep 2: every method ...); medians and paired ratios
(median of per-repetition ratios) are printed. Usage: ``make bench`` or
``python -m bench.loader [--rows N] [--reps N] [--skip dlt,insert_rows]``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import string
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

SOURCES = ("reddit", "x", "newsapi", "github")
KINDS = {"reddit": "post", "x": "tweet", "newsapi": "article", "github": "issue"}
WORDS = [
    "market",
    "python",
    "release",
    "weather",
    "storm",
    "bitcoin",
    "airflow",
    "data",
    "pipeline",
    "launch",
    "earnings",
    "rally",
    "outage",
    "update",
    "community",
    "model",
    "forecast",
    "rain",
    "stocks",
    "crypto",
]


def make_documents(n: int, seed: int = 7) -> list[Any]:
    """``n`` realistic documents: body ~320 chars, payload ~1 kB of JSON, spread over three months."""
    from pulse.sources.base import Document

    rng = random.Random(seed)
    start = datetime(2026, 9, 1, tzinfo=UTC)
    docs = []
    for i in range(n):
        source = SOURCES[i % len(SOURCES)]
        words = rng.choices(WORDS, k=48)
        body = " ".join(words)[:320]
        payload = {
            "subreddit_id": f"t5_{rng.randrange(10**6):06d}",
            "flair": rng.choice(["News", "Discussion", None, "Meta"]),
            "domain": rng.choice(["example.com", "news.example.org", "self.python"]),
            "lang": "en",
            "entities": {
                "hashtags": [rng.choice(WORDS) for _ in range(3)],
                "urls": [f"https://example.com/{rng.randrange(10**9)}" for _ in range(3)],
            },
            "thumbnail": "https://img.example.com/" + "".join(rng.choices(string.ascii_lowercase, k=40)),
            "awards": [{"name": rng.choice(WORDS), "count": rng.randrange(5)} for _ in range(4)],
            "edited": rng.random() < 0.1,
            "ratios": {"upvote": round(rng.random(), 3), "reply": round(rng.random(), 3)},
            "text_excerpt": " ".join(rng.choices(WORDS, k=40)),
            "context": "".join(rng.choices(string.ascii_letters + " ", k=260)),
        }
        docs.append(
            Document(
                source=source,
                external_id=f"{source}_{i:09d}",
                kind=KINDS[source],
                created_at=start + timedelta(seconds=rng.randrange(90 * 86400)),
                channel=rng.choice(WORDS),
                title=" ".join(rng.choices(WORDS, k=8)),
                body=body,
                url=f"https://example.com/{source}/{i}",
                author_pseudonym=f"{rng.getrandbits(128):032x}",
                score=rng.randrange(10_000),
                metrics={"comments": rng.randrange(500), "shares": rng.randrange(100)},
                payload=payload,
            )
        )
    return docs


# ------------------------------------------------------------------------------------------------
# database
# ------------------------------------------------------------------------------------------------

BENCH_DB = "pulse_bench"


def bench_dsn() -> dict[str, Any]:
    from dev import stack

    return {**stack.warehouse_dsn(), "dbname": BENCH_DB}


def fresh_database() -> None:
    """(Re)create ``pulse_bench`` and migrate it to head, so the table is the real ``core.documents``."""
    from dev import stack
    from pulse.warehouse.migrate import upgrade

    stack.pg_up()
    stack._admin_sql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    stack._admin_sql(f"CREATE DATABASE {BENCH_DB} OWNER {stack.WAREHOUSE_ROLE}")
    d = bench_dsn()
    upgrade(f"postgresql://{d['user']}:{d['password']}@{d['host']}:{d['port']}/{d['dbname']}")
    # The data's months exist before any method runs (each method then pays the same), and autovacuum stays
    # off on them: otherwise it analyses the rows one method loaded while the next method is being timed.
    with connect() as conn:
        conn.execute("SELECT ops.ensure_month_partitions('core.documents', '2026-09-01', '2026-12-31')")
        parts = conn.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'core.documents'::regclass"
        ).fetchall()
        for (part,) in parts:
            conn.execute(f"ALTER TABLE {part} SET (autovacuum_enabled = false)")
        conn.commit()


def connect() -> Any:
    import psycopg

    return psycopg.connect(**bench_dsn(), application_name="pulse-bench")


def reset(conn: Any) -> None:
    """Empty the target tables and flush dirty pages, so every timed load starts alike."""
    conn.execute("TRUNCATE core.documents")
    conn.execute("DROP SCHEMA IF EXISTS dlt_bench CASCADE")
    conn.execute("DROP SCHEMA IF EXISTS dlt_bench_staging CASCADE")
    conn.commit()
    # CHECKPOINT needs pg_checkpoint rights; ask the superuser.
    from dev import stack

    stack._admin_sql("CHECKPOINT", db=BENCH_DB)


def count(conn: Any, table: str = "core.documents") -> int:
    n = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    conn.commit()
    return int(n)


# ------------------------------------------------------------------------------------------------
# methods: each returns the number of rows it wrote
# ------------------------------------------------------------------------------------------------


def build_rows(docs: list[Any]) -> list[tuple[Any, ...]]:
    from pulse.warehouse.loader import document_row

    return [document_row(doc, i + 1, "bench") for i, doc in enumerate(docs)]


def m_pulse_loader(docs: list[Any], _rows: list[tuple[Any, ...]]) -> int:
    from pulse.warehouse.loader import upsert_documents

    with connect() as conn:
        result = upsert_documents(conn, [(doc, i + 1) for i, doc in enumerate(docs)], "bench")
    return result.changed


def m_pulse_loader_50k(docs: list[Any], _rows: list[tuple[Any, ...]]) -> int:
    """Ours with batches of 50,000 (four transactions and three key probes instead of one batch)."""
    from pulse.warehouse.loader import upsert_documents

    with connect() as conn:
        result = upsert_documents(
            conn, [(doc, i + 1) for i, doc in enumerate(docs)], "bench", batch_size=50_000
        )
    return result.changed


def _raw_copy(rows: list[tuple[Any, ...]]) -> int:
    """Plain binary COPY into the target: no stage, no conflict handling (jsonb written from JSON text)."""
    from pulse.warehouse.loader import _TARGET_TYPES, DOC_COLUMNS, _JsonText, _JsonTextBinaryDumper

    with connect() as conn, conn.cursor() as cur:
        cur.adapters.register_dumper(_JsonText, _JsonTextBinaryDumper)
        with cur.copy(f"COPY core.documents ({', '.join(DOC_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_TARGET_TYPES)
            for row in rows:
                copy.write_row(row)
        conn.commit()
    return len(rows)


def m_raw_binary_copy(_docs: list[Any], rows: list[tuple[Any, ...]]) -> int:
    return _raw_copy(rows)


def m_raw_binary_copy_incl_rows(docs: list[Any], _rows: list[tuple[Any, ...]]) -> int:
    return _raw_copy(build_rows(docs))


def m_insert_rows(docs: list[Any], _rows: list[tuple[Any, ...]]) -> int:
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    from pulse.warehouse.loader import DOC_COLUMNS

    rows = build_rows(docs)
    hook = PostgresHook(postgres_conn_id="pulse_bench")
    hook.insert_rows(
        "core.documents",
        rows,
        target_fields=list(DOC_COLUMNS),
        replace=True,
        replace_index=["source", "external_id", "created_at"],
    )
    return len(rows)


def m_dlt_merge(docs: list[Any], _rows: list[tuple[Any, ...]]) -> int:
    import dlt

    d = bench_dsn()
    credentials = f"postgresql://{d['user']}:{d['password']}@{d['host']}:{d['port']}/{d['dbname']}"

    @dlt.resource(
        name="documents",
        primary_key=("source", "external_id", "created_at"),
        write_disposition="merge",
        columns={"metrics": {"data_type": "json"}, "payload": {"data_type": "json"}},
    )
    def documents() -> Any:
        for i, doc in enumerate(docs):
            yield {
                "source": doc.source,
                "external_id": doc.external_id,
                "kind": doc.kind,
                "channel": doc.channel,
                "created_at": doc.created_at,
                "title": doc.title,
                "body": doc.body,
                "url": doc.url,
                "author_pseudonym": doc.author_pseudonym,
                "score": doc.score,
                "metrics": doc.metrics,
                "payload": doc.payload,
                "raw_response_id": i + 1,
                "dag_run_id": "bench",
            }

    with tempfile.TemporaryDirectory(prefix="pulse-dlt-") as tmp:
        pipeline = dlt.pipeline(
            pipeline_name=f"bench_{time.monotonic_ns()}",
            destination=dlt.destinations.postgres(credentials=credentials),
            dataset_name="dlt_bench",
            pipelines_dir=tmp,
        )
        pipeline.run(documents())
    with connect() as conn:
        return count(conn, "dlt_bench.documents")


METHODS: dict[str, Callable[[list[Any], list[tuple[Any, ...]]], int]] = {
    "raw_binary_copy": m_raw_binary_copy,
    "raw_binary_copy_incl_rows": m_raw_binary_copy_incl_rows,
    "pulse_loader": m_pulse_loader,
    "pulse_loader_50k": m_pulse_loader_50k,
    "insert_rows": m_insert_rows,
    "dlt_merge": m_dlt_merge,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--skip", default="", help="comma-separated methods to leave out")
    args = parser.parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}

    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")  # insert_rows logs every 1,000 rows
    # dlt reads Airflow Variables as a config source when Airflow is importable; there is no Airflow DB here.
    os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
    fresh_database()
    d = bench_dsn()
    os.environ["AIRFLOW_CONN_PULSE_BENCH"] = (
        f"postgres://{d['user']}:{d['password']}@{d['host']}:{d['port']}/{d['dbname']}"
    )
    print(f"generating {args.rows:,} documents ...", flush=True)
    docs = make_documents(args.rows)
    t0 = time.perf_counter()
    rows = build_rows(docs)
    build_s = time.perf_counter() - t0
    print(f"row building (validation, JSON, hash): {build_s:.2f} s for {args.rows:,} rows")

    methods = [m for m in METHODS if m not in skip]
    times: dict[str, list[float]] = {m: [] for m in [*methods, "pulse_loader_reload"]}
    for rep in range(1, args.reps + 1):
        for name in methods:
            with connect() as conn:
                reset(conn)
            t0 = time.perf_counter()
            written = METHODS[name](docs, rows)
            elapsed = time.perf_counter() - t0
            with connect() as conn:
                target = "dlt_bench.documents" if name == "dlt_merge" else "core.documents"
                stored = count(conn, target)
            if stored != args.rows:
                raise SystemExit(
                    f"{name}: {stored:,} rows stored, expected {args.rows:,} (wrote {written:,})"
                )
            times[name].append(elapsed)
            if rep == 1 and name == methods[0]:
                with connect() as conn:
                    size = conn.execute(
                        "SELECT avg(pg_column_size(d.*))::int FROM core.documents d"
                    ).fetchone()
                print(f"average stored row: {size[0]:,} bytes", flush=True)
            print(f"rep {rep} {name:28s} {elapsed:7.2f} s  {args.rows / elapsed:9,.0f} rows/s", flush=True)
            if name == "pulse_loader":
                from dev import stack

                stack._admin_sql("CHECKPOINT", db=BENCH_DB)  # like before every timed load
                t0 = time.perf_counter()
                changed = m_pulse_loader(docs, rows)
                elapsed = time.perf_counter() - t0
                if changed != 0:
                    raise SystemExit(f"reload of unchanged rows changed {changed} rows")
                times["pulse_loader_reload"].append(elapsed)
                print(
                    f"rep {rep} {'pulse_loader_reload':28s} {elapsed:7.2f} s  {args.rows / elapsed:9,.0f} rows/s",
                    flush=True,
                )

    def paired(a: str, b: str) -> float:
        """Median over repetitions of rate(a) / rate(b)."""
        return statistics.median(tb / ta for ta, tb in zip(times[a], times[b], strict=True))

    print(f"\n## Loader benchmark: {args.rows:,} documents, {args.reps} interleaved repetitions\n")
    print("| method | rows/s median | min | max | s median |")
    print("|---|---|---|---|---|")
    for name, ts in times.items():
        if not ts:
            continue
        rates = [args.rows / t for t in ts]
        print(
            f"| {name} | {statistics.median(rates):,.0f} | {min(rates):,.0f} | {max(rates):,.0f} | "
            f"{statistics.median(ts):.2f} |"
        )
    print("\nPaired ratios (median of per-repetition ratios) and targets:")
    checks = []
    if "raw_binary_copy" in methods:
        checks.append(
            (
                "pulse_loader vs raw_binary_copy (rows built untimed)",
                paired("pulse_loader", "raw_binary_copy"),
                0.70,
            )
        )
    if "raw_binary_copy_incl_rows" in methods:
        checks.append(
            (
                "pulse_loader vs raw_binary_copy_incl_rows",
                paired("pulse_loader", "raw_binary_copy_incl_rows"),
                0.70,
            )
        )
    if "insert_rows" in methods:
        checks.append(("pulse_loader vs insert_rows", paired("pulse_loader", "insert_rows"), 2.0))
    if "dlt_merge" in methods:
        checks.append(("pulse_loader vs dlt_merge", paired("pulse_loader", "dlt_merge"), 1.0))
    checks.append(("reload unchanged vs first load", paired("pulse_loader_reload", "pulse_loader"), 2.0))
    for label, ratio, target in checks:
        verdict = "met" if ratio >= target else "MISSED"
        print(f"  {label:55s} {ratio:6.2f}x   target >= {target:.2f}x  {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
