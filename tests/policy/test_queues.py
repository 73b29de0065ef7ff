"""Celery queues (pulse.queues): every task of every DAG is on the queue the rule gives, through the cluster
policy every Airflow process loads; the local stack's workers serve every queue, each queue by more than one
worker; and nothing writes a worker's local folder when tasks run on several machines (pulse.storage)."""

from __future__ import annotations

import importlib
from collections import Counter
from typing import Any

import pytest

from pulse import queues
from pulse.storage import check_local_root, configured_executors

INGEST_DAGS = {"ingest_alphavantage", "ingest_github", "ingest_newsapi", "ingest_openweathermap"} | {
    "ingest_reddit",
    "ingest_x",
}


def _tasks(dagbag: Any) -> list[Any]:
    return [task for dag_id in sorted(dagbag.dag_ids) for task in dagbag.dags[dag_id].tasks]


def test_every_task_is_on_the_queue_the_rule_gives(dagbag: Any) -> None:
    wrong = {
        (t.dag_id, t.task_id): t.queue
        for t in _tasks(dagbag)
        if t.queue != queues.queue_for(t.dag_id, t.task_id, t.task_type)
    }
    assert not wrong, f"tasks off their pulse.queues queue (is the task_policy loaded?): {wrong}"


def test_the_rule_sends_each_kind_of_work_where_it_belongs(dagbag: Any) -> None:
    """Written out, not derived from the rule: extract and load of every ingest DAG on ``ingest``, the
    enrich DAG on ``enrich``, everything else (setup tasks included) on ``default``."""
    by_task = {(t.dag_id, t.task_id): t.queue for t in _tasks(dagbag)}
    assert set(dagbag.dag_ids) >= INGEST_DAGS
    for dag_id in INGEST_DAGS:
        assert by_task[(dag_id, "extract")] == "ingest"
        assert by_task[(dag_id, "load")] == "ingest"
    enrich = {task: q for (dag, task), q in by_task.items() if dag == "enrich"}
    assert enrich and set(enrich.values()) == {"enrich"}, enrich
    rest = {
        key: q
        for key, q in by_task.items()
        if key[0] != "enrich" and not (key[0] in INGEST_DAGS and key[1] in ("extract", "load"))
    }
    assert rest and set(rest.values()) == {"default"}, {k: q for k, q in rest.items() if q != "default"}
    assert set(by_task.values()) == set(queues.QUEUE_NAMES), "a queue no task uses, or a task on no queue"


def test_the_policy_is_what_airflow_loads() -> None:
    """airflow_local_settings (plugins/, imported by every Airflow process) exports pulse.queues.assign as
    its task_policy, and airflow.settings applies it: the dag-processor sets the same queues as the DagBag."""
    from airflow import settings

    local = importlib.import_module("airflow_local_settings")
    assert "task_policy" in local.__all__ and local.task_policy is queues.assign

    class Probe:
        dag_id, task_id, task_type, queue = "ingest_x", "extract", "ExtractToRawOperator", "default"

    probe = Probe()
    settings.task_policy(probe)
    assert probe.queue == "ingest"


def test_queues_are_sized_for_their_work() -> None:
    by_name = {q.name: q for q in queues.QUEUES}
    assert list(by_name) == ["ingest", "enrich", "default"]
    # API-bound work waits: many at once per worker; CPU-bound work: about one per core.
    assert by_name["ingest"].concurrency > by_name["default"].concurrency > by_name["enrich"].concurrency
    assert queues.queue_for("any", "warehouse_ready", "_PythonDecoratedOperator") == "default"


def _worker_queues(workers: int) -> dict[str, list[str]]:
    from dev import stack

    out = {}
    for svc in stack.celery_services():
        if svc.name.startswith("worker-"):
            argv = svc.argv
            out[svc.name] = argv[argv.index("--queues") + 1].split(",")
    assert len(out) == workers
    return out


def test_the_stack_workers_serve_every_queue_and_any_one_may_die(monkeypatch: pytest.MonkeyPatch) -> None:
    from dev import stack

    monkeypatch.setattr(stack, "CELERY_WORKERS", 2)
    served = _worker_queues(2)
    counts = Counter(q for qs in served.values() for q in qs)
    assert set(counts) == set(queues.QUEUE_NAMES), served
    for name in served:
        others = Counter(q for other, oqs in served.items() if other != name for q in oqs)
        assert set(others) == set(queues.QUEUE_NAMES), f"without {name} these are served: {sorted(others)}"


