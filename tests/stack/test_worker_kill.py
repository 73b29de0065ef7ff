"""A Celery worker dies and nothing is lost (issue 14 item 3), on a private stack (``tests/stack/conftest.py``)
with ``PULSE_EXECUTOR=celery`` and two workers that both serve every queue (``pulse.queues``).

Each case SIGKILLs the worker that runs a task of ``ingest_reddit`` the way a machine dies: every process of
the worker's session and their descendants (the Celery main process, its pool children, the task supervisors
and the task processes, which make process groups of their own) is first frozen with SIGSTOP, so none of them
sees the others die and reports anything, then killed with SIGKILL (:func:`machine_death`). Nothing tells
Airflow: the scheduler finds the task by its missing heartbeat, the retry runs on the other worker.

* **extract**: the Reddit simulator answers each page after ``EXTRACT_LATENCY_MS``; the worker dies once
  ``raw.api_responses`` holds some of the run's pages (counted again after the kill: the pages of try 1). The
  retry resumes after the last stored page: no page is stored twice, the run has pages of both tries.
* **load**: "the middle" of a load, made to last: the test holds ``LOCK TABLE quality.quarantine IN SHARE ROW
  EXCLUSIVE MODE`` while the load runs, so the load writes the run's documents (its transaction has an xid and
  holds the documents' advisory lock) and then waits on its quarantine insert: the worker dies there, and the
  lock is released. The load is one transaction (``pulse.warehouse.loader`` nests each ``conn.transaction()``
  as a savepoint in the transaction its first query opened), so none of that is visible, and the dead session
  rolls back; the test checks both. The window is an older hour than the extract case's, so the load writes
  new documents and new quarantine rows (about 4,500 items served in all, ``VOLUME``).

After both: each killed task has exactly two tries, the first on the killed worker and the second on the other
(TI pid via ``GET .../taskInstances/{task}/tries``, mapped to a worker by the processes seen in each worker's
session), the runs succeed, every item the simulator served since the stack started is loaded or quarantined
exactly once (``served == loaded + quarantined``, by identity: an item served without its id is keyed by its
content, which holds its post's comment count, so two runs listing it at different times quarantine it
twice; the test allows that for id-less items only), no key is in ``core.documents`` twice, every valid raw
page of each run parses into the rows and quarantine rows its load reported (XCom == ``ops.ingest_runs`` ==
table counts; the rows carrying the run's id are no more than its XCom ``changed``; the dead load try left
none), and ``ops.coverage`` says every stream of each window was ingested, with no gap. The killed worker is
restarted after the extract case (so that the load case has two workers); its
session holds no process after the kill, and ``dev.stack down`` leaves no process of the stack.

How the death is found and retried, read in the installed Airflow 3.3.2 and Celery provider 3.26.0:

* ``airflow/jobs/scheduler_job_runner.py`` ``_find_and_purge_task_instances_without_heartbeats`` runs every
  ``[scheduler] task_instance_heartbeat_timeout_detection_interval`` s and takes the RUNNING TIs this
  scheduler queued whose ``last_heartbeat_at`` is older than ``task_instance_heartbeat_timeout`` (default
  300 s; the supervisor heartbeats every ``[workers] min_heartbeat_interval`` = 5 s). It logs "heartbeat
  timeout" and calls ``executor.change_state(key, FAILED)``; ``process_executor_events`` then sees a RUNNING TI
  reported failed and calls ``ti.handle_failure``, which puts it UP_FOR_RETRY while tries are left
  (``max_tries > 0``), and ``next_retry_datetime`` schedules the retry after ``retry_delay`` (exponential
  backoff, jittered between 1x and 2x). The retry is a new TI id (``prepare_db_for_next_try``: uuid7).
* ``adopt_or_reset_orphaned_tasks`` / ``CeleryExecutor.try_adopt_task_instances`` are about a dead
  *scheduler*, not a dead worker: they play no part here.
* ``providers/celery/executors/default_celery.py``: ``task_acks_late=True`` (dev/stack.py spells it out), so
  the dead worker's message stays unacknowledged in Redis; kombu's Redis transport (``restore_visible``, every
  10 s in a live consumer) hands it to a live worker once it is older than ``[celery_broker_transport_options]
  visibility_timeout``. ``celery_executor_utils.execute_workload`` runs it; the api-server refuses to start a
  TI id that is not QUEUED (``execution_api/routes/task_instances.py ti_run``: 404 for the old try's id, 409
  for a running one), so a redelivered message never runs a task twice. The module lowers the timeout to
  ``VISIBILITY_TIMEOUT_S`` (longer than any of its tasks) so that the redelivery happens while it runs, and
  checks that no third try appeared.

The production retry delay (2 min, doubling) would make the module last over 10 minutes: the stack's DAG folder
holds ``dags/ingest_reddit.py`` as it is plus two lines that set every task's ``retry_delay`` to
``RETRY_DELAY`` (retries and backoff unchanged). Its sources file is ``include/sources.yaml`` with Reddit's
budget raised (the module pages more than 100 times a minute) and a breaker that tolerates the kills.

About 8-9 minutes here on a loaded two-core machine (150-200 s of it to start the stack, 15-60 s to stop it);
each kill is found 27-34 s after it and its run ends 45-60 s after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
import yaml

from tests.stack.conftest import LiveStack, private_stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "ingest_reddit"
WORKERS = ("worker-1", "worker-2")
HOUR = timedelta(hours=1)
#: The retry delay of the stack's copy of the DAG (the house default is 2 minutes).
RETRY_DELAY = timedelta(seconds=5)
HEARTBEAT_TIMEOUT_S = 30
VISIBILITY_TIMEOUT_S = 100
AIRFLOW_ENV = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
    "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S),
}
#: Reddit per subreddit and hour (3 subreddits, two listings each): a window's listing reaches back up to four
#: hours (now back to the older window's start), 1,600 items per listing at most, under the listing cap.
VOLUME = {"posts_per_hour": 100, "comments_per_hour": 300, "listing_cap": 2000, "bad_items_ratio": 0.1}
STREAMS = {
    f"{listing}:{sub}"
    for listing in ("new", "comments")
    for sub in ("python", "dataengineering", "technology")
}
EXTRACT_LATENCY_MS = 700
#: Pages of the extract case stored before the kill (of about 24).
PAGES_BEFORE_KILL = 6
TERMINAL = {"success", "failed"}

#: Appended to the copy of dags/ingest_reddit.py in the stack's DAG folder.
RETRY_DELAY_PATCH = f"""

