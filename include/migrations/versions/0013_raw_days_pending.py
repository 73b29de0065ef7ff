"""Raw pages partitioned by day (retention becomes a DROP) and pending queues for enrichment and dedup.

**raw.api_responses by UTC day of fetched_at.**

* ``ops.ensure_day_partitions(parent, from, to)`` creates every missing daily (UTC) partition
  ``<table>_pYYYY_MM_DD`` between two instants, under the same advisory lock as
  ``ops.ensure_month_partitions``, moving rows the default partition holds for a new day into it. The
  ``warehouse_maintenance`` DAG keeps days ahead, and ``pulse.warehouse.raw.RawStore`` creates today's and
  tomorrow's on demand.
* The unique key must contain the partition column: the primary key becomes ``(id, fetched_at)``. ``id`` stays
  an identity column (one sequence for the table, so ids stay unique in practice), and every reference to a page
  (``quality.quarantine.raw_response_id``, the lineage columns of ``core``, replay, quality checks, archives) keeps
  using ``id`` alone: a lookup by id probes the primary key index of each partition (about 20 with 14 hot
  days), no foreign key ever pointed at it.
* The default partition is ``raw.api_responses_held``: the pages an open quarantine row still points at when
  retention drops their day (replay needs them), and pages whose day partition was missing (moved out when the
  partition is created). ``ops.default_partition_rows()`` leaves it out: rows there are there on purpose.
* Rows are copied into the new table inside this migration's transaction; nothing is lost (a test upgrades a
  populated warehouse and compares every row).

**Pending queues.** ``enriched.pending_features`` and ``enriched.pending_fingerprints`` hold the documents the
enrich and deduplicate tasks must look at, so a run finds its work without scanning ``core.documents``:

* statement-level triggers on ``core.documents`` (transition tables, so COPY and INSERT ... ON CONFLICT are
  covered) queue every inserted row and every updated row whose ``content_sha256`` changed, in the writer's
  transaction;
* a row trigger on ``enriched.document_features`` queues a document whose features changed enrichment version
  (an older version written by an older worker during a deploy);
* ``enriched.pending_versions`` records the enrichment versions whose backlog was queued: the first run of a
  new version queues every document not enriched by it, once (a bounded backlog);
* a queue row carries the ``content_sha256`` it was queued for; a consumer deletes it only for that digest, so
  a row the loader queued again meanwhile stays.

This migration queues what is pending now (features: for the latest enrichment version in use, which it
records; fingerprints: documents without a fingerprint of their current digest).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

#: Days ahead of today that raw partitions exist after this migration (warehouse_maintenance keeps them).
DAYS_AHEAD = 7

ENSURE_DAYS = r"""
CREATE OR REPLACE FUNCTION ops.ensure_day_partitions(parent regclass, from_ts timestamptz, to_ts timestamptz)
RETURNS integer
LANGUAGE plpgsql
AS $fn$
DECLARE
    nsp      text;
    rel      text;
    key_col  text;
    day      timestamp;   -- first instant of a UTC day, as a UTC wall-clock timestamp
    last_day timestamp;
    part     text;
    lo       timestamptz;
    hi       timestamptz;
    dflt     regclass;
    waiting  bigint;
    created  integer := 0;
    locked   boolean := false;
