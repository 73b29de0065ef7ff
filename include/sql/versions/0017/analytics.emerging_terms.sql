-- analytics.emerging_terms
-- What is rising: per source, keywords, entities, tickers, topics and repositories whose documents in the last
-- 24 observed hours run at least 3 times their rate over the 7 days before (per observed hour, plus one per day
-- so a term from nowhere needs real support), with at least 10 documents. Best growth first (rank).
--
-- Written once with migration 0017 (include/migrations/versions/0017_trends.py), which replays it: never edit
-- this copy; the view's current text is include/sql/views/<view>.sql (include/sql/README.md).

CREATE OR REPLACE VIEW analytics.emerging_terms AS
    WITH latest AS (
        SELECT source, max(hour) + INTERVAL '1 hour' AS until
          FROM analytics.trend_source_hours
         GROUP BY source
    ), obs AS (
        SELECT sh.source,
               count(*) FILTER (WHERE sh.hour >= l.until - INTERVAL '24 hours') AS recent_hours,
               count(*) FILTER (WHERE sh.hour < l.until - INTERVAL '24 hours') AS prior_hours
          FROM analytics.trend_source_hours sh
          JOIN latest l ON l.source = sh.source
         WHERE sh.observed AND sh.hour >= l.until - INTERVAL '8 days'
         GROUP BY sh.source
    ), counts AS (
        SELECT t.source, t.dimension, t.key,
               coalesce(sum(t.documents) FILTER (WHERE t.hour >= l.until - INTERVAL '24 hours'), 0) AS recent,
               coalesce(sum(t.documents) FILTER (WHERE t.hour < l.until - INTERVAL '24 hours'), 0) AS prior
          FROM analytics.trend_series_hourly t
          JOIN latest l ON l.source = t.source
          JOIN analytics.trend_source_hours sh ON sh.source = t.source AND sh.hour = t.hour AND sh.observed
         WHERE t.dimension IN ('keyword', 'entity', 'ticker', 'topic', 'repository')
           AND t.hour >= l.until - INTERVAL '8 days'
         GROUP BY 1, 2, 3
    ), scored AS (
        SELECT c.source, c.dimension, c.key, l.until - INTERVAL '24 hours' AS window_start, l.until AS window_end,
               c.recent AS documents_24h, o.recent_hours AS observed_hours_24h,
               24.0 * c.prior / o.prior_hours AS prior_per_day, o.prior_hours AS observed_hours_prior,
               (24.0 * c.recent / o.recent_hours + 1) / (24.0 * c.prior / o.prior_hours + 1) AS growth
          FROM counts c
          JOIN latest l ON l.source = c.source
          JOIN obs o ON o.source = c.source
         WHERE o.recent_hours >= 12 AND o.prior_hours >= 48
    )
    SELECT source, dimension, key, window_start, window_end, documents_24h, observed_hours_24h, prior_per_day,
           observed_hours_prior, growth,
           rank() OVER (PARTITION BY source, dimension ORDER BY growth DESC, documents_24h DESC) AS rank
      FROM scored
     WHERE documents_24h >= 10 AND growth >= 3;

COMMENT ON VIEW analytics.emerging_terms IS 'What is rising: per source, keywords, entities, tickers, topics and repositories whose documents in the last 24 hours run at least 3 times their rate of the 7 days before (observed hours only; plus one per day on both sides, so a term from nowhere needs real support), with at least 10 documents. rank 1 = fastest growth.';
COMMENT ON COLUMN analytics.emerging_terms.source IS 'Source system.';
COMMENT ON COLUMN analytics.emerging_terms.dimension IS 'keyword, entity, ticker, topic or repository.';
COMMENT ON COLUMN analytics.emerging_terms.key IS 'The term.';
COMMENT ON COLUMN analytics.emerging_terms.window_start IS 'Start of the last 24 hours (the source''s latest published hour minus 23).';
COMMENT ON COLUMN analytics.emerging_terms.window_end IS 'End of the last 24 hours: the source''s trends horizon.';
COMMENT ON COLUMN analytics.emerging_terms.documents_24h IS 'Documents in the last 24 hours (the support; at least 10).';
COMMENT ON COLUMN analytics.emerging_terms.observed_hours_24h IS 'Observed hours among them (at least 12).';
COMMENT ON COLUMN analytics.emerging_terms.prior_per_day IS 'Documents per observed day over the 7 days before.';
COMMENT ON COLUMN analytics.emerging_terms.observed_hours_prior IS 'Observed hours of those 7 days (at least 48 for a verdict).';
COMMENT ON COLUMN analytics.emerging_terms.growth IS '(rate per day in the last 24 hours + 1) / (prior rate per day + 1); at least 3.';
COMMENT ON COLUMN analytics.emerging_terms.rank IS 'Rank by growth within source and dimension (1 = fastest).';

GRANT SELECT ON analytics.emerging_terms TO analyst;
