-- analytics.publication
-- How far each source is published: analyst views and exports hold data with an event time before
-- published_until, and stop at the first held window.
--
-- The current definition: migration 0008 (include/migrations/versions/0008_publish_and_alerts.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW analytics.publication AS
    SELECT s.source, p.published_until, p.updated_at,
           (SELECT count(*) FROM quality.window_audits w WHERE w.source = s.source AND w.status = 'held') AS held_windows,
           (SELECT min(w.window_start) FROM quality.window_audits w
             WHERE w.source = s.source AND w.status = 'held') AS first_held_window,
           (SELECT max(w.audited_at) FROM quality.window_audits w WHERE w.source = s.source) AS last_audit_at
      FROM (SELECT source FROM quality.publish_state UNION SELECT source FROM quality.window_audits) s
      LEFT JOIN quality.publish_state p ON p.source = s.source;

COMMENT ON VIEW analytics.publication IS 'How far each source is published: analyst views and exports hold data with an event time before published_until, and stop at the first held window.';
COMMENT ON COLUMN analytics.publication.source IS 'Source system.';
COMMENT ON COLUMN analytics.publication.published_until IS 'Data before this time (UTC) has passed its quality checks and is in the views.';
COMMENT ON COLUMN analytics.publication.updated_at IS 'When the horizon last moved.';
COMMENT ON COLUMN analytics.publication.held_windows IS 'Audited windows whose checks failed and that nobody released.';
COMMENT ON COLUMN analytics.publication.first_held_window IS 'Start of the earliest held window (the horizon cannot pass it).';
COMMENT ON COLUMN analytics.publication.last_audit_at IS 'When the latest audit of the source ran.';

GRANT SELECT ON analytics.publication TO analyst;
