"""Incremental rollups: the analytics views over published data read per-hour aggregates, not whole tables.

``analytics.daily_volume``, ``daily_sentiment``, ``entity_mentions_daily``, ``duplicates_per_source`` and
``duplicate_clusters`` aggregated every published row on every query, so their cost grew with the warehouse.
Now:

* **Rollup tables** (schema ``ops``, pipeline only) hold the same aggregates per source and *audit hour* (the
  hour of event time that ``quality.hour_audits`` publishes: documents ``created_at``, bars ``ts``, weather
  ``issued_at`` else ``valid_at``, snapshots ``snapshot_at``), entity mentions also per day, duplicate
  clusters per cluster. Averages are kept as sums and counts, so hours add up to days.
* **Dirty marks.** Statement-level triggers (transition tables) on every table the published views read mark
  each (source, hour) a statement touched in ``ops.rollup_dirty_hours`` (loads, edits, late rows,
  enrichment, dedup, audits, releases, deletions; duplicate-cluster changes also mark their cluster in
  ``ops.rollup_dirty_clusters``); a move of a source's horizon marks the audited hours it crosses; a TRUNCATE
  marks every rolled-up key. Dropping a partition fires no trigger: retention calls
  ``ops.rollup_mark_period`` in the dropping transaction.
* **Always exact.** Each view reads the rollup rows of clean keys and aggregates the dirty keys live from the
  ``published`` views (a few hours: index scans on ``(source, created_at)``), so it answers what the old
  whole-table view answered at any moment, whether or not the rollups were refreshed.
* **Refresh.** ``ops.refresh_rollups()`` (called by the ``quality`` DAG after publication, through
  ``pulse.warehouse.rollups``) folds the dirty keys into the rollups under an advisory lock, in one
  transaction: the work is proportional to the hours that changed, not to the warehouse.

Existing data: every audited hour (``quality.hour_audits``: no row is published without one) is marked dirty
and folded in by the upgrade.

Migrations never import live code: every definition is here in full; the old views are copied here for the
downgrade.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

ORIGIN = "timestamptz '2000-01-01 00:00+00'"

TABLES = """
CREATE TABLE ops.rollup_dirty_hours (
    source  text        NOT NULL,
    hour    timestamptz NOT NULL,
    PRIMARY KEY (source, hour)
);
COMMENT ON TABLE ops.rollup_dirty_hours IS 'Source hours (of event time, as audited) whose published data changed since the rollups last folded them in: the analytics views aggregate these live and the rollup rows of every other hour; ops.refresh_rollups() empties it. Written by triggers.';
COMMENT ON COLUMN ops.rollup_dirty_hours.source IS 'Source system.';
COMMENT ON COLUMN ops.rollup_dirty_hours.hour IS 'Start of the audit hour (UTC), as in quality.hour_audits.';

CREATE TABLE ops.rollup_dirty_clusters (
    cluster_id  text NOT NULL PRIMARY KEY
);
COMMENT ON TABLE ops.rollup_dirty_clusters IS 'Duplicate clusters whose members changed since ops.rollup_clusters last folded them in (clusters with a member in a dirty hour count as dirty too). Written by triggers.';
COMMENT ON COLUMN ops.rollup_dirty_clusters.cluster_id IS 'The cluster (enriched.duplicate_clusters.cluster_id).';

CREATE TABLE ops.rollup_volume_hourly (
    source          text COLLATE "C"        NOT NULL,
    hour            timestamptz NOT NULL,
    dataset         text        NOT NULL,
    kind            text COLLATE "C" NOT NULL,
    day             date        NOT NULL,
    items           bigint      NOT NULL,
    last_loaded_at  timestamptz,
    PRIMARY KEY (source, hour, dataset, kind, day)
);
COMMENT ON TABLE ops.rollup_volume_hourly IS 'Rollup behind analytics.daily_volume: published rows per source, audit hour, table, kind and UTC day of event time.';
COMMENT ON COLUMN ops.rollup_volume_hourly.source IS 'Source system.';
COMMENT ON COLUMN ops.rollup_volume_hourly.hour IS 'Audit hour (UTC): documents created_at, bars ts, weather issued_at (else valid_at), snapshots snapshot_at.';
COMMENT ON COLUMN ops.rollup_volume_hourly.dataset IS 'The core table the rows are in.';
COMMENT ON COLUMN ops.rollup_volume_hourly.kind IS 'As analytics.daily_volume.kind.';
COMMENT ON COLUMN ops.rollup_volume_hourly.day IS 'UTC day of the event time (weather: valid_at, which may be another day than the audit hour).';
COMMENT ON COLUMN ops.rollup_volume_hourly.items IS 'Number of published rows.';
COMMENT ON COLUMN ops.rollup_volume_hourly.last_loaded_at IS 'When the newest of them last changed.';

