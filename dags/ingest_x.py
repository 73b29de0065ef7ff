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

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable

from pulse.assets import CORE_DOCUMENTS
from pulse.dag_defaults import dag_failure_notifier, deadline, default_args, ingest_doc
from pulse.operators.extract import ExtractToRawOperator
from pulse.operators.load import LoadRawToCoreOperator
from pulse.params import dag_params

with DAG(
    dag_id="ingest_x",
    doc_md=ingest_doc(__doc__),
    schedule=CronTriggerTimetable("15 * * * *", timezone="UTC", interval=timedelta(hours=1)),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=2,
    default_args=default_args(),
    params=dag_params("ingest"),
    tags=["ingest", "x"],
    on_failure_callback=dag_failure_notifier(),
    deadline=deadline(timedelta(minutes=45)),
):
    extract = ExtractToRawOperator(task_id="extract", source="x", pool="x_api")
    load = LoadRawToCoreOperator(task_id="load", source="x", outlets=[CORE_DOCUMENTS])
    extract >> load
