-- analytics.weather_sentiment_by_city
-- Weather against sentiment per city: over the UTC days with a current-weather observation of the city and at
-- least 3 published documents mentioning it, the correlation of the day's mean temperature, rain and cloud
-- cover with the net sentiment of those documents; with the sample size (days, documents) and a t statistic.
--
-- Written once with migration 0017 (include/migrations/versions/0017_trends.py), which replays it: never edit
-- this copy; the view's current text is include/sql/views/<view>.sql (include/sql/README.md).

CREATE OR REPLACE VIEW analytics.weather_sentiment_by_city AS
    WITH weather AS (
        SELECT w.city, w.country, (w.valid_at AT TIME ZONE 'UTC')::date AS day,
               avg(w.temp_c)::double precision AS temp_c, avg(coalesce(w.rain_mm, 0))::double precision AS rain_mm,
               avg(w.clouds_pct)::double precision AS clouds_pct
          FROM published.weather_observations w
         WHERE w.kind = 'current'
         GROUP BY 1, 2, 3
    ), mentions AS (
        SELECT t.key AS city, (t.hour AT TIME ZONE 'UTC')::date AS day, sum(t.documents) AS documents,
               (sum(t.positive) - sum(t.negative))::double precision / sum(t.documents) AS net_sentiment
          FROM analytics.trend_series_hourly t
         WHERE t.dimension = 'entity'
         GROUP BY 1, 2
    ), paired AS (
        SELECT w.city, w.country, w.day, w.temp_c, w.rain_mm, w.clouds_pct, m.documents, m.net_sentiment
          FROM weather w
          JOIN mentions m ON m.city = w.city AND m.day = w.day
         WHERE m.documents >= 3
    ), agg AS (
        SELECT city, country, count(*) AS days, sum(documents) AS documents, min(day) AS first_day,
               max(day) AS last_day, avg(net_sentiment) AS mean_net_sentiment,
               corr(temp_c, net_sentiment) AS temp_sentiment_corr,
               corr(rain_mm, net_sentiment) AS rain_sentiment_corr,
               corr(clouds_pct, net_sentiment) AS clouds_sentiment_corr
          FROM paired
         GROUP BY city, country
    )
    SELECT city, country, days, documents, first_day, last_day, mean_net_sentiment, temp_sentiment_corr,
           temp_sentiment_corr * sqrt(greatest(days - 2, 0) / nullif(1 - temp_sentiment_corr ^ 2, 0))
               AS temp_sentiment_t, rain_sentiment_corr, clouds_sentiment_corr
      FROM agg;

COMMENT ON VIEW analytics.weather_sentiment_by_city IS 'Weather against sentiment per city: over the UTC days with a current-weather observation and at least 3 published documents mentioning the city, the correlation of the day''s mean temperature, rain and cloud cover with those documents'' net sentiment, with the sample size and a t statistic.';
COMMENT ON COLUMN analytics.weather_sentiment_by_city.city IS 'City as the weather source names it (matched to the canonical place name of entity mentions).';
COMMENT ON COLUMN analytics.weather_sentiment_by_city.country IS 'Country code.';
COMMENT ON COLUMN analytics.weather_sentiment_by_city.days IS 'Days paired (the sample size of the correlations; below about 10 they mean little).';
COMMENT ON COLUMN analytics.weather_sentiment_by_city.documents IS 'Documents over those days.';
COMMENT ON COLUMN analytics.weather_sentiment_by_city.first_day IS 'First paired day.';
COMMENT ON COLUMN analytics.weather_sentiment_by_city.last_day IS 'Last paired day.';
COMMENT ON COLUMN analytics.weather_sentiment_by_city.mean_net_sentiment IS 'Mean of the days'' net sentiment.';
COMMENT ON COLUMN analytics.weather_sentiment_by_city.temp_sentiment_corr IS 'Pearson correlation of daily mean temperature and net sentiment; NULL with fewer than 2 days or no variation.';
COMMENT ON COLUMN analytics.weather_sentiment_by_city.temp_sentiment_t IS 't statistic of that correlation (r x sqrt((days - 2) / (1 - r^2))): |t| above about 2 is unlikely by chance.';
COMMENT ON COLUMN analytics.weather_sentiment_by_city.rain_sentiment_corr IS 'Correlation of daily mean rain (mm, none = 0) and net sentiment.';
COMMENT ON COLUMN analytics.weather_sentiment_by_city.clouds_sentiment_corr IS 'Correlation of daily mean cloud cover and net sentiment.';

GRANT SELECT ON analytics.weather_sentiment_by_city TO analyst;