CREATE TABLE ops.rollup_sentiment_hourly (
    source     text COLLATE "C"        NOT NULL,
    hour       timestamptz NOT NULL,
    topic      text        NOT NULL,
    documents  bigint      NOT NULL,
    vader_sum  double precision,
    vader_n    bigint      NOT NULL,
    positive   bigint      NOT NULL,
    neutral    bigint      NOT NULL,
    negative   bigint      NOT NULL,
    PRIMARY KEY (source, hour, topic)
);
COMMENT ON TABLE ops.rollup_sentiment_hourly IS 'Rollup behind analytics.daily_sentiment: published document features per source, hour of created_at and topic.';
COMMENT ON COLUMN ops.rollup_sentiment_hourly.source IS 'Source system.';
COMMENT ON COLUMN ops.rollup_sentiment_hourly.hour IS 'Hour of created_at (UTC).';
COMMENT ON COLUMN ops.rollup_sentiment_hourly.topic IS 'Topic (other when none).';
COMMENT ON COLUMN ops.rollup_sentiment_hourly.documents IS 'Published feature rows.';
COMMENT ON COLUMN ops.rollup_sentiment_hourly.vader_sum IS 'Sum of sentiment_vader (double precision; NULLs skipped).';
COMMENT ON COLUMN ops.rollup_sentiment_hourly.vader_n IS 'Rows with a sentiment_vader (the mean is vader_sum / vader_n).';
COMMENT ON COLUMN ops.rollup_sentiment_hourly.positive IS 'Rows labelled positive.';
COMMENT ON COLUMN ops.rollup_sentiment_hourly.neutral IS 'Rows labelled neutral.';
COMMENT ON COLUMN ops.rollup_sentiment_hourly.negative IS 'Rows labelled negative.';

CREATE TABLE ops.rollup_entity_hourly (
    source         text COLLATE "C"        NOT NULL,
    hour           timestamptz NOT NULL,
    entity_type    text        NOT NULL,
    entity         text        NOT NULL,
    mentions       bigint      NOT NULL,
    documents      bigint      NOT NULL,
    sentiment_sum  double precision,
    sentiment_n    bigint      NOT NULL,
    PRIMARY KEY (source, hour, entity_type, entity)
);
COMMENT ON TABLE ops.rollup_entity_hourly IS 'Rollup behind analytics.entity_mentions_daily, per hour: published entity mentions per source, hour of created_at, entity type and entity. A document is in one hour (one row per source and external_id), so distinct documents add up over hours.';
COMMENT ON COLUMN ops.rollup_entity_hourly.source IS 'Source system.';
COMMENT ON COLUMN ops.rollup_entity_hourly.hour IS 'Hour of created_at (UTC).';
COMMENT ON COLUMN ops.rollup_entity_hourly.entity_type IS 'person, organisation, place or ticker.';
COMMENT ON COLUMN ops.rollup_entity_hourly.entity IS 'Normalised entity name.';
COMMENT ON COLUMN ops.rollup_entity_hourly.mentions IS 'Mentions.';
COMMENT ON COLUMN ops.rollup_entity_hourly.documents IS 'Distinct documents mentioning it.';
COMMENT ON COLUMN ops.rollup_entity_hourly.sentiment_sum IS 'Sum of the mentions'' sentiment (double precision; NULLs skipped).';
COMMENT ON COLUMN ops.rollup_entity_hourly.sentiment_n IS 'Mentions with a sentiment.';

CREATE TABLE ops.rollup_entity_daily (
    source         text COLLATE "C"   NOT NULL,
    day            date   NOT NULL,
    entity_type    text   NOT NULL,
    entity         text   NOT NULL,
    mentions       bigint NOT NULL,
    documents      bigint NOT NULL,
    sentiment_sum  double precision,
    sentiment_n    bigint NOT NULL,
    PRIMARY KEY (source, day, entity_type, entity)
);
CREATE INDEX rollup_entity_daily_day_idx ON ops.rollup_entity_daily (day);
COMMENT ON TABLE ops.rollup_entity_daily IS 'ops.rollup_entity_hourly summed per UTC day (what analytics.entity_mentions_daily reads for days without a dirty hour).';
COMMENT ON COLUMN ops.rollup_entity_daily.source IS 'Source system.';
COMMENT ON COLUMN ops.rollup_entity_daily.day IS 'UTC day of created_at.';
COMMENT ON COLUMN ops.rollup_entity_daily.entity_type IS 'person, organisation, place or ticker.';
COMMENT ON COLUMN ops.rollup_entity_daily.entity IS 'Normalised entity name.';
COMMENT ON COLUMN ops.rollup_entity_daily.mentions IS 'Mentions.';
COMMENT ON COLUMN ops.rollup_entity_daily.documents IS 'Distinct documents mentioning it.';
COMMENT ON COLUMN ops.rollup_entity_daily.sentiment_sum IS 'Sum of the mentions'' sentiment (NULLs skipped).';
COMMENT ON COLUMN ops.rollup_entity_daily.sentiment_n IS 'Mentions with a sentiment.';

CREATE TABLE ops.rollup_duplicates_hourly (
    source       text COLLATE "C"        NOT NULL,
    hour         timestamptz NOT NULL,
    documents    bigint      NOT NULL,
    in_clusters  bigint      NOT NULL,
    PRIMARY KEY (source, hour)
);
COMMENT ON TABLE ops.rollup_duplicates_hourly IS 'Rollup behind analytics.duplicates_per_source: published documents checked for duplicates per source and hour of created_at.';
COMMENT ON COLUMN ops.rollup_duplicates_hourly.source IS 'Source system.';
COMMENT ON COLUMN ops.rollup_duplicates_hourly.hour IS 'Hour of created_at (UTC).';
COMMENT ON COLUMN ops.rollup_duplicates_hourly.documents IS 'Published documents with a fingerprint.';
COMMENT ON COLUMN ops.rollup_duplicates_hourly.in_clusters IS 'Of those, documents in a duplicate cluster.';

