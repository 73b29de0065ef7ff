"""Analyst views (schema analytics), the read-only analyst role, comments on every column.

* ``analytics.daily_volume``, ``analytics.coverage_windows``, ``analytics.coverage_daily``,
  ``analytics.quarantine_summary``: what analysts ask first. The views read ``ops`` and ``quality`` with the
  rights of their owner, so analysts see the aggregates without reading the tables behind them.
* Role ``analyst`` (NOLOGIN; grant it to people's login roles): USAGE and SELECT on ``analytics``, ``core``
  and ``enriched``, including tables created later; nothing on ``raw`` (author handles in clear),
  ``quality`` (quarantine holds item copies) or ``ops``; no write anywhere. The migration creates the role
  when it may (CREATEROLE); otherwise a DBA creates it first and the migration says so.
* Schema ``enriched`` (features per document, filled by the enrich DAG).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ROLE = r"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'analyst') THEN
        IF (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
            CREATE ROLE analyst NOLOGIN;
        ELSE
            RAISE EXCEPTION 'role "analyst" does not exist and % may not create it; ask a DBA to run: CREATE ROLE analyst NOLOGIN', current_user;
        END IF;
    END IF;
END $$;
"""

SCHEMAS = """
CREATE SCHEMA IF NOT EXISTS enriched;
CREATE SCHEMA IF NOT EXISTS analytics;
COMMENT ON SCHEMA enriched IS 'Features computed from core.documents per enrichment version (language, sentiment, entities, topics, duplicates).';
COMMENT ON SCHEMA analytics IS 'Documented views for analysts: volumes, coverage, quarantine, sentiment. Start here.';
COMMENT ON SCHEMA ops IS 'Pipeline bookkeeping: ingest runs, coverage, API budgets, partitions, migrations version. Pipeline and on-call.';
"""

