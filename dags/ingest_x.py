"""
### ingest_x

Tweets matching the X (Twitter) recent-search queries in `include/sources.yaml`, every hour, into
`core.documents` (kind `tweet`, channel = the query, author stored only as a pseudonym).

* **extract**: pages `GET /2/tweets/search/recent` per query with the window as `start_time`/`end_time`,
  author expansions and public metrics, following `meta.next_token`; every page lands in `raw.api_responses`
  as it arrives (a retry resumes after the last stored page).
* **load**: parses this run's pages; good tweets are upserted into `core.documents`, bad ones go to
  `quality.quarantine` with a reason code.

**Window**: scheduled runs (at minute 15) cover the hour before their tick. A manual run (no logical date)
covers the hour before it was triggered; set `window_start` and `window_end` to pick one. Recent search
reaches back **7 days** only: an older window fetches nothing (the task log says "beyond recent search's
7-day reach"), a window partly older is clipped to the last 7 days. X also refuses an `end_time` less than
10 s old; the hook waits for it or clips it to X's clock, and logs it.

**Params** (manual runs): `window_start`, `window_end`: UTC date-times with a zone (`2026-11-28T11:00:00Z`),
both or neither, start before end, at most 31 days, from 2000-01-01, ending at most a day after now
(`pulse/params.py`). A bad value, or a param this DAG does not have, fails the run at once, without retries,
naming the param; it does not count against the source's circuit breaker. While the breaker is open (3 failed
runs in a row by default), `extract` and `load` show as **skipped** and the run itself as success (Airflow has
no skipped run state): look at the task states, and `SELECT * FROM quality.source_health`.

**Triage**: 401/403 means the `x_default` connection's bearer token (password) is wrong or the app lacks
access to recent search (no retries). 429 waits for `x-rate-limit-reset` (the 15-minute window); repeated
429/5xx come from X and the task retries with backoff. Another HTTP 400 names the bad parameter (often a
query in `include/sources.yaml`). See `ops.ingest_runs` for what each run fetched.
"""

from pulse.ingest_dag import ingest_dag
from pulse.sources.x import SPEC

# An Airflow DAG built from the source's declaration (plugins/pulse/sources/x.py, docs/adding-a-source.md).
dag = ingest_dag(SPEC, doc_md=__doc__)
