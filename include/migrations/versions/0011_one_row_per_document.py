"""One row per source item in ``core.documents``, whatever the source does to its creation time later.

The key of ``core.documents`` is ``(source, external_id, created_at)`` because a partitioned table's unique key
must hold its partition column. A source that re-delivers an item with another creation time (NewsAPI moves
``publishedAt`` of an article it re-indexes) used to give that item a second row, which the analytics views
counted twice. The loader now keeps the creation time it saw first for an item and records every other time
a source reports in ``quality.created_at_changes``; the re-delivery updates the row's other fields like any
edit (``pulse.warehouse.loader``).

This migration

* creates ``quality.created_at_changes`` (read by on-call, not by analysts: the ``quality`` schema is the
  pipeline's);
* removes the duplicate rows loaded before the fix: of the rows of one ``(source, external_id)``, the one
  loaded first (``first_loaded_at``, then the earliest ``created_at``) stays as it is; every other row is
  recorded in ``quality.created_at_changes`` (its creation time, raw page, run, load times) and then deleted,
  with the enrichment rows of the deleted rows (every ``enriched`` table keyed by the document), so nothing
  keeps describing a row that is gone. The deleted rows' content stays in ``raw.api_responses``.

Downgrade drops the table; deleted duplicates are not brought back (they were double counts).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

CHANGES_TABLE = """
CREATE TABLE quality.created_at_changes (
    source              text COLLATE "C" NOT NULL,
    external_id         text COLLATE "C" NOT NULL,
    kept_created_at     timestamptz NOT NULL,
    reported_created_at timestamptz NOT NULL,
    raw_response_id     bigint      NOT NULL,
    dag_run_id          text        NOT NULL,
    first_reported_at   timestamptz NOT NULL DEFAULT now(),
    last_reported_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, external_id, reported_created_at),
    CHECK (reported_created_at <> kept_created_at)
);
CREATE INDEX created_at_changes_reported_idx ON quality.created_at_changes (last_reported_at);
COMMENT ON TABLE quality.created_at_changes IS 'Creation times a source reported for an item other than the one its core.documents row keeps (the first seen): one row per item and reported time. One source item is one row in core.documents; a re-delivery with a moved creation time updates that row and is recorded here.';
COMMENT ON COLUMN quality.created_at_changes.source IS 'Source system (with external_id: the item).';
COMMENT ON COLUMN quality.created_at_changes.external_id IS 'The item''s id in its source.';
COMMENT ON COLUMN quality.created_at_changes.kept_created_at IS 'The creation time the item''s row keeps (core.documents.created_at): the first one seen.';
COMMENT ON COLUMN quality.created_at_changes.reported_created_at IS 'Another creation time the source reported for the item.';
COMMENT ON COLUMN quality.created_at_changes.raw_response_id IS 'The latest raw page that reported it.';
COMMENT ON COLUMN quality.created_at_changes.dag_run_id IS 'The run that loaded that page (or, for rows removed by migration 0011, the run that had loaded the duplicate).';
COMMENT ON COLUMN quality.created_at_changes.first_reported_at IS 'When this time was first reported (loaded).';
COMMENT ON COLUMN quality.created_at_changes.last_reported_at IS 'When a page reporting it was last loaded.';
"""

#: Record, then delete, every row of an item but the first loaded one; enrichment rows of deleted rows too.
DEDUPLICATE = r"""
WITH dup AS (
    SELECT source, external_id FROM core.documents GROUP BY source, external_id HAVING count(*) > 1
), ranked AS (
    SELECT d.source, d.external_id, d.created_at, d.raw_response_id, d.dag_run_id, d.first_loaded_at,
           d.loaded_at,
           first_value(d.created_at) OVER w AS keep_at,
           row_number() OVER w AS n
      FROM core.documents d
      JOIN dup ON dup.source = d.source AND dup.external_id = d.external_id
    WINDOW w AS (PARTITION BY d.source, d.external_id ORDER BY d.first_loaded_at, d.created_at)
)
INSERT INTO quality.created_at_changes
    (source, external_id, kept_created_at, reported_created_at, raw_response_id, dag_run_id, first_reported_at,
     last_reported_at)
SELECT source, external_id, keep_at, created_at, raw_response_id, dag_run_id, first_loaded_at, loaded_at
  FROM ranked
 WHERE n > 1;

DO $do$
DECLARE
    t record;
BEGIN
    -- Every table of schema enriched keyed by a document (partitioned parents and plain tables).
    FOR t IN
        SELECT c.oid::regclass AS rel
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'enriched' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND (SELECT count(*) FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND NOT a.attisdropped
                   AND a.attname IN ('source', 'external_id', 'created_at')) = 3
    LOOP
        EXECUTE format(
            'DELETE FROM %s e USING quality.created_at_changes c '
            'WHERE e.source = c.source AND e.external_id = c.external_id AND e.created_at = c.reported_created_at',
            t.rel);
    END LOOP;
END
$do$;

DELETE FROM core.documents d
 USING quality.created_at_changes c
 WHERE d.source = c.source AND d.external_id = c.external_id AND d.created_at = c.reported_created_at;
"""


def upgrade() -> None:
    op.execute(CHANGES_TABLE)
    op.execute(DEDUPLICATE)


def downgrade() -> None:
    op.execute("DROP TABLE quality.created_at_changes")
