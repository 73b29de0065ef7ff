-- analytics.duplicate_clusters
-- Clusters of published documents that are the same story (exact text, same canonical URL or near-duplicate
-- text), across sources.
--
-- The current definition: migration 0010 (include/migrations/versions/0010_published_late_rows.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

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
