"""The analytics views read incremental rollups (migration 0014) and answer exactly what the old whole-table
views answered: after loads, edits, late rows, enrichment, dedup, audits, horizon moves, retention and
truncation, before and after the rollups are refreshed."""

from __future__ import annotations

import importlib.util
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pulse.warehouse import rollups
from tests.conftest import truncate_warehouse

VIEWS = (
    "daily_volume",
    "daily_sentiment",
    "entity_mentions_daily",
    "duplicates_per_source",
    "duplicate_clusters",
)
MIGRATION = Path(__file__).parents[2] / "include" / "migrations" / "versions" / "0014_rollups.py"
ROLLUP_TABLES = (
    "ops.rollup_dirty_hours, ops.rollup_dirty_clusters, ops.rollup_volume_hourly, ops.rollup_sentiment_hourly,"
    " ops.rollup_entity_hourly, ops.rollup_entity_daily, ops.rollup_duplicates_hourly, ops.rollup_clusters"
)
DAY1 = datetime(2026, 3, 31, tzinfo=UTC)  # 23:00 of it and 00:00 of April 1st: two days and two months
T0 = DAY1 + timedelta(hours=20)


def _old_views_sql() -> str:
    spec = importlib.util.spec_from_file_location("pulse_migration_0014_test", MIGRATION)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return re.sub(
        r"CREATE OR REPLACE VIEW analytics\.(\w+)", r"CREATE TEMP VIEW old_\1", str(module.OLD_VIEWS)
    )


@pytest.fixture
def wh(db: Any) -> Any:
    truncate_warehouse(db)
    db.execute(f"TRUNCATE {ROLLUP_TABLES}")
    db.execute(_old_views_sql())
    db.execute(
        "SELECT ops.ensure_month_partitions('core.documents', %s, %s)", (DAY1, DAY1 + timedelta(days=2))
    )
    for t in ("enriched.document_features", "enriched.entity_mentions"):
        db.execute("SELECT ops.ensure_month_partitions(%s, %s, %s)", (t, DAY1, DAY1 + timedelta(days=2)))
    yield db
    for v in VIEWS:
        db.execute(f"DROP VIEW IF EXISTS pg_temp.old_{v}")
    truncate_warehouse(db)
    db.execute(f"TRUNCATE {ROLLUP_TABLES}")


def _norm(v: Any) -> Any:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else round(v, 5)
    return v


def _rows(db: Any, relation: str) -> list[tuple[Any, ...]]:
    rows = db.execute(f"SELECT * FROM {relation}").fetchall()
    return sorted((tuple(_norm(v) for v in r) for r in rows), key=repr)


def assert_same(db: Any) -> dict[str, int]:
    """Every rewritten view equals its old whole-table definition; returns the row counts."""
    counts = {}
    for v in VIEWS:
        new, old = _rows(db, f"analytics.{v}"), _rows(db, f"pg_temp.old_{v}")
        assert new == old, f"analytics.{v} differs from the full recompute"
        counts[v] = len(new)
    return counts


def assert_same_refreshed(db: Any) -> dict[str, int]:
    """Equal before a refresh (live part), and after it with nothing marked (rollups only)."""
    before = assert_same(db)
    rollups.refresh(db)
    assert rollups.pending(db) == 0
    assert db.execute("SELECT count(*) FROM ops.rollup_dirty_clusters").fetchone()[0] == 0
    assert assert_same(db) == before
    return before


def _docs(db: Any, source: str, rows: list[tuple[str, datetime, str | None]], loaded: str = "now()") -> None:
    db.execute(
        "INSERT INTO core.documents (source, external_id, kind, created_at, title, body, content_sha256,"
        f" raw_response_id, dag_run_id, loaded_at) SELECT %s, e, 'post', c, t, 'body', 'h', 1, 'r', {loaded}"
        " FROM unnest(%s::text[], %s::timestamptz[], %s::text[]) AS u(e, c, t)"
        " ON CONFLICT (source, external_id, created_at) DO UPDATE SET title = EXCLUDED.title,"
        " loaded_at = EXCLUDED.loaded_at",
        (source, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]),
    )