CREATE TABLE ops.rollup_clusters (
    cluster_id        text        NOT NULL PRIMARY KEY,
    documents         bigint      NOT NULL,
    sources           bigint      NOT NULL,
    source_list       text[] COLLATE "C" NOT NULL,
    methods           text[]      NOT NULL,
    first_created_at  timestamptz NOT NULL,
    last_created_at   timestamptz NOT NULL,
    sample_title      text
);
COMMENT ON TABLE ops.rollup_clusters IS 'Rollup behind analytics.duplicate_clusters: one row per cluster with a published member, as that view shows it.';
COMMENT ON COLUMN ops.rollup_clusters.cluster_id IS 'The cluster.';
COMMENT ON COLUMN ops.rollup_clusters.documents IS 'Published documents in the cluster.';
COMMENT ON COLUMN ops.rollup_clusters.sources IS 'Distinct sources among them.';
COMMENT ON COLUMN ops.rollup_clusters.source_list IS 'Those sources, sorted.';
COMMENT ON COLUMN ops.rollup_clusters.methods IS 'How members were matched, sorted.';
COMMENT ON COLUMN ops.rollup_clusters.first_created_at IS 'Creation time of the oldest published member.';
COMMENT ON COLUMN ops.rollup_clusters.last_created_at IS 'Creation time of the newest published member.';
COMMENT ON COLUMN ops.rollup_clusters.sample_title IS 'Title of the oldest published member with a title.';

-- The live part of the views and the refresh read one source hour at a time.
CREATE INDEX document_features_source_created_idx ON enriched.document_features (source, created_at);
CREATE INDEX entity_mentions_source_created_idx ON enriched.entity_mentions (source, created_at);
CREATE INDEX duplicate_clusters_source_created_idx ON enriched.duplicate_clusters (source, created_at);
CREATE INDEX document_fingerprints_source_created_idx ON enriched.document_fingerprints (source, created_at);
CREATE INDEX market_bars_source_ts_idx ON core.market_bars (source, ts);
CREATE INDEX weather_observations_audit_hour_idx ON core.weather_observations (source, (coalesce(issued_at, valid_at)));
CREATE INDEX github_repo_snapshots_source_snapshot_idx ON core.github_repo_snapshots (source, snapshot_at);
-- The coverage and publication views look for held windows per source (and row): few rows, indexed apart.
CREATE INDEX window_audits_held_idx ON quality.window_audits (source, window_start) WHERE status = 'held';
"""

_HOUR = f"date_bin('1 hour', %s, {ORIGIN})"

TRIGGERS = f"""
CREATE FUNCTION ops.rollup_mark_rows() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    hour_expr text := TG_ARGV[0];
    with_clusters boolean := coalesce(TG_ARGV[1] = 'clusters', false);
    rel text;
BEGIN
    FOREACH rel IN ARRAY CASE TG_OP WHEN 'INSERT' THEN ARRAY['new_rows']
                                    WHEN 'DELETE' THEN ARRAY['old_rows']
                                    ELSE ARRAY['old_rows', 'new_rows'] END LOOP
        EXECUTE format(
            'INSERT INTO ops.rollup_dirty_hours (source, hour)'
            ' SELECT DISTINCT source, date_bin(''1 hour'', %s, {ORIGIN.replace("'", "''")}) FROM %I'
            ' WHERE source IS NOT NULL AND %s IS NOT NULL'
            ' ON CONFLICT DO NOTHING', hour_expr, rel, hour_expr);
        IF with_clusters THEN
            EXECUTE format('INSERT INTO ops.rollup_dirty_clusters (cluster_id) SELECT DISTINCT cluster_id FROM %I'
                           ' ON CONFLICT DO NOTHING', rel);
        END IF;
    END LOOP;
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION ops.rollup_mark_rows() IS 'Statement trigger: marks the source hours (and duplicate clusters) of the rows a statement wrote or deleted dirty for the rollups. Argument 1: the row''s audit time expression; argument 2: clusters, to mark cluster_id too.';

CREATE FUNCTION ops.rollup_mark_horizon() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    -- The audited hours whose rows a horizon change shows or hides: those between the old and the new
    -- published_until (an hour straddling either counts). No horizon (NULL or no row) publishes nothing.
    IF TG_OP = 'UPDATE' AND OLD.source = NEW.source THEN
        INSERT INTO ops.rollup_dirty_hours (source, hour)
        SELECT h.source, h.hour FROM quality.hour_audits h
         WHERE h.source = NEW.source
           AND h.hour > least(coalesce(OLD.published_until, '-infinity'),
                              coalesce(NEW.published_until, '-infinity')) - interval '1 hour'
           AND h.hour < greatest(coalesce(OLD.published_until, '-infinity'),
                                 coalesce(NEW.published_until, '-infinity'))
        ON CONFLICT DO NOTHING;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO ops.rollup_dirty_hours (source, hour)
        SELECT h.source, h.hour FROM quality.hour_audits h
         WHERE h.source = OLD.source AND h.hour < OLD.published_until
        ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO ops.rollup_dirty_hours (source, hour)
        SELECT h.source, h.hour FROM quality.hour_audits h
         WHERE h.source = NEW.source AND h.hour < NEW.published_until
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION ops.rollup_mark_horizon() IS 'Row trigger on quality.publish_state: marks the audited hours a horizon move shows or hides dirty for the rollups.';