BEGIN
    IF from_ts IS NULL OR to_ts IS NULL THEN
        RETURN 0;
    END IF;
    SELECT n.nspname, c.relname INTO nsp, rel
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = parent;
    key_col := substring(pg_get_partkeydef(parent) FROM '^RANGE \((\w+)\)$');
    IF key_col IS NULL THEN
        RAISE EXCEPTION '% is not range-partitioned on one column', parent;
    END IF;
    day := date_trunc('day', least(from_ts, to_ts) AT TIME ZONE 'UTC');
    last_day := date_trunc('day', greatest(from_ts, to_ts) AT TIME ZONE 'UTC');
    IF last_day - day > interval '3660 days' THEN
        RAISE EXCEPTION 'ensure_day_partitions: % to % is more than ten years of days', from_ts, to_ts;
    END IF;
    WHILE day <= last_day LOOP
        part := format('%s_p%s', rel, to_char(day, 'YYYY_MM_DD'));
        IF to_regclass(format('%I.%I', nsp, part)) IS NULL THEN
            IF NOT locked THEN
                -- One creator per table at a time (the key of ops.ensure_month_partitions); re-check after.
                PERFORM pg_advisory_xact_lock(hashtext('pulse.partitions'), hashtext(parent::text));
                locked := true;
                CONTINUE;
            END IF;
            lo := day AT TIME ZONE 'UTC';
            hi := (day + interval '1 day') AT TIME ZONE 'UTC';
            SELECT i.inhrelid::regclass INTO dflt
              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = parent AND c.relpartbound IS NOT NULL
               AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';
            waiting := 0;
            IF dflt IS NOT NULL THEN
                EXECUTE format('SELECT count(*) FROM %s WHERE %I >= $1 AND %I < $2', dflt, key_col, key_col)
                   INTO waiting USING lo, hi;
            END IF;
            IF waiting = 0 THEN
                EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                               nsp, part, parent, lo, hi);
            ELSE
                -- Rows for this day sit in the default partition (held pages of a restored day, or pages
                -- stored while the partition was missing): move them into the new partition.
                EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                               nsp, part, parent);
                EXECUTE format('WITH moved AS (DELETE FROM %s WHERE %I >= $1 AND %I < $2 RETURNING *) '
                               'INSERT INTO %I.%I SELECT * FROM moved', dflt, key_col, key_col, nsp, part)
                   USING lo, hi;
                EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                               parent, nsp, part, lo, hi);
                RAISE NOTICE 'moved % rows of % from % into %', waiting, to_char(day, 'YYYY-MM-DD'), dflt, part;
            END IF;
            EXECUTE format('COMMENT ON TABLE %I.%I IS %L', nsp, part,
                           format('Partition of %s for %s (UTC); query the parent table.', parent,
                                  to_char(day, 'YYYY-MM-DD')));
            created := created + 1;
        END IF;
        day := day + interval '1 day';
    END LOOP;
    RETURN created;
END
$fn$;
COMMENT ON FUNCTION ops.ensure_day_partitions(regclass, timestamptz, timestamptz) IS
    'Create the missing daily (UTC) partitions of a range-partitioned table between two instants, moving rows the default partition holds for them. Returns how many it created.';
"""

#: ops.default_partition_rows without the default partitions that hold rows on purpose (``*_held``).
DEFAULT_ROWS = r"""
CREATE OR REPLACE FUNCTION ops.default_partition_rows()
RETURNS TABLE (parent regclass, default_partition regclass, rows bigint, min_key text, max_key text)
LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
    r record;
    key_col text;
BEGIN
    FOR r IN
        SELECT i.inhparent::regclass AS parent, i.inhrelid::regclass AS part
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE c.relpartbound IS NOT NULL AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'
           AND c.relname !~ '_held$'
         ORDER BY 1::text
    LOOP
        key_col := substring(pg_get_partkeydef(r.parent) FROM '^RANGE \((\w+)\)$');
        parent := r.parent;
        default_partition := r.part;
        EXECUTE format('SELECT count(*), min(%I)::text, max(%I)::text FROM %s', key_col, key_col, r.part)
           INTO rows, min_key, max_key;
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION ops.default_partition_rows() IS
    'Rows in the default partition of every partitioned table (should be 0: the loader creates partitions first), with the key range they cover. Default partitions named *_held (raw.api_responses_held) hold rows on purpose and are left out.';
