"""Migrations move a populated warehouse forward (and back) without losing or changing a row."""

from __future__ import annotations

from collections.abc import Callable

import psycopg

from pulse.warehouse.migrate import downgrade, upgrade

TABLES = [
    "raw.api_responses",
    "core.documents",
    "core.market_bars",
    "core.weather_observations",
    "core.github_repo_snapshots",
    "quality.quarantine",
    "quality.source_health",
    "ops.ingest_runs",
    "ops.coverage",
    "ops.api_budget",
]

SEED = """
INSERT INTO raw.api_responses (source, stream, endpoint, page_no, status_code, body, body_sha256, is_valid)
VALUES ('reddit', 'new:python', '/r/python/new', 0, 200, '{"data": {}}', 'abc', true);
INSERT INTO core.documents (source, external_id, kind, channel, created_at, title, body, url, author_pseudonym,
                            score, metrics, payload, content_sha256, raw_response_id, dag_run_id)
SELECT s, 'id_' || g, 'post', 'python', ts, 'title ' || g, 'body ' || g || ' é ✓', 'https://e.com/' || g,
       md5(g::text), g, jsonb_build_object('comments', g), jsonb_build_object('n', g, 'tags', jsonb_build_array('a')),
       md5('c' || g), 1, 'run_' || g
  FROM generate_series(1, 300) g,
       LATERAL (SELECT (ARRAY['reddit', 'x', 'newsapi'])[1 + g % 3] AS s,
                       timestamptz '2019-05-01 00:00+00' + (g * interval '9 days 7 hours') AS ts) v;
INSERT INTO core.market_bars (source, symbol, market, asset_class, interval, ts, open, high, low, close, volume,
                              content_sha256, raw_response_id, dag_run_id)
SELECT 'alphavantage', 'IBM', 'USD', 'stock', '1d', timestamptz '2001-01-01 00:00+00' + g * interval '1 day',
       100.5 + g, 101.25 + g, 99.125 + g, 100 + g, 1000000 + g, md5(g::text), 1, 'run'
  FROM generate_series(0, 999) g;
INSERT INTO core.weather_observations (source, city, kind, valid_at, temp_c, content_sha256, raw_response_id,
                                       dag_run_id)
VALUES ('openweathermap', 'London', 'current', '2026-11-28 12:00+00', 7.5, 'h', 1, 'run');
INSERT INTO core.github_repo_snapshots (source, repo, snapshot_at, stars, content_sha256, raw_response_id,
                                        dag_run_id)
VALUES ('github', 'apache/airflow', '2026-11-28 12:00+00', 40000, 'h', 1, 'run');
INSERT INTO quality.quarantine (source, item_key, raw_response_id, item_index, reason_code, item, dag_run_id)
VALUES ('reddit', 't3_bad', 1, 3, 'missing_id', '{"x": 1}', 'run');
INSERT INTO quality.source_health (source, state, consecutive_failures) VALUES ('x', 'open', 3);
INSERT INTO ops.ingest_runs (dag_id, dag_run_id, source, window_start, window_end, pages, items, loaded)
VALUES ('ingest_reddit', 'run', 'reddit', '2026-11-28 11:00+00', '2026-11-28 12:00+00', 1, 10, 9);
INSERT INTO ops.coverage (source, stream, window_start, window_end, status, reason, dag_run_id)
VALUES ('x', 'search:q', '2026-11-01 00:00+00', '2026-11-02 00:00+00', 'gap', 'beyond_reach', 'run');
INSERT INTO ops.api_budget (source, period_s, bucket_start, used) VALUES ('newsapi', 86400, '2026-11-28', 42);
"""


def snapshot(uri: str) -> dict[str, list[str]]:
    """Every row of every table as canonical JSON text, sorted."""
    with psycopg.connect(uri) as conn:
        return {
            table: sorted(r[0] for r in conn.execute(f"SELECT to_jsonb(t)::text FROM {table} t").fetchall())
            for table in TABLES
        }


