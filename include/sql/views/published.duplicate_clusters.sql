-- published.duplicate_clusters
-- Published documents that belong to a cluster of the same story across sources
-- (enriched.duplicate_clusters); a member shows while its document is published.
--
-- The current definition: migration 0010 (include/migrations/versions/0010_published_late_rows.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW published.duplicate_clusters AS
    SELECT c.source, c.external_id, c.created_at, c.cluster_id, c.method, c.joined_at
      FROM enriched.duplicate_clusters c
      JOIN published.documents d ON d.source = c.source AND d.external_id = c.external_id AND d.created_at = c.created_at;

COMMENT ON VIEW published.duplicate_clusters IS 'Published documents that belong to a cluster of the same story across sources (enriched.duplicate_clusters); a member shows while its document is published.';
COMMENT ON COLUMN published.duplicate_clusters.source IS 'Source system.';
COMMENT ON COLUMN published.duplicate_clusters.external_id IS 'The document''s id in its source.';
COMMENT ON COLUMN published.duplicate_clusters.created_at IS 'When the document was created (UTC).';
COMMENT ON COLUMN published.duplicate_clusters.cluster_id IS 'The cluster; stable while the cluster only grows.';
COMMENT ON COLUMN published.duplicate_clusters.method IS 'How the document joined: exact_text, canonical_url, near_duplicate (or seed: the first member).';
COMMENT ON COLUMN published.duplicate_clusters.joined_at IS 'When it joined.';

GRANT SELECT ON published.duplicate_clusters TO analyst;
