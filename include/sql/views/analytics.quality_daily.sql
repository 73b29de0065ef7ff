-- analytics.quality_daily
-- Quality score per source and UTC day: the share of checks that passed.
--
-- The current definition: migration 0007 (include/migrations/versions/0007_quality_results.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW analytics.quality_daily AS
    SELECT coalesce(source, 'all') AS source, (checked_at AT TIME ZONE 'UTC')::date AS day,
           count(*) AS checks,
           count(*) FILTER (WHERE status = 'pass') AS passed,
           count(*) FILTER (WHERE status <> 'pass') AS failed,
           round(100.0 * count(*) FILTER (WHERE status = 'pass') / count(*), 1) AS score
      FROM quality.check_results
     GROUP BY 1, 2;

COMMENT ON VIEW analytics.quality_daily IS 'Quality score per source and UTC day: the share of checks that passed.';
COMMENT ON COLUMN analytics.quality_daily.source IS 'Source system (all: checks about no single source).';
COMMENT ON COLUMN analytics.quality_daily.day IS 'UTC day the checks ran.';
COMMENT ON COLUMN analytics.quality_daily.checks IS 'Checks run.';
COMMENT ON COLUMN analytics.quality_daily.passed IS 'Checks that passed.';
COMMENT ON COLUMN analytics.quality_daily.failed IS 'Checks that failed or could not run.';
COMMENT ON COLUMN analytics.quality_daily.score IS 'Percent of checks that passed (100 = all).';

GRANT SELECT ON analytics.quality_daily TO analyst;
