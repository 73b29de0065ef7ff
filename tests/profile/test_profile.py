"""``make profile``'s tool (dev/profile.py) on the test warehouse: one run of the trends DAG's task under
pyinstrument and memray, through ``airflow tasks test`` in the profiled process, and the reports it leaves."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from dev import profile
from tests.conftest import ROOT, truncate_warehouse

pytestmark = pytest.mark.e2e


def test_a_task_run_gives_a_cpu_and_a_memory_profile(
    airflow_db: None, warehouse: Any, db: Any, tmp_path: Path
) -> None:
    truncate_warehouse(db)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}"}
    code, files = profile.profile("trends", None, memory=True, env=env, out=tmp_path)
    assert code == 0
    suffixes = sorted(p.name.split(".", 3)[-1] for p in files)
    assert suffixes == ["cpu.html", "cpu.txt", "mem.bin", "mem.html", "mem.txt"], files
    assert all(p.name.startswith("trends.compute_trends.") for p in files)  # the task after warehouse_ready
    text = next(p for p in files if p.name.endswith(".cpu.txt")).read_text()
    assert "run_trends" in text and "compute_trends" in text, text[:2000]
    stats = next(p for p in files if p.name.endswith(".mem.txt")).read_text()
    assert "Peak memory usage" in stats, stats[:1000]
    assert "<html" in next(p for p in files if p.name.endswith(".mem.html")).read_text()[:2000].lower()


def test_a_failing_task_is_reported_with_its_profile(
    airflow_db: None, warehouse: Any, tmp_path: Path
) -> None:
    # No warehouse connection in the child: the task fails, the profile of the failed run is still written.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AIRFLOW_CONN_") and k != "PULSE_WAREHOUSE_DSN"
    }
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{ROOT / 'plugins'}"
    code, files = profile.profile("trends", "compute_trends", memory=False, env=env, out=tmp_path)
    assert code != 0
    assert sorted(p.name.split(".", 3)[-1] for p in files) == ["cpu.html", "cpu.txt"]
