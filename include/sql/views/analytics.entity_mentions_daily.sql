-- analytics.entity_mentions_daily
-- Mentions of each entity in published documents per UTC day and source, with the mean sentiment of the
-- sentences mentioning it.
--
-- The current definition: migration 0015 (include/migrations/versions/0015_hourly_bounds.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW analytics.entity_mentions_daily AS
    WITH dirty_days AS (
        SELECT DISTINCT x.source, (x.hour AT TIME ZONE 'UTC')::date AS day FROM ops.rollup_dirty_hours x
    )
    SELECT r.day, r.entity_type, r.entity, r.source, r.mentions, r.documents,
           (r.sentiment_sum / nullif(r.sentiment_n, 0))::real AS avg_sentiment
      FROM ops.rollup_entity_daily r
     WHERE NOT EXISTS (SELECT 1 FROM dirty_days x WHERE x.source = r.source AND x.day = r.day)
    UNION ALL
    SELECT (u.hour AT TIME ZONE 'UTC')::date, u.entity_type, u.entity, u.source, sum(u.mentions)::bigint,
           sum(u.documents)::bigint, (sum(u.sentiment_sum) / nullif(sum(u.sentiment_n), 0))::real
      FROM (SELECT r.source, r.hour, r.entity_type, r.entity, r.mentions, r.documents, r.sentiment_sum,
                   r.sentiment_n
              FROM dirty_days x
             CROSS JOIN LATERAL (SELECT * FROM ops.rollup_entity_hourly y
                                  WHERE y.source = x.source AND y.hour >= x.day::timestamp AT TIME ZONE 'UTC' AND y.hour < (x.day + 1)::timestamp AT TIME ZONE 'UTC' OFFSET 0) r
             WHERE NOT EXISTS (SELECT 1 FROM ops.rollup_dirty_hours x WHERE x.source = r.source AND x.hour = r.hour)
            UNION ALL
            SELECT l.source, l.hour, l.entity_type, l.entity, l.mentions, l.documents, l.sentiment_sum,
                   l.sentiment_n
              FROM (SELECT k.source, k.hour, e.entity_type, e.entity, e.mentions, e.documents, e.sentiment_sum, e.sentiment_n
                      FROM ops.rollup_dirty_hours k
                      JOIN quality.hour_audits h ON h.source = k.source AND h.hour = k.hour
                      JOIN quality.publish_state p ON p.source = k.source
                     CROSS JOIN LATERAL (
                            SELECT m.entity_type, m.normalized AS entity, count(*) AS mentions,
                                   count(DISTINCT m.external_id) AS documents,
                                   sum(m.sentiment::double precision) AS sentiment_sum, count(m.sentiment) AS sentiment_n
                              FROM enriched.entity_mentions m
                              JOIN enriched.document_features f
                                ON f.source = m.source AND f.external_id = m.external_id AND f.created_at = m.created_at
                             WHERE m.source = k.source AND m.created_at >= k.hour AND m.created_at < k.hour + interval '1 hour' AND m.created_at < p.published_until AND f.source = k.source AND f.created_at >= k.hour AND f.created_at < k.hour + interval '1 hour' AND f.enriched_at <= h.published_at
                             GROUP BY m.entity_type, m.normalized) e) l) u
     GROUP BY (u.hour AT TIME ZONE 'UTC')::date, u.entity_type, u.entity, u.source;

COMMENT ON VIEW analytics.entity_mentions_daily IS 'Mentions of each entity in published documents per UTC day and source, with the mean sentiment of the sentences mentioning it.';
COMMENT ON COLUMN analytics.entity_mentions_daily.day IS 'UTC day the documents were created.';
COMMENT ON COLUMN analytics.entity_mentions_daily.entity_type IS 'person, organisation, place, ticker, crypto or product.';
COMMENT ON COLUMN analytics.entity_mentions_daily.entity IS 'Canonical entity name.';
COMMENT ON COLUMN analytics.entity_mentions_daily.source IS 'Source system.';
COMMENT ON COLUMN analytics.entity_mentions_daily.mentions IS 'Mentions.';
COMMENT ON COLUMN analytics.entity_mentions_daily.documents IS 'Documents mentioning it.';
COMMENT ON COLUMN analytics.entity_mentions_daily.avg_sentiment IS 'Mean VADER compound of the mentioning sentences.';

GRANT SELECT ON analytics.entity_mentions_daily TO analyst;
