-- published.component_versions
-- Every model and lexicon an enrichment version used, with its own version or checksum
-- (enriched.component_versions; not gated: it describes code, not data).
--
-- The current definition: migration 0010 (include/migrations/versions/0010_published_late_rows.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW published.component_versions AS
    SELECT enrichment_version, component, version, recorded_at FROM enriched.component_versions;

COMMENT ON VIEW published.component_versions IS 'Every model and lexicon an enrichment version used, with its own version or checksum (enriched.component_versions; not gated: it describes code, not data).';
COMMENT ON COLUMN published.component_versions.enrichment_version IS 'The enrichment version.';
COMMENT ON COLUMN published.component_versions.component IS 'Which part: language, sentiment_lexicon, sentiment_model, emotion_lexicon ...';
COMMENT ON COLUMN published.component_versions.version IS 'Package version, model file checksum or lexicon checksum.';
COMMENT ON COLUMN published.component_versions.recorded_at IS 'When the version was first used.';

GRANT SELECT ON published.component_versions TO analyst;
