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

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable

from pulse.assets import CORE_DOCUMENTS
from pulse.dag_defaults import dag_failure_notifier, deadline, default_args, ingest_doc
from pulse.operators.extract import ExtractToRawOperator
from pulse.operators.load import LoadRawToCoreOperator
from pulse.params import dag_params

with DAG(
    dag_id="ingest_reddit",
    doc_md=ingest_doc(__doc__),
    schedule=CronTriggerTimetable("0 * * * *", timezone="UTC", interval=timedelta(hours=1)),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=2,
    default_args=default_args(),
    params=dag_params("ingest"),
    tags=["ingest", "reddit"],
    on_failure_callback=dag_failure_notifier(),
    deadline=deadline(timedelta(minutes=45)),
):
    extract = ExtractToRawOperator(task_id="extract", source="reddit", pool="reddit_api")
    load = LoadRawToCoreOperator(task_id="load", source="reddit", outlets=[CORE_DOCUMENTS])
    extract >> load
