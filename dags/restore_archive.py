"""
### restore_archive

Brings one archived period back into PostgreSQL (manual runs only): the latest archive of `table` for the period
starting `period` (`YYYY-MM-01` for monthly partitions and tables, `YYYY-MM-DD` for raw pages). The object's size,
SHA-256 and row count are checked before anything is written; the rows load in one transaction into a recreated,
empty partition. The manifest row (`ops.archives`) becomes `restored` and retention leaves the period hot for
`keep_days`; archiving it again afterwards writes an identical object.

`analytics.data_months` lists what is archived and where.
"""

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from pulse.dag_defaults import dag_failure_notifier, deadline, default_args

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
    params={
        "table": Param(
            "core.documents",
            type="string",
            enum=[
                "core.documents",
                "enriched.document_features",
                "enriched.entity_mentions",
                "enriched.places",
                "core.market_bars",
                "core.weather_observations",
                "core.github_repo_snapshots",
                "raw.api_responses",
            ],
            description="The table to restore",
        ),
        "period": Param(
            "2026-01-01",
            type="string",
            format="date",
            description="First day of the period (UTC), YYYY-MM-DD",
        ),
        "keep_days": Param(7, type="integer", minimum=1, description="Keep it hot this many days"),
    },
):

    @task
    def restore(params: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Load the period back from its archive."""
        from datetime import date

        from airflow.sdk.exceptions import AirflowFailException

        from pulse.archive.parquet import ArchiveCorrupt
        from pulse.archive.retention import RetentionError, as_dict, restore_period
        from pulse.warehouse.db import connect

        try:
            period = date.fromisoformat(str(params["period"]))
            with connect() as conn:
                done = restore_period(
                    conn, params["table"], period, int(params["keep_days"]), context["run_id"]
                )
        except (RetentionError, ArchiveCorrupt, ValueError) as exc:
            raise AirflowFailException(str(exc)) from exc
        return as_dict(done)

    restore()
