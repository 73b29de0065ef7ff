-- analytics.github_star_velocity
-- Per GitHub repository and UTC day with a published snapshot: stars and forks at the day's last snapshot, stars
-- gained since the previous day's, and the star velocity (stars per day between the two snapshots).
--
-- Written once with migration 0017 (include/migrations/versions/0017_trends.py), which replays it: never edit
-- this copy; the view's current text is include/sql/views/<view>.sql (include/sql/README.md).

CREATE OR REPLACE VIEW analytics.github_star_velocity AS
    WITH daily AS (
        SELECT DISTINCT ON (g.repo, (g.snapshot_at AT TIME ZONE 'UTC')::date)
               g.repo, (g.snapshot_at AT TIME ZONE 'UTC')::date AS day, g.snapshot_at, g.stars, g.forks
          FROM published.github_repo_snapshots g
         ORDER BY g.repo, (g.snapshot_at AT TIME ZONE 'UTC')::date, g.snapshot_at DESC
    )
    SELECT repo, day, snapshot_at, stars, forks, stars - lag(stars) OVER w AS stars_gained,
           (stars - lag(stars) OVER w)::double precision
               / nullif(extract(epoch FROM snapshot_at - lag(snapshot_at) OVER w)::double precision / 86400.0, 0)
               AS stars_per_day
      FROM daily
    WINDOW w AS (PARTITION BY repo ORDER BY day);

COMMENT ON VIEW analytics.github_star_velocity IS 'Per GitHub repository and UTC day with a published snapshot: stars and forks at the day''s last snapshot, stars gained since the previous snapshot day, and the star velocity (stars per day between the two).';
COMMENT ON COLUMN analytics.github_star_velocity.repo IS 'owner/name.';
COMMENT ON COLUMN analytics.github_star_velocity.day IS 'UTC day of the snapshot.';
COMMENT ON COLUMN analytics.github_star_velocity.snapshot_at IS 'The day''s last snapshot (UTC).';
COMMENT ON COLUMN analytics.github_star_velocity.stars IS 'Stargazers at that snapshot.';
COMMENT ON COLUMN analytics.github_star_velocity.forks IS 'Forks at that snapshot.';
COMMENT ON COLUMN analytics.github_star_velocity.stars_gained IS 'Stars since the previous day with a snapshot (negative when people unstarred); NULL on the first day.';
COMMENT ON COLUMN analytics.github_star_velocity.stars_per_day IS 'stars_gained per day between the two snapshots.';

GRANT SELECT ON analytics.github_star_velocity TO analyst;
