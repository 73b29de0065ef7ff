-- published.github_repo_snapshots
-- Published repository snapshots (core.github_repo_snapshots): stars, forks, issues per repository over
-- time.
--
-- The current definition: migration 0010 (include/migrations/versions/0010_published_late_rows.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW published.github_repo_snapshots AS
    SELECT g.source, g.repo, g.snapshot_at, g.stars, g.forks, g.watchers, g.open_issues, g.size_kb, g.language,
           g.pushed_at, g.content_sha256, g.raw_response_id, g.dag_run_id, g.first_loaded_at, g.loaded_at
      FROM core.github_repo_snapshots g
      JOIN quality.publish_state p ON p.source = g.source AND g.snapshot_at < p.published_until
      JOIN quality.hour_audits h
        ON h.source = g.source AND h.hour = date_bin('1 hour', g.snapshot_at, timestamptz '2000-01-01 00:00+00')
       AND g.loaded_at <= h.published_at;

COMMENT ON VIEW published.github_repo_snapshots IS 'Published repository snapshots (core.github_repo_snapshots): stars, forks, issues per repository over time.';
COMMENT ON COLUMN published.github_repo_snapshots.source IS 'Source system (github).';
COMMENT ON COLUMN published.github_repo_snapshots.repo IS 'owner/name of the repository.';
COMMENT ON COLUMN published.github_repo_snapshots.snapshot_at IS 'The end of the ingest window the snapshot was taken for; its hour is the audited hour.';
COMMENT ON COLUMN published.github_repo_snapshots.stars IS 'Stargazers.';
COMMENT ON COLUMN published.github_repo_snapshots.forks IS 'Forks.';
COMMENT ON COLUMN published.github_repo_snapshots.watchers IS 'Subscribers (watchers).';
COMMENT ON COLUMN published.github_repo_snapshots.open_issues IS 'Open issues and pull requests.';
COMMENT ON COLUMN published.github_repo_snapshots.size_kb IS 'Repository size in kB.';
COMMENT ON COLUMN published.github_repo_snapshots.language IS 'Main language as GitHub reports it.';
COMMENT ON COLUMN published.github_repo_snapshots.pushed_at IS 'Last push to the repository.';
COMMENT ON COLUMN published.github_repo_snapshots.content_sha256 IS 'Hash of the loaded content.';
COMMENT ON COLUMN published.github_repo_snapshots.raw_response_id IS 'Lineage: the raw page this version came from.';
COMMENT ON COLUMN published.github_repo_snapshots.dag_run_id IS 'Lineage: the Airflow run that loaded this version.';
COMMENT ON COLUMN published.github_repo_snapshots.first_loaded_at IS 'When the row was first loaded.';
COMMENT ON COLUMN published.github_repo_snapshots.loaded_at IS 'When this version was loaded.';

GRANT SELECT ON published.github_repo_snapshots TO analyst;
