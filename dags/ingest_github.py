"""
### ingest_github

GitHub activity of the repositories in `include/sources.yaml`, every hour at minute 40: repository snapshots
(stars, forks, watchers, open issues) into `core.github_repo_snapshots`, repository events and issues / pull
requests into `core.documents` (kinds `github_event`, `issue`, `pull_request`; logins stored only as
pseudonyms), and the configured repository search as one snapshot per hit.

* **extract**: per repository `GET /repos/{o}/{r}` (one page), `/events` (newest first, back to the window
  start) and `/issues?state=all&since=<window start>&sort=updated` (until items updated after the window end),
  plus `GET /search/repositories` up to `search_max_items`; pages follow GitHub's `Link` header and land in
  `raw.api_responses` as they arrive (a retry resumes after the last stored page).
* **load**: parses this run's pages; snapshots are keyed by (repo, window end) and documents by GitHub id, so
  a re-run upserts; bad items go to `quality.quarantine` with a reason code.

**Window**: scheduled runs cover the hour before their tick. A manual run (no logical date) covers the hour
before it was triggered; set `window_start` and `window_end` to pick one. Reach: the Events API keeps at most
300 events of the last **90 days** (an older window is a `beyond_reach` gap in `ops.coverage`; a busy
repository's 300 events may not even cover the window: a `listing_cap` gap); issues reach any window through
`since` (with their state as of the run, not as of the window); repository counters exist only now, so
snapshots of a window more than 6 hours old are gaps, not fetched.

**Params** (manual runs): `window_start`, `window_end`: UTC date-times with a zone (`2026-11-28T11:00:00Z`),
both or neither, start before end, at most 31 days, from 2000-01-01, ending at most a day after now
(`pulse/params.py`). A bad value, or a param this DAG does not have, fails the run at once, without retries,
naming the param; it does not count against the source's circuit breaker. While the breaker is open (3 failed
runs in a row by default), `extract` and `load` show as **skipped** and the run itself as success (Airflow has
no skipped run state): look at the task states, and `SELECT * FROM quality.source_health`.

**Triage**: 401 means the `github_default` connection's token (password) is wrong or expired; a plain 403
means it may not read the repository (no retries either way). 403/429 with `x-ratelimit-remaining: 0` waits
for `x-ratelimit-reset`, a secondary limit for `retry-after`; repeated limits or 5xx come from GitHub and the
task retries with backoff. A 404 names a repository that does not exist (or is private): fix
`include/sources.yaml`. See `ops.ingest_runs` for what each run fetched.
"""

from pulse.ingest_dag import ingest_dag
from pulse.sources.github import SPEC

# An Airflow DAG built from the source's declaration (plugins/pulse/sources/github.py, docs/adding-a-source.md).
dag = ingest_dag(SPEC, doc_md=__doc__)
