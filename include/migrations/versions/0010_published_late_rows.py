"""Write-audit-publish per row: late and edited rows wait for an audit; analysts read published data only.

* ``quality.hour_audits``: per source and hour of event time that held data when audited, when the hour was
  last audited and when it was last published (its last audit that passed, or its release). A row is
  **published** when its hour is before the source's horizon (``quality.publish_state``) **and** the row was
  written (``loaded_at``; ``enriched_at`` for enrichment) at or before its hour's ``published_at``. Rows loaded
  into an hour after its audit (a backfill, a late bar, an edit) wait until the ``quality`` DAG audits that
  hour again; it finds such hours by itself (``quality.publish_state.late_checked_until`` says how far it
  looked, BRIN indexes on the written times keep the look cheap).
* Schema ``published``: the analysts' copy of ``core`` and ``enriched`` as views that show published rows
  only. The ``analyst`` role loses every right on ``core`` and ``enriched``; the analytics views over data
  read ``published``.
* ``analytics.source_health``: each source's circuit, last success, budget left, horizon and held windows with
  their failed checks, for analysts (no raw data, no error texts). ``ops.api_budget_limits`` holds the
  configured quotas the view compares spending with (written by every ``quality`` run).
* ``quality.window_audits.released_at``: when on-call released a window.

Existing data: every hour with data inside an audited window gets its ``hour_audits`` row (published at the
window's audit time when it passed or was released); rows loaded after that time leave the views until the
first ``quality`` run after the migration audits their hours again.

Migrations never import live code: every view is defined here in full.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE quality.hour_audits (
    source        text        NOT NULL,
    hour          timestamptz NOT NULL,
    audited_at    timestamptz NOT NULL,
    published_at  timestamptz,
    dag_run_id    text        NOT NULL,
    PRIMARY KEY (source, hour)
);
COMMENT ON TABLE quality.hour_audits IS 'Write-audit-publish per row: one row per source and hour of event time that held data when it was audited. A row of the hour is published when the hour is before the source''s horizon and the row was written (loaded_at; enriched_at for enrichment) at or before published_at.';
COMMENT ON COLUMN quality.hour_audits.source IS 'Source system.';
COMMENT ON COLUMN quality.hour_audits.hour IS 'Start of the hour of event time (UTC): documents created_at, bars ts, weather issued_at (else valid_at), snapshots snapshot_at.';
COMMENT ON COLUMN quality.hour_audits.audited_at IS 'Rows written up to this time were there when the hour was last audited (the audit start, or the start of the oldest transaction still open then). Rows written later make the quality DAG audit the hour again.';
COMMENT ON COLUMN quality.hour_audits.published_at IS 'The same time for the hour''s last audit that passed, or its release; NULL while the hour never passed. A failed re-audit leaves it as it was: what was published stays published, later rows wait.';
COMMENT ON COLUMN quality.hour_audits.dag_run_id IS 'The quality run of the latest audit or release.';

ALTER TABLE quality.publish_state ADD COLUMN late_checked_until timestamptz;
COMMENT ON COLUMN quality.publish_state.late_checked_until IS 'The quality DAG has looked for rows written after their hour''s audit up to this time; the next run looks at rows written from then on (NULL: from the source''s first audit).';

ALTER TABLE quality.window_audits ADD COLUMN released_at timestamptz;
COMMENT ON COLUMN quality.window_audits.released_at IS 'When on-call released the window (its rows written until then are published).';

CREATE TABLE ops.api_budget_limits (
    source       text        NOT NULL,
    period_s     integer     NOT NULL CHECK (period_s > 0),
    calls        integer     NOT NULL CHECK (calls > 0),
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, period_s)
);
COMMENT ON TABLE ops.api_budget_limits IS 'The API quotas configured per source (include/sources.yaml budgets, else the free plans), as the quality DAG last read them; ops.api_budget counts what was spent.';
COMMENT ON COLUMN ops.api_budget_limits.source IS 'Source system.';
COMMENT ON COLUMN ops.api_budget_limits.period_s IS 'Quota period in seconds (60, 900, 86400 ...).';
COMMENT ON COLUMN ops.api_budget_limits.calls IS 'Calls allowed per period.';
COMMENT ON COLUMN ops.api_budget_limits.recorded_at IS 'When the quality DAG last wrote it.';

CREATE INDEX documents_loaded_brin ON core.documents USING brin (loaded_at) WITH (autosummarize = on);
CREATE INDEX market_bars_loaded_brin ON core.market_bars USING brin (loaded_at) WITH (autosummarize = on);
CREATE INDEX document_features_enriched_brin ON enriched.document_features USING brin (enriched_at)
    WITH (autosummarize = on);
"""

