"""
### alert_probe_deadline / alert_probe_failure

Probe DAGs for `tests/stack/test_live_alerts.py` only: the local stack loads them instead of `dags/` (with
`PULSE_DAGS_FOLDER=tests/stack_dags`) so the production alerting (`pulse.dag_defaults`: task and DAG failure
notifiers, Deadline Alerts) can be observed through the real scheduler, dag-processor, triggerer and worker.

* **alert_probe_deadline**: one task that sleeps about 45 s and succeeds, with a 5 s Deadline Alert counted
  from when the run was queued, so the deadline is missed while the run is still running.
* **alert_probe_failure**: one task that raises `AirflowFailException("probe failure <marker>")` (no
  retries; `marker` comes from the run's conf), so the task failure alert (worker) and the DAG failure alert
  (dag-processor) both fire. Its 30 s Deadline Alert fires after the run has already failed: recorded in
  `ops.alert_events`, not posted.

Both start with the house setup task `warehouse_ready` (as every DAG does): alerts record their events in
the warehouse, which it migrates.

**Triage**: these DAGs are never deployed; if they misbehave, read the test module's docstring.
"""

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from pulse.dag_defaults import dag_failure_notifier, deadline, default_args, warehouse_ready

#: How long the deadline probe's task runs; well past its deadline, so the run is running when it fires.
SLEEP_SECONDS = 45

with DAG(
    dag_id="alert_probe_deadline",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    default_args=default_args(),
    tags=["maintenance"],
    on_failure_callback=dag_failure_notifier(),
    deadline=deadline(timedelta(seconds=5)),
):

    @task
    def sleep_past_deadline() -> None:
        """Run well past the DAG's 5 s deadline, then succeed."""
        import time

        time.sleep(SLEEP_SECONDS)

    warehouse_ready() >> sleep_past_deadline()


with DAG(
    dag_id="alert_probe_failure",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    default_args=default_args(),
    tags=["maintenance"],
    on_failure_callback=dag_failure_notifier(),
    deadline=deadline(timedelta(seconds=30)),
):

    @task
    def fail_at_once(**context: Any) -> None:
        """Fail without retries; the error carries the run's ``marker`` (conf) so the test can find it."""
        from airflow.sdk.exceptions import AirflowFailException

        marker = (context["dag_run"].conf or {}).get("marker", "none")
        raise AirflowFailException(f"probe failure {marker}")

    warehouse_ready() >> fail_at_once()
