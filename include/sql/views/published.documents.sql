-- published.documents
-- Published text items of every source (core.documents): posts, comments, tweets, articles, issues and
-- events. Authors are pseudonymised. Filter on source and created_at (partition pruning).
--
-- The current definition: migration 0010 (include/migrations/versions/0010_published_late_rows.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW published.documents AS
    SELECT d.source, d.external_id, d.kind, d.channel, d.created_at, d.title, d.body, d.url, d.author_pseudonym,
           d.score, d.metrics, d.payload, d.content_sha256, d.raw_response_id, d.dag_run_id, d.first_loaded_at,
           d.loaded_at
      FROM core.documents d
      JOIN quality.publish_state p ON p.source = d.source AND d.created_at < p.published_until
      JOIN quality.hour_audits h
        ON h.source = d.source AND h.hour = date_bin('1 hour', d.created_at, timestamptz '2000-01-01 00:00+00')
       AND d.loaded_at <= h.published_at;

COMMENT ON VIEW published.documents IS 'Published text items of every source (core.documents): posts, comments, tweets, articles, issues and events. Authors are pseudonymised. Filter on source and created_at (partition pruning).';
COMMENT ON COLUMN published.documents.source IS 'Source system: reddit, x, newsapi, github ...';
COMMENT ON COLUMN published.documents.external_id IS 'The item''s id in its source (Reddit fullname such as t3_abc).';
COMMENT ON COLUMN published.documents.kind IS 'post, comment, tweet, article, issue ...';
COMMENT ON COLUMN published.documents.channel IS 'Where the item was published: subreddit, query, feed or repository.';
COMMENT ON COLUMN published.documents.created_at IS 'When the item was created at its source (UTC); its hour is the audited hour.';
COMMENT ON COLUMN published.documents.title IS 'Title (posts, articles, issues); NULL for comments and tweets.';
COMMENT ON COLUMN published.documents.body IS 'Text of the item as published (at most 100 kB).';
COMMENT ON COLUMN published.documents.url IS 'Link to the item, or to what a link post points at.';
COMMENT ON COLUMN published.documents.author_pseudonym IS 'HMAC-SHA256 of source and author handle with the pipeline key; the handle itself is never stored outside raw.';
COMMENT ON COLUMN published.documents.score IS 'Source score (Reddit score, likes ...) when it has one.';
COMMENT ON COLUMN published.documents.metrics IS 'Engagement numbers at load time (comments, ratios ...).';
COMMENT ON COLUMN published.documents.payload IS 'Selected source fields without personal data.';
COMMENT ON COLUMN published.documents.content_sha256 IS 'Hash of the loaded content; it changes when the loader rewrites the row.';
COMMENT ON COLUMN published.documents.raw_response_id IS 'Lineage: the raw page this version came from (raw is for the pipeline only).';
COMMENT ON COLUMN published.documents.dag_run_id IS 'Lineage: the Airflow run that loaded this version.';
COMMENT ON COLUMN published.documents.first_loaded_at IS 'When the row was first loaded.';
COMMENT ON COLUMN published.documents.loaded_at IS 'When this version was loaded (an edit waits for the next audit of its hour).';

GRANT SELECT ON published.documents TO analyst;