VIEWS = """
CREATE VIEW analytics.daily_volume AS
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day, source, 'core.documents'::text AS dataset, kind,
           count(*) AS items, max(loaded_at) AS last_loaded_at
      FROM core.documents GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT (ts AT TIME ZONE 'UTC')::date, source, 'core.market_bars', interval, count(*), max(loaded_at)
      FROM core.market_bars GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT (valid_at AT TIME ZONE 'UTC')::date, source, 'core.weather_observations', kind, count(*), max(loaded_at)
      FROM core.weather_observations GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT (snapshot_at AT TIME ZONE 'UTC')::date, source, 'core.github_repo_snapshots', 'snapshot', count(*),
           max(loaded_at)
      FROM core.github_repo_snapshots GROUP BY 1, 2, 3, 4;
COMMENT ON VIEW analytics.daily_volume IS 'Rows per UTC day of event time, source, table and kind, over every core table. Filter on day and source.';
COMMENT ON COLUMN analytics.daily_volume.day IS 'UTC day of the event time (documents: created_at; bars: ts; weather: valid_at; snapshots: snapshot_at).';
COMMENT ON COLUMN analytics.daily_volume.source IS 'Source system.';
COMMENT ON COLUMN analytics.daily_volume.dataset IS 'The core table the rows are in.';
COMMENT ON COLUMN analytics.daily_volume.kind IS 'Documents: post, comment, tweet, article ...; bars: interval; weather: current or forecast; snapshots: snapshot.';
COMMENT ON COLUMN analytics.daily_volume.items IS 'Number of rows.';
COMMENT ON COLUMN analytics.daily_volume.last_loaded_at IS 'When the newest of those rows last changed.';

CREATE VIEW analytics.coverage_windows AS
    SELECT source, stream, window_start, window_end, status, reason, dag_run_id, recorded_at
      FROM ops.coverage;
COMMENT ON VIEW analytics.coverage_windows IS 'Every window each source stream was ingested for, and every gap with its reason. A window missing here was never run.';
COMMENT ON COLUMN analytics.coverage_windows.source IS 'Source system.';
COMMENT ON COLUMN analytics.coverage_windows.stream IS 'What was paged through, e.g. new:python or search:bitcoin.';
COMMENT ON COLUMN analytics.coverage_windows.window_start IS 'Window start (inclusive, UTC).';
COMMENT ON COLUMN analytics.coverage_windows.window_end IS 'Window end (exclusive, UTC).';
COMMENT ON COLUMN analytics.coverage_windows.status IS 'ingested: pages were fetched for the window; gap: part or all of it could not be.';
COMMENT ON COLUMN analytics.coverage_windows.reason IS 'For gaps: beyond_reach (the API serves nothing that old), budget_exhausted, listing_cap, not_yet_available.';
COMMENT ON COLUMN analytics.coverage_windows.dag_run_id IS 'The Airflow run that recorded it.';
COMMENT ON COLUMN analytics.coverage_windows.recorded_at IS 'When it was recorded.';

CREATE VIEW analytics.coverage_daily AS
    SELECT source, (window_start AT TIME ZONE 'UTC')::date AS day,
           count(DISTINCT stream) AS streams,
           count(*) FILTER (WHERE status = 'ingested') AS windows_ingested,
           range_agg(tstzrange(window_start, window_end)) FILTER (WHERE status = 'ingested') AS ingested,
           count(*) FILTER (WHERE status = 'gap') AS gaps,
           range_agg(tstzrange(window_start, window_end)) FILTER (WHERE status = 'gap') AS gap_ranges,
           array_agg(DISTINCT reason) FILTER (WHERE status = 'gap') AS gap_reasons
      FROM ops.coverage
     GROUP BY 1, 2;
COMMENT ON VIEW analytics.coverage_daily IS 'Per source and UTC day (of window start): which windows were ingested, which are gaps and why.';
COMMENT ON COLUMN analytics.coverage_daily.source IS 'Source system.';
COMMENT ON COLUMN analytics.coverage_daily.day IS 'UTC day of the window start.';
COMMENT ON COLUMN analytics.coverage_daily.streams IS 'Distinct streams with any record that day.';
COMMENT ON COLUMN analytics.coverage_daily.windows_ingested IS 'Stream windows ingested.';
COMMENT ON COLUMN analytics.coverage_daily.ingested IS 'The time ranges ingested by at least one stream, merged.';
COMMENT ON COLUMN analytics.coverage_daily.gaps IS 'Stream windows (or parts) that could not be ingested.';
COMMENT ON COLUMN analytics.coverage_daily.gap_ranges IS 'The time ranges of those gaps, merged.';
COMMENT ON COLUMN analytics.coverage_daily.gap_reasons IS 'Why: beyond_reach, budget_exhausted, listing_cap, not_yet_available.';

CREATE VIEW analytics.quarantine_summary AS
    SELECT source, reason_code,
           count(*) FILTER (WHERE resolved_at IS NULL) AS open_items,
           count(*) FILTER (WHERE resolved_at IS NOT NULL) AS resolved_items,
           min(first_seen_at) AS first_seen_at,
           max(quarantined_at) AS last_quarantined_at
      FROM quality.quarantine
     GROUP BY 1, 2;
COMMENT ON VIEW analytics.quarantine_summary IS 'Items held back from core per source and reason code (the items themselves stay in quality.quarantine, for on-call).';
COMMENT ON COLUMN analytics.quarantine_summary.source IS 'Source system.';
COMMENT ON COLUMN analytics.quarantine_summary.reason_code IS 'Why the items were held back (see quality.quarantine.reason_code).';
COMMENT ON COLUMN analytics.quarantine_summary.open_items IS 'Items still held back.';
COMMENT ON COLUMN analytics.quarantine_summary.resolved_items IS 'Items that loaded later (a corrected re-fetch or a replay).';
COMMENT ON COLUMN analytics.quarantine_summary.first_seen_at IS 'When the first of them was first seen.';
COMMENT ON COLUMN analytics.quarantine_summary.last_quarantined_at IS 'When the latest was (re)quarantined.';
"""

GRANTS = """
REVOKE ALL ON SCHEMA raw, quality, ops FROM PUBLIC;
GRANT USAGE ON SCHEMA analytics, core, enriched TO analyst;
GRANT SELECT ON ALL TABLES IN SCHEMA analytics, core, enriched TO analyst;
ALTER DEFAULT PRIVILEGES IN SCHEMA analytics, core, enriched GRANT SELECT ON TABLES TO analyst;
"""

