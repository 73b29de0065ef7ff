"""Fixtures of the contract tests: the simulator on the contract clock, a plain HTTP session, and the replay server
of the recorded responses (tests/contract/replay.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from tests.contract.replay import NOW, ReplayServer


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    """A simulator of the module's own (seed 42, clock at :data:`~tests.contract.replay.NOW`)."""
    from dev.simulator import SimulatorServer

    sim = SimulatorServer(port=0, seed=42, now=NOW).start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    """A requests session that ignores proxy settings."""
    with requests.Session() as session:
        session.trust_env = False
        yield session


#: Starts a :class:`ReplayServer`; with a ``conn_id``, an Airflow connection of that id points at it.
StartReplay = Callable[..., ReplayServer]


@pytest.fixture
def replay(monkeypatch: pytest.MonkeyPatch) -> Iterator[StartReplay]:
    """``replay(conn_id=None, *, conn_type="generic", password="recorded", extra=None, **server_options)``: a
    replay server (closed after the test); the connection ``conn_id`` (if given) has it as host."""
    servers: list[ReplayServer] = []

    def start(
        conn_id: str | None = None,
        *,
        conn_type: str = "generic",
        password: str = "recorded",
        extra: dict[str, Any] | None = None,
        **options: Any,
    ) -> ReplayServer:
        server = ReplayServer(**options)
        servers.append(server)
        if conn_id is not None:
            conn = {"conn_type": conn_type, "host": server.url, "password": password, "extra": extra or {}}
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return server

    yield start
    for server in servers:
        server.close()
