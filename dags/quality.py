"""
### quality

Runs the data quality checks declared in `include/quality/checks.yaml` every hour: freshness per source, volume
against the same hour and weekday of the previous four weeks, null rates, uniqueness of keys, value ranges
(sentiment in [-1, 1], prices above 0, plausible temperatures) and schema drift in the raw payloads. Every
result goes to `quality.check_results` with the observed value, the threshold and the status;
`analytics.quality_daily` gives a score per source and day.

Failed checks post one Slack message listing each failed check with its observed value and threshold. A check
that cannot run is reported as `error` and the others still run. The task itself fails only when a check of
severity `critical` fails, so the run shows red in the UI too.

**Triage**: `SELECT * FROM quality.check_results WHERE status <> 'pass' ORDER BY checked_at DESC`.
"""

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable, task

from pulse.dag_defaults import dag_failure_notifier, deadline, default_args

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
):

    @task
    def run_checks(**context: Any) -> dict[str, int]:
        """Run every declared check, record the results, alert on failures."""
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook
        from airflow.sdk.exceptions import AirflowFailException

        from pulse.dag_defaults import ALERTS_CONN_ID
        from pulse.quality.checks import load_checks, record, run_check
        from pulse.warehouse.db import connect
        from pulse.windows import utcnow

        now = utcnow()
        with connect() as conn:
            results = [run_check(conn, check, now) for check in load_checks()]
            record(conn, results, context["run_id"])
        failed = [r for r in results if r.status != "pass"]
        if failed:
            ti = context["ti"]
            lines = [
                f"• `{r.name}` ({r.severity}, {r.status}): observed {r.observed} vs {r.threshold}. {r.detail}"
                for r in failed
            ]
            SlackWebhookHook(slack_webhook_conn_id=ALERTS_CONN_ID).send(
                text=(
                    f":warning: *{len(failed)} data quality check(s) failed* of {len(results)}\n"
                    + "\n".join(lines[:20])
                    + f"\n*DAG*: `{ti.dag_id}` run {context['run_id']} · <{ti.log_url}|Open the task log>"
                )
            )
        summary = {"checks": len(results), "failed": len(failed)}
        critical = [r.name for r in failed if r.severity == "critical"]
        if critical:
            raise AirflowFailException(f"critical checks failed: {', '.join(critical)}")
        return summary

    run_checks()