#: Hours with data inside every audited window, published at the window's audit time if it passed or was
#: released (the release time is not known for older releases: the audit time stands in).
BACKFILL = """
INSERT INTO quality.hour_audits (source, hour, audited_at, published_at, dag_run_id)
SELECT w.source, h.hour, max(w.audited_at),
       max(w.audited_at) FILTER (WHERE w.status IN ('passed', 'released')),
       (array_agg(w.dag_run_id ORDER BY w.audited_at DESC))[1]
  FROM (SELECT DISTINCT source, date_bin('1 hour', t, timestamptz '2000-01-01 00:00+00') AS hour
          FROM (SELECT source, created_at AS t FROM core.documents
                UNION ALL SELECT source, ts FROM core.market_bars
                UNION ALL SELECT source, coalesce(issued_at, valid_at) FROM core.weather_observations
                UNION ALL SELECT source, snapshot_at FROM core.github_repo_snapshots
                UNION ALL SELECT source, created_at FROM enriched.document_features) rows) h
  JOIN quality.window_audits w ON w.source = h.source AND h.hour >= w.window_start AND h.hour < w.window_end
 GROUP BY w.source, h.hour;
"""

#: The published part of core and enriched. The gate: the row's hour is before the source's horizon and the
#: row was written at or before its hour's last passing audit (or release).
PUBLISHED = """
CREATE SCHEMA published;
COMMENT ON SCHEMA published IS 'What analysts read of core and enriched: the same rows, published only (audited by the quality DAG after they were written, before the source''s publication horizon). Rows loaded or changed after their hour''s audit appear once the hour is audited again.';

CREATE VIEW published.documents AS
    SELECT d.source, d.external_id, d.kind, d.channel, d.created_at, d.title, d.body, d.url, d.author_pseudonym,
           d.score, d.metrics, d.payload, d.content_sha256, d.raw_response_id, d.dag_run_id, d.first_loaded_at,
           d.loaded_at
      FROM core.documents d
      JOIN quality.publish_state p ON p.source = d.source AND d.created_at < p.published_until
      JOIN quality.hour_audits h
        ON h.source = d.source AND h.hour = date_bin('1 hour', d.created_at, timestamptz '2000-01-01 00:00+00')
       AND d.loaded_at <= h.published_at;
COMMENT ON VIEW published.documents IS 'Published text items of every source (core.documents): posts, comments, tweets, articles, issues and events. Authors are pseudonymised. Filter on source and created_at (partition pruning).';
COMMENT ON COLUMN published.documents.source IS 'Source system: reddit, x, newsapi, github ...';
COMMENT ON COLUMN published.documents.external_id IS 'The item''s id in its source (Reddit fullname such as t3_abc).';
COMMENT ON COLUMN published.documents.kind IS 'post, comment, tweet, article, issue ...';
COMMENT ON COLUMN published.documents.channel IS 'Where the item was published: subreddit, query, feed or repository.';
COMMENT ON COLUMN published.documents.created_at IS 'When the item was created at its source (UTC); its hour is the audited hour.';
COMMENT ON COLUMN published.documents.title IS 'Title (posts, articles, issues); NULL for comments and tweets.';
COMMENT ON COLUMN published.documents.body IS 'Text of the item as published (at most 100 kB).';
COMMENT ON COLUMN published.documents.url IS 'Link to the item, or to what a link post points at.';
COMMENT ON COLUMN published.documents.author_pseudonym IS 'HMAC-SHA256 of source and author handle with the pipeline key; the handle itself is never stored outside raw.';
COMMENT ON COLUMN published.documents.score IS 'Source score (Reddit score, likes ...) when it has one.';
COMMENT ON COLUMN published.documents.metrics IS 'Engagement numbers at load time (comments, ratios ...).';
COMMENT ON COLUMN published.documents.payload IS 'Selected source fields without personal data.';
COMMENT ON COLUMN published.documents.content_sha256 IS 'Hash of the loaded content; it changes when the loader rewrites the row.';
COMMENT ON COLUMN published.documents.raw_response_id IS 'Lineage: the raw page this version came from (raw is for the pipeline only).';
COMMENT ON COLUMN published.documents.dag_run_id IS 'Lineage: the Airflow run that loaded this version.';
COMMENT ON COLUMN published.documents.first_loaded_at IS 'When the row was first loaded.';
COMMENT ON COLUMN published.documents.loaded_at IS 'When this version was loaded (an edit waits for the next audit of its hour).';

CREATE VIEW published.market_bars AS
    SELECT b.source, b.symbol, b.market, b.asset_class, b.interval, b.ts, b.open, b.high, b.low, b.close, b.volume,
           b.content_sha256, b.raw_response_id, b.dag_run_id, b.first_loaded_at, b.loaded_at
      FROM core.market_bars b
      JOIN quality.publish_state p ON p.source = b.source AND b.ts < p.published_until
      JOIN quality.hour_audits h
        ON h.source = b.source AND h.hour = date_bin('1 hour', b.ts, timestamptz '2000-01-01 00:00+00')
       AND b.loaded_at <= h.published_at;
COMMENT ON VIEW published.market_bars IS 'Published price bars (core.market_bars): stocks daily and intraday, crypto daily. Filter on symbol and ts.';
COMMENT ON COLUMN published.market_bars.source IS 'Source system (alphavantage).';
COMMENT ON COLUMN published.market_bars.symbol IS 'Ticker (AAPL) or crypto symbol (BTC).';
COMMENT ON COLUMN published.market_bars.market IS 'Quote currency or exchange market (USD for US stocks, EUR for BTC/EUR).';
COMMENT ON COLUMN published.market_bars.asset_class IS 'stock or crypto.';
COMMENT ON COLUMN published.market_bars.interval IS 'Bar length: 1d, 60min, 15min, 5min, 1min.';
COMMENT ON COLUMN published.market_bars.ts IS 'Bar start in UTC (daily bars: the trading day at 00:00 UTC); its hour is the audited hour.';
COMMENT ON COLUMN published.market_bars.open IS 'Opening price in the market currency.';
COMMENT ON COLUMN published.market_bars.high IS 'Highest price in the bar.';
COMMENT ON COLUMN published.market_bars.low IS 'Lowest price in the bar.';
COMMENT ON COLUMN published.market_bars.close IS 'Closing price.';
COMMENT ON COLUMN published.market_bars.volume IS 'Traded volume (shares or coins).';
COMMENT ON COLUMN published.market_bars.content_sha256 IS 'Hash of the loaded content.';
COMMENT ON COLUMN published.market_bars.raw_response_id IS 'Lineage: the raw page this version came from.';
COMMENT ON COLUMN published.market_bars.dag_run_id IS 'Lineage: the Airflow run that loaded this version.';
COMMENT ON COLUMN published.market_bars.first_loaded_at IS 'When the row was first loaded.';
COMMENT ON COLUMN published.market_bars.loaded_at IS 'When this version was loaded.';

CREATE VIEW published.weather_observations AS
    SELECT w.source, w.city, w.country, w.lat, w.lon, w.kind, w.valid_at, w.issued_at, w.temp_c, w.feels_like_c,
           w.pressure_hpa, w.humidity_pct, w.wind_speed_ms, w.wind_deg, w.clouds_pct, w.rain_mm, w.condition,
           w.description, w.content_sha256, w.raw_response_id, w.dag_run_id, w.first_loaded_at, w.loaded_at
      FROM core.weather_observations w
      JOIN quality.publish_state p ON p.source = w.source AND coalesce(w.issued_at, w.valid_at) < p.published_until
      JOIN quality.hour_audits h
        ON h.source = w.source AND h.hour = date_bin('1 hour', coalesce(w.issued_at, w.valid_at), timestamptz '2000-01-01 00:00+00')
       AND w.loaded_at <= h.published_at;
COMMENT ON VIEW published.weather_observations IS 'Published weather per city (core.weather_observations): current conditions and forecasts, published by the hour they were issued.';
COMMENT ON COLUMN published.weather_observations.source IS 'Source system (openweathermap).';
COMMENT ON COLUMN published.weather_observations.city IS 'City as configured in include/sources.yaml.';
COMMENT ON COLUMN published.weather_observations.country IS 'ISO 3166 country code.';
COMMENT ON COLUMN published.weather_observations.lat IS 'Latitude of the city (degrees).';
COMMENT ON COLUMN published.weather_observations.lon IS 'Longitude of the city (degrees).';
COMMENT ON COLUMN published.weather_observations.kind IS 'current or forecast.';
COMMENT ON COLUMN published.weather_observations.valid_at IS 'The time the values describe (UTC).';
COMMENT ON COLUMN published.weather_observations.issued_at IS 'When the source computed the values (forecasts: fetch time); its hour is the audited hour (valid_at''s when NULL).';
COMMENT ON COLUMN published.weather_observations.temp_c IS 'Air temperature in degrees Celsius.';
COMMENT ON COLUMN published.weather_observations.feels_like_c IS 'Perceived temperature in degrees Celsius.';
COMMENT ON COLUMN published.weather_observations.pressure_hpa IS 'Sea-level air pressure in hPa.';
COMMENT ON COLUMN published.weather_observations.humidity_pct IS 'Relative humidity in percent.';
COMMENT ON COLUMN published.weather_observations.wind_speed_ms IS 'Wind speed in metres per second.';
COMMENT ON COLUMN published.weather_observations.wind_deg IS 'Wind direction in degrees (meteorological).';
COMMENT ON COLUMN published.weather_observations.clouds_pct IS 'Cloud cover in percent.';
COMMENT ON COLUMN published.weather_observations.rain_mm IS 'Rain volume in mm (last hour for current, 3 h for forecasts).';
COMMENT ON COLUMN published.weather_observations.condition IS 'Condition group (Rain, Clear, Clouds ...).';
COMMENT ON COLUMN published.weather_observations.description IS 'Condition in words (light rain ...).';
COMMENT ON COLUMN published.weather_observations.content_sha256 IS 'Hash of the loaded content.';
COMMENT ON COLUMN published.weather_observations.raw_response_id IS 'Lineage: the raw page this version came from.';
COMMENT ON COLUMN published.weather_observations.dag_run_id IS 'Lineage: the Airflow run that loaded this version.';
COMMENT ON COLUMN published.weather_observations.first_loaded_at IS 'When the row was first loaded.';
COMMENT ON COLUMN published.weather_observations.loaded_at IS 'When this version was loaded.';

CREATE VIEW published.github_repo_snapshots AS
    SELECT g.source, g.repo, g.snapshot_at, g.stars, g.forks, g.watchers, g.open_issues, g.size_kb, g.language,
           g.pushed_at, g.content_sha256, g.raw_response_id, g.dag_run_id, g.first_loaded_at, g.loaded_at
      FROM core.github_repo_snapshots g
      JOIN quality.publish_state p ON p.source = g.source AND g.snapshot_at < p.published_until
      JOIN quality.hour_audits h
        ON h.source = g.source AND h.hour = date_bin('1 hour', g.snapshot_at, timestamptz '2000-01-01 00:00+00')
       AND g.loaded_at <= h.published_at;
COMMENT ON VIEW published.github_repo_snapshots IS 'Published repository snapshots (core.github_repo_snapshots): stars, forks, issues per repository over time.';
COMMENT ON COLUMN published.github_repo_snapshots.source IS 'Source system (github).';
COMMENT ON COLUMN published.github_repo_snapshots.repo IS 'owner/name of the repository.';
COMMENT ON COLUMN published.github_repo_snapshots.snapshot_at IS 'The end of the ingest window the snapshot was taken for; its hour is the audited hour.';
COMMENT ON COLUMN published.github_repo_snapshots.stars IS 'Stargazers.';
COMMENT ON COLUMN published.github_repo_snapshots.forks IS 'Forks.';
COMMENT ON COLUMN published.github_repo_snapshots.watchers IS 'Subscribers (watchers).';
COMMENT ON COLUMN published.github_repo_snapshots.open_issues IS 'Open issues and pull requests.';
COMMENT ON COLUMN published.github_repo_snapshots.size_kb IS 'Repository size in kB.';
COMMENT ON COLUMN published.github_repo_snapshots.language IS 'Main language as GitHub reports it.';
COMMENT ON COLUMN published.github_repo_snapshots.pushed_at IS 'Last push to the repository.';
COMMENT ON COLUMN published.github_repo_snapshots.content_sha256 IS 'Hash of the loaded content.';
COMMENT ON COLUMN published.github_repo_snapshots.raw_response_id IS 'Lineage: the raw page this version came from.';
COMMENT ON COLUMN published.github_repo_snapshots.dag_run_id IS 'Lineage: the Airflow run that loaded this version.';
COMMENT ON COLUMN published.github_repo_snapshots.first_loaded_at IS 'When the row was first loaded.';
COMMENT ON COLUMN published.github_repo_snapshots.loaded_at IS 'When this version was loaded.';

CREATE VIEW published.document_features AS
    SELECT f.source, f.external_id, f.created_at, f.enrichment_version, f.language, f.language_confidence,
           f.sentiment_vader, f.sentiment_label, f.sentiment_confidence, f.emotions, f.keywords, f.topic,
           f.topic_confidence, f.sarcasm, f.enriched_at
      FROM enriched.document_features f
      JOIN quality.publish_state p ON p.source = f.source AND f.created_at < p.published_until
      JOIN quality.hour_audits h
        ON h.source = f.source AND h.hour = date_bin('1 hour', f.created_at, timestamptz '2000-01-01 00:00+00')
       AND f.enriched_at <= h.published_at;
COMMENT ON VIEW published.document_features IS 'Published features per document (enriched.document_features): language, sentiment, emotions, keywords, topic. Features written after their hour''s audit wait for the next one.';
COMMENT ON COLUMN published.document_features.source IS 'Source system (with external_id and created_at: the published.documents key).';
COMMENT ON COLUMN published.document_features.external_id IS 'The document''s id in its source.';
COMMENT ON COLUMN published.document_features.created_at IS 'When the document was created at its source (UTC).';
COMMENT ON COLUMN published.document_features.enrichment_version IS 'The enrichment version that computed the row; published.component_versions lists its models and lexicons.';
COMMENT ON COLUMN published.document_features.language IS 'ISO 639-1 language code of title and body.';
COMMENT ON COLUMN published.document_features.language_confidence IS 'Language detector confidence, 0..1.';
COMMENT ON COLUMN published.document_features.sentiment_vader IS 'VADER compound score, -1 (negative) .. 1 (positive).';
COMMENT ON COLUMN published.document_features.sentiment_label IS 'Ensemble label: negative, neutral or positive.';
COMMENT ON COLUMN published.document_features.sentiment_confidence IS 'Ensemble confidence in the label, 0..1.';
COMMENT ON COLUMN published.document_features.emotions IS 'NRC emotion categories and how many words of each the text holds, e.g. {"joy": 2, "fear": 1}.';
COMMENT ON COLUMN published.document_features.keywords IS 'Top keywords, best first.';
COMMENT ON COLUMN published.document_features.topic IS 'Topic from the fixed taxonomy in include/enrich/topics.yaml.';
COMMENT ON COLUMN published.document_features.topic_confidence IS 'Topic classifier confidence, 0..1.';
COMMENT ON COLUMN published.document_features.sarcasm IS 'Reserved: no sarcasm detector works offline (docs/enrichment.md); always NULL.';
COMMENT ON COLUMN published.document_features.enriched_at IS 'When the features were written (they wait for the next audit of their hour after that).';

CREATE VIEW published.entity_mentions AS
    SELECT m.source, m.external_id, m.created_at, m.enrichment_version, m.entity_type, m.text, m.normalized,
           m.start_offset, m.end_offset, m.sentiment
      FROM enriched.entity_mentions m
      JOIN published.document_features f
        ON f.source = m.source AND f.external_id = m.external_id AND f.created_at = m.created_at;
COMMENT ON VIEW published.entity_mentions IS 'Entities mentioned in published documents (enriched.entity_mentions): written with the document''s features and published with them.';
COMMENT ON COLUMN published.entity_mentions.source IS 'Source system.';
COMMENT ON COLUMN published.entity_mentions.external_id IS 'The document''s id in its source.';
COMMENT ON COLUMN published.entity_mentions.created_at IS 'When the document was created (UTC).';
COMMENT ON COLUMN published.entity_mentions.enrichment_version IS 'The enrichment version that found the mention.';
COMMENT ON COLUMN published.entity_mentions.entity_type IS 'person, organisation, place or ticker.';
COMMENT ON COLUMN published.entity_mentions.text IS 'The mention as written.';
COMMENT ON COLUMN published.entity_mentions.normalized IS 'Canonical name of the entity (Apple Inc., AAPL, Paris); group by this.';
COMMENT ON COLUMN published.entity_mentions.start_offset IS 'Start character offset in title + newline + body.';
COMMENT ON COLUMN published.entity_mentions.end_offset IS 'End character offset (exclusive).';
COMMENT ON COLUMN published.entity_mentions.sentiment IS 'VADER compound of the sentences that mention the entity (aspect-level sentiment).';

CREATE VIEW published.places AS
    SELECT pl.source, pl.external_id, pl.created_at, pl.enrichment_version, pl.name, pl.lat, pl.lon, pl.country
      FROM enriched.places pl
      JOIN published.document_features f
        ON f.source = pl.source AND f.external_id = pl.external_id AND f.created_at = pl.created_at;
COMMENT ON VIEW published.places IS 'Places published documents mention (enriched.places), geocoded offline; published with the document''s features.';
COMMENT ON COLUMN published.places.source IS 'Source system.';
COMMENT ON COLUMN published.places.external_id IS 'The document''s id in its source.';
COMMENT ON COLUMN published.places.created_at IS 'When the document was created (UTC).';
COMMENT ON COLUMN published.places.enrichment_version IS 'The enrichment version that found the place.';
COMMENT ON COLUMN published.places.name IS 'Canonical place name.';
COMMENT ON COLUMN published.places.lat IS 'Latitude (degrees).';
COMMENT ON COLUMN published.places.lon IS 'Longitude (degrees).';
COMMENT ON COLUMN published.places.country IS 'ISO 3166-1 alpha-2 country code.';

CREATE VIEW published.duplicate_clusters AS
    SELECT c.source, c.external_id, c.created_at, c.cluster_id, c.method, c.joined_at
      FROM enriched.duplicate_clusters c
      JOIN published.documents d ON d.source = c.source AND d.external_id = c.external_id AND d.created_at = c.created_at;
COMMENT ON VIEW published.duplicate_clusters IS 'Published documents that belong to a cluster of the same story across sources (enriched.duplicate_clusters); a member shows while its document is published.';
COMMENT ON COLUMN published.duplicate_clusters.source IS 'Source system.';
COMMENT ON COLUMN published.duplicate_clusters.external_id IS 'The document''s id in its source.';
COMMENT ON COLUMN published.duplicate_clusters.created_at IS 'When the document was created (UTC).';
COMMENT ON COLUMN published.duplicate_clusters.cluster_id IS 'The cluster; stable while the cluster only grows.';
COMMENT ON COLUMN published.duplicate_clusters.method IS 'How the document joined: exact_text, canonical_url, near_duplicate (or seed: the first member).';
COMMENT ON COLUMN published.duplicate_clusters.joined_at IS 'When it joined.';

CREATE VIEW published.component_versions AS
    SELECT enrichment_version, component, version, recorded_at FROM enriched.component_versions;
COMMENT ON VIEW published.component_versions IS 'Every model and lexicon an enrichment version used, with its own version or checksum (enriched.component_versions; not gated: it describes code, not data).';
COMMENT ON COLUMN published.component_versions.enrichment_version IS 'The enrichment version.';
COMMENT ON COLUMN published.component_versions.component IS 'Which part: language, sentiment_lexicon, sentiment_model, emotion_lexicon ...';
COMMENT ON COLUMN published.component_versions.version IS 'Package version, model file checksum or lexicon checksum.';
COMMENT ON COLUMN published.component_versions.recorded_at IS 'When the version was first used.';
"""