CREATE FUNCTION ops.rollup_mark_all() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO ops.rollup_dirty_hours (source, hour)
    SELECT source, hour FROM ops.rollup_volume_hourly
    UNION SELECT source, hour FROM ops.rollup_sentiment_hourly
    UNION SELECT source, hour FROM ops.rollup_entity_hourly
    UNION SELECT source, hour FROM ops.rollup_duplicates_hourly
    ON CONFLICT DO NOTHING;
    INSERT INTO ops.rollup_dirty_clusters (cluster_id) SELECT cluster_id FROM ops.rollup_clusters
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION ops.rollup_mark_all() IS 'TRUNCATE trigger: marks every rolled-up hour and cluster dirty (a truncation only removes published rows, so the keys already rolled up are all it can change).';

CREATE FUNCTION ops.rollup_mark_period(from_ts timestamptz, to_ts timestamptz) RETURNS integer
LANGUAGE sql AS $fn$
    WITH marked AS (
        INSERT INTO ops.rollup_dirty_hours (source, hour)
        SELECT source, hour FROM ops.rollup_volume_hourly WHERE hour >= from_ts - interval '1 hour' AND hour < to_ts
         UNION SELECT source, hour FROM ops.rollup_volume_hourly WHERE day >= (from_ts AT TIME ZONE 'UTC')::date
                                                           AND day <= (to_ts AT TIME ZONE 'UTC')::date
         UNION SELECT source, hour FROM ops.rollup_sentiment_hourly WHERE hour >= from_ts - interval '1 hour' AND hour < to_ts
         UNION SELECT source, hour FROM ops.rollup_entity_hourly WHERE hour >= from_ts - interval '1 hour' AND hour < to_ts
         UNION SELECT source, hour FROM ops.rollup_duplicates_hourly WHERE hour >= from_ts - interval '1 hour' AND hour < to_ts
        ON CONFLICT DO NOTHING RETURNING 1)
    SELECT count(*)::integer FROM marked
$fn$;
COMMENT ON FUNCTION ops.rollup_mark_period(timestamptz, timestamptz) IS 'Marks every rolled-up hour of a period dirty: for what fires no trigger, such as retention dropping a partition (call it in the same transaction).';
"""

#: (table, audit time expression, extra argument) of every table a published view reads.
TRIGGERED = (
    ("core.documents", "created_at", None),
    ("core.market_bars", "ts", None),
    ("core.weather_observations", "coalesce(issued_at, valid_at)", None),
    ("core.github_repo_snapshots", "snapshot_at", None),
    ("enriched.document_features", "created_at", None),
    ("enriched.entity_mentions", "created_at", None),
    ("enriched.document_fingerprints", "created_at", None),
    ("enriched.duplicate_clusters", "created_at", "clusters"),
    ("quality.hour_audits", "hour", None),
)


def _trigger_sql() -> str:
    out = []
    for table, expr, extra in TRIGGERED:
        args = ", ".join("'" + a.replace("'", "''") + "'" for a in (expr, extra) if a)
        for event, ref in (
            ("INSERT", "REFERENCING NEW TABLE AS new_rows"),
            ("UPDATE", "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "REFERENCING OLD TABLE AS old_rows"),
        ):
            out.append(
                f"CREATE TRIGGER rollup_mark_{event.lower()} AFTER {event} ON {table} {ref}"
                f" FOR EACH STATEMENT EXECUTE FUNCTION ops.rollup_mark_rows({args});"
            )
        out.append(
            f"CREATE TRIGGER rollup_mark_truncate AFTER TRUNCATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION ops.rollup_mark_all();"
        )
    out.append(
        "CREATE TRIGGER rollup_mark_horizon AFTER INSERT OR UPDATE OR DELETE ON quality.publish_state"
        " FOR EACH ROW EXECUTE FUNCTION ops.rollup_mark_horizon();"
    )
    out.append(
        "CREATE TRIGGER rollup_mark_truncate AFTER TRUNCATE ON quality.publish_state"
        " FOR EACH STATEMENT EXECUTE FUNCTION ops.rollup_mark_all();"
    )
    return "\n".join(out)


def _drop_trigger_sql() -> str:
    out = []
    for table, _, _ in TRIGGERED:
        for event in ("insert", "update", "delete", "truncate"):
            out.append(f"DROP TRIGGER IF EXISTS rollup_mark_{event} ON {table};")
    out.append("DROP TRIGGER IF EXISTS rollup_mark_horizon ON quality.publish_state;")
    out.append("DROP TRIGGER IF EXISTS rollup_mark_truncate ON quality.publish_state;")
    return "\n".join(out)


# The live aggregates of a set of keys ``{keys}`` (a relation with source and hour): exactly what the old
# whole-table views computed over the published rows of those hours. The publication gate is the one of the
# published views (docs/warehouse.md), applied with the key's own hour audit and horizon: a row of the hour is
# published when its event time is before the horizon and it was written at or before the hour's
# published_at. Each lateral subquery aggregates, so the planner keeps it a parameterised nested loop (index
# range scans on one source hour) instead of joining whole tables.
_GATED_KEYS = """{keys} k
  JOIN quality.hour_audits h ON h.source = k.source AND h.hour = k.hour
  JOIN quality.publish_state p ON p.source = k.source"""


def _in_hour(col: str) -> str:
    return f"{col} >= k.hour AND {col} < k.hour + interval '1 hour' AND {col} < p.published_until"


VOLUME_LIVE = f"""
SELECT k.source, k.hour, v.dataset, v.kind, v.day, v.items, v.last_loaded_at
  FROM {_GATED_KEYS}
 CROSS JOIN LATERAL (
        SELECT 'core.documents'::text AS dataset, d.kind, (d.created_at AT TIME ZONE 'UTC')::date AS day,
               count(*) AS items, max(d.loaded_at) AS last_loaded_at
          FROM core.documents d
         WHERE d.source = k.source AND {_in_hour("d.created_at")} AND d.loaded_at <= h.published_at
         GROUP BY d.kind, (d.created_at AT TIME ZONE 'UTC')::date
        UNION ALL
        SELECT 'core.market_bars'::text, b.interval, (b.ts AT TIME ZONE 'UTC')::date, count(*), max(b.loaded_at)
          FROM core.market_bars b
         WHERE b.source = k.source AND {_in_hour("b.ts")} AND b.loaded_at <= h.published_at
         GROUP BY b.interval, (b.ts AT TIME ZONE 'UTC')::date
        UNION ALL
        SELECT 'core.weather_observations'::text, w.kind, (w.valid_at AT TIME ZONE 'UTC')::date, count(*),
               max(w.loaded_at)
          FROM core.weather_observations w
         WHERE w.source = k.source AND {_in_hour("coalesce(w.issued_at, w.valid_at)")}
           AND w.loaded_at <= h.published_at
         GROUP BY w.kind, (w.valid_at AT TIME ZONE 'UTC')::date
        UNION ALL
        SELECT 'core.github_repo_snapshots'::text, 'snapshot'::text, (g.snapshot_at AT TIME ZONE 'UTC')::date,
               count(*), max(g.loaded_at)
          FROM core.github_repo_snapshots g
         WHERE g.source = k.source AND {_in_hour("g.snapshot_at")} AND g.loaded_at <= h.published_at
         GROUP BY (g.snapshot_at AT TIME ZONE 'UTC')::date) v
