"""Fixtures shared by the health and metrics tests of the Pulse plugin (``plugins/pulse_health_plugin.py``)."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def plugin() -> Any:
    import pulse_health_plugin

    return pulse_health_plugin


@pytest.fixture
def dead_warehouse(monkeypatch: pytest.MonkeyPatch, warehouse: dict[str, Any]) -> str:
    """Connection ``warehouse_default`` pointed at a closed port, with a password the answer must not show."""
    password = "s3cret-not-shown"
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAREHOUSE_DEFAULT",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": "127.0.0.1",
                "port": closed_port(),
                "login": warehouse["user"],
                "password": password,
                "schema": warehouse["dbname"],
            }
        ),
    )
    return password
