"""Every DAG follows the house rules (pulse.dag_defaults): enforced here, for DAGs that exist and future ones."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from pulse.dag_defaults import POOLS, TAGS

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p for p in (ROOT / "dags").glob("*.py"))


def test_dags_folder_is_not_empty() -> None:
    assert DAG_FILES


def test_no_import_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}


def test_one_dag_per_file_named_after_it(dagbag: Any) -> None:
    assert sorted(dagbag.dag_ids) == sorted(p.stem for p in DAG_FILES)
    for dag_id in dagbag.dag_ids:
        assert Path(dagbag.dags[dag_id].fileloc).stem == dag_id


def _dags(dagbag: Any) -> list[Any]:
    return [dagbag.dags[d] for d in sorted(dagbag.dag_ids)]


@pytest.fixture(scope="module")
def dags(dagbag: Any) -> list[Any]:
    return _dags(dagbag)


def test_tags_from_the_vocabulary(dags: list[Any]) -> None:
    for dag in dags:
        assert dag.tags, f"{dag.dag_id} has no tags"
        unknown = set(dag.tags) - TAGS
        assert not unknown, f"{dag.dag_id}: tags {unknown} are not in pulse.dag_defaults.TAGS"


def test_owner_retries_and_failure_alert_on_every_task(dags: list[Any]) -> None:
    for dag in dags:
        for task in dag.tasks:
            where = f"{dag.dag_id}.{task.task_id}"
            assert task.owner and task.owner != "airflow", f"{where} has no owner"
            assert task.retries >= 2, f"{where} retries={task.retries}"
            assert task.on_failure_callback, f"{where} has no failure callback"


def test_dag_level_alert_deadline_and_docs(dags: list[Any]) -> None:
    for dag in dags:
        assert dag.on_failure_callback, f"{dag.dag_id} has no DAG failure callback"
        assert dag.deadline, f"{dag.dag_id} has no Deadline Alert"
        for alert in dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]:
            assert alert.interval <= timedelta(hours=24)
        assert dag.doc_md and len(dag.doc_md.strip()) > 100, f"{dag.dag_id} needs a doc_md"
        assert dag.start_date is not None, f"{dag.dag_id} needs a static start_date"


def test_only_known_pools(dags: list[Any]) -> None:
    for dag in dags:
        for task in dag.tasks:
            assert task.pool in POOLS, f"{dag.dag_id}.{task.task_id} uses unknown pool {task.pool}"


def test_pool_vocabulary_matches_airflow_settings() -> None:
    settings = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())["airflow"]
    declared = {p["pool_name"] for p in settings["pools"]} | {"default_pool"}
    assert declared == POOLS


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_dag_file_is_light_at_parse_time(path: Path) -> None:
    """Parsing a DAG file must not import API clients, database drivers or data libraries."""
    # (boto3 is not listed: Airflow's own Asset URI normalisation loads the provider registry, which imports it.)
    heavy = ["praw", "prawcore", "tweepy", "psycopg", "github", "pyowm", "alpha_vantage", "pandas", "sklearn"]
    code = (
        "import runpy, sys\n"
        f"runpy.run_path({str(path)!r})\n"
        f"print('HEAVY=' + ','.join(m for m in {heavy!r} if m in sys.modules))\n"
    )
    env = {"PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}", "PATH": "/usr/bin:/bin"}
    import os

    env.update({k: v for k, v in os.environ.items() if k.startswith("AIRFLOW")})
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = out.stdout.strip().splitlines()[-1]
    assert loaded == "HEAVY=", f"{path.name} imports {loaded[6:]} at parse time"


def test_ingest_schedules_match_the_sources_file(dags: list[Any]) -> None:
    from pulse.config import schedule_of

    ingest = [d for d in dags if d.dag_id.startswith("ingest_")]
    assert ingest
    for dag in ingest:
        cron, window = schedule_of(dag.dag_id.removeprefix("ingest_"), ROOT / "include" / "sources.yaml")
        assert (dag.timetable.expression, dag.timetable.interval) == (cron, window), (
            f"{dag.dag_id}: the DAG says {dag.timetable.expression!r} every {dag.timetable.interval}, "
            f"include/sources.yaml says {cron!r} every {window}"
        )