def test_each_worker_has_its_own_name_and_log_port(monkeypatch: pytest.MonkeyPatch) -> None:
    from dev import stack

    monkeypatch.setattr(stack, "CELERY_WORKERS", 3)
    monkeypatch.setattr(stack, "WORKER_LOG_PORT", 9100)
    workers = [s for s in stack.celery_services() if s.name.startswith("worker-")]
    names = [s.argv[s.argv.index("--celery-hostname") + 1] for s in workers]
    assert names == ["worker-1@%h", "worker-2@%h", "worker-3@%h"]
    assert [s.env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] for s in workers] == ["9100", "9101", "9102"]


# --- one machine no more: object storage -------------------------------------------------------------------


@pytest.mark.parametrize(
    "executor",
    [
        "CeleryExecutor",
        "LocalExecutor,CeleryExecutor",
        "airflow.providers.celery.executors.celery_executor.CeleryExecutor",
        "KubernetesExecutor",
    ],
)
@pytest.mark.parametrize("url", ["file:///srv/pulse/archive", "/srv/pulse/archive", "local:///srv/x"])
def test_a_local_folder_fails_the_task_when_tasks_run_on_several_machines(
    monkeypatch: pytest.MonkeyPatch, executor: str, url: str
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    monkeypatch.delenv("PULSE_SHARED_FILESYSTEM", raising=False)
    with pytest.raises(AirflowFailException) as err:
        check_local_root("PULSE_ARCHIVE_URL", url)
    message = str(err.value)
    assert "PULSE_ARCHIVE_URL" in message and url in message
    assert "s3://bucket/prefix" in message and "PULSE_ARCHIVE_CONN_ID" in message
    assert "PULSE_SHARED_FILESYSTEM=1" in message


def test_root_from_env_refuses_a_local_folder_on_celery(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from pulse.storage import root_from_env

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    monkeypatch.setenv("PULSE_EXPORT_URL", "file:///tmp/pulse-exports")
    monkeypatch.delenv("PULSE_SHARED_FILESYSTEM", raising=False)
    with pytest.raises(AirflowFailException, match="PULSE_EXPORT_URL=file:///tmp/pulse-exports"):
        root_from_env("PULSE_EXPORT_URL", "PULSE_EXPORT_CONN_ID")


@pytest.mark.parametrize(
    ("executor", "url", "shared"),
    [
        ("LocalExecutor", "file:///srv/pulse/archive", ""),
        ("CeleryExecutor", "s3://pulse-archive", ""),
        ("CeleryExecutor", "s3://pulse-archive/prefix", ""),
        ("CeleryExecutor", "file:///mnt/nfs/pulse", "1"),
    ],
)
def test_shared_storage_or_one_machine_is_fine(
    monkeypatch: pytest.MonkeyPatch, executor: str, url: str, shared: str
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    monkeypatch.setenv("PULSE_SHARED_FILESYSTEM", shared)
    check_local_root("PULSE_ARCHIVE_URL", url)


def test_executor_names_are_read_from_any_spelling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW__CORE__EXECUTOR", "LocalExecutor, my_celery:airflow.providers.x.CeleryExecutor"
    )
    assert configured_executors() == ["LocalExecutor", "CeleryExecutor"]


def test_the_stack_sends_archives_and_exports_to_its_s3_api(monkeypatch: pytest.MonkeyPatch) -> None:
    from dev import stack

    for var in ("PULSE_ARCHIVE_URL", "PULSE_EXPORT_URL", "PULSE_ARCHIVE_CONN_ID", "PULSE_EXPORT_CONN_ID"):
        monkeypatch.delenv(var, raising=False)
    assert stack.storage_env() == {
        "PULSE_ARCHIVE_URL": "s3://pulse-archive",
        "PULSE_ARCHIVE_CONN_ID": stack.S3_CONN_ID,
        "PULSE_EXPORT_URL": "s3://pulse-exports",
        "PULSE_EXPORT_CONN_ID": stack.S3_CONN_ID,
    }
    conn = stack.connections(
        dict.fromkeys(("warehouse_password", "pseudonym_key", "webhook_secret", "s3_secret_key"), "x")
    )[stack.S3_CONN_ID]
    assert conn["conn_type"] == "aws"
    assert conn["extra"]["endpoint_url"] == f"http://127.0.0.1:{stack.S3_PORT}"
    # A folder set by hand goes without the connection.
    monkeypatch.setenv("PULSE_EXPORT_URL", "file:///tmp/x")
    assert "PULSE_EXPORT_CONN_ID" not in stack.storage_env()


def test_pulse_airflow_env_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from dev import stack

    monkeypatch.setenv("PULSE_AIRFLOW_ENV", '{"AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": 20}')
    assert stack.extra_airflow_env() == {"AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20"}
    for bad in ('{"PULSE_X": "1"}', "[1]", "not json"):
        monkeypatch.setenv("PULSE_AIRFLOW_ENV", bad)
        with pytest.raises(SystemExit, match="PULSE_AIRFLOW_ENV"):
            stack.extra_airflow_env()
