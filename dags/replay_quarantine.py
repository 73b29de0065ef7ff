"""
### replay_quarantine

Dead letters back into the warehouse after a fix. Trigger it by hand from the UI with:

* `source` (required): reddit, x, newsapi, alphavantage, openweathermap or github;
* `reason_codes` (optional): only quarantine rows with these reason codes (e.g. `text_too_large`; each one of
  the codes in `pulse.sources.base.Reason`, no repeats; empty: all);
* `window_start` / `window_end` (optional, each on its own): only items whose raw page belongs to a data window
  overlapping this one. UTC date-times with a zone (`2026-11-28T11:00:00Z`), from 2000-01-01, at most a day
  after now; with both, start before end.

A bad value, or a param this DAG does not have, fails the run at once, without retries, naming the param
(`pulse/params.py`), before anything is selected.

Every selected open row of `quality.quarantine` is parsed again from its raw page with today's parser (no API
call). Items that now pass are upserted into `core.*` exactly like a load (the same key updates the same row, so a
replay never duplicates) and their quarantine rows get `resolution = 'replayed'`; items that still fail stay open
with their current reason. Nothing is deleted. `analytics.quarantine_summary` shows open and resolved counts.

**Triage**: the task's XCom says how many were selected, replayed and still failing.
"""

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from pulse.dag_defaults import dag_failure_notifier, deadline, default_args, warehouse_ready
from pulse.operators.replay import ReplayQuarantineOperator
from pulse.params import dag_params

with DAG(
    dag_id="replay_quarantine",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    params=dag_params("replay_quarantine"),
    tags=["quality"],
    on_failure_callback=dag_failure_notifier(),
    deadline=deadline(timedelta(minutes=60)),
):
    # The operator reads and checks the run's params itself.
    warehouse_ready() >> ReplayQuarantineOperator(task_id="replay")
