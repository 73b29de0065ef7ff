-- analytics.duplicates_per_source
-- Per source: published documents checked for duplicates and how many belong to a cluster.
--
-- The current definition: migration 0010 (include/migrations/versions/0010_published_late_rows.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW analytics.duplicates_per_source AS
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

GRANT SELECT ON analytics.duplicates_per_source TO analyst;
