"""Trends (issue 16): hourly series per source and dimension, spikes, forecasts and the derived figures.

Tables in ``analytics`` (analysts read them; the ``trends`` DAG writes them, ``pulse/trends/run.py``):

* ``analytics.trend_source_hours``: every published hour of each source, observed or in a coverage gap; the
  denominator of every rate and moving average, so a gap never reads as a drop to zero.
* ``analytics.trend_series``: the registry of series (source x dimension x key) and their first/last hour.
* ``analytics.trend_series_hourly``: per series and hour with documents: volume, positive/negative counts,
  the seasonal baseline, robust z-scores and spike flags.
* ``analytics.trend_spikes``: spike episodes (one row, one alert per episode).
* ``analytics.trend_forecasts``: the next 24 hours of the busiest series, with 80 % and 95 % intervals.
* ``analytics.ticker_entities``: which entity each traded symbol is (for returns next to sentiment).
* ``ops.trends_state``: the incremental cursor per source (not for analysts).

Views (``include/sql/versions/0017/*.sql``, written once with this migration and replayed from there; the
current text of each view has a file of its own, see include/sql/README.md): ``analytics.trend_hourly``, ``analytics.trend_daily``, ``analytics.emerging_terms``,
``analytics.market_sentiment_daily``, ``analytics.github_star_velocity``, ``analytics.github_trending``,
``analytics.weather_sentiment_by_city``.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

#: Views in creation order (later ones read earlier ones); dropped in reverse.
VIEWS = (
    "analytics.trend_hourly",
    "analytics.trend_daily",
    "analytics.emerging_terms",
    "analytics.market_sentiment_daily",
    "analytics.github_star_velocity",
    "analytics.github_trending",
    "analytics.weather_sentiment_by_city",
)

_DIMENSIONS = "'source', 'topic', 'entity', 'ticker', 'keyword', 'repository'"

TABLES = f"""
CREATE TABLE analytics.trend_source_hours (
    source       text        NOT NULL,
    hour         timestamptz NOT NULL,
    observed     boolean     NOT NULL,
    gap_reason   text,
    documents    integer     NOT NULL DEFAULT 0,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, hour)
);
COMMENT ON TABLE analytics.trend_source_hours IS 'Every published hour of each source since its trends began: observed (ingested without a coverage gap) or not. An hour that is not observed has no known volume: trends read it as missing, never as zero.';
COMMENT ON COLUMN analytics.trend_source_hours.source IS 'Source system.';
COMMENT ON COLUMN analytics.trend_source_hours.hour IS 'Start of the hour of event time (UTC).';
COMMENT ON COLUMN analytics.trend_source_hours.observed IS 'true: the source ingested the hour and recorded no gap in it (ops.coverage); false: a gap, or no ingest recorded.';
COMMENT ON COLUMN analytics.trend_source_hours.gap_reason IS 'Why the hour is not observed: the ops.coverage gap reason(s), or no_coverage when no ingest covered it.';
COMMENT ON COLUMN analytics.trend_source_hours.documents IS 'Published documents of the source created in the hour.';
COMMENT ON COLUMN analytics.trend_source_hours.computed_at IS 'When the trends DAG last wrote the row.';

CREATE TABLE analytics.trend_series (
    source      text        NOT NULL,
    dimension   text        NOT NULL CHECK (dimension IN ({_DIMENSIONS})),
    key         text        NOT NULL,
    first_hour  timestamptz NOT NULL,
    last_hour   timestamptz NOT NULL,
    PRIMARY KEY (source, dimension, key)
);
COMMENT ON TABLE analytics.trend_series IS 'Every series the trends DAG follows: a source and a dimension value (the source itself, a topic, an entity, a ticker, a keyword or a GitHub repository), with its first and last hour holding documents.';
COMMENT ON COLUMN analytics.trend_series.source IS 'Source system.';
COMMENT ON COLUMN analytics.trend_series.dimension IS 'source (all documents of the source), topic, entity (any type, by canonical name), ticker (ticker and crypto mentions), keyword or repository (GitHub).';
COMMENT ON COLUMN analytics.trend_series.key IS 'The value: the source name, topic, canonical entity name, keyword or owner/repo.';
COMMENT ON COLUMN analytics.trend_series.first_hour IS 'First hour with a document (UTC).';
COMMENT ON COLUMN analytics.trend_series.last_hour IS 'Last hour with a document (UTC).';