def _features(
    db: Any, source: str, rows: list[tuple[str, datetime, float | None, str | None, str | None]]
) -> None:
    db.execute(
        "INSERT INTO enriched.document_features (source, external_id, created_at, enrichment_version,"
        " sentiment_vader, sentiment_label, topic)"
        " SELECT %s, e, c, 'v1', s, l, t FROM unnest(%s::text[], %s::timestamptz[], %s::real[], %s::text[],"
        " %s::text[]) AS u(e, c, s, l, t)"
        " ON CONFLICT (source, external_id, created_at) DO UPDATE SET sentiment_vader = EXCLUDED.sentiment_vader,"
        " enriched_at = now()",
        (source, *([r[i] for r in rows] for i in range(5))),
    )


def _mentions(db: Any, source: str, rows: list[tuple[str, datetime, str, int, float | None]]) -> None:
    db.execute(
        "INSERT INTO enriched.entity_mentions (source, external_id, created_at, enrichment_version, entity_type,"
        " text, normalized, start_offset, end_offset, sentiment)"
        " SELECT %s, e, c, 'v1', 'organisation', n, n, o, o + 3, s"
        " FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::int[], %s::real[]) AS u(e, c, n, o, s)",
        (source, *([r[i] for r in rows] for i in range(5))),
    )


def _dedup(db: Any, source: str, rows: list[tuple[str, datetime, str | None]]) -> None:
    db.execute(
        "INSERT INTO enriched.document_fingerprints (source, external_id, created_at, dedup_version)"
        " SELECT %s, e, c, 'd1' FROM unnest(%s::text[], %s::timestamptz[]) AS u(e, c) ON CONFLICT DO NOTHING",
        (source, [r[0] for r in rows], [r[1] for r in rows]),
    )
    clustered = [r for r in rows if r[2]]
    db.execute(
        "INSERT INTO enriched.duplicate_clusters (source, external_id, created_at, cluster_id, method)"
        " SELECT %s, e, c, k, 'exact_text' FROM unnest(%s::text[], %s::timestamptz[], %s::text[]) AS u(e, c, k)"
        " ON CONFLICT (source, external_id, created_at) DO UPDATE SET cluster_id = EXCLUDED.cluster_id",
        (source, [r[0] for r in clustered], [r[1] for r in clustered], [r[2] for r in clustered]),
    )


def _facts(db: Any) -> None:
    db.execute(
        "INSERT INTO core.market_bars (source, symbol, market, asset_class, interval, ts, close, content_sha256,"
        " raw_response_id, dag_run_id) SELECT 'alphavantage', 'AAPL', 'US', 'equity', '60min', t, 1, 'h', 1, 'r'"
        " FROM generate_series(%s::timestamptz, %s, '1 hour') t",
        (T0, T0 + timedelta(hours=5)),
    )
    db.execute(
        "INSERT INTO core.weather_observations (source, city, kind, valid_at, issued_at, content_sha256,"
        " raw_response_id, dag_run_id) VALUES ('openweathermap', 'Paris', 'forecast', %s, %s, 'h', 1, 'r'),"
        " ('openweathermap', 'Paris', 'current', %s, NULL, 'h', 1, 'r')",
        (T0 + timedelta(days=1), T0, T0 + timedelta(minutes=5)),
    )
    db.execute(
        "INSERT INTO core.github_repo_snapshots (source, repo, snapshot_at, content_sha256, raw_response_id,"
        " dag_run_id) VALUES ('github', 'apache/airflow', %s, 'h', 1, 'r')",
        (T0 + timedelta(hours=4),),
    )


