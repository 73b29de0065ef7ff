"""House rules every DAG follows: owner, tags, retries, alerts and deadlines in one place.

Tests in ``tests/dags/test_dag_policy.py`` enforce them on every DAG in ``dags/``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference, Param, setup, task

from pulse.alerts import PulseSlackNotifier
from pulse.sources.spec import all_sources

OWNER = "pulse-data"

#: The one tag vocabulary. A DAG carries one layer tag and, for ingestion, its source's tags (from the specs).
LAYER_TAGS = frozenset({"ingest", "enrich", "quality", "trends", "retention", "export", "maintenance"})
SOURCE_TAGS = frozenset(tag for spec in all_sources() for tag in spec.tags) - LAYER_TAGS
TAGS = LAYER_TAGS | SOURCE_TAGS

#: Pools the DAGs may use: each source's (from the specs; airflow_settings.yaml declares the same ones).
POOLS = frozenset({"default_pool"} | {spec.pool for spec in all_sources()})


def task_failure_notifier() -> PulseSlackNotifier:
    """Slack post when a task fails after its retries (runs in the worker), route ``failures``."""
    return PulseSlackNotifier(kind="task_failed")


def dag_failure_notifier() -> PulseSlackNotifier:
    """Slack post when a DAG run fails (runs in the dag-processor), route ``failures``."""
    return PulseSlackNotifier(kind="dag_failed")


def default_args(*, retries: int = 2, retry_delay: timedelta = timedelta(minutes=2)) -> dict[str, Any]:
    """Task defaults: owner, retries with exponential backoff, a timeout and the failure alert."""
    return {
        "owner": OWNER,
        "retries": retries,
        "retry_delay": retry_delay,
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(minutes=45),
        "on_failure_callback": task_failure_notifier(),
    }


#: The task id of every DAG's first task (:func:`warehouse_ready`).
WAREHOUSE_READY = "warehouse_ready"


@setup
@task(
    task_id=WAREHOUSE_READY,
    doc_md="Brings the warehouse to the migrations' head (pulse.warehouse.bootstrap): one query when it "
    "is there already; otherwise migrates under an advisory lock, or fails naming what a DBA must run.",
)
def _warehouse_ready() -> str:
    from airflow.sdk.exceptions import AirflowFailException

    from pulse.warehouse.bootstrap import WarehouseNotReady, ensure_warehouse

    try:
        outcome = ensure_warehouse()
    except WarehouseNotReady as exc:
        # Retrying cannot grant a privilege or undo a newer migration: fail at once (the alert says why).
        raise AirflowFailException(str(exc)) from exc
    print(f"warehouse: {outcome}")
    return outcome


def warehouse_ready() -> Any:
    """Every DAG's first task: the setup task ``warehouse_ready`` (call it inside the ``with DAG`` block and
    put it upstream of every other root task: ``warehouse_ready() >> first``).

    A setup task with no teardown is a *relevant* setup of every task downstream of it (Airflow 3.3
    ``get_upstreams_only_setups_and_teardowns``): each of them runs only once it succeeded (a failed one makes
    them ``upstream_failed``, a skipped one skips them), and clearing any of them clears it too, so a cleared
    task finds the warehouse migrated as well. Retries, owner and the failure alert come from the DAG's
    ``default_args``; a missing privilege fails at once.
    """
    return _warehouse_ready()


def deadline(interval: timedelta) -> DeadlineAlert:
    """The SLA: alert in Slack when a run is not done ``interval`` after it was queued.

    ``DAGRUN_QUEUED_AT`` works for manual runs too (their logical date is None, AIRFLOW3.md §1). The callback
    runs in the triggerer.
    """
    seconds = int(interval.total_seconds())
    name = f"done_within_{seconds // 60}m" if seconds % 60 == 0 else f"done_within_{seconds}s"
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=interval,
        callback=AsyncCallback(PulseSlackNotifier, kwargs={"kind": "deadline_missed", "name": name}),
        name=name,
    )


#: What a backfill of an ingest DAG loads; appended to every ingest DAG's docs by :func:`ingest_doc` (README,
#: "Backfills", says the same). Checked on the live stack with ``POST /api/v2/backfills/dry_run``.
BACKFILL_DOC = """
**Backfill** (Trigger → "Run Backfill", `airflow backfill create`, `POST /api/v2/backfills`): Airflow picks the
runs by their **tick**, the time a scheduled run would have run (its "Run After" and the time in its run id),
with **both ends of the range included**, and each run loads the window that **ends** at its tick. Hourly
example: from `21:00` to `02:00` creates `backfill__…T21:00:00+00:00` … `backfill__…T02:00:00+00:00` and loads
`20:00-21:00` … `01:00-02:00`, that is `[20:00, 02:00)`. To load the windows `[A, B)`, backfill from `A + 1 h`
to `B`. The dry run (and the dialog's preview) lists *logical dates*, which are the window **starts**
(`20:00` … `01:00`). "Missing Runs" skips ticks that already have a run; "All Runs" runs them again on the raw
pages they stored (no new API calls) and leaves the same rows.

A backfill runs up to its own `max_active_runs` (10 by default) at once, whatever the DAG's own; the source's
pool (`<source>_api`) still caps its calls in flight and its budget (`ops.api_budget`) the calls per period:
windows left when the budget is spent end as `budget_exhausted` gaps in `ops.coverage` (run them again later).
"""


def ingest_doc(doc: str | None) -> str:
    """An ingest DAG's ``doc_md``: its own text, then what a backfill of it loads (:data:`BACKFILL_DOC`)."""
    return (doc or "").rstrip() + "\n" + BACKFILL_DOC


def window_params() -> dict[str, Param]:
    """Optional params for a hand-picked window (ISO 8601, UTC); both or neither."""
    return {
        "window_start": Param(
            None, type=["null", "string"], description="Window start (inclusive), ISO 8601"
        ),
        "window_end": Param(None, type=["null", "string"], description="Window end (exclusive), ISO 8601"),
    }
