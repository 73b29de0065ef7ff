"""
### warehouse_maintenance

Keeps the warehouse's monthly partitions ready and watches what should stay empty. Daily at 00:15 UTC.

* **ensure_partitions**: creates the partitions of `core.documents` and `core.market_bars` from this month to
  three months ahead (`ops.ensure_month_partitions`), so loads never wait for DDL at a month boundary.
* **watch_default_partitions**: counts the rows in `core.documents_default` and `core.market_bars_default`.
  The loader never writes there; rows there mean something wrote around it (a restore, a manual insert). The
  task moves them into monthly partitions (creating those) and posts a data-quality alert to Slack naming the
  table, the row count and the key range. Rows whose time is outside 1970-2100 cannot be moved: the task
  then fails, and they need a person (`SELECT * FROM ops.default_partition_rows()`).

**Params**: none; a run triggered with conf fails at once, without retries, naming the keys (`pulse/params.py`).

**Triage**: a failure of `ensure_partitions` is usually a lock it could not get (a long analyst query on a
partitioned table); the retry normally succeeds. See docs/warehouse.md for the partitioning scheme.
"""

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable, task

from pulse.dag_defaults import dag_failure_notifier, deadline, default_args, warehouse_ready

with DAG(
    dag_id="warehouse_maintenance",
    doc_md=__doc__,
    schedule=CronTriggerTimetable("15 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["maintenance"],
    on_failure_callback=dag_failure_notifier(),
    deadline=deadline(timedelta(minutes=30)),
):

    @task
    def ensure_partitions(**context: Any) -> dict[str, int]:
        """Create missing monthly partitions up to three months ahead."""
        from pulse.params import validate_context
        from pulse.warehouse.db import connect
        from pulse.warehouse.partitions import ensure_ahead
        from pulse.windows import utcnow

        validate_context("none", context)  # it takes no params: conf keys fail the run at once
        with connect() as conn:
            return ensure_ahead(conn, utcnow())

    @task
    def watch_default_partitions(**context: Any) -> list[dict[str, Any]]:
        """Alert on rows in default partitions, move them into monthly partitions, fail if some cannot move."""
        from dataclasses import asdict

        from pulse.alerts import Alert, describe_window, post_alert
        from pulse.warehouse.db import connect
        from pulse.warehouse.partitions import default_rows, rehome

        found, stuck = [], []
        with connect() as conn:
            for entry in default_rows(conn):
                if entry.rows == 0:
                    continue
                made = rehome(conn, entry)
                left = next(e for e in default_rows(conn) if e.table == entry.table)
                found.append({**asdict(entry), "partitions_created": made, "rows_left": left.rows})
                if left.rows:
                    stuck.append(left)
        for item in found:
            ti = context["ti"]
            post_alert(
                Alert(
                    route="failures",
                    kind="default_partition",
                    title=f":warning: *Rows in a default partition* `{item['partition']}`",
                    dag_id=ti.dag_id,
                    run_id=context["run_id"],
                    window=describe_window(context),
                    lines=[
                        f"{item['rows']} rows (key from {item['min_key']} to {item['max_key']}) moved into monthly "
                        f"partitions ({item['partitions_created']} created); {item['rows_left']} left. Something "
                        "wrote around the loader: check restores and manual inserts."
                    ],
                    links=[("Task log", ti.log_url)],
                    dedup_key=f"default_partition|{item['partition']}",
                )
            )
        if stuck:
            from airflow.sdk.exceptions import AirflowFailException

            # Retrying cannot help: fail at once (the failure alert follows).
            raise AirflowFailException(
                "rows outside 1970-2100 stay in default partitions: "
                + "; ".join(f"{s.partition}: {s.rows} rows, key {s.min_key}..{s.max_key}" for s in stuck)
            )
        return found

    warehouse_ready() >> ensure_partitions() >> watch_default_partitions()
