-- analytics.source_health
-- Each source at a glance: circuit breaker, last success, API budget left now, publication horizon and the
-- windows held by failed checks. No raw data and no error texts (on-call reads those in
-- quality.source_health and the task logs).
--
-- The current definition: migration 0010 (include/migrations/versions/0010_published_late_rows.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW analytics.source_health AS
    WITH sources AS (
        SELECT source FROM quality.source_health
        UNION SELECT source FROM quality.publish_state
        UNION SELECT source FROM quality.window_audits
        UNION SELECT source FROM ops.ingest_runs
        UNION SELECT source FROM ops.api_budget_limits
    ), budget AS (
        SELECT DISTINCT ON (l.source) l.source, l.period_s, l.calls,
               greatest(l.calls - coalesce(b.used, 0), 0) AS calls_left,
               cur.bucket_start + make_interval(secs => l.period_s) AS resets_at
          FROM ops.api_budget_limits l
         CROSS JOIN LATERAL (SELECT to_timestamp(floor(extract(epoch FROM now()) / l.period_s) * l.period_s)
                                    AS bucket_start) cur
          LEFT JOIN ops.api_budget b
            ON b.source = l.source AND b.period_s = l.period_s AND b.bucket_start = cur.bucket_start
         ORDER BY l.source, greatest(l.calls - coalesce(b.used, 0), 0), l.period_s DESC
    ), runs AS (
        SELECT source, max(loaded_at) AS last_loaded_at, max(window_end) FILTER (WHERE loaded_at IS NOT NULL) AS loaded_until
          FROM ops.ingest_runs GROUP BY source
    ), audits AS (
        SELECT source, max(audited_at) AS last_audit_at,
               count(*) FILTER (WHERE status = 'held') AS held_windows,
               coalesce(jsonb_agg(jsonb_build_object('window_start', window_start, 'window_end', window_end,
                                                     'failed_checks', to_jsonb(failed_checks), 'audited_at', audited_at)
                                  ORDER BY window_start) FILTER (WHERE status = 'held'), '[]'::jsonb) AS held
          FROM quality.window_audits GROUP BY source
    )
    SELECT s.source,
           coalesce(h.state, 'closed') AS circuit_state,
           coalesce(h.consecutive_failures, 0) AS consecutive_failures,
           h.opened_at AS circuit_opened_at,
           h.last_failure_at,
           h.last_success_at,
           r.last_loaded_at,
           r.loaded_until,
           b.calls_left AS budget_calls_left,
           b.calls AS budget_calls,
           b.period_s AS budget_period_s,
           b.resets_at AS budget_resets_at,
           p.published_until,
           a.last_audit_at,
           coalesce(a.held_windows, 0) AS held_windows,
           coalesce(a.held, '[]'::jsonb) AS held_window_checks
      FROM sources s
      LEFT JOIN quality.source_health h ON h.source = s.source
      LEFT JOIN budget b ON b.source = s.source
      LEFT JOIN runs r ON r.source = s.source
      LEFT JOIN quality.publish_state p ON p.source = s.source
      LEFT JOIN audits a ON a.source = s.source;

COMMENT ON VIEW analytics.source_health IS 'Each source at a glance: circuit breaker, last success, API budget left now, publication horizon and the windows held by failed checks. No raw data and no error texts (on-call reads those in quality.source_health and the task logs).';
COMMENT ON COLUMN analytics.source_health.source IS 'Source system.';
COMMENT ON COLUMN analytics.source_health.circuit_state IS 'closed (normal), open (runs skip the API after repeated failures), half_open (the next run is a trial).';
COMMENT ON COLUMN analytics.source_health.consecutive_failures IS 'Failed runs in a row.';
COMMENT ON COLUMN analytics.source_health.circuit_opened_at IS 'When the circuit last opened.';
COMMENT ON COLUMN analytics.source_health.last_failure_at IS 'When the last failed run happened.';
COMMENT ON COLUMN analytics.source_health.last_success_at IS 'When the last successful run finished.';
COMMENT ON COLUMN analytics.source_health.last_loaded_at IS 'When the last ingest run loaded its window.';
COMMENT ON COLUMN analytics.source_health.loaded_until IS 'End of the latest window an ingest run loaded (UTC).';
COMMENT ON COLUMN analytics.source_health.budget_calls_left IS 'API calls left now in the tightest quota period (configured limit minus calls spent in the current period).';
COMMENT ON COLUMN analytics.source_health.budget_calls IS 'Calls allowed in that period.';
COMMENT ON COLUMN analytics.source_health.budget_period_s IS 'That period in seconds.';
COMMENT ON COLUMN analytics.source_health.budget_resets_at IS 'When that period ends and the calls are available again.';
COMMENT ON COLUMN analytics.source_health.published_until IS 'Publication horizon: data before this time (UTC) that passed its audit is in the published schema and the analytics views.';
COMMENT ON COLUMN analytics.source_health.last_audit_at IS 'When the quality DAG last audited the source.';
COMMENT ON COLUMN analytics.source_health.held_windows IS 'Audited windows whose checks failed and that nobody released (not published).';
COMMENT ON COLUMN analytics.source_health.held_window_checks IS 'Those windows as JSON, oldest first: window_start, window_end, failed_checks (names in include/quality/checks.yaml), audited_at.';

GRANT SELECT ON analytics.source_health TO analyst;
