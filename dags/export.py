"""
### export

Daily at 02:30 UTC: writes the analyst marts per UTC day to object storage as CSV, JSON Lines and Parquet,
with a `manifest.json` written last, and sends a signed (HMAC-SHA256) webhook to each subscriber
(`pulse/export/run.py`; the partner contract is docs/exports.md).

* **Marts**: `daily_volume` (`analytics.daily_volume`), `daily_sentiment` (`analytics.daily_sentiment`),
  `entity_mentions_daily` (`analytics.entity_mentions_daily`), each by its `day` column.
* **Where**: `PULSE_EXPORT_URL` (`file:///abs/dir` or `s3://bucket/prefix`; for S3 `PULSE_EXPORT_CONN_ID`
  names the aws connection), as `<root>/<mart>/day=YYYY-MM-DD/<mart>.csv|.jsonl|.parquet` + `manifest.json`.
  Unset: the run fails at once saying which variable to set.
* **The gate (write-audit-publish)**: a day is exported only when it is fully published: every source in
  `quality.publish_state` (see `analytics.publication`) has its horizon at or after the next midnight UTC.
* **Which days**: per mart, the days after its last export in `ops.exports` (the day before the run for a
  mart never exported), up to yesterday, at most 7 per run. Days not published yet are skipped and named in
  the task's return value and log with the sources holding them back; the run still succeeds and a later
  run exports them.
* **Webhooks** (`include/exports/subscribers.yaml`; URL and secret in the subscriber's connection, e.g.
  `webhook_local`): bounded retries with backoff (`max_attempts`, `backoff_s` per subscriber, defaults 5 and
  2 s). A subscriber that still fails is reported once in Slack (`slack_failures`) and not retried again in
  this run; the export itself succeeds. Every attempt is in `ops.webhook_deliveries`.

**Params** (manual runs): `day` (`YYYY-MM-DD`) re-exports that day: the same paths are overwritten, the
`ops.exports` row is replaced, subscribers are notified again (same delivery id if the files did not
change). A day that is not fully published fails the run, naming the sources and their horizons. `marts`
limits the run to some marts (null: all). `day` must be a real date from 2000-01-01 and before today (UTC);
`marts` a list of distinct mart names. A bad value, or a param this DAG does not have, fails the run at once,
without retries, naming the param (`pulse/params.py`).

**Triage**: `SELECT * FROM ops.exports ORDER BY exported_at DESC`;
`SELECT * FROM ops.webhook_deliveries WHERE NOT ok ORDER BY id DESC`; `SELECT * FROM analytics.publication`
when days are skipped.
"""

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable, task

from pulse.dag_defaults import dag_failure_notifier, deadline, default_args, warehouse_ready
from pulse.params import dag_params

with DAG(
    dag_id="export",
    doc_md=__doc__,
    schedule=CronTriggerTimetable("30 2 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["export"],
    on_failure_callback=dag_failure_notifier(),
    deadline=deadline(timedelta(hours=1)),
    params=dag_params("export"),
):

    @task
    def export_marts(params: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Export the due (or chosen) days of each mart, record them, notify subscribers."""
        from airflow.sdk.exceptions import AirflowFailException

        from pulse.export.run import ExportRunError, run_export
        from pulse.params import validate_context

        validate_context("export", {**context, "params": params})  # BadParam: fails at once, naming the param
        try:
            return run_export(params, context)
        except ExportRunError as exc:
            raise AirflowFailException(str(exc)) from exc

    warehouse_ready() >> export_marts()
