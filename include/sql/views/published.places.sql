-- published.places
-- Places published documents mention (enriched.places), geocoded offline; published with the document's
-- features.
--
-- The current definition: migration 0010 (include/migrations/versions/0010_published_late_rows.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW published.places AS
    SELECT pl.source, pl.external_id, pl.created_at, pl.enrichment_version, pl.name, pl.lat, pl.lon, pl.country
      FROM enriched.places pl
      JOIN published.document_features f
        ON f.source = pl.source AND f.external_id = pl.external_id AND f.created_at = pl.created_at;

COMMENT ON VIEW published.places IS 'Places published documents mention (enriched.places), geocoded offline; published with the document''s features.';
COMMENT ON COLUMN published.places.source IS 'Source system.';
COMMENT ON COLUMN published.places.external_id IS 'The document''s id in its source.';
COMMENT ON COLUMN published.places.created_at IS 'When the document was created (UTC).';
COMMENT ON COLUMN published.places.enrichment_version IS 'The enrichment version that found the place.';
COMMENT ON COLUMN published.places.name IS 'Canonical place name.';
COMMENT ON COLUMN published.places.lat IS 'Latitude (degrees).';
COMMENT ON COLUMN published.places.lon IS 'Longitude (degrees).';
COMMENT ON COLUMN published.places.country IS 'ISO 3166-1 alpha-2 country code.';

GRANT SELECT ON published.places TO analyst;