# tests/stack/test_worker_kill.py: a short retry delay (the house default is 2 minutes); nothing else changes.
from datetime import timedelta as _timedelta  # noqa: E402

for _task in dag.tasks:
    _task.retry_delay = _timedelta(seconds={RETRY_DELAY.total_seconds()})
"""


# --------------------------------------------------------------------------------------------------
# processes: a worker's session, seen from /proc
# --------------------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` from the state on (state, ppid, pgrp, session, ...; start time is [19])."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return raw[raw.rindex(b")") + 2 :].decode(errors="replace").split()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:100]
    except OSError:
        return ""


def _table() -> dict[int, list[str]]:
    """Every process that has not exited (zombies are dead: their parent has not collected them yet)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and fields[0] not in ("Z", "X", "x"):
            out[int(entry.name)] = fields
    return out


def session_members(leader: int, table: dict[int, list[str]] | None = None) -> dict[int, str]:
    """The processes of the session ``leader`` started (``dev.stack`` starts each service in its own) and all
    their descendants: ``pid -> start time``. Never this process."""
    table = _table() if table is None else table
    found = {pid for pid, f in table.items() if int(f[3]) == leader}
    children: dict[int, list[int]] = {}
    for pid, f in table.items():
        children.setdefault(int(f[1]), []).append(pid)
    todo = list(found)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    found.discard(os.getpid())
    return {pid: table[pid][19] for pid in found}


def still_running(members: dict[int, str]) -> dict[int, str]:
    """Those of ``members`` (pid -> start time) that still run: same pid, same start time, not a zombie."""
    left = {}
    for pid, started in members.items():
        fields = _stat(pid)
        if fields and fields[19] == started and fields[0] not in ("Z", "X", "x"):
            left[pid] = _cmdline(pid)
    return left


