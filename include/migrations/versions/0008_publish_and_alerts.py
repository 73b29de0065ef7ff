"""Write-audit-publish for the analyst views, and the alert log behind Slack deduplication.

* ``quality.window_audits``: one row per source and audited window (hourly; the first audit of a source takes
  its whole backlog as one window) with the checks run and failed. ``quality.publish_state`` holds each
  source's publication horizon: it only moves forward, and only across windows whose audit passed (or that
  on-call released).
* The analyst views over data (daily_volume, daily_sentiment, entity_mentions_daily, duplicate_clusters,
  duplicates_per_source) show rows older than their source's horizon only. ``analytics.publication`` says how
  far each source is published and which windows are held; ``analytics.coverage_windows`` and
  ``analytics.coverage_daily`` flag held windows.
* ``ops.alert_log`` (one row per alert key: when last posted, repeats since) and ``ops.alert_events`` (every
  alert raised, posted or not) back the deduplication window and the daily digest.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE quality.window_audits (
    source         text        NOT NULL,
    window_start   timestamptz NOT NULL,
    window_end     timestamptz NOT NULL CHECK (window_end > window_start),
    status         text        NOT NULL CHECK (status IN ('passed', 'held', 'released')),
    checks         integer     NOT NULL,
    failed         integer     NOT NULL,
    failed_checks  text[]      NOT NULL DEFAULT '{}',
    dag_run_id     text        NOT NULL,
    audited_at     timestamptz NOT NULL DEFAULT now(),
    released_by    text,
    release_reason text,
    PRIMARY KEY (source, window_start)
);
COMMENT ON TABLE quality.window_audits IS 'Write-audit-publish: the verdict of the quality checks on each source and data window. Analyst views only advance past windows that passed or were released.';
COMMENT ON COLUMN quality.window_audits.source IS 'Source system.';
COMMENT ON COLUMN quality.window_audits.window_start IS 'Window start (inclusive, UTC) of the data time (documents: created_at; bars: ts; weather: issued_at, else valid_at; snapshots: snapshot_at).';
COMMENT ON COLUMN quality.window_audits.window_end IS 'Window end (exclusive, UTC). Hourly, except a source''s first audit, which covers its backlog.';
COMMENT ON COLUMN quality.window_audits.status IS 'passed: every window check passed; held: one failed or could not run (the window blocks publication); released: held, then released by on-call.';
COMMENT ON COLUMN quality.window_audits.checks IS 'Window checks evaluated.';
COMMENT ON COLUMN quality.window_audits.failed IS 'Of those, checks that failed or could not run.';
COMMENT ON COLUMN quality.window_audits.failed_checks IS 'Names of the failed checks (include/quality/checks.yaml); quality.check_results has their values.';
COMMENT ON COLUMN quality.window_audits.dag_run_id IS 'The quality run of the latest audit (a re-audit replaces the row).';
COMMENT ON COLUMN quality.window_audits.audited_at IS 'When the latest audit ran.';
COMMENT ON COLUMN quality.window_audits.released_by IS 'Who released a held window (quality DAG param released_by).';
COMMENT ON COLUMN quality.window_audits.release_reason IS 'Why it was released.';

CREATE TABLE quality.publish_state (
    source          text        PRIMARY KEY,
    published_until timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    dag_run_id      text        NOT NULL
);
COMMENT ON TABLE quality.publish_state IS 'Publication horizon per source: analyst views show data older than published_until. It only moves forward, across audited windows that passed.';
COMMENT ON COLUMN quality.publish_state.source IS 'Source system.';
COMMENT ON COLUMN quality.publish_state.published_until IS 'Data with an event time before this is published (UTC).';
COMMENT ON COLUMN quality.publish_state.updated_at IS 'When the horizon last moved.';
COMMENT ON COLUMN quality.publish_state.dag_run_id IS 'The quality run that moved it.';

CREATE TABLE ops.alert_log (
    dedup_key       text        PRIMARY KEY,
    route           text        NOT NULL,
    kind            text        NOT NULL,
    title           text        NOT NULL,
    first_seen      timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz NOT NULL DEFAULT now(),
    last_posted_at  timestamptz,
    occurrences     bigint      NOT NULL DEFAULT 0,
    suppressed      integer     NOT NULL DEFAULT 0
);
COMMENT ON TABLE ops.alert_log IS 'One row per distinct alert (same kind, DAG, task and error shape): when it was last posted to Slack and how often it repeated since.';
COMMENT ON COLUMN ops.alert_log.dedup_key IS 'What makes two alerts the same, e.g. task_failed|ingest_reddit|extract|PageFetchError: HTTP <n>.';
COMMENT ON COLUMN ops.alert_log.route IS 'failures, quality or trends: the Slack connection it goes to.';
COMMENT ON COLUMN ops.alert_log.kind IS 'task_failed, dag_failed, deadline_missed, quality_failed, breaker_open, default_partition ...';
COMMENT ON COLUMN ops.alert_log.title IS 'Headline of the latest occurrence.';
COMMENT ON COLUMN ops.alert_log.first_seen IS 'First occurrence.';
COMMENT ON COLUMN ops.alert_log.last_seen IS 'Latest occurrence.';
COMMENT ON COLUMN ops.alert_log.last_posted_at IS 'When it was last posted; repeats within the dedup window after that are counted, not posted.';
COMMENT ON COLUMN ops.alert_log.occurrences IS 'Occurrences in total.';
COMMENT ON COLUMN ops.alert_log.suppressed IS 'Repeats not posted since the last post (the next post reports them).';

CREATE TABLE ops.alert_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    route        text        NOT NULL,
    kind         text        NOT NULL,
    dedup_key    text        NOT NULL,
    dag_id       text,
    run_id       text,
    title        text        NOT NULL,
    posted       boolean     NOT NULL,
    note         text
);
CREATE INDEX alert_events_time_idx ON ops.alert_events (occurred_at);
CREATE INDEX alert_events_run_idx ON ops.alert_events (dag_id, run_id);
COMMENT ON TABLE ops.alert_events IS 'Every alert raised, posted or held back by deduplication; the daily digest reads it.';
COMMENT ON COLUMN ops.alert_events.id IS 'Surrogate key.';
COMMENT ON COLUMN ops.alert_events.occurred_at IS 'When the alert was raised.';
COMMENT ON COLUMN ops.alert_events.route IS 'failures, quality or trends.';
COMMENT ON COLUMN ops.alert_events.kind IS 'task_failed, dag_failed, deadline_missed, quality_failed, breaker_open ...';
COMMENT ON COLUMN ops.alert_events.dedup_key IS 'ops.alert_log key.';
COMMENT ON COLUMN ops.alert_events.dag_id IS 'The DAG it is about.';
COMMENT ON COLUMN ops.alert_events.run_id IS 'The run it is about.';
COMMENT ON COLUMN ops.alert_events.title IS 'Headline.';
COMMENT ON COLUMN ops.alert_events.posted IS 'False when deduplication (or a rule such as "the run already failed") held it back.';
COMMENT ON COLUMN ops.alert_events.note IS 'Why it was held back, or that the dedup store was unreachable.';
"""