def test_upgrading_a_populated_warehouse_keeps_every_row(fresh_db: Callable[[], str]) -> None:
    uri = fresh_db()
    upgrade(uri, "0003")
    with psycopg.connect(uri) as conn:
        conn.execute(SEED)
    before = snapshot(uri)
    assert len(before["core.documents"]) == 300 and len(before["core.market_bars"]) == 1000

    upgrade(uri, "head")
    assert snapshot(uri) == before
    with psycopg.connect(uri) as conn:
        kind = conn.execute("SELECT relkind FROM pg_class WHERE oid = 'core.documents'::regclass").fetchone()
        assert kind == ("p",)
        # Every row sits in its month's partition; none in the default partitions.
        assert conn.execute("SELECT sum(rows) FROM ops.default_partition_rows()").fetchone() == (0,)
        months = conn.execute(
            "SELECT count(DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC')), "
            "count(DISTINCT tableoid) FROM core.documents"
        ).fetchone()
        assert months[0] == months[1] > 12
        # Comments survived the table swap.
        comment = conn.execute("SELECT col_description('core.documents'::regclass, 2)").fetchone()[0]
        assert comment and "id in its source" in comment

    # ... and back, and forward again: still the same rows.
    downgrade(uri, "0003")
    assert snapshot(uri) == before
    upgrade(uri, "head")
    assert snapshot(uri) == before


SEED_0009 = """
INSERT INTO core.documents (source, external_id, kind, created_at, content_sha256, raw_response_id, dag_run_id,
                            first_loaded_at, loaded_at)
VALUES ('x', 'audited', 'tweet', '2026-11-28 11:10+00', 'h', 1, 'r', '2026-11-28 11:20+00', '2026-11-28 11:20+00'),
       ('x', 'late', 'tweet', '2026-11-28 11:30+00', 'h', 1, 'r', '2026-11-28 13:00+00', '2026-11-28 13:00+00'),
       ('x', 'edited', 'tweet', '2026-11-28 10:30+00', 'h', 1, 'r', '2026-11-28 10:40+00', '2026-11-28 14:00+00'),
       ('x', 'backfilled', 'tweet', '2026-11-28 08:30+00', 'h', 1, 'r', '2026-11-28 15:00+00',
        '2026-11-28 15:00+00');
INSERT INTO quality.window_audits (source, window_start, window_end, status, checks, failed, dag_run_id, audited_at)
VALUES ('x', '2026-11-28 10:00+00', '2026-11-28 11:00+00', 'passed', 3, 0, 'q', '2026-11-28 12:10+00'),
       ('x', '2026-11-28 11:00+00', '2026-11-28 12:00+00', 'passed', 3, 0, 'q', '2026-11-28 12:10+00');
INSERT INTO quality.publish_state (source, published_until, dag_run_id) VALUES ('x', '2026-11-28 12:00+00', 'q');
"""


def test_0010_publishes_only_rows_audited_after_they_were_written(fresh_db: Callable[[], str]) -> None:
    """Before 0010 the horizon alone gated the views: late, edited and backfilled rows behind it showed."""
    uri = fresh_db()
    upgrade(uri, "0009")
    with psycopg.connect(uri) as conn:
        conn.execute(SEED_0009)
    visible = "SELECT coalesce(sum(items), 0) FROM analytics.daily_volume WHERE source = 'x'"
    with psycopg.connect(uri) as conn:
        assert conn.execute(visible).fetchone() == (4,)

    upgrade(uri, "0010")
    with psycopg.connect(uri) as conn:
        assert conn.execute(visible).fetchone() == (1,)
        assert conn.execute("SELECT external_id FROM published.documents").fetchall() == [("audited",)]
        gates = conn.execute(
            "SELECT hour, audited_at, published_at FROM quality.hour_audits WHERE source = 'x' ORDER BY hour"
        ).fetchall()
        assert [(g[0].hour, g[1] == g[2]) for g in gates] == [(10, True), (11, True)]  # no audit covers 08:00
        assert conn.execute(
            "SELECT late_checked_until FROM quality.publish_state WHERE source = 'x'"
        ).fetchone() == (None,)  # the first run after the migration looks at every row written since

    downgrade(uri, "0009")
    with psycopg.connect(uri) as conn:
        assert conn.execute(visible).fetchone() == (4,)
        assert conn.execute("SELECT to_regclass('quality.hour_audits')").fetchone() == (None,)