def machine_death(leader: int) -> dict[int, str]:
    """Kill a worker like a machine death: SIGSTOP every process of its session and their descendants until
    no new one appears (a frozen process cannot notice the others, fork, or report), then SIGKILL them all.
    Returns what was killed, ``pid -> start time``."""
    frozen: dict[int, str] = {}
    while True:
        members = session_members(leader)
        new = {pid: started for pid, started in members.items() if pid not in frozen}
        if not new:
            break
        for pid in new:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        frozen.update(new)
    for pid in frozen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while still_running(frozen) and time.monotonic() < deadline:
        time.sleep(0.1)
    return frozen


class Sightings:
    """Which worker each process belonged to, sampled from the workers' sessions every 0.3 s for the whole
    module (a task process ends with its task; the TI's pid is read afterwards)."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.seen: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-sightings", daemon=True)

    def leader(self, worker: str) -> int | None:
        """The worker's main process (its pid file: ``<pid> <start time>``), if it runs."""
        try:
            pid_text, _, started = (self.state / "run" / f"{worker}.pid").read_text().strip().partition(" ")
        except OSError:
            return None
        fields = _stat(int(pid_text))
        if not fields or (started and fields[19] != started) or fields[0] in ("Z", "X", "x"):
            return None
        return int(pid_text)

    def sample(self) -> None:
        table = _table()
        for worker in WORKERS:
            leader = self.leader(worker)
            if leader:
                for pid in session_members(leader, table):
                    self.seen.setdefault(pid, worker)

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            with contextlib.suppress(Exception):
                self.sample()

    def __enter__(self) -> Sightings:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# --------------------------------------------------------------------------------------------------
# the stack
# --------------------------------------------------------------------------------------------------


def sources_file(path: Path) -> None:
    """include/sources.yaml with Reddit's budget raised and a breaker that tolerates this module's kills."""
    data = yaml.safe_load((ROOT / "include" / "sources.yaml").read_text())
    data["budgets"] = {**(data.get("budgets") or {}), "reddit": [{"per_seconds": 60, "calls": 100_000}]}
    data["circuit_breaker"] = {"failures": 10, "cool_down_minutes": 60}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@dataclass
class Kill:
    """One case: its run and window, the worker killed and what was in the warehouse at the time."""

    task: str
    run_id: str
    window: tuple[datetime, datetime]
    worker: str = ""
    killed: dict[int, str] = field(default_factory=dict)
    at: float = 0.0
    figures: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class Module:
    live: LiveStack
    sightings: Sightings
    kills: dict[str, Kill] = field(default_factory=dict)
    #: Every session a worker of this module had (its leader's pid), for the check after ``down``.
    sessions: set[int] = field(default_factory=set)
    processes: dict[int, str] = field(default_factory=dict)
    restart: tuple[str, threading.Thread] | None = None
    figures: dict[str, int] = field(default_factory=dict)
    restart_result: str = ""


@pytest.fixture(scope="module")
def module() -> Iterator[Module]:
    conf = Path(tempfile.mkdtemp(prefix="pulse-kill-conf-"))
    try:
        dags = conf / "dags"
        dags.mkdir()
        (dags / f"{DAG_ID}.py").write_text((ROOT / "dags" / f"{DAG_ID}.py").read_text() + RETRY_DELAY_PATCH)
        sources_file(conf / "sources.yaml")
        with (
            private_stack(
                "pulse-worker-kill-",
                dags_folder=dags,
                extra_env={
                    "PULSE_EXECUTOR": "celery",
                    "PULSE_CELERY_WORKERS": str(len(WORKERS)),
                    "PULSE_AIRFLOW_ENV": json.dumps(AIRFLOW_ENV),
                    "PULSE_SOURCES_FILE": str(conf / "sources.yaml"),
                },
                wait_dags=[DAG_ID],
            ) as live,
            Sightings(live.state) as sightings,
        ):
            mod = Module(live, sightings)
            for worker in WORKERS:
                leader = sightings.leader(worker)
                assert leader, f"{worker} is not running\n{live.diagnostics()}"
                mod.sessions.add(leader)
            yield mod
    finally:
        shutil.rmtree(conf, ignore_errors=True)


