"""
### ingest_reddit

Posts and comments of the subreddits in `include/sources.yaml`, every hour, into `core.documents`.

* **extract**: pages `/r/<sub>/new` and `/r/<sub>/comments` newest-first back to the window start; every page
  lands in `raw.api_responses` as it arrives (a retry resumes after the last stored page).
* **load**: parses this run's pages; good items are upserted into `core.documents`, bad ones go to
  `quality.quarantine` with a reason code.

**Window**: scheduled runs cover the hour before their tick. A manual run (no logical date) covers the hour
before it was triggered; set `window_start` and `window_end` to pick one. Reddit listings reach back about
1,000 items, so a backfill far in the past finds nothing older.

**Params** (manual runs): `window_start`, `window_end`: UTC date-times with a zone (`2026-11-28T11:00:00Z`),
both or neither, start before end, at most 31 days, from 2000-01-01, ending at most a day after now
(`pulse/params.py`). A bad value, or a param this DAG does not have, fails the run at once, without retries,
naming the param; it does not count against the source's circuit breaker. While the breaker is open (3 failed
runs in a row by default), `extract` and `load` show as **skipped** and the run itself as success (Airflow has
no skipped run state): look at the task states, and `SELECT * FROM quality.source_health`.

**Triage**: 401/403 means the `reddit_default` connection's client id or secret is wrong (no retries). Repeated
429/5xx come from Reddit; the task retries with backoff. See `ops.ingest_runs` for what each run fetched.
"""

from pulse.ingest_dag import ingest_dag
from pulse.sources.reddit import SPEC

# An Airflow DAG built from the source's declaration (plugins/pulse/sources/reddit.py, docs/adding-a-source.md).
dag = ingest_dag(SPEC, doc_md=__doc__)
