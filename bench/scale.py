"""Scale benchmark: what one hourly cycle and a 30-day analyst query cost at two warehouse sizes, side by side.

For each size (``--small``, default 100,000 documents; ``--large``, default 10,000,000) a throw-away database
``pulse_scale_<n>`` on the local stack's PostgreSQL (as bench/loader.py does), migrated to head, is filled
inside PostgreSQL (``INSERT ... SELECT generate_series``, one day at a time): documents of four sources that
arrived at the same steady rate as the cycles' new hours (``--hour-docs`` per hour), so the size sets how far
back the history reaches (100,000 documents: about two days; 10,000,000: about 208 days of monthly partitions).
That is how a warehouse grows: the same pipeline, later in its life. Each cycle's hour, day and near-duplicate
window then hold the same data at both sizes, and only what grows with the history can make a cycle dearer.
``--days D`` instead spreads the documents over a fixed span of ``D`` days (the first version of this bench used
90): the larger size is then a 100x busier warehouse whose current day, dedup window and check windows hold
100x the data, which measures traffic rather than size. One feature row each (current enrichment version), about
0.8 entity mentions and one fingerprint each, 2 % in duplicate clusters, every hour audited and published,
coverage, window audits and check results per hour, raw pages for the last 14 days. The pipeline's triggers are
off while generating; after a VACUUM ANALYZE (a running warehouse has statistics) the rollups are built from the
audited hours (timed: ``rollup backfill``), like migration 0014 does on an existing warehouse.

Then ``--reps`` hourly cycles per size, each on the next closed hour after the data, the sizes taking turns
(small, large, small, ...: the machine's noise falls on both alike), through the real functions:

* ``load``: ``--hour-docs`` new documents of that hour (four sources) through
  :func:`pulse.warehouse.loader.upsert_documents`, their raw pages and coverage rows;
* ``enrich``: :class:`pulse.operators.enrich.EnrichDocumentsOperator` ``.execute`` (pending set, models,
  writes);
* ``quality``: :func:`pulse.quality.runner.run_quality` without params (checks, audit of the new hour,
  publication, rollup refresh; alert delivery is stubbed out: it does not depend on the size);
* ``export``: :func:`pulse.export.writers.write_exports` of every mart of :data:`pulse.export.run.MARTS` for
  the hour's day, to a local folder.

And the median of ``--reps`` runs of a 30-day query on each analytics view (``WHERE <time column> >= now -
30 days``; views without a time column in full). Medians are printed side by side with the large/small ratio.
Each database is dropped at the end unless ``--keep``.

Usage: ``make bench BENCHES=scale`` or ``python -m bench.scale [--small N] [--large N] [--reps N]
[--hour-docs N] [--days D] [--keep] [--reuse]``. ``--reuse`` measures on the databases an earlier ``--keep``
run left (migrated to head first; what earlier cycles added is taken out and the cycles run on the same hours).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

SOURCES = (
    ("reddit", "post", 0.4),
    ("x", "tweet", 0.3),
    ("newsapi", "article", 0.2),
    ("github", "issue", 0.1),
)
RAW_DAYS = 14
#: Source hours folded into the rollups per refresh while generating.
BACKFILL_BATCH = 5_000
TOPICS = ("technology", "finance", "politics", "sports", "science", "entertainment", "health", "other_topic")
ENTITY_TYPES = ("person", "organisation", "place", "ticker")
#: Tables whose triggers (pending queues, rollup marks) are off while generating.
TRIGGERED = (
    "core.documents",
    "enriched.document_features",
    "enriched.entity_mentions",
    "enriched.document_fingerprints",
    "enriched.duplicate_clusters",
    "quality.hour_audits",
    "quality.publish_state",
)
#: Analytics views and the column a 30-day query filters on (None: the whole view).
VIEW_TIME = {
    "daily_volume": "day",
    "daily_sentiment": "day",
    "entity_mentions_daily": "day",
    "duplicate_clusters": "last_created_at",
    "duplicates_per_source": None,
    "coverage_daily": "day",
    "coverage_windows": "window_start",
    "quality_daily": "day",
    "quarantine_summary": None,
    "publication": None,
    "source_health": None,
    "data_months": "month",
}


def log(msg: str) -> None:
    print(f"[scale] {msg}", flush=True)


def db_name(n: int) -> str:
    return f"pulse_scale_{n}"


def dsn(n: int) -> dict[str, Any]:
    from dev import stack

    return {**stack.warehouse_dsn(), "dbname": db_name(n)}


def uri(n: int) -> str:
    d = dsn(n)
    return f"postgresql://{d['user']}:{d['password']}@{d['host']}:{d['port']}/{d['dbname']}"


def connect(n: int) -> Any:
    import psycopg

    return psycopg.connect(**dsn(n), application_name="pulse-bench-scale", autocommit=True)


def fresh_database(n: int) -> None:
    from dev import stack
    from pulse.warehouse.migrate import upgrade

    stack.pg_up()
    stack._admin_sql(f"DROP DATABASE IF EXISTS {db_name(n)} WITH (FORCE)")
    stack._admin_sql(f"CREATE DATABASE {db_name(n)} OWNER {stack.WAREHOUSE_ROLE}")
    upgrade(uri(n))


def drop_database(n: int) -> None:
    from dev import stack

    stack._admin_sql(f"DROP DATABASE IF EXISTS {db_name(n)} WITH (FORCE)")


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def generate(
    conn: Any, n: int, end: datetime, reps: int, hour_docs: int, days: int | None
) -> dict[str, float]:
    """Fill the warehouse with ``n`` documents before ``end`` (all audited and published).

    They arrive at ``hour_docs`` per hour (the history reaches ``n / hour_docs`` hours back), or, with ``days``,
    spread over that many days.
    """
    from pulse.enrich.pipeline import ENRICHMENT_VERSION

    span_hours = days * 24 if days else max(math.ceil(n / max(hour_docs, 1)), 1)
    start = end - timedelta(hours=span_hours)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    conn.execute("SELECT setseed(0.42)")
    first_partition = min(start, end - timedelta(weeks=5))
    for t in ("core.documents", "enriched.document_features", "enriched.entity_mentions", "enriched.places"):
        conn.execute(
            "SELECT ops.ensure_month_partitions(%s, %s, %s)", (t, first_partition, end + timedelta(days=2))
        )
    conn.execute(
        "SELECT ops.ensure_day_partitions('raw.api_responses', %s, %s)",
        (end - timedelta(days=RAW_DAYS), end + timedelta(days=2)),
    )
    for t in TRIGGERED:
        conn.execute(f"ALTER TABLE {t} DISABLE TRIGGER USER")
    # Documents: source by weight, creation time uniform over the span.
    cases = []
    acc = 0.0
    for source, kind, w in SOURCES:
        acc += w
        cases.append((acc, source, kind))
    src = "CASE " + " ".join(f"WHEN r < {a} THEN '{s}'" for a, s, _ in cases) + " END"
    kind = "CASE " + " ".join(f"WHEN r < {a} THEN '{k}'" for a, _, k in cases) + " END"
    # One day at a time, in creation order: rows arrive in time order in production, so the indexes and the
    # BRIN on loaded_at see the same physical order as there. The last chunk may be shorter than a day.
    chunks: list[tuple[datetime, float]] = []  # (chunk start, hours)
    offset = 0
    while offset < span_hours:
        chunks.append((start + timedelta(hours=offset), min(24, span_hours - offset)))
        offset += 24
    per_chunk = [int(n * hours / span_hours) for _, hours in chunks]
    per_chunk[-1] += n - sum(per_chunk)
    first = 0
    for d, ((chunk_start, hours), count) in enumerate(zip(chunks, per_chunk, strict=True)):
        if count <= 0:
            continue
        conn.execute(
            f"""
            INSERT INTO core.documents (source, external_id, kind, channel, created_at, title, body,
                   author_pseudonym, score, content_sha256, raw_response_id, dag_run_id, first_loaded_at, loaded_at)
            SELECT {src}, 'g' || i, {kind}, 'channel' || (i %% 40), c,
                   CASE WHEN r >= 0.4 AND r < 0.7 THEN NULL ELSE 'title ' || (i %% 5000) END,
                   'generated body ' || md5(i::text), md5('author' || (i %% 20000)), (i %% 500)::int,
                   md5(i::text), i / 100, 'generated', c + interval '5 minutes', c + interval '5 minutes'
              FROM (SELECT i, random() AS r, %s::timestamptz + random() * %s * interval '1 hour' AS c
                      FROM generate_series(%s::bigint, %s::bigint) i) g
             ORDER BY c
            """,
            (chunk_start, hours, first, first + count - 1),
        )
        first += count
        if d % 10 == 9:
            log(f"  documents {first:,}/{n:,} ({time.perf_counter() - t0:.0f} s)")
    # The hours the cycles load, a week to four weeks back, hold what a cycle loads (the quality DAG's
    # volume_anomaly check compares an hour with the same hour of the previous four weeks): planted where the
    # history does not reach back that far.
    for r in range(reps + 1):
        for w in range(1, 5):
            h = end + timedelta(hours=r) - timedelta(weeks=w)
            if h >= start:
                continue
            conn.execute(
                """
                INSERT INTO core.documents (source, external_id, kind, created_at, title, body, content_sha256,
                       raw_response_id, dag_run_id, first_loaded_at, loaded_at)
                SELECT s.source, 'h' || %s || '_' || %s || '_' || s.source || i, s.kind,
                       %s::timestamptz + random() * interval '1 hour', 'title', 'generated body', md5(i::text), 0,
                       'generated', %s::timestamptz + interval '65 minutes', %s::timestamptz + interval '65 minutes'
                  FROM unnest(%s::text[], %s::text[]) AS s(source, kind), generate_series(1, %s) i
                ON CONFLICT DO NOTHING
                """,
                (
                    r,
                    w,
                    h,
                    h,
                    h,
                    [x[0] for x in SOURCES],
                    [x[1] for x in SOURCES],
                    max(hour_docs // len(SOURCES), 1),
                ),
            )
    times["documents"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    parts = [
        r[0]
        for r in conn.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'core.documents'::regclass"
        ).fetchall()
    ]
    topics = "ARRAY[" + ", ".join(f"'{t}'" for t in TOPICS) + "]"
    types = "ARRAY[" + ", ".join(f"'{t}'" for t in ENTITY_TYPES) + "]"
    for part in parts:
        conn.execute(
            f"""
            INSERT INTO enriched.document_features (source, external_id, created_at, enrichment_version, language,
                   language_confidence, sentiment_vader, sentiment_label, sentiment_confidence, topic,
                   topic_confidence, enriched_at, content_sha256)
            SELECT source, external_id, created_at, %s, 'en', 0.9, v, CASE WHEN v > 0.05 THEN 'positive'
                   WHEN v < -0.05 THEN 'negative' ELSE 'neutral' END, 0.8,
                   ({topics})[1 + (hashtext(external_id) & 7)], 0.7, loaded_at + interval '10 minutes',
                   content_sha256
              FROM (SELECT *, (random() * 2 - 1)::real AS v FROM {part}) d
            """,
            (ENRICHMENT_VERSION,),
        )
        conn.execute(
            f"""
            INSERT INTO enriched.entity_mentions (source, external_id, created_at, enrichment_version, entity_type,
                   text, normalized, start_offset, end_offset, sentiment)
            SELECT source, external_id, created_at, %s, ({types})[1 + e %% 4],
                   'Entity ' || e, 'Entity ' || e, 0, 8, (random() * 2 - 1)::real
              FROM (SELECT *, floor(2000 * random() ^ 3)::int AS e FROM {part}) d
             WHERE abs(hashtext(external_id)) %% 10 < 8
            """,
            (ENRICHMENT_VERSION,),
        )
        conn.execute(
            f"""
            INSERT INTO enriched.document_fingerprints (source, external_id, created_at, text_key, dedup_version,
                   content_sha256)
            SELECT source, external_id, created_at, md5(body), 'generated', content_sha256 FROM {part}
            """
        )
        conn.execute(
            f"""
            INSERT INTO enriched.duplicate_clusters (source, external_id, created_at, cluster_id, method)
            SELECT source, external_id, created_at, 'gc' || (abs(hashtext(external_id || 'c')) %% %s), 'exact_text'
              FROM {part} WHERE abs(hashtext(external_id)) %% 50 = 0
            """,
            (max(n // 200, 1),),
        )
        log(f"  enriched {part} ({time.perf_counter() - t0:.0f} s)")
    conn.execute(
        "INSERT INTO enriched.pending_versions (enrichment_version, queued) VALUES (%s, 0) ON CONFLICT DO NOTHING",
        (ENRICHMENT_VERSION,),
    )
    times["enriched"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    sources = [s for s, _, _ in SOURCES]
    hours = (
        "generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 hour', interval '1 hour')"
    )
    args = {"start": start, "end": end, "sources": sources}
    conn.execute(
        f"""
        INSERT INTO quality.hour_audits (source, hour, audited_at, published_at, dag_run_id)
        SELECT s, h, h + interval '2 hours', h + interval '2 hours', 'generated'
          FROM unnest(%(sources)s::text[]) s, {hours} h
        """,
        args,
    )
    conn.execute(
        "INSERT INTO quality.publish_state (source, published_until, dag_run_id, late_checked_until)"
        " SELECT s, %(end)s, 'generated', %(end)s FROM unnest(%(sources)s::text[]) s",
        args,
    )
    conn.execute(
        f"""
        INSERT INTO quality.window_audits (source, window_start, window_end, status, checks, failed, dag_run_id,
               audited_at)
        SELECT s, h, h + interval '1 hour', 'passed', 8, 0, 'generated', h + interval '2 hours'
          FROM unnest(%(sources)s::text[]) s, {hours} h
        """,
        args,
    )
    conn.execute(
        f"""
        INSERT INTO ops.coverage (source, stream, window_start, window_end, status, dag_run_id, recorded_at)
        SELECT s, 'new:' || s, h, h + interval '1 hour', 'ingested', 'generated', h + interval '1 hour'
          FROM unnest(%(sources)s::text[]) s, {hours} h
        """,
        args,
    )
    conn.execute(
        f"""
        INSERT INTO quality.check_results (check_name, check_type, target, source, severity, status, observed,
               threshold, dag_run_id, checked_at, window_start, window_end, scope)
        SELECT 'check_' || c, 'null_rate', 'core.documents', s, 'warning', 'pass', 0, '<= 0.1', 'generated',
               h + interval '2 hours', h, h + interval '1 hour', 'window'
          FROM unnest(%(sources)s::text[]) s, {hours} h, generate_series(1, 6) c
        """,
        args,
    )
    # Raw pages of the hot days (retention keeps 14): one per 100 documents.
    raw_hours = min(span_hours, RAW_DAYS * 24)
    raw_pages = max(int(n * raw_hours / span_hours) // 100, 1)
    conn.execute(
        """
        INSERT INTO raw.api_responses (source, stream, endpoint, page_no, status_code, body, body_sha256,
               is_valid, item_count, dag_run_id, fetched_at)
        SELECT s, 'new:' || s, '/generated', 1, 200, '{"data": {"children": []}, "articles": [], "data_x": []}',
               md5(i::text), true, 100, 'generated', %(end)s - random() * %(raw_hours)s * interval '1 hour'
          FROM generate_series(1, %(pages)s) i, LATERAL (SELECT (%(sources)s::text[])[1 + i %% 4] AS s) x
        """,
        {**args, "pages": raw_pages, "raw_hours": raw_hours},
    )
    times["audits_coverage_raw"] = time.perf_counter() - t2
    for t in TRIGGERED:
        conn.execute(f"ALTER TABLE {t} ENABLE TRIGGER USER")
    # Statistics first, as on a warehouse that has been running: without them the rollup backfill's plans
    # (estimated on empty tables) take 20x longer (measured at 2M documents: > 1,350 s against 58 s).
    t4 = time.perf_counter()
    conn.execute("VACUUM ANALYZE")
    times["vacuum analyze"] = time.perf_counter() - t4
    t3 = time.perf_counter()
    # In batches (one transaction each), as a long catch-up would be folded in.
    keys = conn.execute("SELECT source, hour FROM quality.hour_audits ORDER BY hour, source").fetchall()
    for i in range(0, len(keys), BACKFILL_BATCH):
        batch = keys[i : i + BACKFILL_BATCH]
        conn.execute(
            "INSERT INTO ops.rollup_dirty_hours (source, hour) SELECT * FROM unnest(%s::text[], %s::timestamptz[])",
            ([k[0] for k in batch], [k[1] for k in batch]),
        )
        conn.execute("SELECT ops.refresh_rollups()")
    conn.execute(
        "ANALYZE ops.rollup_volume_hourly, ops.rollup_sentiment_hourly, ops.rollup_entity_hourly,"
        " ops.rollup_entity_daily, ops.rollup_duplicates_hourly, ops.rollup_clusters"
    )
    times["rollup backfill"] = time.perf_counter() - t3
    return times


def make_documents(n: int, hour: datetime, rep: int) -> list[Any]:
    import random

    from pulse.records import Document

    rnd = random.Random(rep)
    words = (
        "market",
        "python",
        "release",
        "storm",
        "bitcoin",
        "airflow",
        "earnings",
        "rally",
        "outage",
        "Apple",
    )
    docs = []
    for i in range(n):
        source, kind, _ = SOURCES[i % len(SOURCES)]
        text = " ".join(rnd.choice(words) for _ in range(rnd.randint(8, 30)))
        docs.append(
            Document(
                source=source,
                external_id=f"new{rep}_{i}",
                kind=kind,
                created_at=hour + timedelta(seconds=rnd.randint(0, 3599)),
                channel=f"channel{i % 40}",
                title=None if kind == "tweet" else f"Title {i} about {rnd.choice(words)}",
                body=text,
                author_pseudonym=f"{i % 997:064x}",
                score=rnd.randint(0, 500),
            )
        )
    return docs


def cycle(n: int, hour: datetime, rep: int, hour_docs: int, export_root: str) -> dict[str, float]:
    """One hourly cycle on ``hour``: load, enrich, quality (audit, publish, rollups), export."""
    from airflow.sdk import ObjectStoragePath

    from pulse.export.run import MARTS
    from pulse.export.writers import write_exports
    from pulse.operators.enrich import EnrichDocumentsOperator
    from pulse.quality.runner import run_quality
    from pulse.warehouse.loader import upsert_documents

    docs = make_documents(hour_docs, hour, rep)
    run_id = f"scale_{rep}_{hour:%Y%m%dT%H}"
    out: dict[str, float] = {}
    with connect(n) as conn:
        conn.autocommit = False

        def load() -> Any:
            raw_ids = [
                conn.execute(
                    "INSERT INTO raw.api_responses (source, stream, endpoint, page_no, status_code, body, body_sha256,"
                    " is_valid, item_count, dag_run_id, window_start, window_end, fetched_at)"
                    " VALUES (%s, %s, '/bench', 1, 200, '{}', md5(%s), true, 100, %s, %s, %s, now()) RETURNING id",
                    (s, f"new:{s}", f"{run_id}{s}", run_id, hour, hour + timedelta(hours=1)),
                ).fetchone()[0]
                for s, _, _ in SOURCES
            ]
            conn.commit()
            by_source = {s: raw_ids[i] for i, (s, _, _) in enumerate(SOURCES)}
            result = upsert_documents(conn, [(d, by_source[d.source]) for d in docs], run_id)
            conn.execute(
                "INSERT INTO ops.coverage (source, stream, window_start, window_end, status, dag_run_id)"
                " SELECT s, 'new:' || s, %s, %s, 'ingested', %s FROM unnest(%s::text[]) s",
                (hour, hour + timedelta(hours=1), run_id, [s for s, _, _ in SOURCES]),
            )
            conn.commit()
            return result

        out["load"], _ = _timed(load)
    out["enrich"], _ = _timed(lambda: EnrichDocumentsOperator(task_id="enrich_bench").execute({}))
    out["quality"], summary = _timed(lambda: run_quality({}, {"run_id": run_id}))
    if summary["windows_audited"] < len(SOURCES):
        log(f"  warning: quality audited {summary['windows_audited']} windows ({summary})")

    def export() -> int:
        rows = 0
        with connect(n) as conn:
            for mart in MARTS:
                res = write_exports(
                    conn,
                    mart=mart.name,
                    relation=mart.relation,
                    day=hour.date(),
                    day_column=mart.day_column,
                    dest_root=ObjectStoragePath(f"file://{export_root}"),
                )
                rows += res.rows
        return rows

    out["export"], _ = _timed(export)
    out["cycle"] = sum(out.values())
    return out


def view_queries(
    n: int, since: datetime, reps: int, rows: dict[str, int], dirty: bool = False
) -> dict[str, float]:
    """Median seconds of a 30-day query on each analytics view; ``dirty``: with the newest hour of every source
    marked in ``ops.rollup_dirty_hours``, as between a load and the next quality run (the views then aggregate
    those hours live), unmarked again afterwards."""
    out: dict[str, float] = {}
    with connect(n) as conn:
        if dirty:
            conn.execute(
                "INSERT INTO ops.rollup_dirty_hours (source, hour) SELECT DISTINCT ON (source) source, hour"
                " FROM quality.hour_audits ORDER BY source, hour DESC ON CONFLICT DO NOTHING"
            )
        for view, col in VIEW_TIME.items():
            where, args = (
                (f" WHERE {col} >= %s", [since.date() if col in ("day", "month") else since])
                if col
                else ("", [])
            )
            runs = []
            for _ in range(reps):
                t = time.perf_counter()
                # Counted in the server: the query's cost without shipping its rows to Python.
                rows[view] = conn.execute(
                    f"SELECT count(*) FROM (SELECT * FROM analytics.{view}{where}) q", args
                ).fetchone()[0]
                runs.append(time.perf_counter() - t)
            out[view] = statistics.median(runs)
        if dirty:
            conn.execute("SELECT ops.refresh_rollups()")
    return out


def forget_cycles(conn: Any, end: datetime) -> None:
    """Take out what earlier cycles of this bench added from ``end`` on (every row of an hour at or after it,
    their raw pages, coverage, audits and rollups; the horizon back to ``end``), so that ``--reuse`` runs its
    cycles on the same hours again. The pipeline's triggers stay on: the deletes mark the rollups dirty."""
    args = {"end": end}
    for table in (
        "enriched.entity_mentions",
        "enriched.places",
        "enriched.duplicate_clusters",
        "enriched.document_fingerprints",
        "enriched.document_features",
        "enriched.pending_features",
        "enriched.pending_fingerprints",
        "core.documents",
    ):
        conn.execute(f"DELETE FROM {table} WHERE created_at >= %(end)s", args)
    for table in ("raw.api_responses", "quality.check_results", "quality.window_audits"):
        conn.execute(f"DELETE FROM {table} WHERE dag_run_id LIKE 'scale%%'")
    conn.execute("DELETE FROM ops.coverage WHERE window_start >= %(end)s", args)
    conn.execute("DELETE FROM quality.hour_audits WHERE hour >= %(end)s", args)
    conn.execute(
        "UPDATE quality.publish_state SET published_until = %(end)s, late_checked_until = %(end)s", args
    )
    conn.execute("SELECT ops.refresh_rollups()")


