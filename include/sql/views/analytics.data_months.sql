-- analytics.data_months
-- Where each month of each partitioned table lives: hot in PostgreSQL, archived to Parquet (and where), or
-- restored from its archive.
--
-- The current definition: migration 0009 (include/migrations/versions/0009_archives_exports.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW analytics.data_months AS
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

GRANT SELECT ON analytics.data_months TO analyst;