#: The analyst views over data, now over the published relations (same columns as 0008 defined them).
ANALYTICS = """
CREATE VIEW analytics.daily_volume AS
    SELECT (d.created_at AT TIME ZONE 'UTC')::date AS day, d.source, 'core.documents'::text AS dataset, d.kind,
           count(*) AS items, max(d.loaded_at) AS last_loaded_at
      FROM published.documents d
     GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT (b.ts AT TIME ZONE 'UTC')::date, b.source, 'core.market_bars', b.interval, count(*), max(b.loaded_at)
      FROM published.market_bars b
     GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT (w.valid_at AT TIME ZONE 'UTC')::date, w.source, 'core.weather_observations', w.kind, count(*),
           max(w.loaded_at)
      FROM published.weather_observations w
     GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT (g.snapshot_at AT TIME ZONE 'UTC')::date, g.source, 'core.github_repo_snapshots', 'snapshot', count(*),
           max(g.loaded_at)
      FROM published.github_repo_snapshots g
     GROUP BY 1, 2, 3, 4;
COMMENT ON VIEW analytics.daily_volume IS 'Published rows per UTC day of event time, source, table and kind, over every core table (the published schema has the rows; analytics.publication says up to when). Filter on day and source.';
COMMENT ON COLUMN analytics.daily_volume.day IS 'UTC day of the event time (documents: created_at; bars: ts; weather: valid_at; snapshots: snapshot_at). Weather rows are published by the time they were issued (a forecast for tomorrow is published today).';
COMMENT ON COLUMN analytics.daily_volume.source IS 'Source system.';
COMMENT ON COLUMN analytics.daily_volume.dataset IS 'The core table the rows are in.';
COMMENT ON COLUMN analytics.daily_volume.kind IS 'Documents: post, comment, tweet, article ...; bars: interval; weather: current or forecast; snapshots: snapshot.';
COMMENT ON COLUMN analytics.daily_volume.items IS 'Number of rows.';
COMMENT ON COLUMN analytics.daily_volume.last_loaded_at IS 'When the newest of those rows last changed.';

CREATE VIEW analytics.daily_sentiment AS
    SELECT (f.created_at AT TIME ZONE 'UTC')::date AS day, f.source, coalesce(f.topic, 'other') AS topic,
           count(*) AS documents,
           avg(f.sentiment_vader)::real AS avg_vader,
           count(*) FILTER (WHERE f.sentiment_label = 'positive') AS positive,
           count(*) FILTER (WHERE f.sentiment_label = 'neutral') AS neutral,
           count(*) FILTER (WHERE f.sentiment_label = 'negative') AS negative
      FROM published.document_features f
     GROUP BY 1, 2, 3;
COMMENT ON VIEW analytics.daily_sentiment IS 'Sentiment of published documents per UTC day (of created_at), source and topic.';
COMMENT ON COLUMN analytics.daily_sentiment.day IS 'UTC day the documents were created.';
COMMENT ON COLUMN analytics.daily_sentiment.source IS 'Source system.';
COMMENT ON COLUMN analytics.daily_sentiment.topic IS 'Topic from include/enrich/topics.yaml (other when none).';
COMMENT ON COLUMN analytics.daily_sentiment.documents IS 'Enriched documents.';
COMMENT ON COLUMN analytics.daily_sentiment.avg_vader IS 'Mean VADER compound score, -1..1.';
COMMENT ON COLUMN analytics.daily_sentiment.positive IS 'Documents the ensemble labels positive.';
COMMENT ON COLUMN analytics.daily_sentiment.neutral IS 'Documents labelled neutral.';
COMMENT ON COLUMN analytics.daily_sentiment.negative IS 'Documents labelled negative.';

CREATE VIEW analytics.entity_mentions_daily AS
    SELECT (m.created_at AT TIME ZONE 'UTC')::date AS day, m.entity_type, m.normalized AS entity, m.source,
           count(*) AS mentions, count(DISTINCT (m.external_id)) AS documents, avg(m.sentiment)::real AS avg_sentiment
      FROM published.entity_mentions m
     GROUP BY 1, 2, 3, 4;
COMMENT ON VIEW analytics.entity_mentions_daily IS 'Mentions of each entity in published documents per UTC day and source, with the mean sentiment of the sentences mentioning it.';
COMMENT ON COLUMN analytics.entity_mentions_daily.day IS 'UTC day the documents were created.';
COMMENT ON COLUMN analytics.entity_mentions_daily.entity_type IS 'person, organisation, place or ticker.';
COMMENT ON COLUMN analytics.entity_mentions_daily.entity IS 'Canonical entity name.';
COMMENT ON COLUMN analytics.entity_mentions_daily.source IS 'Source system.';
COMMENT ON COLUMN analytics.entity_mentions_daily.mentions IS 'Mentions.';
COMMENT ON COLUMN analytics.entity_mentions_daily.documents IS 'Documents mentioning it.';
COMMENT ON COLUMN analytics.entity_mentions_daily.avg_sentiment IS 'Mean VADER compound of the mentioning sentences.';

CREATE VIEW analytics.duplicate_clusters AS
    SELECT c.cluster_id, count(*) AS documents, count(DISTINCT c.source) AS sources,
           array_agg(DISTINCT c.source ORDER BY c.source) AS source_list,
           array_agg(DISTINCT c.method ORDER BY c.method) AS methods,
           min(c.created_at) AS first_created_at, max(c.created_at) AS last_created_at,
           (array_agg(d.title ORDER BY c.created_at) FILTER (WHERE d.title IS NOT NULL))[1] AS sample_title
      FROM enriched.duplicate_clusters c
      JOIN published.documents d
        ON d.source = c.source AND d.external_id = c.external_id AND d.created_at = c.created_at
     GROUP BY c.cluster_id;
COMMENT ON VIEW analytics.duplicate_clusters IS 'Clusters of published documents that are the same story (exact text, same canonical URL or near-duplicate text), across sources.';
COMMENT ON COLUMN analytics.duplicate_clusters.cluster_id IS 'The cluster (published.duplicate_clusters lists its published members).';
COMMENT ON COLUMN analytics.duplicate_clusters.documents IS 'Published documents in the cluster.';
COMMENT ON COLUMN analytics.duplicate_clusters.sources IS 'Distinct sources in it.';
COMMENT ON COLUMN analytics.duplicate_clusters.source_list IS 'Those sources.';
COMMENT ON COLUMN analytics.duplicate_clusters.methods IS 'How members joined: exact_text, canonical_url, near_duplicate, seed.';
COMMENT ON COLUMN analytics.duplicate_clusters.first_created_at IS 'Creation time of the earliest member.';
COMMENT ON COLUMN analytics.duplicate_clusters.last_created_at IS 'Creation time of the latest member.';
COMMENT ON COLUMN analytics.duplicate_clusters.sample_title IS 'Title of the earliest member that has one.';

CREATE VIEW analytics.duplicates_per_source AS
    SELECT f.source, count(*) AS documents,
           count(c.cluster_id) AS in_clusters,
           round(100.0 * count(c.cluster_id) / nullif(count(*), 0), 2) AS pct_in_clusters
      FROM enriched.document_fingerprints f
      JOIN published.documents d ON d.source = f.source AND d.external_id = f.external_id AND d.created_at = f.created_at
      LEFT JOIN enriched.duplicate_clusters c
        ON c.source = f.source AND c.external_id = f.external_id AND c.created_at = f.created_at
     GROUP BY f.source;
COMMENT ON VIEW analytics.duplicates_per_source IS 'Per source: published documents checked for duplicates and how many belong to a cluster.';
COMMENT ON COLUMN analytics.duplicates_per_source.source IS 'Source system.';
COMMENT ON COLUMN analytics.duplicates_per_source.documents IS 'Documents checked for duplicates.';
COMMENT ON COLUMN analytics.duplicates_per_source.in_clusters IS 'Of those, documents in a duplicate cluster.';
COMMENT ON COLUMN analytics.duplicates_per_source.pct_in_clusters IS 'Share in percent.';

CREATE VIEW analytics.source_health AS
    WITH sources AS (
        SELECT source FROM quality.source_health
        UNION SELECT source FROM quality.publish_state
        UNION SELECT source FROM quality.window_audits
        UNION SELECT source FROM ops.ingest_runs
        UNION SELECT source FROM ops.api_budget_limits
    ), budget AS (
        SELECT DISTINCT ON (l.source) l.source, l.period_s, l.calls,
               greatest(l.calls - coalesce(b.used, 0), 0) AS calls_left,
               cur.bucket_start + make_interval(secs => l.period_s) AS resets_at
          FROM ops.api_budget_limits l
         CROSS JOIN LATERAL (SELECT to_timestamp(floor(extract(epoch FROM now()) / l.period_s) * l.period_s)
                                    AS bucket_start) cur
          LEFT JOIN ops.api_budget b
            ON b.source = l.source AND b.period_s = l.period_s AND b.bucket_start = cur.bucket_start
         ORDER BY l.source, greatest(l.calls - coalesce(b.used, 0), 0), l.period_s DESC
    ), runs AS (
        SELECT source, max(loaded_at) AS last_loaded_at, max(window_end) FILTER (WHERE loaded_at IS NOT NULL) AS loaded_until
          FROM ops.ingest_runs GROUP BY source
    ), audits AS (
        SELECT source, max(audited_at) AS last_audit_at,
               count(*) FILTER (WHERE status = 'held') AS held_windows,
               coalesce(jsonb_agg(jsonb_build_object('window_start', window_start, 'window_end', window_end,
                                                     'failed_checks', to_jsonb(failed_checks), 'audited_at', audited_at)
                                  ORDER BY window_start) FILTER (WHERE status = 'held'), '[]'::jsonb) AS held
          FROM quality.window_audits GROUP BY source
    )
    SELECT s.source,
           coalesce(h.state, 'closed') AS circuit_state,
           coalesce(h.consecutive_failures, 0) AS consecutive_failures,
           h.opened_at AS circuit_opened_at,
           h.last_failure_at,
           h.last_success_at,
           r.last_loaded_at,
           r.loaded_until,
           b.calls_left AS budget_calls_left,
           b.calls AS budget_calls,
           b.period_s AS budget_period_s,
           b.resets_at AS budget_resets_at,
           p.published_until,
           a.last_audit_at,
           coalesce(a.held_windows, 0) AS held_windows,
           coalesce(a.held, '[]'::jsonb) AS held_window_checks
      FROM sources s
      LEFT JOIN quality.source_health h ON h.source = s.source
      LEFT JOIN budget b ON b.source = s.source
      LEFT JOIN runs r ON r.source = s.source
      LEFT JOIN quality.publish_state p ON p.source = s.source
      LEFT JOIN audits a ON a.source = s.source;
COMMENT ON VIEW analytics.source_health IS 'Each source at a glance: circuit breaker, last success, API budget left now, publication horizon and the windows held by failed checks. No raw data and no error texts (on-call reads those in quality.source_health and the task logs).';
COMMENT ON COLUMN analytics.source_health.source IS 'Source system.';
COMMENT ON COLUMN analytics.source_health.circuit_state IS 'closed (normal), open (runs skip the API after repeated failures), half_open (the next run is a trial).';
COMMENT ON COLUMN analytics.source_health.consecutive_failures IS 'Failed runs in a row.';
COMMENT ON COLUMN analytics.source_health.circuit_opened_at IS 'When the circuit last opened.';
COMMENT ON COLUMN analytics.source_health.last_failure_at IS 'When the last failed run happened.';
COMMENT ON COLUMN analytics.source_health.last_success_at IS 'When the last successful run finished.';
COMMENT ON COLUMN analytics.source_health.last_loaded_at IS 'When the last ingest run loaded its window.';
COMMENT ON COLUMN analytics.source_health.loaded_until IS 'End of the latest window an ingest run loaded (UTC).';
COMMENT ON COLUMN analytics.source_health.budget_calls_left IS 'API calls left now in the tightest quota period (configured limit minus calls spent in the current period).';
COMMENT ON COLUMN analytics.source_health.budget_calls IS 'Calls allowed in that period.';
COMMENT ON COLUMN analytics.source_health.budget_period_s IS 'That period in seconds.';
COMMENT ON COLUMN analytics.source_health.budget_resets_at IS 'When that period ends and the calls are available again.';
COMMENT ON COLUMN analytics.source_health.published_until IS 'Publication horizon: data before this time (UTC) that passed its audit is in the published schema and the analytics views.';
COMMENT ON COLUMN analytics.source_health.last_audit_at IS 'When the quality DAG last audited the source.';
COMMENT ON COLUMN analytics.source_health.held_windows IS 'Audited windows whose checks failed and that nobody released (not published).';
COMMENT ON COLUMN analytics.source_health.held_window_checks IS 'Those windows as JSON, oldest first: window_start, window_end, failed_checks (names in include/quality/checks.yaml), audited_at.';
"""

