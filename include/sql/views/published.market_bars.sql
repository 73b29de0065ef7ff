-- published.market_bars
-- Published price bars (core.market_bars): stocks daily and intraday, crypto daily. Filter on symbol and ts.
--
-- The current definition: migration 0010 (include/migrations/versions/0010_published_late_rows.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW published.market_bars AS
    SELECT b.source, b.symbol, b.market, b.asset_class, b.interval, b.ts, b.open, b.high, b.low, b.close, b.volume,
           b.content_sha256, b.raw_response_id, b.dag_run_id, b.first_loaded_at, b.loaded_at
      FROM core.market_bars b
      JOIN quality.publish_state p ON p.source = b.source AND b.ts < p.published_until
      JOIN quality.hour_audits h
        ON h.source = b.source AND h.hour = date_bin('1 hour', b.ts, timestamptz '2000-01-01 00:00+00')
       AND b.loaded_at <= h.published_at;

COMMENT ON VIEW published.market_bars IS 'Published price bars (core.market_bars): stocks daily and intraday, crypto daily. Filter on symbol and ts.';
COMMENT ON COLUMN published.market_bars.source IS 'Source system (alphavantage).';
COMMENT ON COLUMN published.market_bars.symbol IS 'Ticker (AAPL) or crypto symbol (BTC).';
COMMENT ON COLUMN published.market_bars.market IS 'Quote currency or exchange market (USD for US stocks, EUR for BTC/EUR).';
COMMENT ON COLUMN published.market_bars.asset_class IS 'stock or crypto.';
COMMENT ON COLUMN published.market_bars.interval IS 'Bar length: 1d, 60min, 15min, 5min, 1min.';
COMMENT ON COLUMN published.market_bars.ts IS 'Bar start in UTC (daily bars: the trading day at 00:00 UTC); its hour is the audited hour.';
COMMENT ON COLUMN published.market_bars.open IS 'Opening price in the market currency.';
COMMENT ON COLUMN published.market_bars.high IS 'Highest price in the bar.';
COMMENT ON COLUMN published.market_bars.low IS 'Lowest price in the bar.';
COMMENT ON COLUMN published.market_bars.close IS 'Closing price.';
COMMENT ON COLUMN published.market_bars.volume IS 'Traded volume (shares or coins).';
COMMENT ON COLUMN published.market_bars.content_sha256 IS 'Hash of the loaded content.';
COMMENT ON COLUMN published.market_bars.raw_response_id IS 'Lineage: the raw page this version came from.';
COMMENT ON COLUMN published.market_bars.dag_run_id IS 'Lineage: the Airflow run that loaded this version.';
COMMENT ON COLUMN published.market_bars.first_loaded_at IS 'When the row was first loaded.';
COMMENT ON COLUMN published.market_bars.loaded_at IS 'When this version was loaded.';

GRANT SELECT ON published.market_bars TO analyst;
