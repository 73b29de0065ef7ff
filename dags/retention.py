"""
### retention

Keeps hot data in PostgreSQL for a configurable period (`include/retention.yaml`: documents and facts 90 days,
raw pages 14 days) and moves older data to Parquet in object storage (`PULSE_ARCHIVE_URL`: a local folder, or S3
with `PULSE_ARCHIVE_CONN_ID`), one object per monthly partition (raw pages: per day).

Each period is its own mapped task (`archive`, labelled with the partition): write the archive, record it in
`ops.archives` (path, rows, SHA-256, schema version), **read it back and verify** it (size, checksum, full
decode, row count, every row compared with the database), and only then drop the partition or delete the rows,
in the same transaction that marks the manifest row `dropped`. The relation is locked against writes (`SHARE`)
from the first read to the drop. A failed verification marks the row `failed`, removes nothing, and fails the
task (Slack alert).

`analytics.data_months` shows analysts which months are hot, archived (and where) or restored. Bring a period
back with the `restore_archive` DAG.

**Params**: `documents_days`, `facts_days`, `raw_days` override the hot period for one run (whole days, 1 to
3,650; empty: `include/retention.yaml`); `dry_run` only lists what would be archived. A bad value, or a param
this DAG does not have, fails `plan` at once, without retries, naming the param (`pulse/params.py`); nothing is
archived.
"""

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable, get_current_context, task

from pulse.dag_defaults import dag_failure_notifier, deadline, default_args, warehouse_ready
from pulse.params import dag_params

with DAG(
    dag_id="retention",
    doc_md=__doc__,
    schedule=CronTriggerTimetable("30 1 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["retention"],
    on_failure_callback=dag_failure_notifier(),
    deadline=deadline(timedelta(hours=3)),
    params=dag_params("retention"),
):

    @task
    def plan(**context: Any) -> list[dict[str, Any]]:
        """The periods older than their hot period, oldest first."""
        from pulse.archive.retention import as_dict, load_policies
        from pulse.archive.retention import plan as plan_units
        from pulse.params import validate_context
        from pulse.warehouse.db import connect
        from pulse.windows import utcnow

        checked = validate_context("retention", context)  # BadParam: fails at once, naming the param
        hot, policies = load_policies()
        for group in hot:
            if checked.get(f"{group}_days") is not None:
                hot[group] = checked[f"{group}_days"]
        with connect() as conn:
            units = plan_units(conn, utcnow(), hot, policies)
        print(f"hot days {hot}: {len(units)} period(s) to archive: {[u.label for u in units]}")
        return [] if checked["dry_run"] else [as_dict(u) for u in units]

    @task(map_index_template="{{ unit_label }}", max_active_tis_per_dag=1)
    def archive(unit: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Archive one period, verify it, then remove it from PostgreSQL."""
        from airflow.sdk.exceptions import AirflowFailException

        from pulse.archive.retention import RetentionError, Unit, archive_unit

        u = Unit(**unit)
        get_current_context()["unit_label"] = u.label  # type: ignore[typeddict-unknown-key]
        try:
            return archive_unit(u, context["run_id"])
        except RetentionError as exc:
            # Retrying writes the same archive and fails the same way: a person must look.
            raise AirflowFailException(str(exc)) from exc

    periods = plan()
    warehouse_ready() >> periods
    archive.expand(unit=periods)
