-- analytics.daily_sentiment
-- Sentiment of published documents per UTC day (of created_at), source and topic.
--
-- The current definition: migration 0014 (include/migrations/versions/0014_rollups.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW analytics.daily_sentiment AS
    SELECT (u.hour AT TIME ZONE 'UTC')::date AS day, u.source, u.topic, sum(u.documents)::bigint AS documents,
           (sum(u.vader_sum) / nullif(sum(u.vader_n), 0))::real AS avg_vader,
           sum(u.positive)::bigint AS positive, sum(u.neutral)::bigint AS neutral,
           sum(u.negative)::bigint AS negative
      FROM (SELECT r.source, r.hour, r.topic, r.documents, r.vader_sum, r.vader_n, r.positive, r.neutral,
                   r.negative
              FROM ops.rollup_sentiment_hourly r
             WHERE NOT EXISTS (SELECT 1 FROM ops.rollup_dirty_hours x WHERE x.source = r.source AND x.hour = r.hour)
            UNION ALL
            SELECT l.source, l.hour, l.topic, l.documents, l.vader_sum, l.vader_n, l.positive, l.neutral,
                   l.negative
              FROM (SELECT k.source, k.hour, s.topic, s.documents, s.vader_sum, s.vader_n, s.positive, s.neutral, s.negative
                      FROM ops.rollup_dirty_hours k
                      JOIN quality.hour_audits h ON h.source = k.source AND h.hour = k.hour
                      JOIN quality.publish_state p ON p.source = k.source
                     CROSS JOIN LATERAL (
                            SELECT coalesce(f.topic, 'other') AS topic, count(*) AS documents,
                                   sum(f.sentiment_vader::double precision) AS vader_sum, count(f.sentiment_vader) AS vader_n,
                                   count(*) FILTER (WHERE f.sentiment_label = 'positive') AS positive,
                                   count(*) FILTER (WHERE f.sentiment_label = 'neutral') AS neutral,
                                   count(*) FILTER (WHERE f.sentiment_label = 'negative') AS negative
                              FROM enriched.document_features f
                             WHERE f.source = k.source AND f.created_at >= k.hour AND f.created_at < k.hour + interval '1 hour' AND f.created_at < p.published_until AND f.enriched_at <= h.published_at
                             GROUP BY coalesce(f.topic, 'other')) s) l) u
     GROUP BY (u.hour AT TIME ZONE 'UTC')::date, u.source, u.topic;

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
