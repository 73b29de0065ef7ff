-- analytics.market_sentiment_daily
-- Per traded symbol and UTC day with a published bar: the day's close, its daily return, the rolling 20-day
-- volatility of returns, and, next to them, the documents mentioning the symbol's entity that day and their net
-- sentiment (all sources).
--
-- The current definition: migration 0017 (include/migrations/versions/0017_trends.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW analytics.market_sentiment_daily AS
    WITH closes AS (
        SELECT DISTINCT ON (b.symbol, b.market, (b.ts AT TIME ZONE 'UTC')::date)
               b.symbol, b.market, b.asset_class, (b.ts AT TIME ZONE 'UTC')::date AS day, b.close::double precision AS close
          FROM published.market_bars b
         ORDER BY b.symbol, b.market, (b.ts AT TIME ZONE 'UTC')::date, b.ts DESC
    ), returns AS (
        SELECT c.*, c.close / nullif(lag(c.close) OVER (PARTITION BY c.symbol, c.market ORDER BY c.day), 0) - 1
                   AS daily_return
          FROM closes c
    ), vol AS (
        SELECT r.*, stddev_samp(r.daily_return) OVER w AS volatility_20d, count(r.daily_return) OVER w AS return_days_20d
          FROM returns r
        WINDOW w AS (PARTITION BY r.symbol, r.market ORDER BY r.day ROWS BETWEEN 19 PRECEDING AND CURRENT ROW)
    ), sentiment AS (
        SELECT te.symbol, te.entity, (t.hour AT TIME ZONE 'UTC')::date AS day, sum(t.documents) AS documents,
               sum(t.positive) AS positive, sum(t.negative) AS negative
          FROM analytics.ticker_entities te
          JOIN analytics.trend_series_hourly t ON t.dimension = 'entity' AND t.key = te.entity
         GROUP BY 1, 2, 3
    )
    SELECT v.symbol, v.market, v.asset_class, te.entity, v.day, v.close, v.daily_return, v.volatility_20d,
           v.return_days_20d, coalesce(s.documents, 0) AS documents,
           (s.positive - s.negative)::double precision / nullif(s.documents, 0) AS net_sentiment
      FROM vol v
      LEFT JOIN analytics.ticker_entities te ON te.symbol = v.symbol
      LEFT JOIN sentiment s ON s.symbol = v.symbol AND s.day = v.day;

COMMENT ON VIEW analytics.market_sentiment_daily IS 'Per traded symbol and UTC day with a published bar: the close, the daily return, the rolling 20-day volatility of returns, and next to them the documents mentioning the symbol''s entity that day (all sources) with their net sentiment.';
COMMENT ON COLUMN analytics.market_sentiment_daily.symbol IS 'Ticker or coin symbol.';
COMMENT ON COLUMN analytics.market_sentiment_daily.market IS 'Market or quote currency of the bars.';
COMMENT ON COLUMN analytics.market_sentiment_daily.asset_class IS 'stock or crypto.';
COMMENT ON COLUMN analytics.market_sentiment_daily.entity IS 'The entity documents mention the symbol as (analytics.ticker_entities); NULL when the gazetteer does not know it.';
COMMENT ON COLUMN analytics.market_sentiment_daily.day IS 'UTC day.';
COMMENT ON COLUMN analytics.market_sentiment_daily.close IS 'Close of the day''s last published bar.';
COMMENT ON COLUMN analytics.market_sentiment_daily.daily_return IS 'close / previous day''s close - 1 (previous day with a bar); NULL on the first day.';
COMMENT ON COLUMN analytics.market_sentiment_daily.volatility_20d IS 'Sample standard deviation of the daily returns of the last 20 bar days (not annualised; x sqrt(252) for stocks, x sqrt(365) for crypto).';
COMMENT ON COLUMN analytics.market_sentiment_daily.return_days_20d IS 'Returns the volatility is computed from (fewer than 20 early on; under 5 it is noise).';
COMMENT ON COLUMN analytics.market_sentiment_daily.documents IS 'Published documents mentioning the entity that day (all sources; the sample size of net_sentiment).';
COMMENT ON COLUMN analytics.market_sentiment_daily.net_sentiment IS '(positive - negative) / documents of those documents; NULL without documents.';

GRANT SELECT ON analytics.market_sentiment_daily TO analyst;