"""

SENTIMENT_LIVE = f"""
SELECT k.source, k.hour, s.topic, s.documents, s.vader_sum, s.vader_n, s.positive, s.neutral, s.negative
  FROM {_GATED_KEYS}
 CROSS JOIN LATERAL (
        SELECT coalesce(f.topic, 'other') AS topic, count(*) AS documents,
               sum(f.sentiment_vader::double precision) AS vader_sum, count(f.sentiment_vader) AS vader_n,
               count(*) FILTER (WHERE f.sentiment_label = 'positive') AS positive,
               count(*) FILTER (WHERE f.sentiment_label = 'neutral') AS neutral,
               count(*) FILTER (WHERE f.sentiment_label = 'negative') AS negative
          FROM enriched.document_features f
         WHERE f.source = k.source AND {_in_hour("f.created_at")} AND f.enriched_at <= h.published_at
         GROUP BY coalesce(f.topic, 'other')) s
"""

# Mentions are published with their document's features.
ENTITY_LIVE = f"""
SELECT k.source, k.hour, e.entity_type, e.entity, e.mentions, e.documents, e.sentiment_sum, e.sentiment_n
  FROM {_GATED_KEYS}
 CROSS JOIN LATERAL (
        SELECT m.entity_type, m.normalized AS entity, count(*) AS mentions,
               count(DISTINCT m.external_id) AS documents,
               sum(m.sentiment::double precision) AS sentiment_sum, count(m.sentiment) AS sentiment_n
          FROM enriched.entity_mentions m
          JOIN enriched.document_features f
            ON f.source = m.source AND f.external_id = m.external_id AND f.created_at = m.created_at
         WHERE m.source = k.source AND {_in_hour("m.created_at")} AND f.enriched_at <= h.published_at
         GROUP BY m.entity_type, m.normalized) e
"""

DUPLICATES_LIVE = f"""
SELECT k.source, k.hour, x.documents, x.in_clusters
  FROM {_GATED_KEYS}
 CROSS JOIN LATERAL (
        SELECT count(*) AS documents, count(c.cluster_id) AS in_clusters
          FROM core.documents d
          JOIN enriched.document_fingerprints f
            ON f.source = d.source AND f.external_id = d.external_id AND f.created_at = d.created_at
          LEFT JOIN enriched.duplicate_clusters c
            ON c.source = f.source AND c.external_id = f.external_id AND c.created_at = f.created_at
         WHERE d.source = k.source AND {_in_hour("d.created_at")} AND d.loaded_at <= h.published_at
        HAVING count(*) > 0) x
"""

# Clusters to recompute: the marked ones and those with a member in a marked hour.
CLUSTER_KEYS = """
SELECT cluster_id FROM {cluster_keys}
UNION
SELECT c.cluster_id
  FROM {keys} k
 CROSS JOIN LATERAL (
        SELECT DISTINCT c.cluster_id FROM enriched.duplicate_clusters c
         WHERE c.source = k.source AND c.created_at >= k.hour AND c.created_at < k.hour + interval '1 hour') c
