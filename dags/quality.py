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
  passed, and each audited hour records when it passed (`quality.hour_audits`). A row is published (in the
  `published` schema, the analyst views and the exports: all analysts can read) when its hour is before the
  horizon and the row was written before its hour's last passing audit. A failed hour is **held**: the horizon
  stops, `analytics.coverage_windows` shows `audit_status = 'held'`, and later runs re-audit it.
* **Late rows**: every run, without params, finds hours that got rows after their audit (a backfill, a second
  run over a window, an edited row, enrichment written after the audit) or that no audit covered, audits each
  again and publishes it if it passes. A late hour that fails is held; what was published stays published.
* **Invariants** (`common.sql` `SQLTableCheckOperator`): bookkeeping rules that must never break.

Each successful run updates the `published_hours` Asset, which triggers the `trends` DAG.

Failed checks post one message to the `slack_quality` connection listing each failure with its observed value
and threshold (deduplicated like every alert). The task fails only when a check of severity `critical` fails.

**Params** (manual runs): `window_start`/`window_end` re-audit those hours (e.g. after `replay_quarantine` or a
backfill fixed them): UTC date-times with a zone on whole hours (`2026-11-28T11:00:00Z`), both or neither, start
before end, ending no later than now, **at most 168 hours (7 days) per run** (1,008 audits over the 6 sources;
split a longer period into several runs). `source` limits the run to one source; `release` with `released_by`
and `reason` (both required, and only with `release`) releases held hours of that window as they are. A bad
value, or a param this DAG does not have, fails the run at once, without retries, naming the param
(`pulse/params.py`).

**Triage**: `SELECT * FROM quality.check_results WHERE status <> 'pass' ORDER BY checked_at DESC`;
`SELECT * FROM quality.window_audits WHERE status = 'held'`.
"""

from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.common.sql.operators.sql import SQLTableCheckOperator
from airflow.sdk import DAG, CronTriggerTimetable, task

from pulse.assets import PUBLISHED_HOURS
from pulse.dag_defaults import dag_failure_notifier, deadline, default_args, warehouse_ready
from pulse.params import dag_params

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
    params=dag_params("quality"),
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

    @task(outlets=[PUBLISHED_HOURS])
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

    warehouse_ready() >> invariants >> audit_and_publish()