def prepare(n: int, reps: int, hour_docs: int, days: int | None, reuse: bool = False) -> dict[str, Any]:
    """A fresh ``pulse_scale_<n>`` filled with ``n`` documents; returns the generation figures and the hour the
    cycles start at."""
    from dev import stack
    from pulse.quality.publish import _floor_hour
    from pulse.warehouse.migrate import upgrade
    from pulse.windows import utcnow

    log(f"{n:,} documents: database {db_name(n)}")
    now = _floor_hour(utcnow())
    stack.pg_up()
    exists = stack._admin_sql(f"SELECT count(*) FROM pg_database WHERE datname = '{db_name(n)}'") == "1"
    if reuse and exists:
        # A database an earlier --keep run left: migrated to head, what earlier cycles added taken out (a
        # cycle's hour must be new), the cycles on the hours right after the generated data again.
        upgrade(uri(n))
        with connect(n) as conn:
            (first,) = conn.execute(
                "SELECT min(hour) FROM quality.hour_audits WHERE dag_run_id LIKE 'scale%%'"
            ).fetchone()
            if first is not None:
                forget_cycles(conn, first)
            (last,) = conn.execute("SELECT max(hour) FROM quality.hour_audits").fetchone()
            size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
        end = last + timedelta(hours=1)
        if end + timedelta(hours=reps + 1) > now:
            raise SystemExit(
                f"{db_name(n)}: too few closed hours after its data for {reps} cycles; regenerate"
            )
        log(f"  reused ({size}), cycles from {end:%Y-%m-%d %H:%M}")
        return {"n": n, "generate": {}, "size": size, "end": end, "now": now, "cycles": []}
    fresh_database(n)
    end = now - timedelta(hours=reps + 2)
    with connect(n) as conn:
        gen = generate(conn, n, end, reps, hour_docs, days)
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
    log(
        f"  generated in {sum(gen.values()):.0f} s ({', '.join(f'{k} {v:.1f} s' for k, v in gen.items())}); {size}"
    )
    return {"n": n, "generate": gen, "size": size, "end": end, "now": now, "cycles": []}


