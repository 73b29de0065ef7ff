"""Clearing a run whose queued-at Deadline Alert is pending (apache/airflow#70368, workaround in
``plugins/pulse/deadlines.py``), through Airflow's own clear path on its metadata DB.

A small DAG with the house deadline (``pulse.dag_defaults.deadline``) is written to the DB the way the
dag-processor writes it; a run is created queued (so Airflow creates its queued-at Deadline row itself), it
fails, and ``airflow.models.taskinstance.clear_task_instances`` (what the UI, the REST API and the CLI call)
clears it. ``tests/stack/test_live_journeys.py`` does the same through the running api-server and CLI.

``test_airflow_still_has_issue_70368`` tells when the workaround can go: it fails with "Airflow fixed #70368:
delete ..." on the first Airflow release whose own code clears such a run.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.usefixtures("airflow_db")

DAG_ID = "deadline_clear_probe"
INTERVAL = timedelta(minutes=45)
DELETE = (
    "delete plugins/pulse/deadlines.py, the install lines in plugins/airflow_local_settings.py, this test "
    "module and 'Clearing runs with a pending deadline' in docs/alerts.md"
)


@pytest.fixture(scope="module")
def probe_dag() -> Any:
    """The probe DAG, written to the metadata DB like the dag-processor does; returns the scheduler's copy."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.models.dagbag import DBDagBag
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    from pulse.dag_defaults import deadline

    with DAG(
        dag_id=DAG_ID,
        schedule=None,
        start_date=datetime(2026, 11, 1, tzinfo=UTC),
        deadline=deadline(INTERVAL),
    ) as dag:
        EmptyOperator(task_id="extract") >> EmptyOperator(task_id="load")
    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
        session.flush()
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )
    with create_session() as session:
        scheduler_dag = DBDagBag().get_latest_version_of_dag(DAG_ID, session=session)
    assert scheduler_dag is not None
    return scheduler_dag


@pytest.fixture
def failed_run(probe_dag: Any) -> str:
    """A run queued a minute ago whose tasks failed, its queued-at deadline pending; yields its run id."""
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    from pulse.windows import utcnow

    # A fresh id per run: id(object()) was reused by CPython (two runs, one id: UNIQUE dag_run failure).
    run_id = f"manual__probe_{utcnow().timestamp():.0f}_{uuid.uuid4().hex[:12]}"
    with create_session() as session:
        dr = probe_dag.create_dagrun(
            run_id=run_id,
            logical_date=None,
            data_interval=None,
            run_after=utcnow(),
            conf={},
            run_type=DagRunType.MANUAL,
            triggered_by=DagRunTriggeredByType.TEST,
            state=DagRunState.QUEUED,
            session=session,
        )
        for ti in dr.get_task_instances(session=session):
            ti.state = TaskInstanceState.FAILED
            ti.try_number = 1
        dr.state = DagRunState.FAILED
    assert _deadlines(run_id), "Airflow created no queued-at Deadline row for the run"
    return run_id


def _deadlines(run_id: str) -> list[tuple[datetime, bool, datetime | None]]:
    """``(deadline_time, missed, run's queued_at)`` of the run's Deadline rows."""
    from airflow.models.dagrun import DagRun
    from airflow.models.deadline import Deadline
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(Deadline.deadline_time, Deadline.missed, DagRun.queued_at)
            .join(DagRun, Deadline.dagrun_id == DagRun.id)
            .where(DagRun.dag_id == DAG_ID, DagRun.run_id == run_id)
        ).all()
    return [tuple(r) for r in rows]


def _clear(run_id: str) -> None:
    """What ``POST /api/v2/dags/{dag}/dagRuns/{run}/clear`` does: clear every task of the run, in one
    transaction (rolled back on error)."""
    from airflow.models.taskinstance import TaskInstance, clear_task_instances
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = list(
            session.scalars(
                select(TaskInstance).where(TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run_id)
            )
        )
        clear_task_instances(tis, session)


def test_the_workaround_is_installed_in_this_airflow() -> None:
    from airflow.models import taskinstance

    from pulse import deadlines

    version = deadlines.airflow_version()
    assert deadlines.affected(version), (
        f"apache-airflow-core {version} is not in pulse.deadlines.AFFECTED: add it if "
        "test_airflow_still_has_issue_70368 passes, delete the workaround if that test says Airflow fixed #70368"
    )
    assert deadlines.is_installed(taskinstance), "plugins/airflow_local_settings.py did not install it"
    assert deadlines.original(taskinstance) is not taskinstance._recalculate_dagrun_queued_at_deadlines


def test_clearing_a_failed_run_with_a_pending_deadline_restarts_it_and_its_deadline(failed_run: str) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    ((before, missed, first_queued),) = _deadlines(failed_run)
    assert not missed
    assert before == first_queued + INTERVAL

    _clear(failed_run)

    ((after, missed, queued_again),) = _deadlines(failed_run)
    assert queued_again > first_queued
    # The retried run gets the whole interval again, counted from when it was queued again; still pending.
    # (Airflow stamps queued_at twice while clearing, a moment apart: the deadline counts from the first.)
    assert before < after <= queued_again + INTERVAL
    assert queued_again + INTERVAL - after < timedelta(minutes=1)
    assert not missed
    with create_session() as session:
        dr = session.query(DagRun).filter_by(dag_id=DAG_ID, run_id=failed_run).one()
        assert dr.state == DagRunState.QUEUED
        assert dr.clear_number == 1
        assert {ti.task_id: ti.state for ti in dr.get_task_instances(session=session)} == {
            "extract": None,
            "load": None,
        }


def test_an_alert_that_cannot_be_decoded_leaves_its_deadline_and_the_clear_goes_on(
    failed_run: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in the upstream fix: a variable-backed interval whose Variable is missing must not fail the clear."""
    import airflow.serialization.decoders as decoders

    def broken(encoded: dict[str, Any]) -> Any:
        raise ValueError("VariableInterval 'missing' not found")

    monkeypatch.setattr(decoders, "decode_deadline_alert", broken)
    ((before, _, _),) = _deadlines(failed_run)
    _clear(failed_run)
    ((after, missed, _),) = _deadlines(failed_run)
    assert (after, missed) == (before, False)


def test_airflow_still_has_issue_70368(failed_run: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's own clear path, without the workaround, on the installed Airflow.

    Passes while the bug is there. When it fails with "Airflow fixed #70368", delete the workaround.
    """
    from airflow.models import taskinstance

    from pulse import deadlines

    monkeypatch.setattr(taskinstance, deadlines.TARGET_FUNCTION, deadlines.original(taskinstance))
    ((before, _, _),) = _deadlines(failed_run)
    try:
        _clear(failed_run)
    except TypeError as exc:
        error = str(exc)
    else:
        version = deadlines.airflow_version()
        pytest.fail(f"Airflow fixed #70368 (apache-airflow-core {version} clears the run): {DELETE}")
    assert "unsupported type for timedelta seconds component: dict" in error
    assert _deadlines(failed_run)[0][0] == before  # rolled back: nothing was cleared
