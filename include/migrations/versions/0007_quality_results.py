"""Data quality results and the quality score per source and day.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE quality.check_results (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            check_name    text        NOT NULL,
            check_type    text        NOT NULL,
            target        text        NOT NULL,
            source        text,
            severity      text        NOT NULL,
            status        text        NOT NULL CHECK (status IN ('pass', 'fail', 'error')),
            observed      double precision,
            threshold     text,
            detail        text,
            window_start  timestamptz,
            window_end    timestamptz,
            dag_run_id    text        NOT NULL,
            checked_at    timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX check_results_source_idx ON quality.check_results (source, checked_at);
        CREATE INDEX check_results_name_idx ON quality.check_results (check_name, checked_at);
        COMMENT ON TABLE quality.check_results IS 'One row per data quality check and run: what was observed, against which threshold, and whether it passed.';
        COMMENT ON COLUMN quality.check_results.id IS 'Surrogate key.';
        COMMENT ON COLUMN quality.check_results.check_name IS 'The check''s name in include/quality/checks.yaml.';
        COMMENT ON COLUMN quality.check_results.check_type IS 'freshness, null_rate, unique, range, volume_anomaly or schema_drift.';
        COMMENT ON COLUMN quality.check_results.target IS 'The table (or raw stream) checked.';
        COMMENT ON COLUMN quality.check_results.source IS 'The source the check is about, when it is about one.';
        COMMENT ON COLUMN quality.check_results.severity IS 'warning or critical.';
        COMMENT ON COLUMN quality.check_results.status IS 'pass, fail, or error (the check itself could not run).';
        COMMENT ON COLUMN quality.check_results.observed IS 'The measured value (minutes since the newest row, a rate, a count ...).';
        COMMENT ON COLUMN quality.check_results.threshold IS 'The threshold it was compared with, as written in the check file.';
        COMMENT ON COLUMN quality.check_results.detail IS 'What the value means, or the error.';
        COMMENT ON COLUMN quality.check_results.window_start IS 'Start of the data window checked (UTC), when the check has one.';
        COMMENT ON COLUMN quality.check_results.window_end IS 'End of the data window checked (UTC).';
        COMMENT ON COLUMN quality.check_results.dag_run_id IS 'The quality DAG run.';
        COMMENT ON COLUMN quality.check_results.checked_at IS 'When the check ran.';

        CREATE VIEW analytics.quality_daily AS
            SELECT coalesce(source, 'all') AS source, (checked_at AT TIME ZONE 'UTC')::date AS day,
                   count(*) AS checks,
                   count(*) FILTER (WHERE status = 'pass') AS passed,
                   count(*) FILTER (WHERE status <> 'pass') AS failed,
                   round(100.0 * count(*) FILTER (WHERE status = 'pass') / count(*), 1) AS score
              FROM quality.check_results
             GROUP BY 1, 2;
        COMMENT ON VIEW analytics.quality_daily IS 'Quality score per source and UTC day: the share of checks that passed.';
        COMMENT ON COLUMN analytics.quality_daily.source IS 'Source system (all: checks about no single source).';
        COMMENT ON COLUMN analytics.quality_daily.day IS 'UTC day the checks ran.';
        COMMENT ON COLUMN analytics.quality_daily.checks IS 'Checks run.';
        COMMENT ON COLUMN analytics.quality_daily.passed IS 'Checks that passed.';
        COMMENT ON COLUMN analytics.quality_daily.failed IS 'Checks that failed or could not run.';
        COMMENT ON COLUMN analytics.quality_daily.score IS 'Percent of checks that passed (100 = all).';
        """
    )


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS analytics.quality_daily; DROP TABLE IF EXISTS quality.check_results;")
