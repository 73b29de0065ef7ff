"""Every alert kind observed through the running local stack, over real HTTP, into the Slack receiver.

``dag.test()`` fires neither Deadline Alerts (no scheduler loop, no triggerer) nor working DAG-level notifier
callbacks (AIRFLOW3.md §1-2), so this module starts the whole local stack (``python -m dev.stack up``:
PostgreSQL, the Slack receiver, api-server, scheduler, dag-processor, triggerer) once, in a private state folder
on free ports, with the probe DAGs of ``tests/stack_dags/alert_probe.py`` as its DAG folder, and stops it and
deletes the folder afterwards whatever happens. The developer's ``.local`` stack and the test session's
PostgreSQL are never touched (other ports, other state folders).

The three probe runs are triggered at once through the REST API, like a user would:

* ``alert_probe_deadline`` sleeps past its 5 s deadline: the triggerer posts "Deadline missed";
* ``alert_probe_failure`` twice, each run failing at once with a different numeric marker (the same error
  shape): the worker posts "Task failed" and the dag-processor "DAG run failed" once, the second run's alerts are
  held back by the deduplication window (60 min) and counted in ``ops.alert_log``; each run's 30 s deadline
  fires after the run failed and is recorded, not posted.

One stack for the module: about 30 s to start and register the probe DAGs here (up to 90 s on a loaded
machine), about 35 s of probes, 16 s to stop; about 80 s in all.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
import requests

from tests.stack.conftest import PORT_VARS as PRIVATE_STACK_PORT_VARS

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PROBE_DAGS = ROOT / "tests" / "stack_dags"
DEADLINE_DAG = "alert_probe_deadline"
FAILURE_DAG = "alert_probe_failure"
#: How long ``dev.stack up`` may take (it needs 60-90 s here), how long one alert may take to arrive.
STARTUP_TIMEOUT = 300.0
WAIT = 240.0
DEDUP_MINUTES = "60"
#: Every service's port variable (the shared list: a private stack gets a free port for each, S3 included).
PORT_VARS = PRIVATE_STACK_PORT_VARS
#: PULSE_* variables of the developer's machine the private stack still needs.
INHERITED_PULSE_VARS = frozenset({"PULSE_PG_BIN"})

T = TypeVar("T")


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (all bound at once, so none repeats)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _stack_env(state: Path, ports: dict[str, int]) -> dict[str, str]:
    """The environment of ``dev.stack``: this process's, minus what the test session set for itself.

    tests/conftest.py sets AIRFLOW_* (a SQLite metadata DB, connections to its own servers) and PULSE_*
    (state folder, pinned clock, warehouse DSN ...) in ``os.environ``; none of it may reach the private stack.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("AIRFLOW") or k.startswith("PULSE_")) or k in INHERITED_PULSE_VARS
    }
    env.update({name: str(port) for name, port in ports.items()})
    env.update(
        {
            "PULSE_STATE_DIR": str(state),
            "PULSE_DAGS_FOLDER": str(PROBE_DAGS),
            "PULSE_ALERT_DEDUP_MINUTES": DEDUP_MINUTES,
            "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    return env


def _text(message: dict[str, Any]) -> str:
    body = message.get("body")
    return str(body.get("text", "")) if isinstance(body, dict) else ""


def _tail(path: Path, chars: int = 2500) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


@dataclass
class LiveStack:
    """The private stack: its environment, ports, REST client and warehouse."""

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

    def stack(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run ``python -m dev.stack <command>`` against this stack; output goes to the state folder."""
        log = self.state / f"stack-{command}.out"
        with log.open("a") as out:
            res = subprocess.run(
                [sys.executable, "-m", "dev.stack", command],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )
        return res

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

    def run_link(self, dag_id: str, run_id: str) -> str:
        """The UI link the alerts must carry: the api-server's base URL (``[api] base_url``) + the run."""
        return f"{self.api_url}/dags/{dag_id}/runs/{quote(run_id)}"

    def diagnostics(self) -> str:
        """Tails of the service logs and of the Airflow logs that mention callbacks: for failure messages."""
        parts = []
        for path in sorted((self.state / "logs").glob("*.log")) + sorted(self.state.glob("stack-*.out")):
            parts.append(f"--- {path.name}\n{_tail(path, 1500)}")
        airflow_logs = self.state / "airflow" / "logs"
        for path in sorted(airflow_logs.rglob("*")) if airflow_logs.exists() else []:
            if path.is_file() and "alert_probe" in str(path):
                text = _tail(path, 4000)
                if "allback" in text or "Traceback" in text:
                    parts.append(f"--- {path.relative_to(airflow_logs)}\n{text}")
        return "\n".join(parts)[-12000:]

    def wait_for(self, what: str, probe: Callable[[], T | None], timeout: float = WAIT) -> T:
        """Poll ``probe`` until it returns something truthy; fail naming ``what`` with the stack's logs."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: not within {timeout:.0f}s\n{self.diagnostics()}")
            time.sleep(2)


@pytest.fixture(scope="module")
def live() -> Iterator[LiveStack]:
    """The whole local stack in a private state folder on free ports, with the probe DAGs; always torn down."""
    state = Path(tempfile.mkdtemp(prefix="pulse-live-alerts-"))
    state.chmod(0o755)  # PostgreSQL runs as the postgres user when we are root: it must enter the folder
    ports = dict(zip(PORT_VARS, _free_ports(len(PORT_VARS)), strict=True))
    live = LiveStack(state=state, env=_stack_env(state, ports), ports=ports)
    try:
        t0 = time.monotonic()
        try:
            res = live.stack("up", STARTUP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"dev.stack up did not finish within {STARTUP_TIMEOUT:.0f}s\n{live.diagnostics()}")
        if res.returncode != 0:
            pytest.fail(f"dev.stack up failed (exit {res.returncode})\n{live.diagnostics()}")
        # A deployed warehouse is migrated before alerts fire: the deadline probe's 5 s deadline would otherwise
        # fire while its first task, warehouse_ready, still migrates the empty database, and the triggerer
        # could not record the event in ops.alert_events yet. `pg-up` is `make migrate`.
        res = live.stack("pg-up", STARTUP_TIMEOUT)
        if res.returncode != 0:
            pytest.fail(f"dev.stack pg-up failed (exit {res.returncode})\n{live.diagnostics()}")
        from dev.run_cycle import Api

        secrets = json.loads((state / "secrets.json").read_text())
        live.api = Api(live.api_url, secrets["airflow_admin_password"])
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "import json; from dev import stack; print(json.dumps(stack.warehouse_dsn()))",
            ],
            cwd=ROOT,
            env=live.env,
            capture_output=True,
            text=True,
            check=True,
        )
        live.dsn = json.loads(out.stdout)
        assert live.dsn["port"] == ports["PULSE_PG_PORT"]

        def registered() -> bool:
            errors = live.api.get("/importErrors").get("import_errors", [])
            assert not errors, f"probe DAG import errors: {errors}"
            known = {d["dag_id"] for d in live.api.get("/dags", limit=100)["dags"]}
            return {DEADLINE_DAG, FAILURE_DAG} <= known

        live.wait_for("the dag-processor registers the probe DAGs", registered)
        print(f"\n[live-alerts] stack up and probe DAGs registered in {time.monotonic() - t0:.0f} s")
        yield live
    finally:
        t1 = time.monotonic()
        try:
            live.stack("down", 180)
        finally:
            # PostgreSQL's data folder falls back to /tmp/pulse-pg-<hash> when the postgres user cannot
            # enter the state folder (dev.stack.pg_data_dir); remove it too if that happened.
            import hashlib

            fallback = Path(f"/tmp/pulse-pg-{hashlib.sha256(str(state.resolve()).encode()).hexdigest()[:10]}")
            shutil.rmtree(fallback, ignore_errors=True)
            shutil.rmtree(state, ignore_errors=True)
        print(f"\n[live-alerts] stack down and state removed in {time.monotonic() - t1:.0f} s")


@dataclass(frozen=True)
class ProbeRuns:
    deadline_run: str
    #: run id -> the numeric marker its task failed with
    failure_runs: dict[str, str]


@pytest.fixture(scope="module")
def probe_runs(live: LiveStack) -> ProbeRuns:
    """Unpause the probe DAGs and trigger all three runs at once (the alerts then arrive in parallel)."""
    for dag_id in (DEADLINE_DAG, FAILURE_DAG):
        live.api.patch(f"/dags/{dag_id}", {"is_paused": False})
    deadline_run = live.trigger(DEADLINE_DAG)
    # Different numbers, the same error shape ("probe failure <n>"): one dedup key for both runs.
    markers = random.sample(range(100_000, 1_000_000), 2)
    failure_runs = {live.trigger(FAILURE_DAG, {"marker": str(m)}): str(m) for m in markers}
    assert len(failure_runs) == 2
    return ProbeRuns(deadline_run, failure_runs)


def _events(live: LiveStack, dag_id: str, kind: str) -> list[tuple[Any, ...]]:
    """``(run_id, posted, note, dedup_key)`` of the alert events of ``dag_id`` of ``kind``, oldest first."""
    return live.query(
        "SELECT run_id, posted, note, dedup_key FROM ops.alert_events WHERE dag_id = %s AND kind = %s ORDER BY id",
        (dag_id, kind),
    )


DEADLINE_TITLE = f"*Deadline missed* `{DEADLINE_DAG}`"
TASK_TITLE = f"*Task failed* `{FAILURE_DAG}."
DAG_TITLE = f"*DAG run failed* `{FAILURE_DAG}`"


def _about(dag_id: str) -> str:
    """What every alert about ``dag_id`` carries, whatever its kind and title."""
    return f"*DAG*: `{dag_id}`"


def _one(messages: list[dict[str, Any]], what: str, among: list[str]) -> dict[str, Any]:
    assert len(messages) == 1, f"expected one {what} post, got {len(messages)}; posts: {among}"
    return messages[0]


def _run_of(text: str, runs: dict[str, str]) -> str:
    """The one run of ``runs`` the alert ``text`` names."""
    named = [run for run in runs if f"*Run*: `{run}`" in text]
    assert len(named) == 1, f"the alert names {named} of {sorted(runs)}:\n{text}"
    return named[0]


def test_deadline_miss_reaches_slack_from_the_triggerer(live: LiveStack, probe_runs: ProbeRuns) -> None:
    run_id = probe_runs.deadline_run
    # Waited for on every route and whatever the title, so a wrong route or text fails at once (on the
    # assertions below, which show the post) rather than by a timeout.
    about = live.wait_for(
        "a post about alert_probe_deadline", lambda: live.messages(containing=_about(DEADLINE_DAG))
    )
    msg = _one(about, "alert_probe_deadline", [_text(m) for m in about])
    # Real HTTP from the Slack provider's webhook hook, to the failures route's own webhook path.
    assert msg["path"] == "/T000/B000/FAILURES"
    assert msg["headers"].get("Content-Type", "").startswith("application/json")
    text = _text(msg)
    assert f"{DEADLINE_TITLE} (done_within_5s)" in text, text
    assert f"*DAG*: `{DEADLINE_DAG}` · *Run*: `{run_id}`" in text, text
    # Missed while the run was still going (a 45 s task): posted, not held back as for a failed run.
    assert "state running)" in text or "state queued)" in text, text
    assert f"<{live.run_link(DEADLINE_DAG, run_id)}|Open the run in Airflow>" in text, text


def _wait_for_failure_alerts(live: LiveStack, probe_runs: ProbeRuns) -> None:
    """Both failure runs failed, their four alerts recorded, and the two posts that were due arrived."""

    def settled() -> bool:
        states = {live.run_state(FAILURE_DAG, run) for run in probe_runs.failure_runs}
        assert states <= {"queued", "running", "failed"}, f"a failure probe run ended {states}"
        return (
            states == {"failed"}
            and len(_events(live, FAILURE_DAG, "task_failed")) == 2
            and len(_events(live, FAILURE_DAG, "dag_failed")) == 2
            and len(live.messages(containing=_about(FAILURE_DAG))) >= 2
        )

    live.wait_for("both alert_probe_failure runs failed and alerted", settled)


def test_task_and_dag_failure_reach_slack_from_worker_and_dag_processor(
    live: LiveStack, probe_runs: ProbeRuns
) -> None:
    _wait_for_failure_alerts(live, probe_runs)
    posts = live.texts(containing=_about(FAILURE_DAG))
    task_msg = _one(live.messages(containing=TASK_TITLE), "Task failed", posts)
    task_text = _text(task_msg)
    assert task_msg["path"] == "/T000/B000/FAILURES", task_msg["path"]
    run_id = _run_of(task_text, probe_runs.failure_runs)
    marker = probe_runs.failure_runs[run_id]
    assert f"{TASK_TITLE}fail_at_once` after 1 tries" in task_text, task_text
    assert f"*Error*: AirflowFailException: probe failure {marker}" in task_text, task_text
    assert f"<{live.run_link(FAILURE_DAG, run_id)}|Open the run in Airflow>" in task_text, task_text
    task_log = f"{live.run_link(FAILURE_DAG, run_id)}/tasks/fail_at_once?try_number=1"
    assert f"<{task_log}|Task log>" in task_text, task_text

    dag_msg = _one(live.messages(containing=DAG_TITLE), "DAG run failed", posts)
    dag_text = _text(dag_msg)
    assert dag_msg["path"] == "/T000/B000/FAILURES", dag_msg["path"]
    run_id = _run_of(dag_text, probe_runs.failure_runs)
    assert "*Reason*: task_failure" in dag_text, dag_text
    assert "fail_at_once (failed)" in dag_text, dag_text  # the task that failed the run is named
    assert f"<{live.run_link(FAILURE_DAG, run_id)}|Open the run in Airflow>" in dag_text, dag_text


def test_warehouse_records_the_posted_alerts(live: LiveStack, probe_runs: ProbeRuns) -> None:
    _wait_for_failure_alerts(live, probe_runs)
    deadline_events = _events(live, DEADLINE_DAG, "deadline_missed")
    assert [(run, posted) for run, posted, _, _ in deadline_events] == [(probe_runs.deadline_run, True)]
    assert deadline_events[0][3] == f"deadline_missed|{DEADLINE_DAG}|done_within_5s"
    for kind, title in (("task_failed", TASK_TITLE), ("dag_failed", DAG_TITLE)):
        (text,) = live.texts(containing=title)
        posted = [(run, note) for run, was_posted, note, _ in _events(live, FAILURE_DAG, kind) if was_posted]
        assert posted == [(_run_of(text, probe_runs.failure_runs), None)], kind


def test_the_same_failure_twice_is_posted_once(live: LiveStack, probe_runs: ProbeRuns) -> None:
    _wait_for_failure_alerts(live, probe_runs)
    assert len(live.texts(containing="*Task failed*")) == 1
    assert len(live.texts(containing="*DAG run failed*")) == 1
    for kind in ("task_failed", "dag_failed"):
        events = _events(live, FAILURE_DAG, kind)
        assert {run for run, _, _, _ in events} == set(probe_runs.failure_runs), kind
        assert sorted((posted, note) for _, posted, note, _ in events) == [
            (False, f"duplicate within {DEDUP_MINUTES} min"),
            (True, None),
        ], kind
        (key,) = {key for _, _, _, key in events}
        occurrences = live.query(
            "SELECT occurrences, suppressed FROM ops.alert_log WHERE dedup_key = %s", (key,)
        )
        assert occurrences == [(2, 1)], key
    (task_key,) = {key for _, _, _, key in _events(live, FAILURE_DAG, "task_failed")}
    assert task_key == f"task_failed|{FAILURE_DAG}|fail_at_once|AirflowFailException: probe failure <n>"


def test_deadline_missed_after_the_run_failed_is_recorded_not_posted(
    live: LiveStack, probe_runs: ProbeRuns
) -> None:
    def both_recorded() -> list[tuple[Any, ...]] | None:
        rows = _events(live, FAILURE_DAG, "deadline_missed")
        return rows if len(rows) == 2 else None

    events = live.wait_for("the 30 s deadlines of both failed alert_probe_failure runs", both_recorded)
    assert {run for run, _, _, _ in events} == set(probe_runs.failure_runs)
    assert {(posted, note) for _, posted, note, _ in events} == {
        (False, "run already failed (its failure alert was sent)")
    }
    assert live.query(
        "SELECT occurrences, suppressed, last_posted_at FROM ops.alert_log WHERE dedup_key = %s",
        (f"deadline_missed|{FAILURE_DAG}|done_within_30s",),
    ) == [(2, 0, None)]
    # How close the failure runs came to their 30 s deadline (a run still going at 30 s would get a post).
    for run_id in probe_runs.failure_runs:
        run = live.api.get(f"/dags/{FAILURE_DAG}/dagRuns/{quote(run_id, safe='')}")
        took = datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["queued_at"])
        print(f"\n[live-alerts] {run_id} failed {took.total_seconds():.1f} s after it was queued")
    # Nothing else reached Slack: one post per alert that was due, all on the failures route.
    texts = live.texts()
    print("\n[live-alerts] posts received:\n" + "\n---\n".join(texts))
    assert len(texts) == 3, texts
    assert len(live.texts("FAILURES")) == 3
    assert not live.texts(containing=f"*Deadline missed* `{FAILURE_DAG}`")
