"""airflow_settings.yaml (Astro) and the local stack declare the same connections, pools and variables."""

from __future__ import annotations

from pathlib import Path

import yaml

from dev import stack

ROOT = Path(__file__).resolve().parents[2]


def test_same_connection_ids_and_types() -> None:
    settings = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())["airflow"]
    astro = {c["conn_id"]: c["conn_type"] for c in settings["connections"]}
    local = {cid: c["conn_type"] for cid, c in stack.connections(stack.load_secrets()).items()}
    assert astro == local


def test_settings_hold_no_secrets() -> None:
    settings = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())["airflow"]
    for conn in settings["connections"]:
        assert not conn.get("conn_password"), f"{conn['conn_id']}: keep secrets out of the repository"


def test_stack_applies_the_settings_pools_and_variables() -> None:
    objs = stack.settings_objects()
    settings = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())["airflow"]
    assert objs["pools"] == settings["pools"]
    assert objs["variables"] == (settings.get("variables") or [])