#: The published part of each core table: rows whose event time is before their source's horizon.
VIEWS = """
CREATE VIEW analytics.daily_volume AS
    SELECT (d.created_at AT TIME ZONE 'UTC')::date AS day, d.source, 'core.documents'::text AS dataset, d.kind,
           count(*) AS items, max(d.loaded_at) AS last_loaded_at
      FROM core.documents d JOIN quality.publish_state p ON p.source = d.source AND d.created_at < p.published_until
     GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT (b.ts AT TIME ZONE 'UTC')::date, b.source, 'core.market_bars', b.interval, count(*), max(b.loaded_at)
      FROM core.market_bars b JOIN quality.publish_state p ON p.source = b.source AND b.ts < p.published_until
     GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT (w.valid_at AT TIME ZONE 'UTC')::date, w.source, 'core.weather_observations', w.kind, count(*),
           max(w.loaded_at)
      FROM core.weather_observations w
      JOIN quality.publish_state p ON p.source = w.source AND coalesce(w.issued_at, w.valid_at) < p.published_until
     GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT (g.snapshot_at AT TIME ZONE 'UTC')::date, g.source, 'core.github_repo_snapshots', 'snapshot', count(*),
           max(g.loaded_at)
      FROM core.github_repo_snapshots g
      JOIN quality.publish_state p ON p.source = g.source AND g.snapshot_at < p.published_until
     GROUP BY 1, 2, 3, 4;
COMMENT ON VIEW analytics.daily_volume IS 'Published rows per UTC day of event time, source, table and kind, over every core table (analytics.publication says up to when). Filter on day and source.';
COMMENT ON COLUMN analytics.daily_volume.day IS 'UTC day of the event time (documents: created_at; bars: ts; weather: valid_at; snapshots: snapshot_at). Weather rows are published by the time they were issued (a forecast for tomorrow is published today).';
COMMENT ON COLUMN analytics.daily_volume.source IS 'Source system.';
COMMENT ON COLUMN analytics.daily_volume.dataset IS 'The core table the rows are in.';
COMMENT ON COLUMN analytics.daily_volume.kind IS 'Documents: post, comment, tweet, article ...; bars: interval; weather: current or forecast; snapshots: snapshot.';
COMMENT ON COLUMN analytics.daily_volume.items IS 'Number of rows.';
COMMENT ON COLUMN analytics.daily_volume.last_loaded_at IS 'When the newest of those rows last changed.';

CREATE VIEW analytics.coverage_windows AS
    SELECT c.source, c.stream, c.window_start, c.window_end, c.status, c.reason, c.dag_run_id, c.recorded_at,
           CASE WHEN a.held > 0 THEN 'held'
                WHEN c.window_end <= p.published_until THEN 'published'
                ELSE 'pending' END AS audit_status,
           a.failed_checks
      FROM ops.coverage c
      LEFT JOIN quality.publish_state p ON p.source = c.source
      LEFT JOIN LATERAL (
            SELECT count(*) AS held, array_agg(DISTINCT f) FILTER (WHERE f IS NOT NULL) AS failed_checks
              FROM quality.window_audits w LEFT JOIN LATERAL unnest(w.failed_checks) f ON true
             WHERE w.source = c.source AND w.status = 'held'
               AND w.window_start < c.window_end AND w.window_end > c.window_start) a ON true;
COMMENT ON VIEW analytics.coverage_windows IS 'Every window each source stream was ingested for, every gap with its reason, and whether its data is published or held by failed quality checks. A window missing here was never run.';
COMMENT ON COLUMN analytics.coverage_windows.source IS 'Source system.';
COMMENT ON COLUMN analytics.coverage_windows.stream IS 'What was paged through, e.g. new:python or search:bitcoin.';
COMMENT ON COLUMN analytics.coverage_windows.window_start IS 'Window start (inclusive, UTC).';
COMMENT ON COLUMN analytics.coverage_windows.window_end IS 'Window end (exclusive, UTC).';
COMMENT ON COLUMN analytics.coverage_windows.status IS 'ingested: pages were fetched for the window; gap: part or all of it could not be.';
COMMENT ON COLUMN analytics.coverage_windows.reason IS 'For gaps: beyond_reach (the API serves nothing that old), budget_exhausted, listing_cap, not_yet_available.';
COMMENT ON COLUMN analytics.coverage_windows.dag_run_id IS 'The Airflow run that recorded it.';
COMMENT ON COLUMN analytics.coverage_windows.recorded_at IS 'When it was recorded.';
COMMENT ON COLUMN analytics.coverage_windows.audit_status IS 'held: an audited hour inside it failed its quality checks (not published); published: before the source''s publication horizon; pending: not audited yet.';
COMMENT ON COLUMN analytics.coverage_windows.failed_checks IS 'For held windows: the checks that failed (quality.check_results has the values).';

CREATE VIEW analytics.coverage_daily AS
    SELECT g.*,
           (SELECT range_agg(tstzrange(w.window_start, w.window_end))
              FROM quality.window_audits w
             WHERE w.source = g.source AND w.status = 'held'
               AND w.window_start < (g.day + 1)::timestamp AT TIME ZONE 'UTC'
               AND w.window_end > g.day::timestamp AT TIME ZONE 'UTC') AS held_ranges
      FROM (SELECT source, (window_start AT TIME ZONE 'UTC')::date AS day,
                   count(DISTINCT stream) AS streams,
                   count(*) FILTER (WHERE status = 'ingested') AS windows_ingested,
                   range_agg(tstzrange(window_start, window_end)) FILTER (WHERE status = 'ingested') AS ingested,
                   count(*) FILTER (WHERE status = 'gap') AS gaps,
                   range_agg(tstzrange(window_start, window_end)) FILTER (WHERE status = 'gap') AS gap_ranges,
                   array_agg(DISTINCT reason) FILTER (WHERE status = 'gap') AS gap_reasons
              FROM ops.coverage
             GROUP BY 1, 2) g;
COMMENT ON VIEW analytics.coverage_daily IS 'Per source and UTC day (of window start): which windows were ingested, which are gaps and why, and which hours are held back by failed quality checks.';
COMMENT ON COLUMN analytics.coverage_daily.source IS 'Source system.';
COMMENT ON COLUMN analytics.coverage_daily.day IS 'UTC day of the window start.';
COMMENT ON COLUMN analytics.coverage_daily.streams IS 'Distinct streams with any record that day.';
COMMENT ON COLUMN analytics.coverage_daily.windows_ingested IS 'Stream windows ingested.';
COMMENT ON COLUMN analytics.coverage_daily.ingested IS 'The time ranges ingested by at least one stream, merged.';
COMMENT ON COLUMN analytics.coverage_daily.gaps IS 'Stream windows (or parts) that could not be ingested.';
COMMENT ON COLUMN analytics.coverage_daily.gap_ranges IS 'The time ranges of those gaps, merged.';
COMMENT ON COLUMN analytics.coverage_daily.gap_reasons IS 'Why: beyond_reach, budget_exhausted, listing_cap, not_yet_available.';
COMMENT ON COLUMN analytics.coverage_daily.held_ranges IS 'Audited hours of that day whose quality checks failed: not published until fixed and re-audited, or released.';

CREATE VIEW analytics.publication AS
    SELECT s.source, p.published_until, p.updated_at,
           (SELECT count(*) FROM quality.window_audits w WHERE w.source = s.source AND w.status = 'held') AS held_windows,
           (SELECT min(w.window_start) FROM quality.window_audits w
             WHERE w.source = s.source AND w.status = 'held') AS first_held_window,
           (SELECT max(w.audited_at) FROM quality.window_audits w WHERE w.source = s.source) AS last_audit_at
      FROM (SELECT source FROM quality.publish_state UNION SELECT source FROM quality.window_audits) s
      LEFT JOIN quality.publish_state p ON p.source = s.source;
COMMENT ON VIEW analytics.publication IS 'How far each source is published: analyst views and exports hold data with an event time before published_until, and stop at the first held window.';
COMMENT ON COLUMN analytics.publication.source IS 'Source system.';
COMMENT ON COLUMN analytics.publication.published_until IS 'Data before this time (UTC) has passed its quality checks and is in the views.';
COMMENT ON COLUMN analytics.publication.updated_at IS 'When the horizon last moved.';
COMMENT ON COLUMN analytics.publication.held_windows IS 'Audited windows whose checks failed and that nobody released.';
COMMENT ON COLUMN analytics.publication.first_held_window IS 'Start of the earliest held window (the horizon cannot pass it).';
COMMENT ON COLUMN analytics.publication.last_audit_at IS 'When the latest audit of the source ran.';

CREATE VIEW analytics.daily_sentiment AS
    SELECT (f.created_at AT TIME ZONE 'UTC')::date AS day, f.source, coalesce(f.topic, 'other') AS topic,
           count(*) AS documents,
           avg(f.sentiment_vader)::real AS avg_vader,
           count(*) FILTER (WHERE f.sentiment_label = 'positive') AS positive,
           count(*) FILTER (WHERE f.sentiment_label = 'neutral') AS neutral,
           count(*) FILTER (WHERE f.sentiment_label = 'negative') AS negative
      FROM enriched.document_features f
      JOIN quality.publish_state p ON p.source = f.source AND f.created_at < p.published_until
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
      FROM enriched.entity_mentions m
      JOIN quality.publish_state p ON p.source = m.source AND m.created_at < p.published_until
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
      JOIN quality.publish_state p ON p.source = c.source AND c.created_at < p.published_until
      LEFT JOIN core.documents d
        ON d.source = c.source AND d.external_id = c.external_id AND d.created_at = c.created_at
     GROUP BY c.cluster_id;
COMMENT ON VIEW analytics.duplicate_clusters IS 'Clusters of published documents that are the same story (exact text, same canonical URL or near-duplicate text), across sources.';
COMMENT ON COLUMN analytics.duplicate_clusters.cluster_id IS 'The cluster (join enriched.duplicate_clusters for its members).';
COMMENT ON COLUMN analytics.duplicate_clusters.documents IS 'Published documents in the cluster.';
COMMENT ON COLUMN analytics.duplicate_clusters.sources IS 'Distinct sources in it.';
COMMENT ON COLUMN analytics.duplicate_clusters.source_list IS 'Those sources.';
COMMENT ON COLUMN analytics.duplicate_clusters.methods IS 'How members joined: exact_text, canonical_url, near_duplicate, seed.';
COMMENT ON COLUMN analytics.duplicate_clusters.first_created_at IS 'Creation time of the earliest member.';
COMMENT ON COLUMN analytics.duplicate_clusters.last_created_at IS 'Creation time of the latest member.';
COMMENT ON COLUMN analytics.duplicate_clusters.sample_title IS 'Title of the earliest member that has one.';

CREATE VIEW analytics.duplicates_per_source AS
    SELECT d.source, count(*) AS documents,
           count(c.cluster_id) AS in_clusters,
           round(100.0 * count(c.cluster_id) / nullif(count(*), 0), 2) AS pct_in_clusters
      FROM enriched.document_fingerprints d
      JOIN quality.publish_state p ON p.source = d.source AND d.created_at < p.published_until
      LEFT JOIN enriched.duplicate_clusters c
        ON c.source = d.source AND c.external_id = d.external_id AND c.created_at = d.created_at
     GROUP BY d.source;
COMMENT ON VIEW analytics.duplicates_per_source IS 'Per source: published documents checked for duplicates and how many belong to a cluster.';
COMMENT ON COLUMN analytics.duplicates_per_source.source IS 'Source system.';
COMMENT ON COLUMN analytics.duplicates_per_source.documents IS 'Documents checked for duplicates.';
COMMENT ON COLUMN analytics.duplicates_per_source.in_clusters IS 'Of those, documents in a duplicate cluster.';
COMMENT ON COLUMN analytics.duplicates_per_source.pct_in_clusters IS 'Share in percent.';
"""

