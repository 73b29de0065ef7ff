"""Airflow local settings: imported by every Airflow process at start-up (api-server, scheduler, dag-processor,
triggerer, CLI), from ``plugins/`` as in an Astro project.

Two things live here: the workaround that lets runs with a pending queued-at Deadline Alert be cleared
(apache/airflow#70368, fix PR #70370 not released; ``plugins/pulse/deadlines.py`` says how to delete it), and
the ``task_policy`` cluster policy that puts every task on its Celery queue (``plugins/pulse/queues.py``).
"""

from pulse.deadlines import install as _install_clear_deadline_workaround
from pulse.queues import assign as task_policy

#: What airflow.settings picks up: the one cluster policy (the queue of every task, pulse.queues).
__all__: list[str] = ["task_policy"]

_install_clear_deadline_workaround()
