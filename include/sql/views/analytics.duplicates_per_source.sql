-- analytics.duplicates_per_source
-- Per source: published documents checked for duplicates and how many belong to a cluster.
--
-- The current definition: migration 0015 (include/migrations/versions/0015_hourly_bounds.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW analytics.duplicates_per_source AS
    SELECT u.source, sum(u.documents)::bigint AS documents, sum(u.in_clusters)::bigint AS in_clusters,
           round(100.0 * sum(u.in_clusters) / nullif(sum(u.documents), 0), 2) AS pct_in_clusters
      FROM (SELECT r.source, r.documents, r.in_clusters
              FROM ops.rollup_duplicates_hourly r
             WHERE NOT EXISTS (SELECT 1 FROM ops.rollup_dirty_hours x WHERE x.source = r.source AND x.hour = r.hour)
            UNION ALL
            SELECT l.source, l.documents, l.in_clusters
              FROM (SELECT k.source, k.hour, x.documents, x.in_clusters
                      FROM ops.rollup_dirty_hours k
                      JOIN quality.hour_audits h ON h.source = k.source AND h.hour = k.hour
                      JOIN quality.publish_state p ON p.source = k.source
                     CROSS JOIN LATERAL (
                            SELECT count(*) AS documents, count(c.cluster_id) AS in_clusters
                              FROM core.documents d
                              JOIN enriched.document_fingerprints f
                                ON f.source = d.source AND f.external_id = d.external_id AND f.created_at = d.created_at AND f.created_at >= k.hour AND f.created_at < k.hour + interval '1 hour'
                              LEFT JOIN enriched.duplicate_clusters c
                                ON c.source = f.source AND c.external_id = f.external_id AND c.created_at = f.created_at AND c.created_at >= k.hour AND c.created_at < k.hour + interval '1 hour'
                             WHERE d.source = k.source AND d.created_at >= k.hour AND d.created_at < k.hour + interval '1 hour' AND d.created_at < p.published_until AND d.loaded_at <= h.published_at
                            HAVING count(*) > 0) x) l) u
     GROUP BY u.source;

COMMENT ON VIEW analytics.duplicates_per_source IS 'Per source: published documents checked for duplicates and how many belong to a cluster.';
COMMENT ON COLUMN analytics.duplicates_per_source.source IS 'Source system.';
COMMENT ON COLUMN analytics.duplicates_per_source.documents IS 'Documents checked for duplicates.';
COMMENT ON COLUMN analytics.duplicates_per_source.in_clusters IS 'Of those, documents in a duplicate cluster.';
COMMENT ON COLUMN analytics.duplicates_per_source.pct_in_clusters IS 'Share in percent.';

GRANT SELECT ON analytics.duplicates_per_source TO analyst;