def sim(live: LiveStack, path: str, body: dict[str, Any] | None = None) -> Any:
    url = f"{live.sim_url}/_sim/{path}"
    resp = requests.post(url, json=body, timeout=10) if body is not None else requests.get(url, timeout=10)
    resp.raise_for_status()
    return resp.json()


def run_path(run_id: str) -> str:
    return f"/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}"


def ti(live: LiveStack, run_id: str, task: str) -> dict[str, Any]:
    return dict(live.api.get(f"{run_path(run_id)}/taskInstances/{task}"))


def tries(live: LiveStack, run_id: str, task: str) -> list[dict[str, Any]]:
    """Every try of the task (``GET .../tries``: hostname, pid, state of each), by try number."""
    found = live.api.get(f"{run_path(run_id)}/taskInstances/{task}/tries")["task_instances"]
    return sorted(found, key=lambda t: t["try_number"])


def running_on(mod: Module, run_id: str, task: str) -> tuple[str, int] | None:
    """``(worker, pid)`` while the task runs and its process was seen in a worker's session."""
    now = ti(mod.live, run_id, task)
    if now["state"] != "running" or not now.get("pid"):
        return None
    mod.sightings.sample()
    worker = mod.sightings.seen.get(int(now["pid"]))
    return (worker, int(now["pid"])) if worker else None


def wait_run(live: LiveStack, run_id: str, timeout: float = 240) -> str:
    return live.wait_for(
        f"{DAG_ID} run {run_id} ends",
        lambda: s if (s := live.run_state(DAG_ID, run_id)) in TERMINAL else None,
        timeout=timeout,
        about=DAG_ID,
    )


def stack_now(live: LiveStack) -> datetime:
    """The stack's clock (its PostgreSQL's), which Airflow, the simulator and the pipeline all run on."""
    return live.query("SELECT now()")[0][0]


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def kill_worker_of(mod: Module, kill: Kill) -> None:
    """Kill the worker that runs ``kill.task`` of ``kill.run_id``; record which, what, and when."""
    worker, pid = mod.live.wait_for(
        f"{kill.task} of {kill.run_id} runs on a worker", lambda: running_on(mod, kill.run_id, kill.task), 120
    )
    leader = mod.sightings.leader(worker)
    assert leader is not None
    kill.worker = worker
    kill.at = time.monotonic()
    kill.killed = machine_death(leader)
    assert pid in kill.killed, f"the task process {pid} was not in {worker}'s session: {kill.killed}"
    # Nothing of the worker is left: no orphan could finish the task and hide the failure.
    assert still_running(kill.killed) == {}
    assert session_members(leader) == {}
    mod.processes.update(kill.killed)


def restart_worker(mod: Module, worker: str) -> threading.Thread:
    """Start the killed worker again, as ``dev.stack up`` starts it, and wait until it consumes its queues: in
    a thread (a worker takes 20-60 s to start here); :func:`restarted` waits for it."""

    def restart() -> None:
        code = (
            "from dev import stack\n"
            f"svc = next(s for s in stack.services() if s.name == {worker!r})\n"
            "before = stack._log_size(svc.name)\n"
            "stack.start_service(svc, stack.airflow_env())\n"
            "stack.wait_worker(svc.name, before, 150)\n"
        )
        res = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=mod.live.env,
            capture_output=True,
            text=True,
            timeout=200,
        )
        mod.restart_result = f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"

    thread = threading.Thread(target=restart, name=f"restart-{worker}", daemon=True)
    thread.start()
    mod.restart = (worker, thread)
    return thread


def restarted(mod: Module) -> None:
    """Wait for the restart :func:`restart_worker` began; record the new worker's session."""
    assert mod.restart is not None, "no worker was restarted"
    worker, thread = mod.restart
    thread.join(timeout=220)
    assert mod.restart_result.startswith("exit 0"), f"restarting {worker} failed: {mod.restart_result}"
    leader = mod.sightings.leader(worker)
    assert leader, mod.restart_result
    mod.sessions.add(leader)


