"""Celery queues: which kind of work runs where, decided here and nowhere else.

Three queues, one per kind of work (docs/executors.md):

* ``ingest``: the ``extract`` and ``load`` tasks of the ingest DAGs. They mostly wait on a source's API
  (extract: HTTP, rate limits, backoff) and on PostgreSQL (load), so a worker serving them can run many at
  once; the sources' pools and budgets, not the worker, cap the calls in flight.
* ``enrich``: the ``enrich`` DAG's tasks (language, sentiment, entities, MinHash deduplication): CPU-bound, so
  a worker group for it runs about one task per core.
* ``default``: everything else (quality, export, retention, maintenance, alerts, setup tasks).

:func:`queue_for` is the rule; :func:`assign` applies it to a task and is the ``task_policy`` cluster policy
of ``plugins/airflow_local_settings.py``, so every task of every DAG, from the dag-processor as from a
test's ``DagBag``, gets its queue from here (``tests/policy/test_queues.py`` checks both the DAGs and the local
stack's workers). A ``queue=`` written in a DAG file is overwritten: move the rule here instead.

The local stack (``PULSE_EXECUTOR=celery``, dev/stack.py) runs few workers on one machine, so every worker
serves every queue (:data:`LOCAL_WORKER_QUEUES`): any one of them may die and every queue is still served.
A real deployment runs one worker group per queue (Astro: a worker queue each, named as here, sized with
:attr:`Queue.concurrency`; plain Airflow: ``airflow celery worker -q ingest -c 16`` ...).

Standard library only: ``airflow_local_settings`` imports this in every Airflow process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INGEST = "ingest"
ENRICH = "enrich"
DEFAULT = "default"


@dataclass(frozen=True)
class Queue:
    """A Celery queue and how a worker group dedicated to it is sized."""

    name: str
    work: str
    #: Tasks at once per worker of a group serving only this queue (``-c``; Astro: "Concurrency").
    concurrency: int
    #: The machine that suits it (Astro worker type), for docs/executors.md.
    machine: str


QUEUES: tuple[Queue, ...] = (
    Queue(
        INGEST,
        "API-bound extract and load of the ingest DAGs (waiting on HTTP and PostgreSQL)",
        concurrency=16,
        machine="small: little CPU, many tasks at once",
    ),
    Queue(
        ENRICH,
        "CPU-bound enrichment and deduplication of documents",
        concurrency=2,
        machine="compute: one task per core",
    ),
    Queue(
        DEFAULT,
        "everything else: quality, export, retention, maintenance, alerts, setup tasks",
        concurrency=8,
        machine="small",
    ),
)
QUEUE_NAMES: tuple[str, ...] = tuple(q.name for q in QUEUES)

#: Operators whose tasks go to ``ingest`` (their ``task_type``: the class name, also of a mapped task).
INGEST_OPERATORS = frozenset({"ExtractToRawOperator", "LoadRawToCoreOperator"})
#: DAGs whose every task goes to ``enrich``.
ENRICH_DAGS = frozenset({"enrich"})

#: The queues every worker of the local stack serves: all of them, so that any one worker may die.
LOCAL_WORKER_QUEUES: tuple[str, ...] = QUEUE_NAMES
#: Tasks at once per local worker (``airflow celery worker -c``): two workers on two cores; the ingest
#: tasks mostly wait, enrichment runs one task per DAG run.
LOCAL_WORKER_CONCURRENCY = 4


def queue_for(dag_id: str, task_id: str, task_type: str) -> str:
    """The queue of task ``task_id`` (operator class ``task_type``) of DAG ``dag_id``."""
    if task_type in INGEST_OPERATORS:
        return INGEST
    if dag_id in ENRICH_DAGS:
        return ENRICH
    return DEFAULT


def assign(task: Any) -> None:
    """Set ``task.queue`` by :func:`queue_for` (an operator or a mapped operator): the cluster policy."""
    task.queue = queue_for(task.dag_id, task.task_id, task.task_type)
