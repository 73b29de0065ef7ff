"""Workaround for apache/airflow#70368: clearing a run whose queued-at deadline is pending crashes.

**What breaks.** Airflow 3.3.0-3.3.2 stores a Deadline Alert's interval as JSON (migration 0117), but
``airflow.models.taskinstance._recalculate_dagrun_queued_at_deadlines``, which every clear calls (UI "Clear",
``POST /api/v2/dags/{dag}/dagRuns/{run}/clear``, ``POST .../clearTaskInstances``, ``airflow tasks clear``, a
backfill with ``reprocess_behavior=completed``), still does ``timedelta(seconds=<that JSON dict>)``:
``TypeError: unsupported type for timedelta seconds component: dict``, HTTP 500. Every Pulse DAG has a
``DAGRUN_QUEUED_AT`` deadline (``pulse.dag_defaults.deadline``), so a failed run could not be retried until
its deadline had fired, which is exactly when on-call wants to retry it.

**What this does.** :func:`install` replaces that one private function with :func:`recalculate_queued_at_deadlines`,
the logic of the upstream fix (apache/airflow PR #70370, open, unreleased): decode the stored alert the way
Airflow does when it creates the run's deadlines, resolve a variable-backed interval, and move each pending
queued-at deadline to the new ``queued_at`` plus its interval. An alert whose interval cannot be resolved is
left as it was (logged) instead of failing the whole clear, as in the PR. The Deadline Alerts themselves are
untouched: after a clear the retried run has the full interval again, and a run that misses it still alerts.

It is installed from ``plugins/airflow_local_settings.py``, which every Airflow process imports at start-up
(``airflow.settings.import_local_settings``; Astro keeps the file in ``plugins/``). The patch is applied when
``airflow.models.taskinstance`` is first imported, so processes that never clear (task workers) never load it.
It applies only to the Airflow versions in :data:`AFFECTED` and only if the function is still Airflow's own.

**Deleting it** once an Airflow release carries the fix (``tests/alerts/test_deadline_clear_workaround.py``
fails with "Airflow fixed #70368: delete ..." on the first version without the bug): delete this module, the
two lines in ``plugins/airflow_local_settings.py``, that test module and the paragraph "Clearing runs with a
pending deadline" in ``docs/alerts.md``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

ISSUE = "https://github.com/apache/airflow/issues/70368"
FIX = "https://github.com/apache/airflow/pull/70370"
TARGET_MODULE = "airflow.models.taskinstance"
TARGET_FUNCTION = "_recalculate_dagrun_queued_at_deadlines"
#: Releases of apache-airflow-core known to have the bug (3.3.0 introduced the JSON interval; 3.3.2 is the
#: newest release and still has it). Extend when a newer release still has it (the test says so).
AFFECTED = frozenset({"3.3.0", "3.3.1", "3.3.2"})
#: Marks the replacement, so installing twice (the plugin manager re-executes airflow_local_settings.py)
#: changes nothing and the original stays reachable.
_MARK = "__pulse_workaround__"


def airflow_version() -> str | None:
    """The installed apache-airflow-core version, without importing Airflow."""
    try:
        return version("apache-airflow-core")
    except PackageNotFoundError:
        return None


def affected(airflow: str | None) -> bool:
    """Whether this Airflow version needs the workaround."""
    return airflow in AFFECTED


def recalculate_queued_at_deadlines(dagrun: Any, new_queued_at: datetime, session: Session) -> None:
    """Move the run's pending ``DAGRUN_QUEUED_AT`` deadlines to ``new_queued_at`` + their interval.

    Same contract as Airflow's ``_recalculate_dagrun_queued_at_deadlines`` (the caller flushes and commits),
    with the stored interval decoded as in apache/airflow#70370.
    """
    from airflow.models.deadline import Deadline, ReferenceModels
    from airflow.models.deadline_alert import DeadlineAlert as DeadlineAlertModel
    from airflow.serialization.decoders import decode_deadline_alert
    from airflow.serialization.definitions.deadline import DeadlineAlertFields, SerializedVariableInterval
    from sqlalchemy import false, select

    rows = session.execute(
        select(Deadline, DeadlineAlertModel)
        .join(DeadlineAlertModel, Deadline.deadline_alert_id == DeadlineAlertModel.id)
        .where(
            Deadline.dagrun_id == dagrun.id,
            Deadline.missed == false(),
            DeadlineAlertModel.reference[ReferenceModels.REFERENCE_TYPE_FIELD].as_string()
            == ReferenceModels.DagRunQueuedAtDeadline.__name__,
        )
    ).all()
    for deadline, alert in rows:
        # Decoded exactly as when Airflow creates the run's deadlines (serialization/definitions/dag.py).
        try:
            decoded = decode_deadline_alert(
                {
                    DeadlineAlertFields.REFERENCE: alert.reference,
                    DeadlineAlertFields.INTERVAL: alert.interval,
                    DeadlineAlertFields.CALLBACK: alert.callback_def,
                }
            )
            interval = decoded.interval
            if isinstance(interval, SerializedVariableInterval):
                interval = interval.resolve()
        except (ValueError, TypeError):
            # A variable-backed interval whose Variable is missing or not a number: leave this deadline
            # as it was rather than fail the whole clear (the PR does the same).
            log.warning(
                "Deadline %s of %s.%s not moved: its alert could not be decoded",
                deadline.id,
                dagrun.dag_id,
                dagrun.run_id,
                exc_info=True,
            )
            continue
        log.debug(
            "Deadline %s of %s.%s moved from %s to %s",
            deadline.id,
            dagrun.dag_id,
            dagrun.run_id,
            deadline.deadline_time,
            new_queued_at + interval,
        )
        deadline.deadline_time = new_queued_at + interval


def original(module: ModuleType) -> Any:
    """Airflow's own function, whether or not the workaround replaced it."""
    current = getattr(module, TARGET_FUNCTION)
    return getattr(current, "__wrapped__", current)


