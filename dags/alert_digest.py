"""
### alert_digest

Once a day (08:00 UTC) posts one message to the `slack_failures` connection summarising every alert of the last
24 hours from `ops.alert_events`: counts per route and kind, how many were held back as repeats by the
deduplication window (`PULSE_ALERT_DEDUP_MINUTES`), and the most repeated alerts. A quiet day says so.

**Params**: none; a run triggered with conf fails at once, without retries, naming the keys (`pulse/params.py`).

Optional: pause this DAG to turn the digest off; alerts themselves do not depend on it.
"""

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable, task

from pulse.dag_defaults import dag_failure_notifier, deadline, default_args, warehouse_ready

with DAG(
    dag_id="alert_digest",
    doc_md=__doc__,
    schedule=CronTriggerTimetable("0 8 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["maintenance"],
    on_failure_callback=dag_failure_notifier(),
    deadline=deadline(timedelta(minutes=30)),
):

    @task
    def post_digest(**context: Any) -> str:
        """Summarise the last 24 hours of alerts and post it."""
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        from pulse.alerts import ROUTES, digest_text
        from pulse.params import validate_context
        from pulse.warehouse.db import connect

        validate_context("none", context)  # it takes no params: conf keys fail the run at once
        with connect() as conn:
            # The database clock: alert events are stamped with it.
            until = conn.execute("SELECT now()").fetchone()[0]
            text = digest_text(conn, until - timedelta(hours=24), until)
        SlackWebhookNotifier(slack_webhook_conn_id=ROUTES["failures"], text=text).notify({})
        return text

    warehouse_ready() >> post_digest()