REPLACED_VIEWS = (
    "analytics.daily_volume",
    "analytics.coverage_windows",
    "analytics.coverage_daily",
    "analytics.daily_sentiment",
    "analytics.entity_mentions_daily",
    "analytics.duplicate_clusters",
    "analytics.duplicates_per_source",
)


def upgrade() -> None:
    op.execute(TABLES)
    op.execute("DROP VIEW " + ", ".join(REPLACED_VIEWS))
    op.execute(VIEWS)
    op.execute(
        "ALTER TABLE quality.check_results ADD COLUMN scope text NOT NULL DEFAULT 'run' "
        "CHECK (scope IN ('run', 'window'));"
        "COMMENT ON COLUMN quality.check_results.scope IS 'window: the check judged one data window "
        "(window_start..window_end) and gates its publication; run: it judged the pipeline as of the run "
        "(freshness, schema drift).';"
        "CREATE INDEX check_results_window_idx ON quality.check_results (source, window_start) "
        "WHERE scope = 'window';"
    )


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
        "DROP INDEX IF EXISTS quality.check_results_window_idx;"
        "ALTER TABLE quality.check_results DROP COLUMN IF EXISTS scope;"
    )
    op.execute("DROP VIEW analytics.publication, " + ", ".join(REPLACED_VIEWS))
    op.execute("DROP VIEW analytics.quarantine_summary")
    op.execute(_frozen_views("0005"))
    op.execute(_frozen_views("0006"))
    op.execute("DROP TABLE ops.alert_events, ops.alert_log, quality.publish_state, quality.window_audits")
