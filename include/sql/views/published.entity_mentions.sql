-- published.entity_mentions
-- Entities mentioned in published documents (enriched.entity_mentions): written with the document's features
-- and published with them.
--
-- The current definition: migration 0010 (include/migrations/versions/0010_published_late_rows.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW published.entity_mentions AS
    SELECT m.source, m.external_id, m.created_at, m.enrichment_version, m.entity_type, m.text, m.normalized,
           m.start_offset, m.end_offset, m.sentiment
      FROM enriched.entity_mentions m
      JOIN published.document_features f
        ON f.source = m.source AND f.external_id = m.external_id AND f.created_at = m.created_at;

COMMENT ON VIEW published.entity_mentions IS 'Entities mentioned in published documents (enriched.entity_mentions): written with the document''s features and published with them.';
COMMENT ON COLUMN published.entity_mentions.source IS 'Source system.';
COMMENT ON COLUMN published.entity_mentions.external_id IS 'The document''s id in its source.';
COMMENT ON COLUMN published.entity_mentions.created_at IS 'When the document was created (UTC).';
COMMENT ON COLUMN published.entity_mentions.enrichment_version IS 'The enrichment version that found the mention.';
COMMENT ON COLUMN published.entity_mentions.entity_type IS 'person, organisation, place, ticker, crypto or product.';
COMMENT ON COLUMN published.entity_mentions.text IS 'The mention as written.';
COMMENT ON COLUMN published.entity_mentions.normalized IS 'Canonical name of the entity (Apple Inc., AAPL, Paris); group by this.';
COMMENT ON COLUMN published.entity_mentions.start_offset IS 'Start character offset in title + newline + body.';
COMMENT ON COLUMN published.entity_mentions.end_offset IS 'End character offset (exclusive).';
COMMENT ON COLUMN published.entity_mentions.sentiment IS 'VADER compound of the sentences that mention the entity (aspect-level sentiment).';

GRANT SELECT ON published.entity_mentions TO analyst;