#: Comments for the columns the earlier migrations left without one.
COLUMN_COMMENTS: dict[str, dict[str, str]] = {
    "core.documents": {
        "title": "Title (posts, articles, issues); NULL for comments and tweets.",
        "body": "Text of the item as published (at most 100 kB).",
        "url": "Link to the item, or to what a link post points at.",
    },
    "core.market_bars": {
        "source": "Source system (alphavantage).",
        "symbol": "Ticker (AAPL) or crypto symbol (BTC).",
        "open": "Opening price in the market currency.",
        "high": "Highest price in the bar.",
        "low": "Lowest price in the bar.",
        "close": "Closing price.",
        "volume": "Traded volume (shares or coins).",
    },
    "core.weather_observations": {
        "source": "Source system (openweathermap).",
        "city": "City as configured in include/sources.yaml.",
        "country": "ISO 3166 country code.",
        "lat": "Latitude of the city (degrees).",
        "lon": "Longitude of the city (degrees).",
        "kind": "current or forecast.",
        "feels_like_c": "Perceived temperature in degrees Celsius.",
        "pressure_hpa": "Sea-level air pressure in hPa.",
        "humidity_pct": "Relative humidity in percent.",
        "wind_speed_ms": "Wind speed in metres per second.",
        "wind_deg": "Wind direction in degrees (meteorological).",
        "clouds_pct": "Cloud cover in percent.",
        "rain_mm": "Rain volume in mm (last hour for current, 3 h for forecasts).",
        "condition": "Condition group (Rain, Clear, Clouds ...).",
        "description": "Condition in words (light rain ...).",
    },
    "core.github_repo_snapshots": {
        "source": "Source system (github).",
        "repo": "owner/name of the repository.",
        "stars": "Stargazers.",
        "forks": "Forks.",
        "watchers": "Subscribers (watchers).",
        "open_issues": "Open issues and pull requests.",
        "size_kb": "Repository size in kB.",
        "language": "Main language as GitHub reports it.",
        "pushed_at": "Last push to the repository.",
    },
    "ops.alembic_version": {"version_num": "The warehouse migration the database is at."},
    "ops.api_budget": {
        "source": "Source system.",
        "period_s": "Quota period in seconds (60, 900, 86400 ...).",
        "bucket_start": "Start of the quota period.",
        "used": "Calls spent in that period.",
    },
    "ops.coverage": {
        "source": "Source system.",
        "window_start": "Window start (inclusive, UTC).",
        "window_end": "Window end (exclusive, UTC).",
        "dag_run_id": "The Airflow run that recorded it.",
        "recorded_at": "When it was recorded.",
    },
    "ops.ingest_runs": {
        "dag_id": "The ingest DAG.",
        "dag_run_id": "The Airflow run.",
        "source": "Source system.",
        "window_start": "Window start (inclusive, UTC).",
        "window_end": "Window end (exclusive, UTC).",
        "pages": "Valid pages stored by the run.",
        "extracted_at": "When extract finished.",
        "loaded_at": "When load finished.",
    },
    "quality.quarantine": {
        "id": "Surrogate key.",
        "source": "Source system.",
        "external_id": "The item's id when it has a usable one.",
        "reason_detail": "What exactly was wrong (field and value).",
        "dag_run_id": "The run that last quarantined the item.",
        "first_seen_at": "When the item was first quarantined.",
        "quarantined_at": "When it was last (re)quarantined.",
    },
    "quality.source_health": {
        "source": "Source system.",
        "state": "closed (normal), open (runs skip the API), half_open (next run is a trial).",
        "consecutive_failures": "Failed runs in a row.",
        "opened_at": "When the circuit opened.",
        "last_failure_at": "When the last failure happened.",
        "last_failure": "The last failure's error.",
        "last_success_at": "When the last successful run finished.",
        "updated_at": "When this row last changed.",
    },
    "raw.api_responses": {
        "id": "Surrogate key; core rows and quarantine rows point here (raw_response_id).",
        "source": "Source system.",
        "status_code": "HTTP status of the response.",
        "error": "Why the page is not valid (is_valid false).",
        "item_count": "Items in the page.",
        "dag_id": "The DAG that fetched the page.",
        "task_try": "The task try that fetched it.",
        "fetched_at": "When it was fetched.",
    },
}

LINEAGE_COMMENTS = {
    "content_sha256": "Hash of the loaded content; an upsert only rewrites a row when it changes.",
    "raw_response_id": "Lineage: the raw.api_responses page this version came from.",
    "dag_run_id": "Lineage: the Airflow run that loaded this version.",
    "first_loaded_at": "When the row was first loaded.",
    "loaded_at": "When the row last changed.",
}


def upgrade() -> None:
    op.execute(ROLE)
    op.execute(SCHEMAS)
    op.execute(VIEWS)
    op.execute(
        "COMMENT ON TABLE ops.alembic_version IS 'Alembic''s record of the applied warehouse migration.'"
    )
    for table in ("core.market_bars", "core.weather_observations", "core.github_repo_snapshots"):
        for column, comment in LINEAGE_COMMENTS.items():
            op.execute(f"COMMENT ON COLUMN {table}.{column} IS '{comment}'")
    for table, columns in COLUMN_COMMENTS.items():
        for column, comment in columns.items():
            quoted = comment.replace("'", "''")
            op.execute(f"COMMENT ON COLUMN {table}.{column} IS '{quoted}'")
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute(
        """
        ALTER DEFAULT PRIVILEGES IN SCHEMA analytics, core, enriched REVOKE SELECT ON TABLES FROM analyst;
        REVOKE SELECT ON ALL TABLES IN SCHEMA analytics, core, enriched FROM analyst;
        REVOKE USAGE ON SCHEMA analytics, core, enriched FROM analyst;
        DROP VIEW IF EXISTS analytics.quarantine_summary;
        DROP VIEW IF EXISTS analytics.coverage_daily;
        DROP VIEW IF EXISTS analytics.coverage_windows;
        DROP VIEW IF EXISTS analytics.daily_volume;
        DROP SCHEMA IF EXISTS analytics;
        DROP SCHEMA IF EXISTS enriched;
        """
    )
