-- analytics.duplicate_clusters
-- Clusters of published documents that are the same story (exact text, same canonical URL or near-duplicate
-- text), across sources.
--
-- The current definition: migration 0014 (include/migrations/versions/0014_rollups.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW analytics.duplicate_clusters AS
    WITH dirty AS (
        SELECT cluster_id FROM ops.rollup_dirty_clusters
        UNION
        SELECT c.cluster_id
          FROM ops.rollup_dirty_hours k
         CROSS JOIN LATERAL (
                SELECT DISTINCT c.cluster_id FROM enriched.duplicate_clusters c
                 WHERE c.source = k.source AND c.created_at >= k.hour AND c.created_at < k.hour + interval '1 hour') c
    )
    SELECT r.cluster_id, r.documents, r.sources, r.source_list, r.methods, r.first_created_at, r.last_created_at,
           r.sample_title
      FROM ops.rollup_clusters r
     WHERE NOT EXISTS (SELECT 1 FROM dirty x WHERE x.cluster_id = r.cluster_id)
    UNION ALL
    SELECT a.cluster_id, a.documents, a.sources, a.source_list, a.methods, a.first_created_at, a.last_created_at,
           a.sample_title
      FROM dirty s
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
             GROUP BY c.cluster_id) a;

COMMENT ON VIEW analytics.duplicate_clusters IS 'Clusters of published documents that are the same story (exact text, same canonical URL or near-duplicate text), across sources.';
COMMENT ON COLUMN analytics.duplicate_clusters.cluster_id IS 'The cluster (published.duplicate_clusters lists its published members).';
COMMENT ON COLUMN analytics.duplicate_clusters.documents IS 'Published documents in the cluster.';
COMMENT ON COLUMN analytics.duplicate_clusters.sources IS 'Distinct sources in it.';
COMMENT ON COLUMN analytics.duplicate_clusters.source_list IS 'Those sources.';
COMMENT ON COLUMN analytics.duplicate_clusters.methods IS 'How members joined: exact_text, canonical_url, near_duplicate, seed.';
COMMENT ON COLUMN analytics.duplicate_clusters.first_created_at IS 'Creation time of the earliest member.';
COMMENT ON COLUMN analytics.duplicate_clusters.last_created_at IS 'Creation time of the latest member.';
COMMENT ON COLUMN analytics.duplicate_clusters.sample_title IS 'Title of the earliest member that has one.';

GRANT SELECT ON analytics.duplicate_clusters TO analyst;