"""

OLD_DEFAULT_ROWS = DEFAULT_ROWS.replace("           AND c.relname !~ '_held$'\n", "").replace(
    " Default partitions named *_held (raw.api_responses_held) hold rows on purpose and are left out.", ""
)

RAW = """
CREATE TABLE raw.api_responses (
    id             bigint GENERATED ALWAYS AS IDENTITY,
    source         text        NOT NULL,
    stream         text        NOT NULL,
    endpoint       text        NOT NULL,
    request_params jsonb       NOT NULL DEFAULT '{}',
    page_no        integer     NOT NULL,
    window_start   timestamptz,
    window_end     timestamptz,
    status_code    integer     NOT NULL,
    headers        jsonb       NOT NULL DEFAULT '{}',
    body           text        NOT NULL,
    body_sha256    text        NOT NULL,
    is_valid       boolean     NOT NULL,
    error          text,
    item_count     integer,
    next_cursor    text,
    dag_id         text,
    dag_run_id     text,
    task_try       integer,
    fetched_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, fetched_at)
) PARTITION BY RANGE (fetched_at);
CREATE INDEX api_responses_run_idx ON raw.api_responses (source, dag_run_id, stream, page_no);
CREATE INDEX api_responses_window_idx ON raw.api_responses (source, window_start);
CREATE TABLE raw.api_responses_held PARTITION OF raw.api_responses DEFAULT;
COMMENT ON TABLE raw.api_responses_held IS 'Default partition of raw.api_responses: pages an open quarantine row points at, kept when retention dropped their day (replay_quarantine needs them); archived once the quarantine row is resolved. Pages stored while their day had no partition land here too and move out when it is created.';
"""

PENDING = """
CREATE TABLE enriched.pending_features (
    created_at      timestamptz NOT NULL,
    source          text COLLATE "C" NOT NULL,
    external_id     text COLLATE "C" NOT NULL,
    content_sha256  text,
    queued_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (created_at, source, external_id)
);
CREATE TABLE enriched.pending_fingerprints (LIKE enriched.pending_features INCLUDING ALL);
CREATE TABLE enriched.pending_versions (
    enrichment_version  text PRIMARY KEY,
    queued              bigint      NOT NULL,
    queued_at           timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE enriched.pending_features IS 'Documents the enrich task must look at (new, content changed, features of another enrichment version); queued by triggers on core.documents and enriched.document_features, deleted once the features match the queued digest. Oldest created_at first.';
COMMENT ON COLUMN enriched.pending_features.created_at IS 'Key of the queued core.documents row: its created_at.';
COMMENT ON COLUMN enriched.pending_features.source IS 'Key of the queued core.documents row: its source.';
COMMENT ON COLUMN enriched.pending_features.external_id IS 'Key of the queued core.documents row: its id in its source.';
COMMENT ON COLUMN enriched.pending_fingerprints.created_at IS 'Key of the queued core.documents row: its created_at.';
COMMENT ON COLUMN enriched.pending_fingerprints.source IS 'Key of the queued core.documents row: its source.';
COMMENT ON COLUMN enriched.pending_fingerprints.external_id IS 'Key of the queued core.documents row: its id in its source.';
COMMENT ON COLUMN enriched.pending_versions.enrichment_version IS 'An enrichment version (pulse.enrich.pipeline.ENRICHMENT_VERSION).';
COMMENT ON COLUMN enriched.pending_features.content_sha256 IS 'core.documents.content_sha256 the row was queued for; the queue row is deleted only when it was handled for this digest (a row queued again meanwhile stays).';
COMMENT ON COLUMN enriched.pending_features.queued_at IS 'When the document was (last) queued.';
COMMENT ON TABLE enriched.pending_fingerprints IS 'Documents the deduplicate task must look at (new or content changed); queued by triggers on core.documents, deleted once fingerprinted for the queued digest.';
COMMENT ON COLUMN enriched.pending_fingerprints.content_sha256 IS 'core.documents.content_sha256 the row was queued for; deleted only when fingerprinted for this digest.';
COMMENT ON COLUMN enriched.pending_fingerprints.queued_at IS 'When the document was (last) queued.';
COMMENT ON TABLE enriched.pending_versions IS 'Enrichment versions whose backlog (every document not enriched by them) was queued into enriched.pending_features, once, by the first enrich run of that version.';
COMMENT ON COLUMN enriched.pending_versions.queued IS 'Documents queued then.';
COMMENT ON COLUMN enriched.pending_versions.queued_at IS 'When the backlog was queued.';

CREATE FUNCTION enriched.queue_documents() RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        WITH queued AS (
            INSERT INTO enriched.pending_features AS p (created_at, source, external_id, content_sha256)
            SELECT created_at, source, external_id, content_sha256 FROM new_rows
            ON CONFLICT (created_at, source, external_id) DO UPDATE
               SET content_sha256 = EXCLUDED.content_sha256, queued_at = now()
        )
        INSERT INTO enriched.pending_fingerprints AS p (created_at, source, external_id, content_sha256)
        SELECT created_at, source, external_id, content_sha256 FROM new_rows
        ON CONFLICT (created_at, source, external_id) DO UPDATE
           SET content_sha256 = EXCLUDED.content_sha256, queued_at = now();
    ELSE
        -- Rows whose content digest changed (or whose key did: an UPDATE moving a row).
        WITH changed AS MATERIALIZED (
            SELECT n.created_at, n.source, n.external_id, n.content_sha256 FROM new_rows n
             WHERE NOT EXISTS (SELECT 1 FROM old_rows o
                                WHERE o.source = n.source AND o.external_id = n.external_id
                                  AND o.created_at = n.created_at AND o.content_sha256 = n.content_sha256)
        ), queued AS (
            INSERT INTO enriched.pending_features AS p (created_at, source, external_id, content_sha256)
            SELECT * FROM changed
            ON CONFLICT (created_at, source, external_id) DO UPDATE
               SET content_sha256 = EXCLUDED.content_sha256, queued_at = now()
        )
        INSERT INTO enriched.pending_fingerprints AS p (created_at, source, external_id, content_sha256)
        SELECT * FROM changed
        ON CONFLICT (created_at, source, external_id) DO UPDATE
           SET content_sha256 = EXCLUDED.content_sha256, queued_at = now();
    END IF;
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION enriched.queue_documents() IS 'Trigger of core.documents: queue inserted rows and rows whose content_sha256 changed for enrichment and duplicate detection (enriched.pending_*).';
CREATE TRIGGER documents_queue_inserted AFTER INSERT ON core.documents
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION enriched.queue_documents();
CREATE TRIGGER documents_queue_changed AFTER UPDATE ON core.documents
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION enriched.queue_documents();

CREATE FUNCTION enriched.queue_other_version() RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    INSERT INTO enriched.pending_features AS p (created_at, source, external_id, content_sha256)
    VALUES (NEW.created_at, NEW.source, NEW.external_id, NEW.content_sha256)
    ON CONFLICT (created_at, source, external_id) DO UPDATE
       SET content_sha256 = EXCLUDED.content_sha256, queued_at = now();
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION enriched.queue_other_version() IS 'Trigger of enriched.document_features: a document whose features changed enrichment version is looked at again by the enrich task.';
CREATE TRIGGER document_features_queue_version AFTER UPDATE ON enriched.document_features
    FOR EACH ROW WHEN (OLD.enrichment_version IS DISTINCT FROM NEW.enrichment_version)
    EXECUTE FUNCTION enriched.queue_other_version();
"""

#: The backlog at this migration: the latest enrichment version in use (recorded), and fingerprints.
SEED_PENDING = """
INSERT INTO enriched.pending_features (created_at, source, external_id, content_sha256)
SELECT d.created_at, d.source, d.external_id, d.content_sha256
  FROM core.documents d
  LEFT JOIN enriched.document_features f
    ON f.source = d.source AND f.external_id = d.external_id AND f.created_at = d.created_at
   AND f.enrichment_version = (SELECT enrichment_version FROM enriched.document_features
                                ORDER BY enriched_at DESC LIMIT 1)
 WHERE f.content_sha256 IS DISTINCT FROM d.content_sha256;
INSERT INTO enriched.pending_versions (enrichment_version, queued)
SELECT v, (SELECT count(*) FROM enriched.pending_features)
  FROM (SELECT enrichment_version AS v FROM enriched.document_features ORDER BY enriched_at DESC LIMIT 1) l;
INSERT INTO enriched.pending_fingerprints (created_at, source, external_id, content_sha256)
SELECT d.created_at, d.source, d.external_id, d.content_sha256
  FROM core.documents d
  LEFT JOIN enriched.document_fingerprints f
    ON f.source = d.source AND f.external_id = d.external_id AND f.created_at = d.created_at
 WHERE f.content_sha256 IS DISTINCT FROM d.content_sha256;
"""


def _copy_comments(old: str, new: str) -> None:
    op.execute(
        f"""
        DO $$
        DECLARE r record;
        BEGIN
            EXECUTE format('COMMENT ON TABLE {new} IS %L', obj_description('{old}'::regclass, 'pg_class'));
            FOR r IN SELECT attname, col_description('{old}'::regclass, attnum) AS c
                       FROM pg_attribute WHERE attrelid = '{old}'::regclass AND attnum > 0 AND NOT attisdropped
            LOOP
                IF r.c IS NOT NULL THEN
                    EXECUTE format('COMMENT ON COLUMN {new}.%I IS %L', r.attname, r.c);
                END IF;
            END LOOP;
        END $$;
        """
    )


def _columns(table: str) -> str:
    rows = op.get_bind().execute(
        text(
            "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum"
        ),
        {"t": table},
    )
    return ", ".join(r[0] for r in rows)


def _count(table: str) -> int:
    return int(op.get_bind().execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)


def _reset_identity(table: str) -> None:
    """The identity continues after the highest id copied."""
    op.execute(
        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce((SELECT max(id) FROM {table}), 0) + 1,"
        " false)"
    )


def upgrade() -> None:
    op.execute(ENSURE_DAYS)
    op.execute(DEFAULT_ROWS)
    op.execute("ALTER TABLE raw.api_responses RENAME TO api_responses_unpartitioned")
    op.execute("ALTER INDEX raw.api_responses_pkey RENAME TO api_responses_unpartitioned_pkey")
    op.execute("DROP INDEX raw.api_responses_run_idx, raw.api_responses_window_idx")
    op.execute(RAW)
    # A partition for every day that holds pages, and today to DAYS_AHEAD days ahead.
    op.execute(
        "SELECT ops.ensure_day_partitions('raw.api_responses', d, d) FROM (SELECT DISTINCT"
        " date_trunc('day', fetched_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS d"
        " FROM raw.api_responses_unpartitioned) days"
    )
    op.execute(
        f"SELECT ops.ensure_day_partitions('raw.api_responses', now(), now() + interval '{DAYS_AHEAD} days')"
    )
    cols = _columns("raw.api_responses_unpartitioned")
    op.execute(
        f"INSERT INTO raw.api_responses ({cols}) OVERRIDING SYSTEM VALUE"
        f" SELECT {cols} FROM raw.api_responses_unpartitioned"
    )
    before, after = _count("raw.api_responses_unpartitioned"), _count("raw.api_responses")
    if before != after:  # pragma: no cover - a guard, the INSERT either copies every row or fails
        raise RuntimeError(f"raw.api_responses: copied {after} of {before} rows; aborting the migration")
    _reset_identity("raw.api_responses")
    _copy_comments("raw.api_responses_unpartitioned", "raw.api_responses")
    op.execute(
        "COMMENT ON TABLE raw.api_responses IS 'One row per fetched API page, stored as it arrives (a retried"
        " extract resumes after the last valid page of its run); partitioned by UTC day of fetched_at, retention"
        " archives and drops a day (pages an open quarantine row points at move to raw.api_responses_held).'"
    )
    op.execute(
        "COMMENT ON COLUMN raw.api_responses.id IS 'Surrogate key (unique: one identity sequence); core rows and"
        " quarantine rows point here (raw_response_id). The primary key is (id, fetched_at), the partition"
        " column must be in it.'"
    )
    op.execute("DROP TABLE raw.api_responses_unpartitioned")
    op.execute(PENDING)
    op.execute(SEED_PENDING)


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER IF EXISTS document_features_queue_version ON enriched.document_features;
        DROP TRIGGER IF EXISTS documents_queue_changed ON core.documents;
        DROP TRIGGER IF EXISTS documents_queue_inserted ON core.documents;
        DROP FUNCTION IF EXISTS enriched.queue_other_version();
        DROP FUNCTION IF EXISTS enriched.queue_documents();
        DROP TABLE IF EXISTS enriched.pending_versions, enriched.pending_fingerprints, enriched.pending_features;
        """
    )
    op.execute(
        "CREATE TABLE raw.api_responses_flat (LIKE raw.api_responses INCLUDING DEFAULTS INCLUDING COMMENTS)"
    )
    op.execute(
        "ALTER TABLE raw.api_responses_flat ALTER COLUMN id DROP IDENTITY IF EXISTS,"
        " ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY"
    )
    cols = _columns("raw.api_responses")
    op.execute(
        f"INSERT INTO raw.api_responses_flat ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM raw.api_responses"
    )
    op.execute("DROP TABLE raw.api_responses")
    op.execute("ALTER TABLE raw.api_responses_flat RENAME TO api_responses")
    op.execute(
        """
        ALTER TABLE raw.api_responses ADD PRIMARY KEY (id);
        CREATE INDEX api_responses_run_idx ON raw.api_responses (source, dag_run_id, stream, page_no);
        CREATE INDEX api_responses_window_idx ON raw.api_responses (source, window_start);
        COMMENT ON TABLE raw.api_responses IS 'One row per fetched API page, stored as it arrives (a retried extract resumes after the last valid page of its run).';
        COMMENT ON COLUMN raw.api_responses.id IS 'Surrogate key; core rows and quarantine rows point here (raw_response_id).';
        """
    )
    _reset_identity("raw.api_responses")
    op.execute(OLD_DEFAULT_ROWS)
    op.execute("DROP FUNCTION IF EXISTS ops.ensure_day_partitions(regclass, timestamptz, timestamptz)")
