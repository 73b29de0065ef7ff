-- analytics.entity_mentions_daily
-- Mentions of each entity in published documents per UTC day and source, with the mean sentiment of the
-- sentences mentioning it.
--
-- The current definition: migration 0010 (include/migrations/versions/0010_published_late_rows.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW analytics.entity_mentions_daily AS
    SELECT (m.created_at AT TIME ZONE 'UTC')::date AS day, m.entity_type, m.normalized AS entity, m.source,
           count(*) AS mentions, count(DISTINCT (m.external_id)) AS documents, avg(m.sentiment)::real AS avg_sentiment
      FROM published.entity_mentions m
     GROUP BY 1, 2, 3, 4;

COMMENT ON VIEW analytics.entity_mentions_daily IS 'Mentions of each entity in published documents per UTC day and source, with the mean sentiment of the sentences mentioning it.';
COMMENT ON COLUMN analytics.entity_mentions_daily.day IS 'UTC day the documents were created.';
COMMENT ON COLUMN analytics.entity_mentions_daily.entity_type IS 'person, organisation, place or ticker.';
COMMENT ON COLUMN analytics.entity_mentions_daily.entity IS 'Canonical entity name.';
COMMENT ON COLUMN analytics.entity_mentions_daily.source IS 'Source system.';
COMMENT ON COLUMN analytics.entity_mentions_daily.mentions IS 'Mentions.';
COMMENT ON COLUMN analytics.entity_mentions_daily.documents IS 'Documents mentioning it.';
COMMENT ON COLUMN analytics.entity_mentions_daily.avg_sentiment IS 'Mean VADER compound of the mentioning sentences.';

GRANT SELECT ON analytics.entity_mentions_daily TO analyst;
