"""Shared helpers of the live-stack tests: the whole local stack in a private state folder on free ports.

A module that needs a running stack builds its own module-scoped fixture on :func:`private_stack`::

    from tests.stack.conftest import LiveStack, private_stack

    @pytest.fixture(scope="module")
    def live() -> Iterator[LiveStack]:
        with private_stack("pulse-live-x-", wait_dags=["ingest_reddit"]) as stack:
            yield stack

:func:`private_stack` runs ``python -m dev.stack up`` into a fresh state folder with ports nobody listens on
and an environment stripped of what the test session set for itself (tests/conftest.py: a SQLite metadata DB,
its own PostgreSQL, the pinned clock ...), waits until the dag-processor registered ``wait_dags``, and always
runs ``python -m dev.stack down`` and deletes the folder afterwards. The developer's ``.local`` stack and the
test session's PostgreSQL are never touched. :func:`stack_env` and :func:`new_state` give the same private
folder and environment to a module that starts the stack another way (``tests/stack/test_stack_lifecycle.py``
starts it through ``python -m dev.run_cycle``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
PORT_VARS = (
    "PULSE_PG_PORT",
    "PULSE_API_PORT",
    "PULSE_SIM_PORT",
    "PULSE_SLACK_PORT",
    "PULSE_WEBHOOK_PORT",
    "PULSE_S3_PORT",
    "PULSE_REDIS_PORT",
    "PULSE_FLOWER_PORT",
    # Worker i's log server port is this + i - 1 (the workers do not listen on it: dev/stack.py).
    "PULSE_WORKER_LOG_PORT",
)
#: PULSE_* variables of the developer's machine the private stack still needs.
INHERITED_PULSE_VARS = frozenset({"PULSE_PG_BIN", "PULSE_REDIS_BIN"})
#: How long ``dev.stack up`` may take (60-90 s here, more on a loaded machine).
STARTUP_TIMEOUT = 300.0
#: How long :meth:`LiveStack.wait_for` waits by default.
WAIT = 240.0

T = TypeVar("T")


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (all bound at once, so none repeats)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def stack_env(
    state: Path,
    ports: dict[str, int],
    dags_folder: Path | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of ``dev.stack`` / ``dev.run_cycle`` for a private stack: this process's, minus what
    the test session set for itself (every ``AIRFLOW*`` and ``PULSE_*`` variable but ``PULSE_PG_BIN``)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("AIRFLOW") or k.startswith("PULSE_")) or k in INHERITED_PULSE_VARS
    }
    env.update({name: str(port) for name, port in ports.items()})
    env.update(
        {
            "PULSE_STATE_DIR": str(state),
            "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    if dags_folder is not None:
        env["PULSE_DAGS_FOLDER"] = str(dags_folder)
    env.update(extra or {})
    return env


def new_state(prefix: str) -> tuple[Path, dict[str, int]]:
    """A fresh private state folder (enterable by the postgres user) and free ports for every service."""
    state = Path(tempfile.mkdtemp(prefix=prefix)).resolve()
    state.chmod(0o755)  # PostgreSQL runs as the postgres user when we are root: it must enter the folder
    return state, dict(zip(PORT_VARS, free_ports(len(PORT_VARS)), strict=True))


def remove_state(state: Path) -> None:
    """Delete a private state folder and PostgreSQL's fallback data folder (``dev.stack.pg_data_dir`` puts
    it in /tmp/pulse-pg-<hash> when the postgres user cannot enter the state folder)."""
    digest = hashlib.sha256(str(state.resolve()).encode()).hexdigest()[:10]
    shutil.rmtree(Path(f"/tmp/pulse-pg-{digest}"), ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)


def run_stack(
    env: dict[str, str], state: Path, command: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    """``python -m dev.stack <command>`` against the stack of ``env``; its output is returned and appended
    to ``<state>/stack-<command>.out`` (for :meth:`LiveStack.diagnostics`)."""
    res = subprocess.run(
        [sys.executable, "-m", "dev.stack", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    with contextlib.suppress(OSError), (state / f"stack-{command}.out").open("a") as out:
        out.write(res.stdout + res.stderr)
    return res


def _text(message: dict[str, Any]) -> str:
    body = message.get("body")
    return str(body.get("text", "")) if isinstance(body, dict) else ""


def tail(path: Path, chars: int = 2500) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


@dataclass
class LiveStack:
    """A private stack: its state folder, environment, ports, REST client and warehouse."""

    state: Path
    env: dict[str, str]
    ports: dict[str, int]
    api: Any = None
    dsn: dict[str, Any] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['PULSE_API_PORT']}"

    @property
    def slack_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['PULSE_SLACK_PORT']}"

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['PULSE_SIM_PORT']}"

    def stack(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run ``python -m dev.stack <command>`` against this stack."""
        return run_stack(self.env, self.state, command, timeout)

    def airflow_cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """The ``airflow`` CLI against this stack, with the environment ``python -m dev.stack env`` prints."""
        exports = subprocess.run(
            [sys.executable, "-m", "dev.stack", "env"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        env = dict(self.env)
        for line in exports.splitlines():
            if line.startswith("export "):
                key, _, value = line[len("export ") :].partition("=")
                env[key] = shlex.split(value)[0] if value else ""
        return subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def connect_api(self) -> None:
        """Log in to the REST API (admin, the generated password) and read the warehouse's DSN."""
        from dev.run_cycle import Api

        secrets = json.loads((self.state / "secrets.json").read_text())
        self.api = Api(self.api_url, secrets["airflow_admin_password"])
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "import json; from dev import stack; print(json.dumps(stack.warehouse_dsn()))",
            ],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        self.dsn = json.loads(out.stdout)
        assert self.dsn["port"] == self.ports["PULSE_PG_PORT"]

    def messages(self, route: str | None = None, containing: str = "") -> list[dict[str, Any]]:
        """Posts the Slack receiver recorded (``path``, ``headers``, ``body``), oldest first; ``route`` keeps
        those posted to that route's webhook path (``/T000/B000/FAILURES`` ...), ``containing`` those whose
        text contains it."""
        resp = requests.get(f"{self.slack_url}/_messages", timeout=10)
        resp.raise_for_status()
        return [
            m
            for m in resp.json()
            if (route is None or m["path"].upper().endswith("/" + route.upper())) and containing in _text(m)
        ]

    def texts(self, route: str | None = None, containing: str = "") -> list[str]:
        return [_text(m) for m in self.messages(route, containing)]

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(**self.dsn, autocommit=True, connect_timeout=10) as conn:
            return conn.execute(sql, params).fetchall()

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.api.get(f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")["state"])

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        run = self.api.post(f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        return str(run["dag_run_id"])

    def registered(self, dag_ids: Iterable[str]) -> bool:
        """True once the dag-processor registered every one of ``dag_ids``; fails on import errors."""
        errors = self.api.get("/importErrors").get("import_errors", [])
        assert not errors, f"DAG import errors: {errors}"
        known = {d["dag_id"] for d in self.api.get("/dags", limit=100)["dags"]}
        return set(dag_ids) <= known

    def diagnostics(self, about: str = "") -> str:
        """Tails of the service logs, of the ``dev.stack`` outputs and of the task logs under a path
        containing ``about`` that mention callbacks or tracebacks: for failure messages."""
        parts = []
        for path in sorted((self.state / "logs").glob("*.log")) + sorted(self.state.glob("*.out")):
            parts.append(f"--- {path.name}\n{tail(path, 1500)}")
        airflow_logs = self.state / "airflow" / "logs"
        for path in sorted(airflow_logs.rglob("*")) if about and airflow_logs.exists() else []:
            if path.is_file() and about in str(path):
                text = tail(path, 4000)
                if "allback" in text or "Traceback" in text:
                    parts.append(f"--- {path.relative_to(airflow_logs)}\n{text}")
        return "\n".join(parts)[-12000:]

    def wait_for(self, what: str, probe: Callable[[], T | None], timeout: float = WAIT, about: str = "") -> T:
        """Poll ``probe`` until it returns something truthy; fail naming ``what`` with the stack's logs."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: not within {timeout:.0f}s\n{self.diagnostics(about)}")
            time.sleep(2)


@contextlib.contextmanager
def private_stack(
    prefix: str,
    *,
    dags_folder: Path | None = None,
    extra_env: dict[str, str] | None = None,
    wait_dags: Iterable[str] = (),
    startup_timeout: float = STARTUP_TIMEOUT,
    executor: str | None = None,
    workers: int | None = None,
    airflow_env: dict[str, str] | None = None,
) -> Iterator[LiveStack]:
    """The whole local stack (``dev.stack up``) in a private state folder on free ports, connected to its
    REST API, with ``wait_dags`` registered; always stopped (``dev.stack down``) and deleted afterwards.

    ``executor`` (``local`` or ``celery``), ``workers`` and ``airflow_env`` (extra ``AIRFLOW__*`` settings)
    become ``PULSE_EXECUTOR``, ``PULSE_CELERY_WORKERS`` and ``PULSE_AIRFLOW_ENV``; ``extra_env`` goes last."""
    state, ports = new_state(prefix)
    env = {
        **({"PULSE_EXECUTOR": executor} if executor else {}),
        **({"PULSE_CELERY_WORKERS": str(workers)} if workers is not None else {}),
        **({"PULSE_AIRFLOW_ENV": json.dumps(airflow_env)} if airflow_env else {}),
        **(extra_env or {}),
    }
    live = LiveStack(state=state, env=stack_env(state, ports, dags_folder, env), ports=ports)
    try:
        t0 = time.monotonic()
        try:
            res = live.stack("up", startup_timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"dev.stack up did not finish within {startup_timeout:.0f}s\n{live.diagnostics()}")
        if res.returncode != 0:
            pytest.fail(f"dev.stack up failed (exit {res.returncode})\n{live.diagnostics()}")
        live.connect_api()
        dag_ids = list(wait_dags)
        if dag_ids:
            live.wait_for(f"the dag-processor registers {dag_ids}", lambda: live.registered(dag_ids))
        print(f"\n[{prefix.strip('-')}] stack up and DAGs registered in {time.monotonic() - t0:.0f} s")
        yield live
    finally:
        t1 = time.monotonic()
        try:
            live.stack("down", 180)
        finally:
            remove_state(state)
        print(f"\n[{prefix.strip('-')}] stack down and state removed in {time.monotonic() - t1:.0f} s")