CREATE TABLE analytics.trend_series_hourly (
    source              text        NOT NULL,
    dimension           text        NOT NULL CHECK (dimension IN ({_DIMENSIONS})),
    key                 text        NOT NULL,
    hour                timestamptz NOT NULL,
    documents           integer     NOT NULL CHECK (documents > 0),
    positive            integer     NOT NULL,
    negative            integer     NOT NULL,
    baseline_basis      text        NOT NULL,
    baseline_documents  double precision,
    volume_z            double precision,
    volume_ratio        double precision,
    baseline_sentiment  double precision,
    sentiment_z         double precision,
    volume_spike        boolean     NOT NULL,
    sentiment_spike     boolean     NOT NULL,
    computed_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, dimension, key, hour)
);
CREATE INDEX trend_series_hourly_hour_idx ON analytics.trend_series_hourly (source, hour);
CREATE INDEX trend_series_hourly_key_idx ON analytics.trend_series_hourly (dimension, key, hour);
COMMENT ON TABLE analytics.trend_series_hourly IS 'Per series and hour holding documents: volume, sentiment counts, the seasonal baseline and robust z-scores. Hours without a row hold no document (0 when analytics.trend_source_hours says observed, unknown otherwise); analytics.trend_hourly fills them in.';
COMMENT ON COLUMN analytics.trend_series_hourly.source IS 'Source system.';
COMMENT ON COLUMN analytics.trend_series_hourly.dimension IS 'As analytics.trend_series.dimension.';
COMMENT ON COLUMN analytics.trend_series_hourly.key IS 'As analytics.trend_series.key.';
COMMENT ON COLUMN analytics.trend_series_hourly.hour IS 'Start of the hour of created_at (UTC).';
COMMENT ON COLUMN analytics.trend_series_hourly.documents IS 'Published documents in the hour (distinct documents: one mentioning an entity twice counts once).';
COMMENT ON COLUMN analytics.trend_series_hourly.positive IS 'Of them, labelled positive (sentiment_label).';
COMMENT ON COLUMN analytics.trend_series_hourly.negative IS 'Of them, labelled negative.';
COMMENT ON COLUMN analytics.trend_series_hourly.baseline_basis IS 'Which past hours the baseline is made of: same_hour_of_week (the same hour of the previous 4 weeks), same_hour_of_day (previous 7 days, a young series) or none (too little observed history: no verdict).';
COMMENT ON COLUMN analytics.trend_series_hourly.baseline_documents IS 'Median documents of the baseline hours (observed hours only). NULL without a verdict.';
COMMENT ON COLUMN analytics.trend_series_hourly.volume_z IS 'Robust z-score of the volume: (documents - baseline) / spread, the spread being 1.4826 x the MAD of the baseline hours and at least the count noise sqrt(max(baseline, 1) + (0.25 x baseline)^2).';
COMMENT ON COLUMN analytics.trend_series_hourly.volume_ratio IS 'documents / baseline_documents (baseline counted as at least 1).';
COMMENT ON COLUMN analytics.trend_series_hourly.baseline_sentiment IS 'Net sentiment ((positive - negative) / documents) of all documents of the baseline hours. NULL without enough documents.';
COMMENT ON COLUMN analytics.trend_series_hourly.sentiment_z IS 'The hour''s net sentiment minus the baseline''s, over the standard error of that difference (plus 0.08 for hour-to-hour variation).';
COMMENT ON COLUMN analytics.trend_series_hourly.volume_spike IS 'The hour is a volume spike: at least 10 documents, z >= 5 and at least twice the baseline, against the same hour of the previous weeks and (when observed) of the previous 7 days.';
COMMENT ON COLUMN analytics.trend_series_hourly.sentiment_spike IS 'The hour is a sentiment spike (up or down): at least 20 documents, |z| >= 4 and a shift of at least 0.3.';
COMMENT ON COLUMN analytics.trend_series_hourly.computed_at IS 'When the trends DAG last computed the row.';

