-- analytics.daily_sentiment
-- Sentiment of published documents per UTC day (of created_at), source and topic.
--
-- The current definition: migration 0010 (include/migrations/versions/0010_published_late_rows.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW analytics.daily_sentiment AS
    SELECT (f.created_at AT TIME ZONE 'UTC')::date AS day, f.source, coalesce(f.topic, 'other') AS topic,
           count(*) AS documents,
           avg(f.sentiment_vader)::real AS avg_vader,
           count(*) FILTER (WHERE f.sentiment_label = 'positive') AS positive,
           count(*) FILTER (WHERE f.sentiment_label = 'neutral') AS neutral,
           count(*) FILTER (WHERE f.sentiment_label = 'negative') AS negative
      FROM published.document_features f
     GROUP BY 1, 2, 3;

COMMENT ON VIEW analytics.daily_sentiment IS 'Sentiment of published documents per UTC day (of created_at), source and topic.';
COMMENT ON COLUMN analytics.daily_sentiment.day IS 'UTC day the documents were created.';
COMMENT ON COLUMN analytics.daily_sentiment.source IS 'Source system.';
COMMENT ON COLUMN analytics.daily_sentiment.topic IS 'Topic from include/enrich/topics.yaml (other when none).';
COMMENT ON COLUMN analytics.daily_sentiment.documents IS 'Enriched documents.';
COMMENT ON COLUMN analytics.daily_sentiment.avg_vader IS 'Mean VADER compound score, -1..1.';
COMMENT ON COLUMN analytics.daily_sentiment.positive IS 'Documents the ensemble labels positive.';
COMMENT ON COLUMN analytics.daily_sentiment.neutral IS 'Documents labelled neutral.';
COMMENT ON COLUMN analytics.daily_sentiment.negative IS 'Documents labelled negative.';

GRANT SELECT ON analytics.daily_sentiment TO analyst;
