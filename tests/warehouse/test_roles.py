"""What the read-only analyst role can and cannot do, checked as that role against the real warehouse."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

READABLE = [
    "analytics.daily_volume",
    "analytics.coverage_daily",
    "analytics.coverage_windows",
    "analytics.quarantine_summary",
    "analytics.daily_sentiment",
    "analytics.entity_mentions_daily",
    "analytics.duplicate_clusters",
    "analytics.duplicates_per_source",
    "analytics.publication",
    "analytics.quality_daily",
    "analytics.data_months",
    "analytics.source_health",
    "published.documents",
    "published.market_bars",
    "published.weather_observations",
    "published.github_repo_snapshots",
    "published.document_features",
    "published.entity_mentions",
    "published.places",
    "published.duplicate_clusters",
    "published.component_versions",
]
FORBIDDEN = [
    "raw.api_responses",  # author handles in clear
    "quality.quarantine",  # copies of rejected items
    "quality.source_health",  # error texts
    "quality.window_audits",
    "quality.hour_audits",
    "ops.ingest_runs",
    "ops.coverage",
    "ops.api_budget",
    "ops.api_budget_limits",
    # Written but not necessarily audited: analysts read the published schema instead.
    "core.documents",
    "core.documents_default",
    "core.market_bars",
    "core.weather_observations",
    "core.github_repo_snapshots",
    "enriched.document_features",
    "enriched.entity_mentions",
    "enriched.places",
    "enriched.duplicate_clusters",
    "enriched.document_fingerprints",
    "enriched.component_versions",
]
#: Column names that would hold personal data in clear; only pseudonyms may reach analysts.
PERSONAL = ("author", "author_name", "username", "user_name", "login", "email", "handle", "screen_name")


@pytest.fixture
def analyst(warehouse: dict[str, Any]) -> Iterator[Any]:
    with psycopg.connect(**warehouse, autocommit=True, options="-c role=analyst") as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "analyst"
        yield conn


@pytest.mark.parametrize("relation", READABLE)
def test_analyst_reads_analytics_and_published(analyst: Any, relation: str) -> None:
    analyst.execute(f"SELECT * FROM {relation} LIMIT 1").fetchall()


@pytest.mark.parametrize("relation", FORBIDDEN)
def test_analyst_cannot_read_raw_quarantine_ops_core_or_enriched(analyst: Any, relation: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        analyst.execute(f"SELECT 1 FROM {relation} LIMIT 1")


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO core.documents (source, external_id, kind, created_at, content_sha256, raw_response_id,"
        " dag_run_id) VALUES ('x', 'y', 'post', now(), 'h', 1, 'r')",
        "UPDATE core.documents SET body = 'changed'",
        "DELETE FROM core.market_bars",
        "TRUNCATE core.weather_observations",
        "CREATE TABLE analytics.mine (x int)",
        "CREATE TABLE core.mine (x int)",
        "CREATE TABLE public.mine (x int)",
        "CREATE VIEW analytics.mine AS SELECT 1",
        "CREATE VIEW published.mine AS SELECT 1",
        "SELECT ops.ensure_month_partitions('core.documents', now(), now())",
        "ALTER TABLE core.documents ADD COLUMN x int",
        "DROP VIEW analytics.daily_volume",
    ],
)
def test_analyst_cannot_write_anywhere(analyst: Any, statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        analyst.execute(statement)


def test_analyst_sees_no_personal_data_in_clear(analyst: Any) -> None:
    cols = analyst.execute(
        """
        SELECT table_schema || '.' || table_name || '.' || column_name FROM information_schema.columns
         WHERE table_schema IN ('analytics', 'published', 'core', 'enriched')
           AND has_column_privilege('analyst', quote_ident(table_schema) || '.' || quote_ident(table_name),
                                    column_name, 'SELECT')
        """
    ).fetchall()
    names = [c[0] for c in cols]
    assert "published.documents.author_pseudonym" in names
    assert not [n for n in names if n.startswith(("core.", "enriched."))]
    assert not [n for n in names if n.rsplit(".", 1)[1] in PERSONAL]


def test_aggregates_over_forbidden_tables_reach_the_analyst(analyst: Any, db: Any) -> None:
    """The quarantine summary is readable although quality.quarantine is not (views run as their owner)."""
    db.execute("DELETE FROM quality.quarantine WHERE source = 'roletest'")
    db.execute(
        "INSERT INTO quality.quarantine (source, item_key, raw_response_id, item_index, reason_code, item,"
        " dag_run_id) VALUES ('roletest', 'k1', 1, 0, 'missing_id', '{\"author\": \"someone\"}', 'r')"
    )
    try:
        row = analyst.execute(
            "SELECT open_items FROM analytics.quarantine_summary WHERE source = 'roletest'"
        ).fetchone()
        assert row == (1,)
    finally:
        db.execute("DELETE FROM quality.quarantine WHERE source = 'roletest'")


def test_tables_and_partitions_created_later_follow_the_schema(analyst: Any, db: Any) -> None:
    """Default privileges cover what the pipeline creates after the migration: new relations in published are
    readable, new partitions and tables in core and enriched are not."""
    db.execute("SELECT ops.ensure_month_partitions('core.documents', '2017-03-10', '2017-03-10')")
    db.execute("CREATE TABLE enriched.role_probe (x int)")
    db.execute("CREATE VIEW published.role_probe AS SELECT 1 AS x")
    try:
        analyst.execute("SELECT * FROM published.role_probe").fetchall()
        for relation in ("core.documents_p2017_03", "enriched.role_probe"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                analyst.execute(f"SELECT * FROM {relation}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            analyst.execute("INSERT INTO enriched.role_probe VALUES (1)")
    finally:
        db.execute("DROP VIEW published.role_probe")
        db.execute("DROP TABLE enriched.role_probe")


def test_analysts_see_each_sources_health_without_raw_or_personal_data(analyst: Any, db: Any) -> None:
    """Circuit, last success, budget left, horizon and held windows with their failed checks; no error texts."""
    secret = "https://api.example/q?apikey=SECRET-KEY author=@someone"
    db.execute("DELETE FROM quality.source_health WHERE source = 'roletest'")
    db.execute(
        "INSERT INTO quality.source_health (source, state, consecutive_failures, opened_at, last_failure_at,"
        " last_failure, last_success_at) VALUES ('roletest', 'open', 3, '2026-11-28 10:00+00',"
        " '2026-11-28 10:00+00', %s, '2026-11-28 08:00+00')",
        (secret,),
    )
    db.execute(
        "INSERT INTO ops.api_budget_limits (source, period_s, calls) VALUES ('roletest', 60, 100),"
        " ('roletest', 86400, 1000)"
    )
    # Spending in the current periods, by the database's clock (the view compares with it): the day's
    # quota has less room left (1000 - 995) than the minute's (100 - 40), so it is the one shown.
    db.execute(
        "INSERT INTO ops.api_budget (source, period_s, bucket_start, used)"
        " SELECT 'roletest', p, to_timestamp(floor(extract(epoch FROM now()) / p) * p), u"
        " FROM (VALUES (60, 40), (86400, 995)) v(p, u)"
    )
    db.execute(
        "INSERT INTO quality.publish_state (source, published_until, dag_run_id)"
        " VALUES ('roletest', '2026-11-28 11:00+00', 'r')"
    )
    db.execute(
        "INSERT INTO quality.window_audits (source, window_start, window_end, status, checks, failed,"
        " failed_checks, dag_run_id) VALUES"
        " ('roletest', '2026-11-28 11:00+00', '2026-11-28 12:00+00', 'held', 3, 1, '{nulls_reddit_author}', 'r'),"
        " ('roletest', '2026-11-28 10:00+00', '2026-11-28 11:00+00', 'passed', 3, 0, '{}', 'r')"
    )
    try:
        analyst.row_factory = psycopg.rows.dict_row
        row = analyst.execute("SELECT * FROM analytics.source_health WHERE source = 'roletest'").fetchone()
        assert row is not None
        assert row["circuit_state"] == "open" and row["consecutive_failures"] == 3
        assert row["last_success_at"].isoformat() == "2026-11-28T08:00:00+00:00"
        assert (row["budget_calls_left"], row["budget_calls"], row["budget_period_s"]) == (5, 1000, 86400)
        assert row["budget_resets_at"] > row["last_success_at"]
        assert row["published_until"].isoformat() == "2026-11-28T11:00:00+00:00"
        assert row["held_windows"] == 1
        [held] = row["held_window_checks"]
        assert held["window_start"].startswith("2026-11-28T11:00:00")
        assert held["failed_checks"] == ["nulls_reddit_author"]
        assert "SECRET" not in str(row) and "someone" not in str(row)
        columns = set(row)
        assert not columns & {"last_failure", "author", "author_pseudonym", "body", "text", "payload", "item"}
    finally:
        db.execute("DELETE FROM quality.source_health WHERE source = 'roletest'")
        db.execute("DELETE FROM ops.api_budget_limits WHERE source = 'roletest'")
        db.execute("DELETE FROM ops.api_budget WHERE source = 'roletest'")
        db.execute("DELETE FROM quality.publish_state WHERE source = 'roletest'")
        db.execute("DELETE FROM quality.window_audits WHERE source = 'roletest'")
