-- analytics.trend_hourly
-- Every hour of every trend series since its first document, gaps included: documents (0 when the source was
-- observed and nothing came, NULL when the hour is a coverage gap), net sentiment, the 24-hour moving average,
-- the seasonal baseline, z-scores and spike flags. Filter on dimension and key (and source).
--
-- Written once with migration 0017 (include/migrations/versions/0017_trends.py), which replays it: never edit
-- this copy; the view's current text is include/sql/views/<view>.sql (include/sql/README.md).

CREATE OR REPLACE VIEW analytics.trend_hourly AS
    SELECT s.source, s.dimension, s.key, sh.hour, sh.observed,
           CASE WHEN sh.observed THEN coalesce(t.documents, 0) END AS documents,
           (t.positive - t.negative)::double precision / t.documents AS net_sentiment,
           sum(CASE WHEN sh.observed THEN coalesce(t.documents, 0) END) OVER w::double precision
               / nullif(count(*) FILTER (WHERE sh.observed) OVER w, 0) AS ma_24h,
           (sum(t.positive) OVER w - sum(t.negative) OVER w)::double precision
               / nullif(sum(t.documents) OVER w, 0) AS net_sentiment_24h,
           t.baseline_basis, t.baseline_documents, t.volume_z, t.volume_ratio, t.baseline_sentiment, t.sentiment_z,
           coalesce(t.volume_spike, false) AS volume_spike, coalesce(t.sentiment_spike, false) AS sentiment_spike
      FROM analytics.trend_series s
      JOIN analytics.trend_source_hours sh ON sh.source = s.source AND sh.hour >= s.first_hour
      LEFT JOIN analytics.trend_series_hourly t
        ON t.source = s.source AND t.dimension = s.dimension AND t.key = s.key AND t.hour = sh.hour
    WINDOW w AS (PARTITION BY s.source, s.dimension, s.key ORDER BY sh.hour
                 RANGE BETWEEN INTERVAL '23 hours' PRECEDING AND CURRENT ROW);

COMMENT ON VIEW analytics.trend_hourly IS 'Every hour of every trend series since its first document, gaps included: documents (0 when the source was observed and nothing came, NULL in a coverage gap), net sentiment, the 24-hour moving average, the seasonal baseline, z-scores and spike flags. Filter on dimension and key (and source).';
COMMENT ON COLUMN analytics.trend_hourly.source IS 'Source system.';
COMMENT ON COLUMN analytics.trend_hourly.dimension IS 'source, topic, entity, ticker, keyword or repository (analytics.trend_series).';
COMMENT ON COLUMN analytics.trend_hourly.key IS 'The value of the dimension (a topic, an entity ...).';
COMMENT ON COLUMN analytics.trend_hourly.hour IS 'Start of the hour (UTC).';
COMMENT ON COLUMN analytics.trend_hourly.observed IS 'false: the source has a coverage gap in this hour, so its volume is unknown.';
COMMENT ON COLUMN analytics.trend_hourly.documents IS 'Published documents in the hour; NULL when the hour is not observed (never read a gap as zero).';
COMMENT ON COLUMN analytics.trend_hourly.net_sentiment IS '(positive - negative) / documents, in [-1, 1]; NULL without documents.';
COMMENT ON COLUMN analytics.trend_hourly.ma_24h IS 'Mean documents per observed hour over the 24 hours ending with this one (gap hours left out of the mean).';
COMMENT ON COLUMN analytics.trend_hourly.net_sentiment_24h IS 'Net sentiment of all documents of the 24 hours ending with this one.';
COMMENT ON COLUMN analytics.trend_hourly.baseline_basis IS 'same_hour_of_week, same_hour_of_day or none (analytics.trend_series_hourly); NULL in hours without documents.';
COMMENT ON COLUMN analytics.trend_hourly.baseline_documents IS 'Median documents of the baseline hours (the same hour of the previous 4 weeks).';
COMMENT ON COLUMN analytics.trend_hourly.volume_z IS 'Robust z-score of the volume against the baseline.';
COMMENT ON COLUMN analytics.trend_hourly.volume_ratio IS 'documents / baseline_documents.';
COMMENT ON COLUMN analytics.trend_hourly.baseline_sentiment IS 'Net sentiment of the baseline hours'' documents.';
COMMENT ON COLUMN analytics.trend_hourly.sentiment_z IS 'z-score of the hour''s net sentiment against the baseline''s.';
COMMENT ON COLUMN analytics.trend_hourly.volume_spike IS 'The hour is a volume spike (analytics.trend_spikes groups them into episodes).';
COMMENT ON COLUMN analytics.trend_hourly.sentiment_spike IS 'The hour is a sentiment spike, up or down.';

GRANT SELECT ON analytics.trend_hourly TO analyst;
