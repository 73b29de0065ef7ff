"""
### ingest_newsapi

News articles from NewsAPI, every hour at minute 20, into `core.documents`: `/v2/everything` for each query
in `include/sources.yaml` and `/v2/top-headlines` for each configured country/category pair.

* **extract**: pages `/v2/everything?q=<query>&from=<window start>&to=<window end>&sortBy=publishedAt` and
  `/v2/top-headlines?country=&category=` by page number; every page lands in `raw.api_responses` as it
  arrives (a retry resumes after the last stored page).
* **load**: parses this run's pages; each article (keyed by its URL) is upserted into `core.documents`, bad
  ones go to `quality.quarantine` with a reason code (`[Removed]` articles as `bad_field`).

**Window**: scheduled runs cover the hour before their tick. A manual run (no logical date) covers the hour
before it was triggered; set `window_start` and `window_end` to pick one. Backfill reach: `/v2/everything`
serves windows within the plan's horizon (`plan_horizon_days`, 30 for the Developer plan, whose articles
also appear with a 24-hour delay); `/v2/top-headlines` is current only (3 hours of slack). A window beyond
reach is not fetched: it is recorded as a `beyond_reach` gap in `ops.coverage`. Should NewsAPI still refuse
a window as too old (HTTP 400), the stream ends with a warning and that answer is kept in raw.

**Params** (manual runs): `window_start`, `window_end`: UTC date-times with a zone (`2026-11-28T11:00:00Z`),
both or neither, start before end, at most 31 days, from 2000-01-01, ending at most a day after now
(`pulse/params.py`). A bad value, or a param this DAG does not have, fails the run at once, without retries,
naming the param; it does not count against the source's circuit breaker. While the breaker is open (3 failed
runs in a row by default), `extract` and `load` show as **skipped** and the run itself as success (Airflow has
no skipped run state): look at the task states, and `SELECT * FROM quality.source_health`.

**Triage**: 401/403 means the `newsapi_default` connection's password (the API key) is wrong (no retries).
429 `rateLimited` means the plan's daily quota (100 requests on the Developer plan) is spent; the task waits
and retries, then fails. HTTP 426 `maximumResultsReached` is not an error: the plan serves at most 100
results per query, the run keeps what it got (look for the warning and the 426 page in raw). See
`ops.ingest_runs` for what each run fetched.
"""

from pulse.ingest_dag import ingest_dag
from pulse.sources.newsapi import SPEC

# An Airflow DAG built from the source's declaration (plugins/pulse/sources/newsapi.py, docs/adding-a-source.md).
dag = ingest_dag(SPEC, doc_md=__doc__)