def is_installed(module: ModuleType) -> bool:
    """Whether ``module``'s function is the workaround."""
    return bool(getattr(getattr(module, TARGET_FUNCTION, None), _MARK, False))


def _patch(module: ModuleType) -> None:
    if is_installed(module):
        return
    airflow_function = getattr(module, TARGET_FUNCTION, None)
    if airflow_function is None:  # renamed or removed upstream: nothing to patch, the test will say so
        log.warning(
            "%s.%s not found: the workaround for %s is not applied", TARGET_MODULE, TARGET_FUNCTION, ISSUE
        )
        return

    def replacement(dagrun: Any, new_queued_at: datetime, session: Session) -> None:
        recalculate_queued_at_deadlines(dagrun, new_queued_at, session)

    replacement.__wrapped__ = airflow_function  # type: ignore[attr-defined]
    replacement.__doc__ = recalculate_queued_at_deadlines.__doc__
    setattr(replacement, _MARK, True)
    setattr(module, TARGET_FUNCTION, replacement)
    log.debug("Clearing runs with a pending queued-at deadline: workaround for %s installed (%s)", ISSUE, FIX)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Applies the patch right after ``airflow.models.taskinstance`` has been executed, once."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != TARGET_MODULE:
            return None
        sys.meta_path[:] = [f for f in sys.meta_path if f is not self]
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_patch(module: ModuleType) -> None:
            exec_module(module)
            _patch(module)

        loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


def install() -> bool:
    """Install the workaround in this process if its Airflow needs it; True when it is (or will be) applied.

    Applied at once if ``airflow.models.taskinstance`` is already imported, otherwise right after it is.
    """
    if not affected(airflow_version()):
        return False
    module = sys.modules.get(TARGET_MODULE)
    if module is not None:
        _patch(module)
    elif not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())
    return True