GRANTS = """
REVOKE SELECT ON ALL TABLES IN SCHEMA core, enriched FROM analyst;
ALTER DEFAULT PRIVILEGES IN SCHEMA core, enriched REVOKE SELECT ON TABLES FROM analyst;
REVOKE USAGE ON SCHEMA core, enriched FROM analyst;
GRANT USAGE ON SCHEMA published TO analyst;
GRANT SELECT ON ALL TABLES IN SCHEMA published, analytics TO analyst;
ALTER DEFAULT PRIVILEGES IN SCHEMA published GRANT SELECT ON TABLES TO analyst;
"""

REPLACED_VIEWS = (
    "analytics.daily_volume",
    "analytics.daily_sentiment",
    "analytics.entity_mentions_daily",
    "analytics.duplicate_clusters",
    "analytics.duplicates_per_source",
)

PUBLISHED_VIEWS = (
    "published.duplicate_clusters",
    "published.places",
    "published.entity_mentions",
    "published.document_features",
    "published.github_repo_snapshots",
    "published.weather_observations",
    "published.market_bars",
    "published.documents",
    "published.component_versions",
)


def upgrade() -> None:
    op.execute(TABLES)
    op.execute(BACKFILL)
    op.execute("DROP VIEW " + ", ".join(REPLACED_VIEWS))
    op.execute(PUBLISHED)
    op.execute(ANALYTICS)
    op.execute(GRANTS)