def _audit(db: Any, sources: list[str], until: datetime, published_at: str = "now()") -> None:
    """Audit (and pass) every hour with data of ``sources`` before ``until`` and move their horizons there."""
    db.execute(
        f"""
        INSERT INTO quality.hour_audits (source, hour, audited_at, published_at, dag_run_id)
        SELECT DISTINCT source, date_bin('1 hour', t, timestamptz '2000-01-01 00:00+00'), {published_at},
               {published_at}, 'tests'
          FROM (SELECT source, created_at AS t FROM core.documents
                UNION ALL SELECT source, ts FROM core.market_bars
                UNION ALL SELECT source, coalesce(issued_at, valid_at) FROM core.weather_observations
                UNION ALL SELECT source, snapshot_at FROM core.github_repo_snapshots
                UNION ALL SELECT source, created_at FROM enriched.document_features) r
         WHERE source = ANY(%s) AND t < %s
        ON CONFLICT (source, hour) DO UPDATE SET audited_at = EXCLUDED.audited_at,
               published_at = EXCLUDED.published_at
        """,
        (sources, until),
    )
    db.execute(
        "INSERT INTO quality.publish_state (source, published_until, dag_run_id)"
        " SELECT s, %s, 'tests' FROM unnest(%s::text[]) s"
        " ON CONFLICT (source) DO UPDATE SET published_until = EXCLUDED.published_until",
        (until, sources),
    )


SOURCES = ["reddit", "newsapi", "alphavantage", "openweathermap", "github"]


def _seed(db: Any) -> None:
    h = [T0 + timedelta(hours=i, minutes=7) for i in range(6)]  # 20:07 .. 01:07 next day
    _docs(db, "reddit", [(f"r{i}", t, f"title {i}" if i % 2 else None) for i, t in enumerate(h)])
    _docs(db, "newsapi", [("n0", h[0], "news 0"), ("n1", h[3], "news 1"), ("n2", h[4], None)])
    _features(
        db,
        "reddit",
        [
            ("r0", h[0], 0.5, "positive", "tech"),
            ("r1", h[1], -0.25, "negative", None),
            ("r2", h[2], None, None, "tech"),
            ("r3", h[3], 0.125, "neutral", "tech"),
            ("r4", h[4], 0.75, "positive", "finance"),
        ],
    )
    _features(db, "newsapi", [("n0", h[0], 0.1, "neutral", "tech"), ("n1", h[3], 0.3, "positive", "tech")])
    _mentions(
        db,
        "reddit",
        [
            ("r0", h[0], "Apple Inc.", 0, 0.5),
            ("r0", h[0], "Apple Inc.", 10, 0.25),  # the same entity twice in one document
            ("r1", h[1], "Apple Inc.", 0, None),
            ("r3", h[3], "Apple Inc.", 0, -0.5),
            ("r4", h[4], "Microsoft", 0, 0.0),
        ],
    )
    _mentions(db, "newsapi", [("n1", h[3], "Apple Inc.", 0, 0.9)])
    _dedup(
        db,
        "reddit",
        [("r0", h[0], "c1"), ("r1", h[1], None), ("r2", h[2], "c2"), ("r3", h[3], "c1"), ("r4", h[4], None)],
    )
    _dedup(db, "newsapi", [("n0", h[0], "c1"), ("n1", h[3], "c2"), ("n2", h[4], None)])
    _facts(db)


