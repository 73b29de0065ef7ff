"""Fact tables for numeric sources: market bars, weather observations, GitHub repository snapshots.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_LINEAGE = """
            content_sha256   text        NOT NULL,
            raw_response_id  bigint      NOT NULL,
            dag_run_id       text        NOT NULL,
            first_loaded_at  timestamptz NOT NULL DEFAULT now(),
            loaded_at        timestamptz NOT NULL DEFAULT now(),
"""


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE core.market_bars (
            source       text        NOT NULL,
            symbol       text        NOT NULL,
            market       text        NOT NULL,
            asset_class  text        NOT NULL,
            interval     text        NOT NULL,
            ts           timestamptz NOT NULL,
            open         numeric,
            high         numeric,
            low          numeric,
            close        numeric,
            volume       numeric,
            {_LINEAGE}
            PRIMARY KEY (symbol, market, interval, ts)
        );
        CREATE INDEX market_bars_ts_idx ON core.market_bars (ts);
        COMMENT ON TABLE core.market_bars IS 'OHLCV bars of stocks and crypto, one row per symbol, market, interval and bar start.';
        COMMENT ON COLUMN core.market_bars.market IS 'Quote currency or exchange market (USD for US stocks, EUR for BTC/EUR).';
        COMMENT ON COLUMN core.market_bars.asset_class IS 'stock or crypto.';
        COMMENT ON COLUMN core.market_bars.interval IS 'Bar length: 1d, 60min, 15min, 5min, 1min.';
        COMMENT ON COLUMN core.market_bars.ts IS 'Bar start in UTC (daily bars: the trading day at 00:00 UTC).';
        COMMENT ON COLUMN core.market_bars.raw_response_id IS 'Lineage: the raw.api_responses page this version came from.';

        CREATE TABLE core.weather_observations (
            source        text        NOT NULL,
            city          text        NOT NULL,
            country       text,
            lat           double precision,
            lon           double precision,
            kind          text        NOT NULL,
            valid_at      timestamptz NOT NULL,
            issued_at     timestamptz,
            temp_c        double precision,
            feels_like_c  double precision,
            pressure_hpa  double precision,
            humidity_pct  double precision,
            wind_speed_ms double precision,
            wind_deg      double precision,
            clouds_pct    double precision,
            rain_mm       double precision,
            condition     text,
            description   text,
            {_LINEAGE}
            PRIMARY KEY (city, kind, valid_at)
        );
        CREATE INDEX weather_observations_valid_idx ON core.weather_observations (valid_at);
        COMMENT ON TABLE core.weather_observations IS 'Current weather (kind current) and forecasts (kind forecast) per configured city; a newer forecast for the same time replaces the older one.';
        COMMENT ON COLUMN core.weather_observations.valid_at IS 'The time the values describe (UTC).';
        COMMENT ON COLUMN core.weather_observations.issued_at IS 'When the source computed the values (forecasts: fetch time).';
        COMMENT ON COLUMN core.weather_observations.temp_c IS 'Air temperature in degrees Celsius.';

        CREATE TABLE core.github_repo_snapshots (
            source       text        NOT NULL,
            repo         text        NOT NULL,
            snapshot_at  timestamptz NOT NULL,
            stars        integer,
            forks        integer,
            watchers     integer,
            open_issues  integer,
            size_kb      integer,
            language     text,
            pushed_at    timestamptz,
            {_LINEAGE}
            PRIMARY KEY (repo, snapshot_at)
        );
        COMMENT ON TABLE core.github_repo_snapshots IS 'Repository counters (stars, forks, watchers, open issues) as of the end of each ingest window.';
        COMMENT ON COLUMN core.github_repo_snapshots.snapshot_at IS 'The end of the ingest window the snapshot was taken for.';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS core.github_repo_snapshots;
        DROP TABLE IF EXISTS core.weather_observations;
        DROP TABLE IF EXISTS core.market_bars;
        """
    )
