"""
### restore_archive

Brings one archived period back into PostgreSQL (manual runs only): the latest archive of `table` for the period
starting `period` (`YYYY-MM-01` for monthly partitions and tables, `YYYY-MM-DD` for raw pages). The object's size,
SHA-256 and row count are checked before anything is written; the rows load in one transaction into a recreated,
empty partition. The manifest row (`ops.archives`) becomes `restored` and retention leaves the period hot for
`keep_days`; archiving it again afterwards writes an identical object.

**Params**: `table` (one of the archived tables), `period` (`YYYY-MM-DD`, from 2000-01-01, not in the future; the
1st of a month except for `raw.api_responses`), `keep_days` (1 to 3,650). A bad value, or a param this DAG does not
have, fails the run at once, without retries, naming the param (`pulse/params.py`); nothing is written.

`analytics.data_months` lists what is archived and where.
"""

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from pulse.dag_defaults import dag_failure_notifier, deadline, default_args, warehouse_ready
from pulse.params import dag_params

with DAG(
    dag_id="restore_archive",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["retention"],
    on_failure_callback=dag_failure_notifier(),
    deadline=deadline(timedelta(hours=2)),
    params=dag_params("restore_archive"),
):

    @task
    def restore(**context: Any) -> dict[str, Any]:
        """Load the period back from its archive."""
        from airflow.sdk.exceptions import AirflowFailException

        from pulse.archive.parquet import ArchiveCorrupt
        from pulse.archive.retention import RetentionError, as_dict, restore_period
        from pulse.params import validate_context
        from pulse.warehouse.db import connect

        checked = validate_context("restore_archive", context)  # BadParam: fails at once, naming the param
        try:
            with connect() as conn:
                done = restore_period(
                    conn, checked["table"], checked["period"], checked["keep_days"], context["run_id"]
                )
        except (RetentionError, ArchiveCorrupt, ValueError) as exc:
            raise AirflowFailException(str(exc)) from exc
        return as_dict(done)

    warehouse_ready() >> restore()
