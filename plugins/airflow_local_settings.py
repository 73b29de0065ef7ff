"""Airflow local settings: imported by every Airflow process at start-up (api-server, scheduler, dag-processor,
triggerer, CLI), from ``plugins/`` as in an Astro project.

Only one thing lives here: the workaround that lets runs with a pending queued-at Deadline Alert be cleared
(apache/airflow#70368, fix PR #70370 not released; ``plugins/pulse/deadlines.py`` says how to delete it).
"""

from pulse.deadlines import install as _install_clear_deadline_workaround

#: Nothing here is a cluster policy or a setting for airflow.settings to pick up.
__all__: list[str] = []

_install_clear_deadline_workaround()
