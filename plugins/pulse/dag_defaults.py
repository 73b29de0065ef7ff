"""House rules every DAG follows: owner, tags, retries, alerts and deadlines in one place.

Tests in ``tests/dags/test_dag_policy.py`` enforce them on every DAG in ``dags/``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference, Param

from pulse.alerts import PulseSlackNotifier

OWNER = "pulse-data"

#: The one tag vocabulary. A DAG carries one layer tag and, for ingestion, one source tag.
LAYER_TAGS = frozenset({"ingest", "enrich", "quality", "trends", "retention", "export", "maintenance"})
SOURCE_TAGS = frozenset({"reddit", "x", "newsapi", "alphavantage", "openweathermap", "github"})
TAGS = LAYER_TAGS | SOURCE_TAGS

#: Pools the DAGs may use; airflow_settings.yaml declares the same ones.
POOLS = frozenset({"default_pool"} | {f"{source}_api" for source in SOURCE_TAGS})


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


def window_params() -> dict[str, Param]:
    """Optional params for a hand-picked window (ISO 8601, UTC); both or neither."""
    return {
        "window_start": Param(
            None, type=["null", "string"], description="Window start (inclusive), ISO 8601"
        ),
        "window_end": Param(None, type=["null", "string"], description="Window end (exclusive), ISO 8601"),
    }
