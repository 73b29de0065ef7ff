-- analytics.daily_volume
-- Published rows per UTC day of event time, source, table and kind, over every core table (the published
-- schema has the rows; analytics.publication says up to when). Filter on day and source.
--
-- The current definition: migration 0014 (include/migrations/versions/0014_rollups.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW analytics.daily_volume AS
    SELECT u.day, u.source, u.dataset, u.kind, sum(u.items)::bigint AS items, max(u.last_loaded_at) AS last_loaded_at
      FROM (SELECT r.day, r.source, r.dataset, r.kind, r.items, r.last_loaded_at
              FROM ops.rollup_volume_hourly r
             WHERE NOT EXISTS (SELECT 1 FROM ops.rollup_dirty_hours x WHERE x.source = r.source AND x.hour = r.hour)
            UNION ALL
            SELECT l.day, l.source, l.dataset, l.kind, l.items, l.last_loaded_at
              FROM (SELECT k.source, k.hour, v.dataset, v.kind, v.day, v.items, v.last_loaded_at
                      FROM ops.rollup_dirty_hours k
                      JOIN quality.hour_audits h ON h.source = k.source AND h.hour = k.hour
                      JOIN quality.publish_state p ON p.source = k.source
                     CROSS JOIN LATERAL (
                            SELECT 'core.documents'::text AS dataset, d.kind, (d.created_at AT TIME ZONE 'UTC')::date AS day,
                                   count(*) AS items, max(d.loaded_at) AS last_loaded_at
                              FROM core.documents d
                             WHERE d.source = k.source AND d.created_at >= k.hour AND d.created_at < k.hour + interval '1 hour' AND d.created_at < p.published_until AND d.loaded_at <= h.published_at
                             GROUP BY d.kind, (d.created_at AT TIME ZONE 'UTC')::date
                            UNION ALL
                            SELECT 'core.market_bars'::text, b.interval, (b.ts AT TIME ZONE 'UTC')::date, count(*), max(b.loaded_at)
                              FROM core.market_bars b
                             WHERE b.source = k.source AND b.ts >= k.hour AND b.ts < k.hour + interval '1 hour' AND b.ts < p.published_until AND b.loaded_at <= h.published_at
                             GROUP BY b.interval, (b.ts AT TIME ZONE 'UTC')::date
                            UNION ALL
                            SELECT 'core.weather_observations'::text, w.kind, (w.valid_at AT TIME ZONE 'UTC')::date, count(*),
                                   max(w.loaded_at)
                              FROM core.weather_observations w
                             WHERE w.source = k.source AND coalesce(w.issued_at, w.valid_at) >= k.hour AND coalesce(w.issued_at, w.valid_at) < k.hour + interval '1 hour' AND coalesce(w.issued_at, w.valid_at) < p.published_until
                               AND w.loaded_at <= h.published_at
                             GROUP BY w.kind, (w.valid_at AT TIME ZONE 'UTC')::date
                            UNION ALL
                            SELECT 'core.github_repo_snapshots'::text, 'snapshot'::text, (g.snapshot_at AT TIME ZONE 'UTC')::date,
                                   count(*), max(g.loaded_at)
                              FROM core.github_repo_snapshots g
                             WHERE g.source = k.source AND g.snapshot_at >= k.hour AND g.snapshot_at < k.hour + interval '1 hour' AND g.snapshot_at < p.published_until AND g.loaded_at <= h.published_at
                             GROUP BY (g.snapshot_at AT TIME ZONE 'UTC')::date) v) l) u
     GROUP BY u.day, u.source, u.dataset, u.kind;

COMMENT ON VIEW analytics.daily_volume IS 'Published rows per UTC day of event time, source, table and kind, over every core table (the published schema has the rows; analytics.publication says up to when). Filter on day and source.';
COMMENT ON COLUMN analytics.daily_volume.day IS 'UTC day of the event time (documents: created_at; bars: ts; weather: valid_at; snapshots: snapshot_at). Weather rows are published by the time they were issued (a forecast for tomorrow is published today).';
COMMENT ON COLUMN analytics.daily_volume.source IS 'Source system.';
COMMENT ON COLUMN analytics.daily_volume.dataset IS 'The core table the rows are in.';
COMMENT ON COLUMN analytics.daily_volume.kind IS 'Documents: post, comment, tweet, article ...; bars: interval; weather: current or forecast; snapshots: snapshot.';
COMMENT ON COLUMN analytics.daily_volume.items IS 'Number of rows.';
COMMENT ON COLUMN analytics.daily_volume.last_loaded_at IS 'When the newest of those rows last changed.';

GRANT SELECT ON analytics.daily_volume TO analyst;