"""

# A cluster's published members: the same gate per member (its hour's audit; COLLATE "default" lets the
# lookups use the primary keys of hour_audits and publish_state, whose source is not of collation "C").
CLUSTERS_LIVE = """
SELECT a.cluster_id, a.documents, a.sources, a.source_list, a.methods, a.first_created_at, a.last_created_at,
       a.sample_title
  FROM {cluster_set} s
 CROSS JOIN LATERAL (
        SELECT c.cluster_id, count(*) AS documents, count(DISTINCT c.source) AS sources,
               array_agg(DISTINCT c.source ORDER BY c.source) AS source_list,
               array_agg(DISTINCT c.method ORDER BY c.method) AS methods,
               min(c.created_at) AS first_created_at, max(c.created_at) AS last_created_at,
               (array_agg(d.title ORDER BY c.created_at) FILTER (WHERE d.title IS NOT NULL))[1] AS sample_title
          FROM enriched.duplicate_clusters c
          JOIN core.documents d
            ON d.source = c.source AND d.external_id = c.external_id AND d.created_at = c.created_at
          JOIN quality.publish_state p
            ON p.source = d.source COLLATE "default" AND d.created_at < p.published_until
          JOIN quality.hour_audits h
            ON h.source = d.source COLLATE "default"
           AND h.hour = date_bin('1 hour', d.created_at, timestamptz '2000-01-01 00:00+00')
           AND d.loaded_at <= h.published_at
         WHERE c.cluster_id = s.cluster_id
         GROUP BY c.cluster_id) a
"""

_DIRTY = "ops.rollup_dirty_hours"
_CLEAN = "NOT EXISTS (SELECT 1 FROM ops.rollup_dirty_hours x WHERE x.source = r.source AND x.hour = r.hour)"


def _indent(sql: str, n: int) -> str:
    return "\n".join((" " * n + line) if line.strip() else line for line in sql.strip().splitlines())


VIEWS = f"""
CREATE OR REPLACE VIEW analytics.daily_volume AS
    SELECT u.day, u.source, u.dataset, u.kind, sum(u.items)::bigint AS items, max(u.last_loaded_at) AS last_loaded_at
      FROM (SELECT r.day, r.source, r.dataset, r.kind, r.items, r.last_loaded_at
              FROM ops.rollup_volume_hourly r
             WHERE {_CLEAN}
            UNION ALL
            SELECT l.day, l.source, l.dataset, l.kind, l.items, l.last_loaded_at
              FROM ({_indent(VOLUME_LIVE.format(keys=_DIRTY), 20).lstrip()}) l) u
     GROUP BY u.day, u.source, u.dataset, u.kind;

CREATE OR REPLACE VIEW analytics.daily_sentiment AS
    SELECT (u.hour AT TIME ZONE 'UTC')::date AS day, u.source, u.topic, sum(u.documents)::bigint AS documents,
           (sum(u.vader_sum) / nullif(sum(u.vader_n), 0))::real AS avg_vader,
           sum(u.positive)::bigint AS positive, sum(u.neutral)::bigint AS neutral,
           sum(u.negative)::bigint AS negative
      FROM (SELECT r.source, r.hour, r.topic, r.documents, r.vader_sum, r.vader_n, r.positive, r.neutral,
                   r.negative
              FROM ops.rollup_sentiment_hourly r
             WHERE {_CLEAN}
            UNION ALL
            SELECT l.source, l.hour, l.topic, l.documents, l.vader_sum, l.vader_n, l.positive, l.neutral,
                   l.negative
              FROM ({_indent(SENTIMENT_LIVE.format(keys=_DIRTY), 20).lstrip()}) l) u
     GROUP BY (u.hour AT TIME ZONE 'UTC')::date, u.source, u.topic;

CREATE OR REPLACE VIEW analytics.entity_mentions_daily AS
    WITH dirty_days AS (
        SELECT DISTINCT x.source, (x.hour AT TIME ZONE 'UTC')::date AS day FROM ops.rollup_dirty_hours x
    )
    SELECT r.day, r.entity_type, r.entity, r.source, r.mentions, r.documents,
           (r.sentiment_sum / nullif(r.sentiment_n, 0))::real AS avg_sentiment
      FROM ops.rollup_entity_daily r
     WHERE NOT EXISTS (SELECT 1 FROM dirty_days x WHERE x.source = r.source AND x.day = r.day)
    UNION ALL
    SELECT (u.hour AT TIME ZONE 'UTC')::date, u.entity_type, u.entity, u.source, sum(u.mentions)::bigint,
           sum(u.documents)::bigint, (sum(u.sentiment_sum) / nullif(sum(u.sentiment_n), 0))::real
      FROM (SELECT r.source, r.hour, r.entity_type, r.entity, r.mentions, r.documents, r.sentiment_sum,
                   r.sentiment_n
              FROM ops.rollup_entity_hourly r
              JOIN dirty_days x ON x.source = r.source AND x.day = (r.hour AT TIME ZONE 'UTC')::date
             WHERE {_CLEAN}
            UNION ALL
            SELECT l.source, l.hour, l.entity_type, l.entity, l.mentions, l.documents, l.sentiment_sum,
                   l.sentiment_n
              FROM ({_indent(ENTITY_LIVE.format(keys=_DIRTY), 20).lstrip()}) l) u
     GROUP BY (u.hour AT TIME ZONE 'UTC')::date, u.entity_type, u.entity, u.source;