CREATE TABLE analytics.trend_spikes (
    spike_id        bigserial   PRIMARY KEY,
    source          text        NOT NULL,
    dimension       text        NOT NULL,
    key             text        NOT NULL,
    metric          text        NOT NULL CHECK (metric IN ('volume', 'sentiment')),
    direction       text        NOT NULL CHECK (direction IN ('up', 'down')),
    episode_start   timestamptz NOT NULL,
    episode_end     timestamptz NOT NULL,
    peak_hour       timestamptz NOT NULL,
    peak_value      double precision NOT NULL,
    baseline        double precision,
    peak_z          double precision,
    documents       integer     NOT NULL,
    baseline_basis  text        NOT NULL,
    top_documents   jsonb       NOT NULL DEFAULT '[]',
    detected_at     timestamptz NOT NULL DEFAULT now(),
    alerted_at      timestamptz,
    alert_note      text,
    dag_run_id      text        NOT NULL,
    UNIQUE (source, dimension, key, metric, episode_start),
    CHECK (episode_start <= peak_hour AND peak_hour <= episode_end)
);
CREATE INDEX trend_spikes_start_idx ON analytics.trend_spikes (episode_start);
COMMENT ON TABLE analytics.trend_spikes IS 'Spike episodes: consecutive spiking hours of one series and metric (at most one quiet hour apart) are one episode, alerted once in Slack (route slack_trends).';
COMMENT ON COLUMN analytics.trend_spikes.spike_id IS 'Surrogate key.';
COMMENT ON COLUMN analytics.trend_spikes.source IS 'Source system.';
COMMENT ON COLUMN analytics.trend_spikes.dimension IS 'As analytics.trend_series.dimension.';
COMMENT ON COLUMN analytics.trend_spikes.key IS 'As analytics.trend_series.key.';
COMMENT ON COLUMN analytics.trend_spikes.metric IS 'volume (documents per hour) or sentiment (net sentiment of the hour).';
COMMENT ON COLUMN analytics.trend_spikes.direction IS 'up or down (volume spikes are always up).';
COMMENT ON COLUMN analytics.trend_spikes.episode_start IS 'First spiking hour (UTC).';
COMMENT ON COLUMN analytics.trend_spikes.episode_end IS 'Last spiking hour so far (UTC).';
COMMENT ON COLUMN analytics.trend_spikes.peak_hour IS 'The hour with the largest |z| of the episode.';
COMMENT ON COLUMN analytics.trend_spikes.peak_value IS 'Documents (volume) or net sentiment (sentiment) in the peak hour.';
COMMENT ON COLUMN analytics.trend_spikes.baseline IS 'The baseline of the peak hour (median documents, or baseline net sentiment).';
COMMENT ON COLUMN analytics.trend_spikes.peak_z IS 'The z-score of the peak hour.';
COMMENT ON COLUMN analytics.trend_spikes.documents IS 'Documents in the peak hour (the sample size).';
COMMENT ON COLUMN analytics.trend_spikes.baseline_basis IS 'As analytics.trend_series_hourly.baseline_basis, for the peak hour.';
COMMENT ON COLUMN analytics.trend_spikes.top_documents IS 'Up to 3 documents of the peak hour that drove it (source, external_id, title or text start, url), best engagement first.';
COMMENT ON COLUMN analytics.trend_spikes.detected_at IS 'When the episode was first detected.';
COMMENT ON COLUMN analytics.trend_spikes.alerted_at IS 'When its Slack alert was posted; NULL when not posted (see alert_note).';
COMMENT ON COLUMN analytics.trend_spikes.alert_note IS 'Why no alert was posted: historical (found in a backlog, older than a day before the horizon) or the alert cap per run.';
COMMENT ON COLUMN analytics.trend_spikes.dag_run_id IS 'The trends run that detected it.';

