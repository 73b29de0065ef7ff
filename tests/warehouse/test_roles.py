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
    "enriched.document_features",
    "enriched.entity_mentions",
    "enriched.duplicate_clusters",
    "core.documents",
    "core.market_bars",
    "core.weather_observations",
    "core.github_repo_snapshots",
]
FORBIDDEN = [
    "raw.api_responses",  # author handles in clear
    "quality.quarantine",  # copies of rejected items
    "quality.source_health",
    "ops.ingest_runs",
    "ops.coverage",
    "ops.api_budget",
]
#: Column names that would hold personal data in clear; only pseudonyms may reach analysts.
PERSONAL = ("author", "author_name", "username", "user_name", "login", "email", "handle", "screen_name")


@pytest.fixture
def analyst(warehouse: dict[str, Any]) -> Iterator[Any]:
    with psycopg.connect(**warehouse, autocommit=True, options="-c role=analyst") as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "analyst"
        yield conn


@pytest.mark.parametrize("relation", READABLE)
def test_analyst_reads_analytics_and_core(analyst: Any, relation: str) -> None:
    analyst.execute(f"SELECT * FROM {relation} LIMIT 1").fetchall()


@pytest.mark.parametrize("relation", FORBIDDEN)
def test_analyst_cannot_read_raw_quarantine_or_ops(analyst: Any, relation: str) -> None:
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
         WHERE table_schema IN ('analytics', 'core', 'enriched')
           AND has_column_privilege('analyst', quote_ident(table_schema) || '.' || quote_ident(table_name),
                                    column_name, 'SELECT')
        """
    ).fetchall()
    names = [c[0] for c in cols]
    assert "core.documents.author_pseudonym" in names
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


def test_tables_and_partitions_created_later_are_readable(analyst: Any, db: Any) -> None:
    """Default privileges cover what the pipeline creates after the migration: new partitions, new tables."""
    db.execute("SELECT ops.ensure_month_partitions('core.documents', '2017-03-10', '2017-03-10')")
    db.execute("CREATE TABLE enriched.role_probe (x int)")
    try:
        analyst.execute("SELECT * FROM core.documents_p2017_03").fetchall()
        analyst.execute("SELECT * FROM enriched.role_probe").fetchall()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            analyst.execute("INSERT INTO enriched.role_probe VALUES (1)")
    finally:
        db.execute("DROP TABLE enriched.role_probe")
