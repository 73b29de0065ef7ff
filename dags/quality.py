"""
### quality

Audits the data every hour and publishes what passed (write-audit-publish, `pulse/quality/publish.py`).

* **Run checks** (`include/quality/checks.yaml`): freshness per source, schema drift in raw payloads.
* **Window checks**, per source and hour of event time: volume against the same hour and weekday of the
  previous four weeks, null rates, unique keys, value ranges (sentiment in [-1, 1], prices above 0,
  plausible temperatures). Only hours the source has finished ingesting are audited.
* Every result goes to `quality.check_results` (observed value, threshold, status, window);
  `analytics.quality_daily` scores each source per day.
* **Publish**: each source's horizon (`analytics.publication`) moves forward across hours whose window checks
  passed. Analyst views and exports read only data before it. A failed hour is **held**: the horizon stops,
  `analytics.coverage_windows` shows `audit_status = 'held'`, and later runs re-audit it.
* **Invariants** (`common.sql` `SQLTableCheckOperator`): bookkeeping rules that must never break.

Failed checks post one message to the `slack_quality` connection listing each failure with its observed value
and threshold (deduplicated like every alert). The task fails only when a check of severity `critical` fails.

**Params** (manual runs): `window_start`/`window_end` re-audit those hours (e.g. after `replay_quarantine` or a
backfill fixed them), `source` limits the run to one source; `release` with `released_by` and `reason`
releases held hours of that window as they are.

**Triage**: `SELECT * FROM quality.check_results WHERE status <> 'pass' ORDER BY checked_at DESC`;
`SELECT * FROM quality.window_audits WHERE status = 'held'`.
"""

from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.common.sql.operators.sql import SQLTableCheckOperator
from airflow.sdk import DAG, CronTriggerTimetable, Param, task

from pulse.dag_defaults import dag_failure_notifier, deadline, default_args, window_params

with DAG(
    dag_id="quality",
    doc_md=__doc__,
    schedule=CronTriggerTimetable("10 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["quality"],
    on_failure_callback=dag_failure_notifier(),
    deadline=deadline(timedelta(minutes=30)),
    params={
        **window_params(),
        "source": Param(None, type=["null", "string"], description="Audit only this source"),
        "release": Param(
            False, type="boolean", description="Release the held hours of the window as they are"
        ),
        "released_by": Param(None, type=["null", "string"], description="Who releases (with release)"),
        "reason": Param(None, type=["null", "string"], description="Why (with release)"),
    },
):
    invariants = SQLTableCheckOperator(
        task_id="invariants",
        conn_id="warehouse_default",
        table="ops.coverage",
        checks={
            # Aggregates, so an empty table passes (a row-wise statement gives NULL there, which fails).
            "gaps_have_a_reason": {
                "check_statement": "count(*) FILTER (WHERE status = 'gap' AND reason IS NULL) = 0"
            },
            "windows_are_not_empty": {
                "check_statement": "count(*) FILTER (WHERE window_end <= window_start) = 0"
            },
        },
    )

    @task
    def audit_and_publish(params: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Run every check, audit the ready windows of each source, publish, alert on failures."""
        from airflow.sdk.exceptions import AirflowFailException

        from pulse.quality.runner import BadParams, run_quality

        try:
            outcome = run_quality(params, context)
        except BadParams as exc:
            raise AirflowFailException(str(exc)) from exc
        if outcome["critical"]:
            raise AirflowFailException(f"critical checks failed: {', '.join(outcome['critical'])}")
        return outcome

    invariants >> audit_and_publish()