CREATE TABLE analytics.trend_forecasts (
    source       text        NOT NULL,
    dimension    text        NOT NULL,
    key          text        NOT NULL,
    hour         timestamptz NOT NULL,
    origin       timestamptz NOT NULL,
    forecast     double precision NOT NULL,
    lower_80     double precision NOT NULL,
    upper_80     double precision NOT NULL,
    lower_95     double precision NOT NULL,
    upper_95     double precision NOT NULL,
    method       text        NOT NULL,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, dimension, key, hour)
);
COMMENT ON TABLE analytics.trend_forecasts IS 'Documents per hour expected over the 24 hours after the publication horizon, for series with at least two weeks of history and one document per hour on average, with 80 % and 95 % prediction intervals. A later forecast of the same hour replaces the earlier one.';
COMMENT ON COLUMN analytics.trend_forecasts.source IS 'Source system.';
COMMENT ON COLUMN analytics.trend_forecasts.dimension IS 'As analytics.trend_series.dimension.';
COMMENT ON COLUMN analytics.trend_forecasts.key IS 'As analytics.trend_series.key.';
COMMENT ON COLUMN analytics.trend_forecasts.hour IS 'The forecast hour (UTC).';
COMMENT ON COLUMN analytics.trend_forecasts.origin IS 'The horizon the forecast was made from: hours before it were known.';
COMMENT ON COLUMN analytics.trend_forecasts.forecast IS 'Expected documents in the hour.';
COMMENT ON COLUMN analytics.trend_forecasts.lower_80 IS 'Lower bound of the 80 % prediction interval.';
COMMENT ON COLUMN analytics.trend_forecasts.upper_80 IS 'Upper bound of the 80 % prediction interval.';
COMMENT ON COLUMN analytics.trend_forecasts.lower_95 IS 'Lower bound of the 95 % prediction interval.';
COMMENT ON COLUMN analytics.trend_forecasts.upper_95 IS 'Upper bound of the 95 % prediction interval.';
COMMENT ON COLUMN analytics.trend_forecasts.method IS 'seasonal_median_level: median of the same hour of the previous weeks x the last day''s level (docs/trends.md).';
COMMENT ON COLUMN analytics.trend_forecasts.computed_at IS 'When it was computed.';

CREATE TABLE analytics.ticker_entities (
    symbol       text PRIMARY KEY,
    entity_type  text NOT NULL,
    entity       text NOT NULL
);
COMMENT ON TABLE analytics.ticker_entities IS 'Traded symbols of published market bars and the canonical entity documents mention them as (from the enrichment gazetteer: AAPL -> Apple Inc., BTC -> Bitcoin).';
COMMENT ON COLUMN analytics.ticker_entities.symbol IS 'The symbol as in published.market_bars.';
COMMENT ON COLUMN analytics.ticker_entities.entity_type IS 'ticker or crypto.';
COMMENT ON COLUMN analytics.ticker_entities.entity IS 'Canonical entity name (published.entity_mentions.normalized).';

CREATE TABLE ops.trends_state (
    source        text        PRIMARY KEY,
    audits_until  timestamptz NOT NULL,
    hours_until   timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    dag_run_id    text        NOT NULL
);
COMMENT ON TABLE ops.trends_state IS 'The trends DAG''s incremental cursor per source: what it has read of quality.hour_audits and up to which hour analytics.trend_source_hours is filled.';
COMMENT ON COLUMN ops.trends_state.source IS 'Source system.';
COMMENT ON COLUMN ops.trends_state.audits_until IS 'Hours published (quality.hour_audits.published_at) up to this time are folded in; a later published_at (a late row re-audited) makes the next run recompute that hour.';
COMMENT ON COLUMN ops.trends_state.hours_until IS 'analytics.trend_source_hours is filled up to this hour (exclusive): the source''s publication horizon at the last run.';
COMMENT ON COLUMN ops.trends_state.updated_at IS 'When the cursor last moved.';
COMMENT ON COLUMN ops.trends_state.dag_run_id IS 'The trends run that moved it.';
"""


def _view_sql(name: str) -> str:
    """This migration's own copy of a view (``include/sql/versions/0017``), written once and never edited."""
    root = Path(__file__).resolve().parents[2] / "sql" / "versions" / "0017"
    return (root / f"{name}.sql").read_text(encoding="utf-8")


def upgrade() -> None:
    op.execute(TABLES)
    for name in VIEWS:
        op.execute(_view_sql(name))


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW {name}")
    op.execute(
        "DROP TABLE ops.trends_state, analytics.ticker_entities, analytics.trend_forecasts, "
        "analytics.trend_spikes, analytics.trend_series_hourly, analytics.trend_series, "
        "analytics.trend_source_hours"
    )
