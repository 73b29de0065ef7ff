"""Archive manifest, export manifest, webhook deliveries, and where each month of data lives.

* ``ops.archives``: one row per archive object written by the ``retention`` DAG (path, rows, checksum,
  schema version) and what happened to it (verified, dropped, restored).
* ``ops.exports`` and ``ops.webhook_deliveries``: the ``export`` DAG's manifests and signed notifications.
* ``analytics.data_months``: per table and month, whether the data is hot in PostgreSQL, archived (and
  where), or restored from its archive.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE ops.archives (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    relation           text        NOT NULL,
    archived_relation  text        NOT NULL,
    period_start       timestamptz NOT NULL,
    period_end         timestamptz NOT NULL,
    path               text        NOT NULL,
    location           text        NOT NULL,
    rows               bigint      NOT NULL,
    bytes              bigint      NOT NULL,
    sha256             text        NOT NULL,
    schema_fingerprint text        NOT NULL,
    schema_version     text        NOT NULL,
    columns            jsonb       NOT NULL,
    status             text        NOT NULL CHECK (status IN ('written', 'verified', 'dropped', 'failed', 'restored')),
    problems           text[]      NOT NULL DEFAULT '{}',
    archived_at        timestamptz NOT NULL DEFAULT now(),
    verified_at        timestamptz,
    dropped_at         timestamptz,
    restored_at        timestamptz,
    keep_hot_until     timestamptz,
    dag_run_id         text        NOT NULL
);
CREATE INDEX archives_relation_idx ON ops.archives (relation, period_start, archived_at DESC);
COMMENT ON TABLE ops.archives IS 'Archive manifest: every Parquet object the retention DAG wrote, with rows, checksum and schema version, and whether the data was verified, dropped from PostgreSQL or restored.';
COMMENT ON COLUMN ops.archives.id IS 'Surrogate key.';
COMMENT ON COLUMN ops.archives.relation IS 'The table the data belongs to, e.g. core.documents.';
COMMENT ON COLUMN ops.archives.archived_relation IS 'What was read: a monthly partition (core.documents_p2026_08) or the table itself for time-sliced tables.';
COMMENT ON COLUMN ops.archives.period_start IS 'Start of the archived period (inclusive, UTC): a month, or a day for raw pages.';
COMMENT ON COLUMN ops.archives.period_end IS 'End of the archived period (exclusive, UTC).';
COMMENT ON COLUMN ops.archives.path IS 'The object as Airflow opens it (ObjectStoragePath, with the connection id for S3).';
COMMENT ON COLUMN ops.archives.location IS 'The object as a plain URL (s3://bucket/key or file:///path).';
COMMENT ON COLUMN ops.archives.rows IS 'Rows in the archive.';
COMMENT ON COLUMN ops.archives.bytes IS 'Size of the object in bytes.';
COMMENT ON COLUMN ops.archives.sha256 IS 'SHA-256 of the object as written; checked when it is read back and before a restore.';
COMMENT ON COLUMN ops.archives.schema_fingerprint IS 'SHA-256 of the column list (name, type, nullability) the file holds.';
COMMENT ON COLUMN ops.archives.schema_version IS 'The warehouse migration (ops.alembic_version) when the archive was written.';
COMMENT ON COLUMN ops.archives.columns IS 'The columns and PostgreSQL types, in order.';
COMMENT ON COLUMN ops.archives.status IS 'written; verified (read back: checksum and content equal the database); dropped (then removed from PostgreSQL); failed (verification failed: nothing dropped); restored (loaded back).';
COMMENT ON COLUMN ops.archives.problems IS 'What verification found wrong (status failed).';
COMMENT ON COLUMN ops.archives.archived_at IS 'When the object was written.';
COMMENT ON COLUMN ops.archives.verified_at IS 'When it was read back and verified.';
COMMENT ON COLUMN ops.archives.dropped_at IS 'When the data left PostgreSQL.';
COMMENT ON COLUMN ops.archives.restored_at IS 'When it was loaded back by the restore DAG.';
COMMENT ON COLUMN ops.archives.keep_hot_until IS 'A restored period stays in PostgreSQL until then; retention leaves it alone meanwhile.';
COMMENT ON COLUMN ops.archives.dag_run_id IS 'The retention (or restore) run.';

CREATE TABLE ops.exports (
    mart           text        NOT NULL,
    day            date        NOT NULL,
    directory      text        NOT NULL,
    manifest_path  text        NOT NULL,
    rows           bigint      NOT NULL,
    files          jsonb       NOT NULL,
    schema_version text        NOT NULL,
    exported_at    timestamptz NOT NULL DEFAULT now(),
    dag_run_id     text        NOT NULL,
    PRIMARY KEY (mart, day)
);
COMMENT ON TABLE ops.exports IS 'The latest export of each analyst mart and day (a re-run overwrites the same files and this row).';
COMMENT ON COLUMN ops.exports.mart IS 'The exported mart (an analytics view).';
COMMENT ON COLUMN ops.exports.day IS 'UTC day exported.';
COMMENT ON COLUMN ops.exports.directory IS 'Where the files are (plain URL).';
COMMENT ON COLUMN ops.exports.manifest_path IS 'The manifest.json written last, beside the files.';
COMMENT ON COLUMN ops.exports.rows IS 'Rows exported.';
COMMENT ON COLUMN ops.exports.files IS 'Per format: path, rows, bytes, sha256.';
COMMENT ON COLUMN ops.exports.schema_version IS 'SHA-256 of the documented column list (docs/exports.md).';
COMMENT ON COLUMN ops.exports.exported_at IS 'When it was written.';
COMMENT ON COLUMN ops.exports.dag_run_id IS 'The export run.';

CREATE TABLE ops.webhook_deliveries (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscriber   text        NOT NULL,
    mart         text        NOT NULL,
    day          date        NOT NULL,
    delivery_id  text        NOT NULL,
    ok           boolean     NOT NULL,
    attempts     integer     NOT NULL,
    status       integer,
    error        text,
    permanent    boolean     NOT NULL,
    delivered_at timestamptz NOT NULL DEFAULT now(),
    dag_run_id   text        NOT NULL
);
CREATE INDEX webhook_deliveries_subscriber_idx ON ops.webhook_deliveries (subscriber, delivered_at DESC);
COMMENT ON TABLE ops.webhook_deliveries IS 'Every signed webhook notification of an export: to whom, how many attempts, and the outcome.';
COMMENT ON COLUMN ops.webhook_deliveries.id IS 'Surrogate key.';
COMMENT ON COLUMN ops.webhook_deliveries.subscriber IS 'Subscriber name (include/exports/subscribers.yaml).';
COMMENT ON COLUMN ops.webhook_deliveries.mart IS 'The export the notification was about.';
COMMENT ON COLUMN ops.webhook_deliveries.day IS 'Its day.';
COMMENT ON COLUMN ops.webhook_deliveries.delivery_id IS 'X-Pulse-Delivery: the same for a redelivery of the same export, so subscribers can dedupe.';
COMMENT ON COLUMN ops.webhook_deliveries.ok IS 'The subscriber answered 2xx.';
COMMENT ON COLUMN ops.webhook_deliveries.attempts IS 'Attempts made (bounded, with exponential backoff).';
COMMENT ON COLUMN ops.webhook_deliveries.status IS 'Last HTTP status, if any answer came.';
COMMENT ON COLUMN ops.webhook_deliveries.error IS 'Last error.';
COMMENT ON COLUMN ops.webhook_deliveries.permanent IS 'The subscriber refused in a way retrying cannot fix (4xx such as 401).';
COMMENT ON COLUMN ops.webhook_deliveries.delivered_at IS 'When the last attempt ended.';
COMMENT ON COLUMN ops.webhook_deliveries.dag_run_id IS 'The export run.';

CREATE VIEW analytics.data_months AS
    WITH parts AS (
        SELECT pn.nspname || '.' || parent.relname AS relation,
               to_timestamp(substring(child.relname FROM '_p(\d{4}_\d{2})$'), 'YYYY_MM') AT TIME ZONE 'UTC'
                   AT TIME ZONE 'UTC' AS month,
               greatest(child.reltuples, 0)::bigint AS rows_estimate
          FROM pg_inherits i
          JOIN pg_class child ON child.oid = i.inhrelid
          JOIN pg_class parent ON parent.oid = i.inhparent
          JOIN pg_namespace pn ON pn.oid = parent.relnamespace
         WHERE child.relname ~ '_p\d{4}_\d{2}$' AND pn.nspname IN ('core', 'enriched')
    ), latest AS (
        SELECT DISTINCT ON (relation, period_start) relation, date_trunc('month', period_start AT TIME ZONE 'UTC')
                   AT TIME ZONE 'UTC' AS month, status, location, rows, archived_at, restored_at, keep_hot_until
          FROM ops.archives
         WHERE status IN ('dropped', 'restored')
         ORDER BY relation, period_start, archived_at DESC
    )
    SELECT coalesce(p.relation, l.relation) AS relation,
           (coalesce(p.month, l.month) AT TIME ZONE 'UTC')::date AS month,
           CASE WHEN p.relation IS NULL THEN 'archived'
                WHEN l.status = 'restored' THEN 'restored'
                ELSE 'hot' END AS location,
           p.rows_estimate,
           l.rows AS archived_rows,
           l.location AS archive,
           l.archived_at,
           l.keep_hot_until
      FROM parts p
      FULL JOIN latest l ON l.relation = p.relation AND l.month = p.month;
COMMENT ON VIEW analytics.data_months IS 'Where each month of each partitioned table lives: hot in PostgreSQL, archived to Parquet (and where), or restored from its archive.';
COMMENT ON COLUMN analytics.data_months.relation IS 'The table, e.g. core.documents.';
COMMENT ON COLUMN analytics.data_months.month IS 'First day of the month (UTC).';
COMMENT ON COLUMN analytics.data_months.location IS 'hot: queryable in the warehouse; archived: only in the archive (ask for a restore: restore DAG); restored: loaded back from the archive for a while (keep_hot_until).';
COMMENT ON COLUMN analytics.data_months.rows_estimate IS 'Rows in the warehouse (planner estimate; exact counts: count(*) on the table).';
COMMENT ON COLUMN analytics.data_months.archived_rows IS 'Rows in the archive (exact).';
COMMENT ON COLUMN analytics.data_months.archive IS 'The archive object (s3://bucket/key or file:///path).';
COMMENT ON COLUMN analytics.data_months.archived_at IS 'When it was archived.';
COMMENT ON COLUMN analytics.data_months.keep_hot_until IS 'For restored months: until when they stay in the warehouse.';
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(
        "DROP VIEW analytics.data_months; DROP TABLE ops.webhook_deliveries, ops.exports, ops.archives;"
    )
