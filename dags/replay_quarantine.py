"""
### replay_quarantine

Dead letters back into the warehouse after a fix. Trigger it by hand from the UI with:

* `source` (required): reddit, x, newsapi, alphavantage, openweathermap or github;
* `reason_codes` (optional): only quarantine rows with these reason codes (e.g. `text_too_large`);
* `window_start` / `window_end` (optional, ISO 8601 UTC): only items whose raw page belongs to a data window
  overlapping this one.

Every selected open row of `quality.quarantine` is parsed again from its raw page with today's parser (no API
call). Items that now pass are upserted into `core.*` exactly like a load (the same key updates the same row, so a
replay never duplicates) and their quarantine rows get `resolution = 'replayed'`; items that still fail stay open
with their current reason. Nothing is deleted. `analytics.quarantine_summary` shows open and resolved counts.

**Triage**: the task's XCom says how many were selected, replayed and still failing.
"""

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from pulse.dag_defaults import SOURCE_TAGS, dag_failure_notifier, deadline, default_args
from pulse.operators.replay import ReplayQuarantineOperator

with DAG(
    dag_id="replay_quarantine",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    params={
        "source": Param("reddit", type="string", enum=sorted(SOURCE_TAGS), description="Source to replay"),
        "reason_codes": Param([], type="array", description="Only these reason codes (empty: all)"),
        "window_start": Param(
            None, type=["null", "string"], description="Raw page window overlaps from (ISO)"
        ),
        "window_end": Param(
            None, type=["null", "string"], description="Raw page window overlaps until (ISO)"
        ),
    },
    tags=["quality"],
    on_failure_callback=dag_failure_notifier(),
    deadline=deadline(timedelta(minutes=60)),
):
    ReplayQuarantineOperator(
        task_id="replay",
        source="{{ params.source }}",
        reason_codes="{{ params.reason_codes | join(',') }}",
        window_start="{{ params.window_start or '' }}",
        window_end="{{ params.window_end or '' }}",
    )
