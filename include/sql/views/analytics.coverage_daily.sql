-- analytics.coverage_daily
-- Per source and UTC day (of window start): which windows were ingested, which are gaps and why, and which
-- hours are held back by failed quality checks.
--
-- The current definition: migration 0008 (include/migrations/versions/0008_publish_and_alerts.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW analytics.coverage_daily AS
    SELECT g.*,
           (SELECT range_agg(tstzrange(w.window_start, w.window_end))
              FROM quality.window_audits w
             WHERE w.source = g.source AND w.status = 'held'
               AND w.window_start < (g.day + 1)::timestamp AT TIME ZONE 'UTC'
               AND w.window_end > g.day::timestamp AT TIME ZONE 'UTC') AS held_ranges
      FROM (SELECT source, (window_start AT TIME ZONE 'UTC')::date AS day,
                   count(DISTINCT stream) AS streams,
                   count(*) FILTER (WHERE status = 'ingested') AS windows_ingested,
                   range_agg(tstzrange(window_start, window_end)) FILTER (WHERE status = 'ingested') AS ingested,
                   count(*) FILTER (WHERE status = 'gap') AS gaps,
                   range_agg(tstzrange(window_start, window_end)) FILTER (WHERE status = 'gap') AS gap_ranges,
                   array_agg(DISTINCT reason) FILTER (WHERE status = 'gap') AS gap_reasons
              FROM ops.coverage
             GROUP BY 1, 2) g;

COMMENT ON VIEW analytics.coverage_daily IS 'Per source and UTC day (of window start): which windows were ingested, which are gaps and why, and which hours are held back by failed quality checks.';
COMMENT ON COLUMN analytics.coverage_daily.source IS 'Source system.';
COMMENT ON COLUMN analytics.coverage_daily.day IS 'UTC day of the window start.';
COMMENT ON COLUMN analytics.coverage_daily.streams IS 'Distinct streams with any record that day.';
COMMENT ON COLUMN analytics.coverage_daily.windows_ingested IS 'Stream windows ingested.';
COMMENT ON COLUMN analytics.coverage_daily.ingested IS 'The time ranges ingested by at least one stream, merged.';
COMMENT ON COLUMN analytics.coverage_daily.gaps IS 'Stream windows (or parts) that could not be ingested.';
COMMENT ON COLUMN analytics.coverage_daily.gap_ranges IS 'The time ranges of those gaps, merged.';
COMMENT ON COLUMN analytics.coverage_daily.gap_reasons IS 'Why: beyond_reach, budget_exhausted, listing_cap, not_yet_available.';
COMMENT ON COLUMN analytics.coverage_daily.held_ranges IS 'Audited hours of that day whose quality checks failed: not published until fixed and re-audited, or released.';

GRANT SELECT ON analytics.coverage_daily TO analyst;
