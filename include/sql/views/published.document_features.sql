-- published.document_features
-- Published features per document (enriched.document_features): language, sentiment, emotions, keywords,
-- topic. Features written after their hour's audit wait for the next one.
--
-- The current definition: migration 0016 (include/migrations/versions/0016_sentiment_basis.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW published.document_features AS
    SELECT f.source, f.external_id, f.created_at, f.enrichment_version, f.language, f.language_confidence,
           f.sentiment_vader, f.sentiment_label, f.sentiment_confidence, f.emotions, f.keywords, f.topic,
           f.topic_confidence, f.sarcasm, f.enriched_at, f.sentiment_basis
      FROM enriched.document_features f
      JOIN quality.publish_state p ON p.source = f.source AND f.created_at < p.published_until
      JOIN quality.hour_audits h
        ON h.source = f.source AND h.hour = date_bin('1 hour', f.created_at, timestamptz '2000-01-01 00:00+00')
       AND f.enriched_at <= h.published_at;

COMMENT ON VIEW published.document_features IS 'Published features per document (enriched.document_features): language, sentiment, emotions, keywords, topic. Features written after their hour''s audit wait for the next one.';
COMMENT ON COLUMN published.document_features.source IS 'Source system (with external_id and created_at: the published.documents key).';
COMMENT ON COLUMN published.document_features.external_id IS 'The document''s id in its source.';
COMMENT ON COLUMN published.document_features.created_at IS 'When the document was created at its source (UTC).';
COMMENT ON COLUMN published.document_features.enrichment_version IS 'The enrichment version that computed the row; published.component_versions lists its models and lexicons.';
COMMENT ON COLUMN published.document_features.language IS 'ISO 639-1 language code of title and body.';
COMMENT ON COLUMN published.document_features.language_confidence IS 'Language detector confidence, 0..1.';
COMMENT ON COLUMN published.document_features.sentiment_vader IS 'VADER compound score, -1 (negative) .. 1 (positive).';
COMMENT ON COLUMN published.document_features.sentiment_label IS 'Ensemble label: negative, neutral or positive.';
COMMENT ON COLUMN published.document_features.sentiment_confidence IS 'Ensemble confidence in the label, 0..1.';
COMMENT ON COLUMN published.document_features.emotions IS 'NRC emotion categories and how many words of each the text holds, e.g. {"joy": 2, "fear": 1}.';
COMMENT ON COLUMN published.document_features.keywords IS 'Top keywords, best first.';
COMMENT ON COLUMN published.document_features.topic IS 'Topic from the fixed taxonomy in include/enrich/topics.yaml.';
COMMENT ON COLUMN published.document_features.topic_confidence IS 'Topic classifier confidence, 0..1.';
COMMENT ON COLUMN published.document_features.sarcasm IS 'Reserved: no sarcasm detector works offline (docs/enrichment.md); always NULL.';
COMMENT ON COLUMN published.document_features.enriched_at IS 'When the features were written (they wait for the next audit of their hour after that).';
COMMENT ON COLUMN published.document_features.sentiment_basis IS 'How the sentiment label was made: ensemble (the trained text model with VADER) or vader (the text is out of the model''s domain, so the label leans on VADER, the source and the question cue). NULL before enrichment 2026.12.1.';

GRANT SELECT ON published.document_features TO analyst;
