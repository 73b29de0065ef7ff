"""The ingest DAG of a source, built from its :class:`~pulse.sources.spec.SourceSpec`:
``warehouse_ready >> extract >> load``.

A ``dags/ingest_<source>.py`` file is its docstring (the DAG's docs, with a Triage section) and
``dag = ingest_dag(SPEC, doc_md=__doc__)``. Everything that differs between sources (cron, window, start,
runs at a time, deadline, pool, outlets, tags) comes from the spec. Light at parse time: airflow.sdk,
pendulum and light pulse modules only.
"""

from __future__ import annotations

import sys

import pendulum
from airflow.sdk import DAG, Asset, CronTriggerTimetable

from pulse import assets
from pulse.dag_defaults import dag_failure_notifier, deadline, default_args, ingest_doc, warehouse_ready
from pulse.operators.extract import ExtractToRawOperator
from pulse.operators.load import LoadRawToCoreOperator
from pulse.params import dag_params
from pulse.sources.spec import SourceSpec


def outlets(spec: SourceSpec) -> list[Asset]:
    """The assets of the tables the source's load writes (:mod:`pulse.assets`, by name)."""
    by_name = {a.name: a for a in vars(assets).values() if isinstance(a, Asset)}
    missing = [name for name in spec.outlet_names if name not in by_name]
    if missing:
        raise ValueError(f"{spec.name}: no asset named {missing} in pulse.assets for tables {spec.tables}")
    return [by_name[name] for name in spec.outlet_names]


def ingest_dag(spec: SourceSpec, doc_md: str | None = None) -> DAG:
    """The source's ingest DAG: ``extract`` (in the source's pool) then ``load`` (updating its assets).

    Scheduled runs load the window that ends at their tick (``CronTriggerTimetable`` in UTC with the spec's
    window as interval); the DAG's file is the caller's (Airflow reports it as the DAG's location).
    """
    with DAG(
        dag_id=spec.dag_id,
        doc_md=ingest_doc(doc_md),
        schedule=CronTriggerTimetable(spec.schedule, timezone="UTC", interval=spec.default_window),
        start_date=pendulum.instance(spec.start_date),
        catchup=False,
        max_active_runs=spec.max_active_runs,
        default_args=default_args(),
        params=dag_params("ingest"),
        tags=list(spec.tags),
        on_failure_callback=dag_failure_notifier(),
        deadline=deadline(spec.deadline),
    ) as dag:
        extract = ExtractToRawOperator(task_id="extract", source=spec.name, pool=spec.pool)
        load = LoadRawToCoreOperator(task_id="load", source=spec.name, outlets=outlets(spec))
        warehouse_ready() >> extract >> load
    caller = sys._getframe(1)
    dag.fileloc = caller.f_code.co_filename  # as @dag does; the DagBag sets the same for DAG files
    return dag