CREATE OR REPLACE VIEW analytics.duplicates_per_source AS
    SELECT u.source, sum(u.documents)::bigint AS documents, sum(u.in_clusters)::bigint AS in_clusters,
           round(100.0 * sum(u.in_clusters) / nullif(sum(u.documents), 0), 2) AS pct_in_clusters
      FROM (SELECT r.source, r.documents, r.in_clusters
              FROM ops.rollup_duplicates_hourly r
             WHERE {_CLEAN}
            UNION ALL
            SELECT l.source, l.documents, l.in_clusters
              FROM ({_indent(DUPLICATES_LIVE.format(keys=_DIRTY), 20).lstrip()}) l) u
     GROUP BY u.source;

CREATE OR REPLACE VIEW analytics.duplicate_clusters AS
    WITH dirty AS (
{_indent(CLUSTER_KEYS.format(cluster_keys="ops.rollup_dirty_clusters", keys=_DIRTY), 8)}
    )
    SELECT r.cluster_id, r.documents, r.sources, r.source_list, r.methods, r.first_created_at, r.last_created_at,
           r.sample_title
      FROM ops.rollup_clusters r
     WHERE NOT EXISTS (SELECT 1 FROM dirty x WHERE x.cluster_id = r.cluster_id)
    UNION ALL
{_indent(CLUSTERS_LIVE.format(cluster_set="dirty"), 4)};
"""

_KEYS = "unnest(srcs, hrs)"
_KEYS_REL = "(SELECT u.source, u.hour FROM unnest(srcs, hrs) AS u(source, hour))"
_MATCH = f"USING {_KEYS_REL} k WHERE r.source = k.source AND r.hour = k.hour"

REFRESH = f"""
CREATE FUNCTION ops.refresh_rollups() RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
    srcs text[];
    hrs timestamptz[];
    cids text[];
    day_srcs text[];
    day_days date[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('pulse.rollups'));
    -- The keys to fold in, taken once: marks written after this (by transactions committing meanwhile) stay
    -- for the next refresh, and the views aggregate them live until then.
    WITH gone AS (DELETE FROM ops.rollup_dirty_hours RETURNING source, hour)
    SELECT coalesce(array_agg(source), '{{}}'), coalesce(array_agg(hour), '{{}}') INTO srcs, hrs FROM gone;
    WITH gone AS (DELETE FROM ops.rollup_dirty_clusters RETURNING cluster_id)
    SELECT coalesce(array_agg(cluster_id), '{{}}') INTO cids FROM gone;
    IF cardinality(srcs) = 0 AND cardinality(cids) = 0 THEN
        RETURN 0;
    END IF;

    DELETE FROM ops.rollup_volume_hourly r {_MATCH};
    INSERT INTO ops.rollup_volume_hourly (source, hour, dataset, kind, day, items, last_loaded_at)
{_indent(VOLUME_LIVE.format(keys=_KEYS_REL), 4)};

    DELETE FROM ops.rollup_sentiment_hourly r {_MATCH};
    INSERT INTO ops.rollup_sentiment_hourly (source, hour, topic, documents, vader_sum, vader_n, positive,
                                             neutral, negative)
{_indent(SENTIMENT_LIVE.format(keys=_KEYS_REL), 4)};

    DELETE FROM ops.rollup_entity_hourly r {_MATCH};
    INSERT INTO ops.rollup_entity_hourly (source, hour, entity_type, entity, mentions, documents,
                                          sentiment_sum, sentiment_n)
{_indent(ENTITY_LIVE.format(keys=_KEYS_REL), 4)};

    SELECT array_agg(source), array_agg(day) INTO day_srcs, day_days
      FROM (SELECT DISTINCT u.source, (u.hour AT TIME ZONE 'UTC')::date AS day
              FROM unnest(srcs, hrs) AS u(source, hour)) d;
    DELETE FROM ops.rollup_entity_daily r USING unnest(day_srcs, day_days) AS d(source, day)
     WHERE r.source = d.source AND r.day = d.day;
    INSERT INTO ops.rollup_entity_daily (source, day, entity_type, entity, mentions, documents, sentiment_sum,
                                         sentiment_n)
    SELECT d.source, d.day, h.entity_type, h.entity, sum(h.mentions), sum(h.documents), sum(h.sentiment_sum),
           sum(h.sentiment_n)
      FROM unnest(day_srcs, day_days) AS d(source, day)
      JOIN ops.rollup_entity_hourly h
        ON h.source = d.source AND h.hour >= d.day::timestamp AT TIME ZONE 'UTC'
       AND h.hour < (d.day + 1)::timestamp AT TIME ZONE 'UTC'
     GROUP BY d.source, d.day, h.entity_type, h.entity;

    DELETE FROM ops.rollup_duplicates_hourly r {_MATCH};
    INSERT INTO ops.rollup_duplicates_hourly (source, hour, documents, in_clusters)
{_indent(DUPLICATES_LIVE.format(keys=_KEYS_REL), 4)};

    SELECT coalesce(array_agg(cluster_id), '{{}}') INTO cids FROM (
{_indent(CLUSTER_KEYS.format(cluster_keys="unnest(cids) AS cluster_keys(cluster_id)", keys=_KEYS_REL), 8)}
    ) c;
    DELETE FROM ops.rollup_clusters WHERE cluster_id = ANY (cids);
    INSERT INTO ops.rollup_clusters (cluster_id, documents, sources, source_list, methods, first_created_at,
                                     last_created_at, sample_title)
{_indent(CLUSTERS_LIVE.format(cluster_set="(SELECT unnest(cids) AS cluster_id)"), 4)};

    RETURN cardinality(srcs) + cardinality(cids);
