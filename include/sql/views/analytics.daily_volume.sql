-- analytics.daily_volume
-- Published rows per UTC day of event time, source, table and kind, over every core table (the published
-- schema has the rows; analytics.publication says up to when). Filter on day and source.
--
-- The current definition: migration 0010 (include/migrations/versions/0010_published_late_rows.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW analytics.daily_volume AS
    SELECT (d.created_at AT TIME ZONE 'UTC')::date AS day, d.source, 'core.documents'::text AS dataset, d.kind,
           count(*) AS items, max(d.loaded_at) AS last_loaded_at
      FROM published.documents d
     GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT (b.ts AT TIME ZONE 'UTC')::date, b.source, 'core.market_bars', b.interval, count(*), max(b.loaded_at)
      FROM published.market_bars b
     GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT (w.valid_at AT TIME ZONE 'UTC')::date, w.source, 'core.weather_observations', w.kind, count(*),
           max(w.loaded_at)
      FROM published.weather_observations w
     GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT (g.snapshot_at AT TIME ZONE 'UTC')::date, g.source, 'core.github_repo_snapshots', 'snapshot', count(*),
           max(g.loaded_at)
      FROM published.github_repo_snapshots g
     GROUP BY 1, 2, 3, 4;

COMMENT ON VIEW analytics.daily_volume IS 'Published rows per UTC day of event time, source, table and kind, over every core table (the published schema has the rows; analytics.publication says up to when). Filter on day and source.';
COMMENT ON COLUMN analytics.daily_volume.day IS 'UTC day of the event time (documents: created_at; bars: ts; weather: valid_at; snapshots: snapshot_at). Weather rows are published by the time they were issued (a forecast for tomorrow is published today).';
COMMENT ON COLUMN analytics.daily_volume.source IS 'Source system.';
COMMENT ON COLUMN analytics.daily_volume.dataset IS 'The core table the rows are in.';
COMMENT ON COLUMN analytics.daily_volume.kind IS 'Documents: post, comment, tweet, article ...; bars: interval; weather: current or forecast; snapshots: snapshot.';
COMMENT ON COLUMN analytics.daily_volume.items IS 'Number of rows.';
COMMENT ON COLUMN analytics.daily_volume.last_loaded_at IS 'When the newest of those rows last changed.';

GRANT SELECT ON analytics.daily_volume TO analyst;