def wait_retried(mod: Module, kill: Kill, then: Callable[[], Any] | None = None) -> None:
    """The killed try is found without a heartbeat and retried: figures of each step, from the kill."""
    live = mod.live

    def state() -> tuple[str, int]:
        now = ti(live, kill.run_id, kill.task)
        return str(now["state"]), int(now["try_number"])

    def found_dead() -> tuple[str, int] | None:
        now = state()
        return now if now != ("running", 1) else None

    def second_try() -> tuple[str, int] | None:
        now = state()
        return now if now[1] == 2 and now[0] in ("running", "success") else None

    kill.evidence["found_dead_as"] = live.wait_for(
        f"{kill.task} of {kill.run_id} is found dead and put up for retry",
        found_dead,
        timeout=HEARTBEAT_TIMEOUT_S + 60,
        about=DAG_ID,
    )
    kill.figures["found_dead_s"] = time.monotonic() - kill.at
    found = kill.evidence["found_dead_as"]
    assert found[0] in ("up_for_retry", "scheduled", "queued", "running"), f"not retried: {found}"
    live.wait_for(f"{kill.task} of {kill.run_id} runs its second try", second_try, timeout=120, about=DAG_ID)
    kill.figures["retry_running_s"] = time.monotonic() - kill.at
    if then is not None:
        then()
    assert wait_run(live, kill.run_id) == "success", live.diagnostics(DAG_ID)
    kill.figures["run_done_s"] = time.monotonic() - kill.at


def worker_of_try(mod: Module, attempt: dict[str, Any]) -> str | None:
    return mod.sightings.seen.get(int(attempt["pid"])) if attempt.get("pid") else None


# --------------------------------------------------------------------------------------------------
# the cases
# --------------------------------------------------------------------------------------------------


def test_a_worker_killed_in_the_middle_of_extract_is_retried_on_the_other(module: Module) -> None:
    live = module.live
    sim(live, "config", {"reddit": {**VOLUME, "latency_ms": EXTRACT_LATENCY_MS}})
    hour = stack_now(live).replace(minute=0, second=0, microsecond=0)
    window = (hour - HOUR, hour)
    # Unpausing creates the latest scheduled run (AIRFLOW3.md pitfall 19); the manual run is the one killed.
    live.api.patch(f"/dags/{DAG_ID}", {"is_paused": False})
    run_id = live.trigger(DAG_ID, {"window_start": _iso(window[0]), "window_end": _iso(window[1])})
    kill = module.kills["extract"] = Kill("extract", run_id, window)

    def pages(run: str = run_id) -> int:
        import psycopg

        try:
            return int(
                live.query("SELECT count(*) FROM raw.api_responses WHERE dag_run_id = %s", (run,))[0][0]
            )
        except psycopg.errors.UndefinedTable:  # the DAG's setup task migrates the empty warehouse first
            return 0

    live.wait_for(
        f"extract of {run_id} stores {PAGES_BEFORE_KILL} pages",
        lambda: pages() >= PAGES_BEFORE_KILL,
        timeout=180,
        about=DAG_ID,
    )
    kill_worker_of(module, kill)
    time.sleep(1)  # a page insert in flight when the worker died is rolled back by now
    stored = pages()
    kill.evidence["pages_at_kill"] = stored
    sim(live, "config", {"reddit": {"latency_ms": 0}})

    # Once the retry runs (on the other worker), the killed one starts again for the load case.
    wait_retried(module, kill, then=lambda: restart_worker(module, kill.worker))
    by_try = dict(
        live.query(
            "SELECT task_try, count(*) FROM raw.api_responses WHERE dag_run_id = %s GROUP BY 1", (run_id,)
        )
    )
    kill.evidence["pages_by_try"] = by_try
    # Some, not all, of the pages before the kill: try 1 stored exactly those, try 2 the rest, resuming.
    assert by_try.get(1) == stored and by_try.get(2, 0) > 0, by_try
    twice = live.query(
        "SELECT stream, page_no, count(*) FROM raw.api_responses WHERE dag_run_id = %s"
        " GROUP BY 1, 2 HAVING count(*) > 1",
        (run_id,),
    )
    assert twice == [], f"pages fetched again instead of resuming: {twice}"


