"""Coverage of ingested windows (and gaps with reasons), persisted API budgets, source health (circuit breaker).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE ops.coverage (
            source        text        NOT NULL,
            stream        text        NOT NULL,
            window_start  timestamptz NOT NULL,
            window_end    timestamptz NOT NULL,
            status        text        NOT NULL CHECK (status IN ('ingested', 'gap')),
            reason        text,
            dag_run_id    text        NOT NULL,
            recorded_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source, stream, window_start, window_end, status)
        );
        CREATE INDEX coverage_window_idx ON ops.coverage (source, window_start);
        COMMENT ON TABLE ops.coverage IS 'Which windows each source stream holds, and which it cannot hold (gaps) with the reason: beyond the API''s reach, budget spent, listing cap.';
        COMMENT ON COLUMN ops.coverage.stream IS 'The stream, e.g. new:python or search:bitcoin.';
        COMMENT ON COLUMN ops.coverage.status IS 'ingested: pages were fetched for this window; gap: part or all of it could not be.';
        COMMENT ON COLUMN ops.coverage.reason IS 'For gaps: beyond_reach (the API serves no data that old), budget_exhausted, listing_cap.';

        CREATE TABLE ops.api_budget (
            source        text        NOT NULL,
            period_s      integer     NOT NULL,
            bucket_start  timestamptz NOT NULL,
            used          integer     NOT NULL DEFAULT 0,
            PRIMARY KEY (source, period_s, bucket_start)
        );
        COMMENT ON TABLE ops.api_budget IS 'API calls spent per source and quota period (per minute, per 15 minutes, per day ...), shared by every task, worker and restart.';

        CREATE TABLE quality.source_health (
            source                text        PRIMARY KEY,
            state                 text        NOT NULL DEFAULT 'closed' CHECK (state IN ('closed', 'open', 'half_open')),
            consecutive_failures  integer     NOT NULL DEFAULT 0,
            opened_at             timestamptz,
            last_failure_at       timestamptz,
            last_failure          text,
            last_success_at       timestamptz,
            updated_at            timestamptz NOT NULL DEFAULT now()
        );
        COMMENT ON TABLE quality.source_health IS 'Circuit breaker per source: open after N consecutive failed runs (runs then skip), half-open after a cool-down, closed on success.';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS quality.source_health;
        DROP TABLE IF EXISTS ops.api_budget;
        DROP TABLE IF EXISTS ops.coverage;
        """
    )
