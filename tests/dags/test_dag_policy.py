"""Every DAG follows the house rules (pulse.dag_defaults): enforced here, for DAGs that exist and future ones."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from pulse.dag_defaults import POOLS, TAGS, WAREHOUSE_READY

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


def test_every_dag_starts_with_the_warehouse_setup_task(dags: list[Any]) -> None:
    """``warehouse_ready`` (pulse.dag_defaults.warehouse_ready) is each DAG's only root, a setup task with no
    teardown, so every other task waits for the warehouse to be at the migrations' head (and clearing any of
    them clears it too)."""
    for dag in dags:
        assert [t.task_id for t in dag.roots] == [WAREHOUSE_READY], f"{dag.dag_id} roots: {dag.roots}"
        ready = dag.get_task(WAREHOUSE_READY)
        assert ready.is_setup and not ready.is_teardown, f"{dag.dag_id}.{WAREHOUSE_READY} is not a setup task"
        assert not any(t.is_teardown for t in dag.tasks), f"{dag.dag_id} has a teardown"
        others = {t.task_id for t in dag.tasks} - {WAREHOUSE_READY}
        assert {t.task_id for t in ready.get_flat_relatives(upstream=False)} == others
        for task in dag.tasks:
            if task.task_id != WAREHOUSE_READY:
                assert [s.task_id for s in task.get_upstreams_only_setups()] == [WAREHOUSE_READY]


def test_only_known_pools(dags: list[Any]) -> None:
    for dag in dags:
        for task in dag.tasks:
            assert task.pool in POOLS, f"{dag.dag_id}.{task.task_id} uses unknown pool {task.pool}"


def test_pool_vocabulary_matches_airflow_settings() -> None:
    settings = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())["airflow"]
    declared = {p["pool_name"] for p in settings["pools"]} | {"default_pool"}
    assert declared == POOLS


#: API clients, database drivers and data libraries no DAG file may import when parsed. (boto3 is not listed:
#: Airflow's own Asset URI normalisation loads the provider registry, which imports it.)
HEAVY = ["praw", "prawcore", "tweepy", "psycopg", "github", "pyowm", "alpha_vantage", "pandas", "sklearn"]

# One interpreter parses every DAG file in turn (a process per file cost ~2.5 s each). Each file starts from the
# same state: after it, every module it brought in is dropped from sys.modules, so a heavy module imported by a
# shared pulse module shows for every file that imports it, as in a process of its own.
_PARSE_ALL = """
import json, runpy, sys
import airflow.sdk  # what every DAG file needs: the baseline
baseline = set(sys.modules)
heavy, found = HEAVY, {}
for path in PATHS:
    runpy.run_path(path)
    loaded = sorted(m for m in heavy if m in sys.modules)
    found[path] = loaded
    for name in [m for m in sys.modules if m not in baseline]:
        del sys.modules[name]
print("HEAVY=" + json.dumps(found))
"""


@pytest.fixture(scope="module")
def heavy_imports() -> dict[str, list[str]]:
    """What each DAG file imports of :data:`HEAVY` when parsed (a fresh interpreter, see ``_PARSE_ALL``)."""
    import json
    import os

    code = _PARSE_ALL.replace("HEAVY", repr(HEAVY), 1).replace("PATHS", repr([str(p) for p in DAG_FILES]), 1)
    env = {"PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}", "PATH": "/usr/bin:/bin"}
    env.update({k: v for k, v in os.environ.items() if k.startswith("AIRFLOW")})
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return dict(json.loads(out.stdout.strip().splitlines()[-1].removeprefix("HEAVY=")))


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_dag_file_is_light_at_parse_time(path: Path, heavy_imports: dict[str, list[str]]) -> None:
    """Parsing a DAG file must not import API clients, database drivers or data libraries."""
    assert heavy_imports[str(path)] == [], (
        f"{path.name} imports {','.join(heavy_imports[str(path)])} at parse time"
    )
