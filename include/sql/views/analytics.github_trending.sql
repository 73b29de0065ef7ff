-- analytics.github_trending
-- Trending repositories: each repository's stars at its latest published snapshot, the stars gained over the
-- 7 days before it (from the oldest snapshot in that week), stars per day, growth in percent, its documents
-- (issues, pull requests, events) of those 7 days, and a rank by stars per day.
--
-- The current definition: migration 0017 (include/migrations/versions/0017_trends.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW analytics.github_trending AS
    WITH latest AS (
        SELECT DISTINCT ON (repo) repo, snapshot_at, stars
          FROM published.github_repo_snapshots
         ORDER BY repo, snapshot_at DESC
    ), week_start AS (
        SELECT DISTINCT ON (g.repo) g.repo, g.snapshot_at, g.stars
          FROM published.github_repo_snapshots g
          JOIN latest l ON l.repo = g.repo AND g.snapshot_at >= l.snapshot_at - INTERVAL '7 days'
         ORDER BY g.repo, g.snapshot_at
    ), activity AS (
        SELECT t.key AS repo, sum(t.documents) AS documents
          FROM analytics.trend_series_hourly t
          JOIN latest l ON l.repo = t.key
         WHERE t.dimension = 'repository' AND t.hour >= l.snapshot_at - INTERVAL '7 days'
         GROUP BY t.key
    ), scored AS (
        SELECT l.repo, l.snapshot_at, l.stars, l.stars - w.stars AS stars_gained_7d,
               extract(epoch FROM l.snapshot_at - w.snapshot_at)::double precision / 86400.0 AS window_days,
               100.0 * (l.stars - w.stars) / nullif(w.stars, 0) AS growth_pct,
               coalesce(a.documents, 0) AS documents_7d
          FROM latest l
          JOIN week_start w ON w.repo = l.repo
          LEFT JOIN activity a ON a.repo = l.repo
    )
    SELECT repo, snapshot_at, stars, stars_gained_7d, window_days,
           stars_gained_7d / nullif(window_days, 0) AS stars_per_day, growth_pct, documents_7d,
           rank() OVER (ORDER BY stars_gained_7d / nullif(window_days, 0) DESC NULLS LAST, stars DESC) AS rank
      FROM scored;

COMMENT ON VIEW analytics.github_trending IS 'Trending repositories: stars at the latest published snapshot, stars gained over the 7 days before it (from the oldest snapshot of that week), stars per day, growth in percent, documents (issues, pull requests, events) of those 7 days, ranked by stars per day.';
COMMENT ON COLUMN analytics.github_trending.repo IS 'owner/name.';
COMMENT ON COLUMN analytics.github_trending.snapshot_at IS 'Latest published snapshot (UTC).';
COMMENT ON COLUMN analytics.github_trending.stars IS 'Stargazers then.';
COMMENT ON COLUMN analytics.github_trending.stars_gained_7d IS 'Stars gained since the oldest snapshot of the 7 days before (0 with a single snapshot).';
COMMENT ON COLUMN analytics.github_trending.window_days IS 'Days between that snapshot and the latest (under 7 while history is short; 0 with one snapshot).';
COMMENT ON COLUMN analytics.github_trending.stars_per_day IS 'stars_gained_7d / window_days: the star velocity; NULL with one snapshot.';
COMMENT ON COLUMN analytics.github_trending.growth_pct IS 'stars_gained_7d as a percentage of the stars at the start.';
COMMENT ON COLUMN analytics.github_trending.documents_7d IS 'Published documents of the repository (issues, pull requests, comments, events) in the 7 days before the latest snapshot.';
COMMENT ON COLUMN analytics.github_trending.rank IS 'Rank by stars per day (1 = fastest); repositories with one snapshot last, by stars.';

GRANT SELECT ON analytics.github_trending TO analyst;
