-- analytics.coverage_windows
-- Every window each source stream was ingested for, every gap with its reason, and whether its data is
-- published or held by failed quality checks. A window missing here was never run.
--
-- The current definition: migration 0008 (include/migrations/versions/0008_publish_and_alerts.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW analytics.coverage_windows AS
    SELECT c.source, c.stream, c.window_start, c.window_end, c.status, c.reason, c.dag_run_id, c.recorded_at,
           CASE WHEN a.held > 0 THEN 'held'
                WHEN c.window_end <= p.published_until THEN 'published'
                ELSE 'pending' END AS audit_status,
           a.failed_checks
      FROM ops.coverage c
      LEFT JOIN quality.publish_state p ON p.source = c.source
      LEFT JOIN LATERAL (
            SELECT count(*) AS held, array_agg(DISTINCT f) FILTER (WHERE f IS NOT NULL) AS failed_checks
              FROM quality.window_audits w LEFT JOIN LATERAL unnest(w.failed_checks) f ON true
             WHERE w.source = c.source AND w.status = 'held'
               AND w.window_start < c.window_end AND w.window_end > c.window_start) a ON true;

COMMENT ON VIEW analytics.coverage_windows IS 'Every window each source stream was ingested for, every gap with its reason, and whether its data is published or held by failed quality checks. A window missing here was never run.';
COMMENT ON COLUMN analytics.coverage_windows.source IS 'Source system.';
COMMENT ON COLUMN analytics.coverage_windows.stream IS 'What was paged through, e.g. new:python or search:bitcoin.';
COMMENT ON COLUMN analytics.coverage_windows.window_start IS 'Window start (inclusive, UTC).';
COMMENT ON COLUMN analytics.coverage_windows.window_end IS 'Window end (exclusive, UTC).';
COMMENT ON COLUMN analytics.coverage_windows.status IS 'ingested: pages were fetched for the window; gap: part or all of it could not be.';
COMMENT ON COLUMN analytics.coverage_windows.reason IS 'For gaps: beyond_reach (the API serves nothing that old), budget_exhausted, listing_cap, not_yet_available.';
COMMENT ON COLUMN analytics.coverage_windows.dag_run_id IS 'The Airflow run that recorded it.';
COMMENT ON COLUMN analytics.coverage_windows.recorded_at IS 'When it was recorded.';
COMMENT ON COLUMN analytics.coverage_windows.audit_status IS 'held: an audited hour inside it failed its quality checks (not published); published: before the source''s publication horizon; pending: not audited yet.';
COMMENT ON COLUMN analytics.coverage_windows.failed_checks IS 'For held windows: the checks that failed (quality.check_results has the values).';

GRANT SELECT ON analytics.coverage_windows TO analyst;
