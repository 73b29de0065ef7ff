-- analytics.trend_daily
-- Per trend series and UTC day since its first document: documents, net sentiment, observed hours, and the
-- 7- and 28-day moving averages per fully observed day (coverage gaps shrink the denominator, never add zeros).
--
-- The current definition: migration 0017 (include/migrations/versions/0017_trends.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW analytics.trend_daily AS
    WITH days AS (
        SELECT source, (hour AT TIME ZONE 'UTC')::date AS day, count(*) FILTER (WHERE observed) AS observed_hours
          FROM analytics.trend_source_hours
         GROUP BY 1, 2
    ), daily AS (
        SELECT t.source, t.dimension, t.key, (t.hour AT TIME ZONE 'UTC')::date AS day,
               sum(t.documents) AS documents,
               coalesce(sum(t.documents) FILTER (WHERE sh.observed), 0) AS observed_documents,
               sum(t.positive) AS positive, sum(t.negative) AS negative,
               count(*) FILTER (WHERE t.volume_spike) AS volume_spike_hours,
               count(*) FILTER (WHERE t.sentiment_spike) AS sentiment_spike_hours
          FROM analytics.trend_series_hourly t
          JOIN analytics.trend_source_hours sh ON sh.source = t.source AND sh.hour = t.hour
         GROUP BY 1, 2, 3, 4
    ), dense AS (
        SELECT s.source, s.dimension, s.key, d.day, d.observed_hours,
               coalesce(x.documents, 0) AS documents, coalesce(x.observed_documents, 0) AS observed_documents,
               coalesce(x.positive, 0) AS positive, coalesce(x.negative, 0) AS negative,
               coalesce(x.volume_spike_hours, 0) AS volume_spike_hours,
               coalesce(x.sentiment_spike_hours, 0) AS sentiment_spike_hours
          FROM analytics.trend_series s
          JOIN days d ON d.source = s.source AND d.day >= (s.first_hour AT TIME ZONE 'UTC')::date
          LEFT JOIN daily x ON x.source = s.source AND x.dimension = s.dimension AND x.key = s.key AND x.day = d.day
    )
    SELECT source, dimension, key, day, observed_hours, documents,
           (positive - negative)::double precision / nullif(documents, 0) AS net_sentiment,
           24.0 * sum(observed_documents) OVER w7 / nullif(sum(observed_hours) OVER w7, 0) AS ma_7d,
           24.0 * sum(observed_documents) OVER w28 / nullif(sum(observed_hours) OVER w28, 0) AS ma_28d,
           (sum(positive) OVER w7 - sum(negative) OVER w7)::double precision
               / nullif(sum(documents) OVER w7, 0) AS net_sentiment_7d,
           (sum(positive) OVER w28 - sum(negative) OVER w28)::double precision
               / nullif(sum(documents) OVER w28, 0) AS net_sentiment_28d,
           volume_spike_hours, sentiment_spike_hours
      FROM dense
    WINDOW w7 AS (PARTITION BY source, dimension, key ORDER BY day
                  RANGE BETWEEN INTERVAL '6 days' PRECEDING AND CURRENT ROW),
           w28 AS (PARTITION BY source, dimension, key ORDER BY day
                   RANGE BETWEEN INTERVAL '27 days' PRECEDING AND CURRENT ROW);

COMMENT ON VIEW analytics.trend_daily IS 'Per trend series and UTC day since its first document: documents, net sentiment, observed hours, and the 7- and 28-day moving averages per fully observed day (coverage gaps shrink the denominator, never add zeros).';
COMMENT ON COLUMN analytics.trend_daily.source IS 'Source system.';
COMMENT ON COLUMN analytics.trend_daily.dimension IS 'source, topic, entity, ticker, keyword or repository.';
COMMENT ON COLUMN analytics.trend_daily.key IS 'The value of the dimension.';
COMMENT ON COLUMN analytics.trend_daily.day IS 'UTC day.';
COMMENT ON COLUMN analytics.trend_daily.observed_hours IS 'Hours of the day the source observed (24 for a full day; fewer with coverage gaps or on the current day).';
COMMENT ON COLUMN analytics.trend_daily.documents IS 'Published documents of the day (all hours).';
COMMENT ON COLUMN analytics.trend_daily.net_sentiment IS '(positive - negative) / documents for the day.';
COMMENT ON COLUMN analytics.trend_daily.ma_7d IS 'Documents per day over the 7 days ending with this one, counting observed hours only (24 x documents / observed hours).';
COMMENT ON COLUMN analytics.trend_daily.ma_28d IS 'The same over 28 days.';
COMMENT ON COLUMN analytics.trend_daily.net_sentiment_7d IS 'Net sentiment of all documents of the 7 days ending with this one.';
COMMENT ON COLUMN analytics.trend_daily.net_sentiment_28d IS 'The same over 28 days.';
COMMENT ON COLUMN analytics.trend_daily.volume_spike_hours IS 'Hours of the day flagged as volume spikes.';
COMMENT ON COLUMN analytics.trend_daily.sentiment_spike_hours IS 'Hours of the day flagged as sentiment spikes.';

GRANT SELECT ON analytics.trend_daily TO analyst;