def test_a_worker_killed_in_the_middle_of_load_is_retried_on_the_other(module: Module) -> None:
    import psycopg

    live = module.live
    assert "extract" in module.kills, "the extract case did not run"
    restarted(module)
    # The other runs are over: none of them may be the load that waits on the lock below.
    live.wait_for("every run of ingest_reddit ends", lambda: all_runs_done(live), timeout=240, about=DAG_ID)
    hour = stack_now(live).replace(minute=0, second=0, microsecond=0)
    window = (hour - 3 * HOUR, hour - 2 * HOUR)
    with psycopg.connect(**live.dsn, connect_timeout=10) as blocker:
        blocker.execute("LOCK TABLE quality.quarantine IN SHARE ROW EXCLUSIVE MODE")
        run_id = live.trigger(DAG_ID, {"window_start": _iso(window[0]), "window_end": _iso(window[1])})
        kill = module.kills["load"] = Kill("load", run_id, window)

        seen: dict[str, Any] = {}

        def load_session() -> tuple[Any, ...] | None:
            """The load's database session once it waits on the quarantine insert, after its documents."""
            seen["load"] = ti(live, run_id, "load")["state"]
            seen["sessions"] = live.query(
                "SELECT a.pid, a.wait_event_type, a.backend_xid::text,"
                " left(regexp_replace(a.query, '\\s+', ' ', 'g'), 60),"
                " (SELECT count(*) FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted)"
                " FROM pg_stat_activity a WHERE a.application_name = 'pulse'"
            )
            blocked = [
                row
                for row in seen["sessions"]
                if row[1] == "Lock" and "INSERT INTO quality.quarantine" in row[3]
            ]
            return blocked[0] if seen["load"] == "running" and len(blocked) == 1 else None

        deadline = time.monotonic() + 240
        while (session := load_session()) is None:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the load of {run_id} never waited on the quarantine: {seen}\n{live.diagnostics()}"
                )
            time.sleep(1)

        def count(sql: str) -> Any:
            return live.query(sql, (run_id,))[0][0]

        half = {
            "backend_xid": session[2],
            "advisory_locks": session[4],
            "documents_visible": count("SELECT count(*) FROM core.documents WHERE dag_run_id = %s"),
            "quarantined": count("SELECT count(*) FROM quality.quarantine WHERE dag_run_id = %s"),
            "ops_loaded_at": count("SELECT loaded_at FROM ops.ingest_runs WHERE dag_run_id = %s"),
        }
        kill.evidence["at_kill"] = half
        # The middle: the load has written its documents (its transaction has an xid and holds the documents'
        # advisory lock, taken per batch: pulse.warehouse.loader._lock_sources) and waits to write the
        # quarantine rows. The load is one transaction (psycopg nests each ``conn.transaction()`` as a savepoint
        # in the transaction its first query opened): nothing of it is visible yet.
        assert half["backend_xid"] and half["advisory_locks"] >= 1, half
        assert (half["documents_visible"], half["quarantined"], half["ops_loaded_at"]) == (0, 0, None), half
        kill_worker_of(module, kill)
        blocker.rollback()  # the lock goes: the dead load's session rolls back when it writes to its closed socket

    live.wait_for(
        "the dead load's database session ends",
        lambda: not live.query("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (session[0],)),
        timeout=60,
    )
    # Before the retry (a heartbeat timeout away): the dead try left nothing behind.
    after = (
        count("SELECT count(*) FROM core.documents WHERE dag_run_id = %s"),
        count("SELECT count(*) FROM quality.quarantine WHERE dag_run_id = %s"),
    )
    assert after == (0, 0), after
    wait_retried(module, kill)


def test_each_killed_task_ran_twice_first_on_the_killed_worker_then_on_the_other(module: Module) -> None:
    live = module.live
    assert set(module.kills) == {"extract", "load"}, "the cases above did not run"
    for kill in module.kills.values():
        attempts = tries(live, kill.run_id, kill.task)
        assert [a["try_number"] for a in attempts] == [1, 2], attempts
        first, second = (worker_of_try(module, a) for a in attempts)
        assert first == kill.worker, (kill.worker, attempts)
        assert second in WORKERS and second != kill.worker, (kill.worker, second, attempts)
        assert attempts[1]["state"] == "success", attempts
        assert all(a["hostname"] for a in attempts), attempts
        kill.evidence["tries"] = [(a["try_number"], a["state"], a["hostname"], a["pid"]) for a in attempts]
        for task in ("extract", "load"):
            assert ti(live, kill.run_id, task)["state"] == "success"
    print(
        "\n[worker-kill] "
        + json.dumps({k: (v.worker, v.figures, v.evidence) for k, v in module.kills.items()})
    )


def served_identity(item_key: str, external_id: str | None, item: Any) -> str:
    """The simulator's identity (``t3_<id>`` / ``t1_<id>``) of a quarantined Reddit item: its key, or for an
    item served without an id (keyed by its content) the id at the end of its permalink."""
    if external_id:
        return item_key
    data = item.get("data") or {}
    parts = str(data.get("permalink", "")).strip("/").split("/")  # r/<sub>/comments/<post>/<slug>[/<comment>]
    kind = item.get("kind")
    return f"{kind}_{parts[3] if kind == 't3' else parts[-1]}" if len(parts) > 3 else item_key


def all_runs_done(live: LiveStack) -> bool:
    runs = live.api.get(f"/dags/{DAG_ID}/dagRuns", limit=50)["dag_runs"]
    return all(r["state"] in TERMINAL for r in runs)


def _marked(pid: int, marker: bytes) -> bool:
    try:
        return marker in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def test_nothing_is_lost_or_written_twice(module: Module) -> None:
    from psycopg import connect

    from pulse.sources import reddit
    from pulse.sources.base import Document
    from pulse.warehouse.pgtypes import storable_key
    from pulse.warehouse.raw import RawStore

    live = module.live
    assert set(module.kills) == {"extract", "load"}, "the cases above did not run"
    live.wait_for("every run of ingest_reddit ends", lambda: all_runs_done(live), timeout=240)
    runs = live.api.get(f"/dags/{DAG_ID}/dagRuns", limit=50)["dag_runs"]
    assert {r["state"] for r in runs} == {"success"}, [(r["dag_run_id"], r["state"]) for r in runs]

    # Every item the simulator served since the stack started is loaded or quarantined, once.
    served = sim(live, "stats")["reddit"]
    good = {ident for ident, v in served["served"].items() if not v["bad"]}
    bad = {ident: v["bad"] for ident, v in served["served"].items() if v["bad"]}
    loaded = {d for (d,) in live.query("SELECT external_id FROM core.documents WHERE source = 'reddit'")}
    rows = live.query(
        "SELECT item_key, external_id, reason_code, item FROM quality.quarantine WHERE source = 'reddit'"
    )
    by_identity: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_identity.setdefault(served_identity(row[0], row[1], row[3]), []).append(row)
    repeated = {ident: rs for ident, rs in by_identity.items() if len(rs) > 1}
    details = {
        "loaded_not_served_good": sorted(loaded - good)[:5],
        "served_good_not_loaded": sorted(good - loaded)[:5],
        "quarantined_not_served_bad": sorted(set(by_identity) - set(bad))[:5],
        "served_bad_not_quarantined": sorted(set(bad) - set(by_identity))[:5],
        "repeated": {ident: [(r[0], r[2]) for r in rs] for ident, rs in list(repeated.items())[:5]},
    }
    assert loaded == good, details
    assert set(by_identity) == set(bad), details
    assert len(loaded) + len(by_identity) == served["served_count"], details
    # One quarantine row per item, but for an item served without its id: it is keyed by its content, which
    # holds its post's comment count, and the clock moves that between two runs that list it.
    assert all(bad[ident] == "missing_id" for ident in repeated), details
    module.figures = {"served": served["served_count"], "loaded": len(loaded), "quarantined": len(rows)}
    module.figures["id_less_items_quarantined_twice"] = len(repeated)
    twice = live.query(
        "SELECT source, external_id, count(*) FROM core.documents GROUP BY 1, 2 HAVING count(*) > 1"
    )
    assert twice == [], twice

    now = stack_now(live)
    for kill in module.kills.values():
        run = kill.run_id
        # Every valid raw page of the run is parsed into rows or quarantine rows, as many as its load says.
        with connect(**live.dsn) as conn:
            pages = RawStore(conn).valid_pages("reddit", run)
        parsed = [out for page in pages for _, out in reddit.parse_page(page, lambda a: a, now)]
        ids = {d.external_id for d in parsed if isinstance(d, Document)}
        keys = {storable_key(r.item_key) for r in parsed if not isinstance(r, Document)}
        xcom = live.api.get(f"{run_path(run)}/taskInstances/load/xcomEntries/return_value")["value"]
        xcom = json.loads(xcom) if isinstance(xcom, str) else xcom
        ops = live.query(
            "SELECT pages, loaded, quarantined, window_start, window_end FROM ops.ingest_runs WHERE dag_run_id = %s",
            (run,),
        )
        assert len(ops) == 1, ops
        assert ops[0][:3] == (len(pages), xcom["loaded"], xcom["quarantined"]), (ops, xcom)
        in_core = live.query(
            "SELECT count(*) FROM core.documents WHERE source = 'reddit' AND external_id = ANY(%s)",
            (list(ids),),
        )[0][0]
        in_quarantine = live.query(
            "SELECT count(*) FROM quality.quarantine WHERE source = 'reddit' AND item_key = ANY(%s)",
            (list(keys),),
        )[0][0]
        # The rows the run wrote (new or changed) carry its id: no more than its load reported (a later run
        # rewrites, and takes over, a post whose comment count moved with the clock).
        written = live.query("SELECT count(*) FROM core.documents WHERE dag_run_id = %s", (run,))[0][0]
        assert 0 < written <= xcom["changed"], (kill.task, written, xcom)
        kill.evidence["rows_with_run_id"] = written
        assert (in_core, in_quarantine) == (len(ids), len(keys)) == (xcom["loaded"], xcom["quarantined"]), (
            kill.task,
            in_core,
            in_quarantine,
            len(ids),
            len(keys),
            xcom,
        )
        # Coverage: every stream of the window ingested, no gap.
        assert (ops[0][3], ops[0][4]) == kill.window
        coverage = live.query(
            "SELECT stream, window_start, window_end, status FROM ops.coverage WHERE source = 'reddit'"
            " AND window_start = %s AND window_end = %s",
            kill.window,
        )
        assert {c[0] for c in coverage if c[3] == "ingested"} == STREAMS, coverage
        assert [c for c in coverage if c[3] != "ingested"] == [], coverage
        kill.evidence["loaded"] = xcom

    # No third try: the dead worker's unacknowledged messages (redelivered after the visibility timeout)
    # never started the task again.
    for kill in module.kills.values():
        assert ti(live, kill.run_id, kill.task)["try_number"] == 2
    print(f"\n[worker-kill] accounting: {json.dumps(module.figures)}")
    for name, kill in module.kills.items():
        print(
            f"[worker-kill] {name}: {kill.worker} killed; {json.dumps(kill.figures)}; {json.dumps(kill.evidence)}"
        )


def test_down_stops_everything_left_of_the_workers(module: Module) -> None:
    live = module.live
    res = live.stack("down", 180)
    assert res.returncode == 0, res.stdout + res.stderr
    left = {
        pid: cmd for leader in module.sessions for pid, cmd in still_running(session_members(leader)).items()
    }
    assert left == {}, left
    assert still_running(module.processes) == {}
    marker = f"PULSE_STACK_MEMBER={live.state}\0".encode()
    strays = [pid for pid in _table() if _marked(pid, marker)]
    assert strays == [], {pid: _cmdline(pid) for pid in strays}
    print(f"\n[worker-kill] down:\n{res.stdout[-2000:]}")