def measure(sizes: list[dict[str, Any]], reps: int, hour_docs: int) -> None:
    """The cycles and view queries of every size, interleaved (small, large, small, ...) so that the machine's
    noise falls on both sides alike; medians into each size's ``stages`` and ``views``."""
    import pulse.alerts

    pulse.alerts.post_alert = lambda *a, **k: None  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="pulse-scale-") as root:
        for r in range(reps + 1):
            for size in sizes:
                n = size["n"]
                os.environ["PULSE_WAREHOUSE_DSN"] = uri(n)
                c = cycle(n, size["end"] + timedelta(hours=r), r, hour_docs, f"{root}/{n}")
                if r == 0:
                    continue  # one untimed cycle first: models loaded, caches warm, like a running worker
                log(f"  {n:,} cycle {r}: " + ", ".join(f"{k} {v:.2f} s" for k, v in c.items()))
                size["cycles"].append(c)
    for size in sizes:
        cycles = size["cycles"]
        size["stages"] = {k: statistics.median(c[k] for c in cycles) for k in cycles[0]}
        size["rows"] = {}
        since = size["now"] - timedelta(days=30)
        size["views"] = view_queries(size["n"], since, max(reps, 3), size["rows"])
        size["views_dirty"] = view_queries(size["n"], since, max(reps, 3), {}, dirty=True)
        with connect(size["n"]) as conn:
            size["pending"] = conn.execute("SELECT count(*) FROM ops.rollup_dirty_hours").fetchone()[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", type=int, default=100_000)
    ap.add_argument("--large", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--hour-docs", type=int, default=2_000)
    ap.add_argument(
        "--days",
        type=int,
        default=None,
        help="spread each size over this many days (default: the hourly rate)",
    )
    ap.add_argument(
        "--reuse", action="store_true", help="measure on the databases an earlier --keep run left (if there)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the databases (pulse_scale_<n>) for EXPLAIN")
    args = ap.parse_args(argv)
    small = prepare(args.small, args.reps, args.hour_docs, args.days, args.reuse)
    large = prepare(args.large, args.reps, args.hour_docs, args.days, args.reuse)
    measure([small, large], args.reps, args.hour_docs)
    if not args.keep:
        drop_database(args.small)
        drop_database(args.large)
    w = 26
    print()
    print(f"Hourly cycle ({args.hour_docs:,} new documents), median of {args.reps}; seconds")
    print(f"{'stage':<{w}}{args.small:>14,}{args.large:>14,}{'ratio':>8}")
    for k in small["stages"]:
        a, b = small["stages"][k], large["stages"][k]
        print(f"{k:<{w}}{a:>14.3f}{b:>14.3f}{b / a if a else float('nan'):>8.2f}")
    print()
    for key, title in (
        ("views", "30-day query per analytics view (median; seconds)"),
        (
            "views_dirty",
            "30-day query per analytics view with every source's newest hour marked dirty (median; seconds)",
        ),
    ):
        print(title)
        print(f"{'analytics view':<{w}}{args.small:>14,}{args.large:>14,}{'ratio':>8}  rows (large)")
        for k in small[key]:
            a, b = small[key][k], large[key][k]
            print(f"{k:<{w}}{a:>14.4f}{b:>14.4f}{b / a if a else float('nan'):>8.2f}  {large['rows'][k]:,}")
        print()
    print(
        f"database size: {small['size']} / {large['size']}; marked hours left: {small['pending']} / {large['pending']}"
    )
    ratio = large["stages"]["cycle"] / small["stages"]["cycle"]
    slowest = max(*large["views"].values(), *large["views_dirty"].values())
    print(f"cycle ratio {ratio:.2f} (goal <= 1.5); slowest 30-day view query {slowest:.3f} s (goal <= 0.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