def test_rollups_equal_the_full_recompute_through_publication_edits_late_rows_and_retention(wh: Any) -> None:
    db = wh
    _seed(db)
    # Written, not audited: nothing is published, rollups or not.
    assert assert_same_refreshed(db) == dict.fromkeys(VIEWS, 0)

    # The first audit publishes up to 23:00 (20:00-22:59): the horizon moves over part of the data.
    _audit(db, SOURCES, T0 + timedelta(hours=3))
    part = assert_same_refreshed(db)
    assert part["daily_volume"] > 0 and part["duplicate_clusters"] == 2

    # The horizon moves on over midnight (a run touching two days and two months).
    _audit(db, SOURCES, T0 + timedelta(hours=6))
    full = assert_same_refreshed(db)
    assert full["daily_volume"] > part["daily_volume"]

    # An edit: the row leaves the published views until its hour is audited again (titles feed the clusters).
    _docs(
        db, "reddit", [("r3", T0 + timedelta(hours=3, minutes=7), "edited")], loaded="now() + interval '1 s'"
    )
    edited = assert_same(db)
    assert edited["duplicate_clusters"] == full["duplicate_clusters"]
    rollups.refresh(db)
    assert_same(db)
    _audit(db, SOURCES, T0 + timedelta(hours=6), published_at="now() + interval '2 s'")
    assert_same_refreshed(db)

    # A late row into a published hour: not published until that hour's next audit.
    late = T0 + timedelta(minutes=30)
    _docs(db, "reddit", [("late", late, "late")], loaded="now() + interval '3 s'")
    _features(db, "reddit", [("late", late, 0.2, "positive", "tech")])
    _mentions(db, "reddit", [("late", late, "Apple Inc.", 0, 0.1)])
    _dedup(db, "reddit", [("late", late, "c2")])
    assert_same_refreshed(db)
    _audit(db, SOURCES, T0 + timedelta(hours=6), published_at="now() + interval '4 s'")
    with_late = assert_same_refreshed(db)
    assert with_late["duplicate_clusters"] == full["duplicate_clusters"]

    # The same item loaded twice (unchanged), a re-enrichment and a cluster relabel.
    _docs(db, "reddit", [("late", late, "late")], loaded="now() + interval '3 s'")
    _features(db, "reddit", [("r0", T0 + timedelta(minutes=7), -0.5, "positive", "tech")])
    _dedup(db, "reddit", [("r2", T0 + timedelta(hours=2, minutes=7), "c1")])
    assert_same_refreshed(db)

    # Retention drops the March partition of core.documents (no trigger fires): retention marks the period.
    with db.transaction():
        db.execute("DROP TABLE core.documents_p2026_03")
        rollups.mark_period(db, "core.documents", DAY1.replace(day=1), DAY1 + timedelta(days=1))
    after = assert_same_refreshed(db)
    assert after["daily_volume"] < with_late["daily_volume"]

    # Deletions and a truncation.
    db.execute("DELETE FROM enriched.entity_mentions WHERE normalized = 'Microsoft'")
    assert_same_refreshed(db)
    db.execute("TRUNCATE quality.hour_audits")
    assert assert_same_refreshed(db) == dict.fromkeys(VIEWS, 0)


def test_hostile_values_nan_infinity_and_null_sentiment(wh: Any) -> None:
    db = wh
    t = T0 + timedelta(minutes=1)
    _docs(db, "reddit", [(f"x{i}", t + timedelta(minutes=i), None) for i in range(5)])
    _features(
        db,
        "reddit",
        [
            ("x0", t, float("nan"), "neutral", "tech"),
            ("x1", t + timedelta(minutes=1), 0.5, "positive", "tech"),
            ("x2", t + timedelta(minutes=2), float("inf"), "positive", "finance"),
            ("x3", t + timedelta(minutes=3), None, None, None),
            ("x4", t + timedelta(minutes=4), 1e-30, "weird", "finance"),
        ],
    )
    _mentions(db, "reddit", [("x0", t, "NaN Corp", 0, float("nan")), ("x1", t, "Inf", 0, float("-inf"))])
    _audit(db, ["reddit"], T0 + timedelta(hours=1))
    assert_same_refreshed(db)
    got = {
        r[0]: r[1] for r in db.execute("SELECT topic, avg_vader FROM analytics.daily_sentiment").fetchall()
    }
    assert math.isnan(got["tech"]) and got["finance"] == math.inf and got["other"] is None