def _frozen_views(name: str) -> str:
    """The view definitions of an earlier migration (its module text is history: it never changes)."""
    path = next((Path(__file__).parent).glob(f"{name}_*.py"))
    spec = importlib.util.spec_from_file_location(f"pulse_migration_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.VIEWS)


def downgrade() -> None:
    op.execute(
        """
        ALTER DEFAULT PRIVILEGES IN SCHEMA published REVOKE SELECT ON TABLES FROM analyst;
        GRANT USAGE ON SCHEMA core, enriched TO analyst;
        GRANT SELECT ON ALL TABLES IN SCHEMA core, enriched TO analyst;
        ALTER DEFAULT PRIVILEGES IN SCHEMA core, enriched GRANT SELECT ON TABLES TO analyst;
        """
    )
    # 0008 defined these with the horizon-only gate; its VIEWS text recreates them with the views it also
    # defined (coverage_windows, coverage_daily, publication), which are dropped here for that.
    op.execute(
        "DROP VIEW analytics.source_health, "
        + ", ".join(REPLACED_VIEWS)
        + ", analytics.coverage_windows, analytics.coverage_daily, analytics.publication"
    )
    op.execute("DROP VIEW " + ", ".join(PUBLISHED_VIEWS))
    op.execute("DROP SCHEMA published")
    op.execute(_frozen_views("0008"))
    op.execute(
        """
        DROP INDEX core.documents_loaded_brin, core.market_bars_loaded_brin,
                   enriched.document_features_enriched_brin;
        DROP TABLE ops.api_budget_limits, quality.hour_audits;
        ALTER TABLE quality.window_audits DROP COLUMN released_at;
        ALTER TABLE quality.publish_state DROP COLUMN late_checked_until;
        """
    )