END
$fn$;
COMMENT ON FUNCTION ops.refresh_rollups() IS 'Folds the dirty hours and clusters into the rollup tables (the pipeline calls it after publication, through pulse.warehouse.rollups); returns how many keys it folded in. Serialised by an advisory lock; the views are exact before and after.';
"""

BACKFILL = """
INSERT INTO ops.rollup_dirty_hours (source, hour) SELECT source, hour FROM quality.hour_audits
ON CONFLICT DO NOTHING;
SELECT ops.refresh_rollups();
"""

# The definitions 0010 gave these views, copied here for the downgrade.
OLD_VIEWS = """
CREATE OR REPLACE VIEW analytics.daily_volume AS
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

CREATE OR REPLACE VIEW analytics.daily_sentiment AS
    SELECT (f.created_at AT TIME ZONE 'UTC')::date AS day, f.source, coalesce(f.topic, 'other') AS topic,
           count(*) AS documents,
           avg(f.sentiment_vader)::real AS avg_vader,
           count(*) FILTER (WHERE f.sentiment_label = 'positive') AS positive,
           count(*) FILTER (WHERE f.sentiment_label = 'neutral') AS neutral,
           count(*) FILTER (WHERE f.sentiment_label = 'negative') AS negative
      FROM published.document_features f
     GROUP BY 1, 2, 3;

CREATE OR REPLACE VIEW analytics.entity_mentions_daily AS
    SELECT (m.created_at AT TIME ZONE 'UTC')::date AS day, m.entity_type, m.normalized AS entity, m.source,
           count(*) AS mentions, count(DISTINCT (m.external_id)) AS documents, avg(m.sentiment)::real AS avg_sentiment
      FROM published.entity_mentions m
     GROUP BY 1, 2, 3, 4;

CREATE OR REPLACE VIEW analytics.duplicates_per_source AS
    SELECT f.source, count(*) AS documents,
           count(c.cluster_id) AS in_clusters,
           round(100.0 * count(c.cluster_id) / nullif(count(*), 0), 2) AS pct_in_clusters
      FROM enriched.document_fingerprints f
      JOIN published.documents d ON d.source = f.source AND d.external_id = f.external_id AND d.created_at = f.created_at
      LEFT JOIN enriched.duplicate_clusters c
        ON c.source = f.source AND c.external_id = f.external_id AND c.created_at = f.created_at
     GROUP BY f.source;

CREATE OR REPLACE VIEW analytics.duplicate_clusters AS
    SELECT c.cluster_id, count(*) AS documents, count(DISTINCT c.source) AS sources,
           array_agg(DISTINCT c.source ORDER BY c.source) AS source_list,
           array_agg(DISTINCT c.method ORDER BY c.method) AS methods,
           min(c.created_at) AS first_created_at, max(c.created_at) AS last_created_at,
           (array_agg(d.title ORDER BY c.created_at) FILTER (WHERE d.title IS NOT NULL))[1] AS sample_title
      FROM enriched.duplicate_clusters c
      JOIN published.documents d
        ON d.source = c.source AND d.external_id = c.external_id AND d.created_at = c.created_at
     GROUP BY c.cluster_id;
"""


# JIT compiling costs more than these views' queries: the planner prices the correlated subqueries of
# analytics.publication and the coverage views per estimated row (thousands), so PostgreSQL JIT-compiles a
# 25 ms query for 1.5 s. Off for the warehouse database when the migrating role owns it (else a notice: a DBA
# may run the statement).
JIT_OFF = """
DO $$
BEGIN
    IF pg_has_role((SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE') THEN
        EXECUTE format('ALTER DATABASE %I SET jit = off', current_database());
    ELSE
        RAISE NOTICE 'not the owner of the database: run ALTER DATABASE % SET jit = off', current_database();
    END IF;
END
$$;
"""


def upgrade() -> None:
    op.execute(JIT_OFF)
    op.execute(TABLES)
    op.execute(TRIGGERS)
    op.execute(_trigger_sql())
    op.execute(REFRESH)
    op.execute(BACKFILL)
    op.execute(VIEWS)


def downgrade() -> None:
    op.execute(JIT_OFF.replace("SET jit = off", "RESET jit"))
    op.execute(OLD_VIEWS)
    op.execute(_drop_trigger_sql())
    op.execute(
        """
        DROP FUNCTION ops.refresh_rollups(), ops.rollup_mark_period(timestamptz, timestamptz),
                      ops.rollup_mark_all(), ops.rollup_mark_horizon(), ops.rollup_mark_rows();
        DROP INDEX enriched.document_features_source_created_idx, enriched.entity_mentions_source_created_idx,
                   enriched.duplicate_clusters_source_created_idx,
                   enriched.document_fingerprints_source_created_idx, core.market_bars_source_ts_idx,
                   core.weather_observations_audit_hour_idx, core.github_repo_snapshots_source_snapshot_idx,
                   quality.window_audits_held_idx;
        DROP TABLE ops.rollup_dirty_hours, ops.rollup_dirty_clusters, ops.rollup_volume_hourly,
                   ops.rollup_sentiment_hourly, ops.rollup_entity_hourly, ops.rollup_entity_daily,
                   ops.rollup_duplicates_hourly, ops.rollup_clusters;
        """
    )
