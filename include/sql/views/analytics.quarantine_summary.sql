-- analytics.quarantine_summary
-- Items held back from core per source and reason code (the items themselves stay in quality.quarantine, for
-- on-call).
--
-- The current definition: migration 0005 (include/migrations/versions/0005_analytics_roles_comments.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW analytics.quarantine_summary AS
    SELECT source, reason_code,
           count(*) FILTER (WHERE resolved_at IS NULL) AS open_items,
           count(*) FILTER (WHERE resolved_at IS NOT NULL) AS resolved_items,
           min(first_seen_at) AS first_seen_at,
           max(quarantined_at) AS last_quarantined_at
      FROM quality.quarantine
     GROUP BY 1, 2;

COMMENT ON VIEW analytics.quarantine_summary IS 'Items held back from core per source and reason code (the items themselves stay in quality.quarantine, for on-call).';
COMMENT ON COLUMN analytics.quarantine_summary.source IS 'Source system.';
COMMENT ON COLUMN analytics.quarantine_summary.reason_code IS 'Why the items were held back (see quality.quarantine.reason_code).';
COMMENT ON COLUMN analytics.quarantine_summary.open_items IS 'Items still held back.';
COMMENT ON COLUMN analytics.quarantine_summary.resolved_items IS 'Items that loaded later (a corrected re-fetch or a replay).';
COMMENT ON COLUMN analytics.quarantine_summary.first_seen_at IS 'When the first of them was first seen.';
COMMENT ON COLUMN analytics.quarantine_summary.last_quarantined_at IS 'When the latest was (re)quarantined.';

GRANT SELECT ON analytics.quarantine_summary TO analyst;