def test_views_read_the_rollups_and_a_refresh_recomputes_only_the_marked_hours(wh: Any) -> None:
    db = wh
    _seed(db)
    _audit(db, SOURCES, T0 + timedelta(hours=6))
    rollups.refresh(db)
    first_hour = T0
    # A clean hour's rollup row is what the view shows (no live aggregation of clean hours) ...
    db.execute(
        "UPDATE ops.rollup_volume_hourly SET items = items + 1000 WHERE source = 'reddit' AND hour = %s",
        (first_hour,),
    )
    db.execute("DELETE FROM ops.rollup_dirty_hours")  # the test's own write marked nothing it depends on
    assert (
        db.execute(
            "SELECT items FROM analytics.daily_volume WHERE source = 'reddit' AND day = %s", (DAY1.date(),)
        ).fetchone()[0]
        > 1000
    )
    # ... and a load into another hour refreshes that hour only.
    _docs(db, "reddit", [("new", T0 + timedelta(hours=2, minutes=30), "n")])
    assert rollups.pending(db) == 1
    assert rollups.refresh(db) == 2  # that hour and the cluster of its document r2
    assert (
        db.execute(
            "SELECT items FROM ops.rollup_volume_hourly WHERE source = 'reddit' AND hour = %s", (first_hour,)
        ).fetchone()[0]
        > 1000
    )
    # Marking the hour dirty makes the view exact again without a refresh.
    db.execute("INSERT INTO ops.rollup_dirty_hours VALUES ('reddit', %s)", (first_hour,))
    assert_same_refreshed(db)


def test_a_horizon_move_marks_only_the_hours_it_crosses(wh: Any) -> None:
    db = wh
    _docs(db, "reddit", [(f"h{i}", T0 + timedelta(hours=i), None) for i in range(6)])
    _audit(db, ["reddit"], T0 + timedelta(hours=6))
    db.execute(
        "UPDATE quality.publish_state SET published_until = %s WHERE source = 'reddit'",
        (T0 + timedelta(hours=2),),
    )
    rollups.refresh(db)
    db.execute(
        "UPDATE quality.publish_state SET published_until = %s WHERE source = 'reddit'",
        (T0 + timedelta(hours=4),),
    )
    marked = [r[0] for r in db.execute("SELECT hour FROM ops.rollup_dirty_hours ORDER BY hour").fetchall()]
    assert marked == [T0 + timedelta(hours=2), T0 + timedelta(hours=3)]
    assert_same_refreshed(db)


#: Every table the rollups' live queries join, bounded to the key's hour (migration 0015): without the bound
#: the planner may scan every partition per hour on a large warehouse (docs/scaling.md).
HOUR_BOUNDS = (
    # the features of the entity mentions (the sentiment query has its own bound on f, not this one)
    "AND m.created_at < p.published_until AND f.source = k.source AND f.created_at >= k.hour"
    " AND f.created_at < k.hour + interval '1 hour'",
    "f.created_at = d.created_at AND f.created_at >= k.hour AND f.created_at < k.hour + interval '1 hour'",
    "c.created_at = f.created_at AND c.created_at >= k.hour AND c.created_at < k.hour + interval '1 hour'",
)
VIEWS_DIR = Path(__file__).parents[2] / "include" / "sql" / "views"


def test_the_hourly_queries_read_one_hour_of_every_table_they_join(db: Any) -> None:
    """The refresh function as the warehouse holds it, and the view files (tests/warehouse/test_view_sql.py
    proves they equal the live views), bound each joined table to the hour and read entity days by a range;
    the written-time indexes the late-row look needs exist."""
    (body,) = db.execute(
        "SELECT prosrc FROM pg_proc WHERE oid = 'ops.refresh_rollups()'::regprocedure"
    ).fetchone()
    entity_view = (VIEWS_DIR / "analytics.entity_mentions_daily.sql").read_text()
    duplicates_view = (VIEWS_DIR / "analytics.duplicates_per_source.sql").read_text()
    for bound in HOUR_BOUNDS:
        assert bound in body, bound
    assert HOUR_BOUNDS[0] in entity_view
    assert HOUR_BOUNDS[1] in duplicates_view and HOUR_BOUNDS[2] in duplicates_view
    day_range = (
        "y.hour >= d.day::timestamp AT TIME ZONE 'UTC' AND y.hour < (d.day + 1)::timestamp AT TIME ZONE 'UTC'"
    )
    assert day_range in body
    assert day_range.replace("d.day", "x.day") in entity_view
    indexes = {
        r[0] for r in db.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%source_%ed_idx'")
    }
    assert {"documents_source_loaded_idx", "document_features_source_enriched_idx"} <= indexes, indexes
