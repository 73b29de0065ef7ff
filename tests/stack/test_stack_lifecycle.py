"""``make run`` and ``make stop`` on the live stack: they stop everything and say truthfully what they did.

``python -m dev.run_cycle`` (what ``make run`` runs) starts the whole local stack itself, in a private state
folder on free ports (``tests/stack/conftest.py``), so the services are its children as on a developer's
machine: when ``python -m dev.stack down`` (``make stop``) stops them from another process they stay zombies
of ``make run`` until it reaps them, which ``make stop`` used to report as "killed (did not stop within 15s)".
The cycle is cut down to one probe DAG (``--dags``; a no-op task on a daily schedule, written to the state
folder and loaded with ``PULSE_DAGS_FOLDER``) so that it takes seconds; the start, the wait and the stop are
``make run``'s own code.

* ``make stop`` while ``make run`` keeps the UI up: each service is reported "stopped", none "killed";
  ``make run`` exits (status 143, SIGTERM); no process of the stack is left, whether it runs the Airflow
  services' children (LocalExecutor workers, the api-server's uvicorn worker, triggerer and dag-processor
  children) or PostgreSQL's backends.
* Ctrl-C (SIGINT to ``make run``'s process group, as a terminal sends it): the same, with status 130.
* The probe DAG runs once per cycle: unpausing it creates its latest scheduled run, and ``make run`` waits
  for that run instead of triggering a second, manual one (AIRFLOW3.md §12 item 19). On the second start its
  next tick is still ahead, so ``make run`` triggers one manual run.

Unit tests (no stack): a zombie counts as stopped (a real unexited child would, a real zombie must not);
``dev.stack down``'s logic run from another process than the services' parent reports "stopped" for a
service that exited as a zombie; a child that left its service's process group is found through the session
and stopped too.

One stack start per live test (about 25 s on an idle machine, 60-120 s on a loaded one), a probe run of
about 20 s, 5-20 s to stop; the module takes about 2-3 minutes.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.stack.conftest import ROOT, new_state, remove_state, run_stack, stack_env, tail

pytestmark = pytest.mark.e2e

PROBE_DAG = "lifecycle_probe"
PROBE_SOURCE = f'''
"""A DAG on a daily schedule for tests/stack/test_stack_lifecycle.py: its task sleeps ``sleep`` seconds."""

import time

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable, task

with DAG(
    dag_id="{PROBE_DAG}",
    schedule=CronTriggerTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["maintenance"],
    params={{"sleep": 0}},
):

    @task
    def nap(params: dict) -> None:
        """Nothing to do but wait: the run itself is what the test counts, or a task that is running."""
        time.sleep(float(params["sleep"]))

    nap()
'''
SERVICES = ("simulator", "slack", "webhook", "s3", "api-server", "scheduler", "dag-processor", "triggerer")
#: How long make run may take to start the stack and finish the probe cycle, and to stop.
UP_TIMEOUT = 360.0
STOP_TIMEOUT = 180.0


# ------------------------------------------------------------------------------------------------------
# /proc, read here independently of dev.stack (the code under test)
# ------------------------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return raw[raw.rindex(b")") + 2 :].decode().split()


def _read(pid: int, what: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/{what}").read_bytes()
    except OSError:
        return b""


def _identity(pid: int) -> tuple[int, str] | None:
    """``(pid, start time)`` of a process that has not exited (a zombie has), else None."""
    fields = _stat(pid)
    return (pid, fields[19]) if fields and fields[0] not in ("Z", "X") else None


def stack_tree(state: Path, sessions: set[int]) -> dict[tuple[int, str], str]:
    """Every process that has not exited and belongs to the stack of ``state``: its command line or
    environment names the state folder, or it is in one of ``sessions``, or it descends from one of those.
    Returns ``(pid, start time) -> command line``."""
    marker = str(state).encode()
    table = {
        int(p.name): f for p in Path("/proc").iterdir() if p.name.isdigit() and (f := _stat(int(p.name)))
    }
    table = {pid: f for pid, f in table.items() if f[0] not in ("Z", "X")}
    roots = {
        pid
        for pid, f in table.items()
        if int(f[3]) in sessions or marker in _read(pid, "cmdline") or marker in _read(pid, "environ")
    }
    roots.discard(os.getpid())
    children: dict[int, list[int]] = {}
    for pid, f in table.items():
        children.setdefault(int(f[1]), []).append(pid)
    found, todo = set(roots), list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {
        (pid, table[pid][19]): _read(pid, "cmdline").replace(b"\0", b" ").decode(errors="replace")[:120]
        for pid in found
    }


def still_there(processes: dict[tuple[int, str], str]) -> dict[tuple[int, str], str]:
    """Those of ``processes`` that still exist and have not exited (same pid, same start time)."""
    return {key: cmd for key, cmd in processes.items() if _identity(key[0]) == key}


# ------------------------------------------------------------------------------------------------------
# the private stack, started by make run
# ------------------------------------------------------------------------------------------------------


@dataclass
class Stack:
    state: Path
    env: dict[str, str]
    ports: dict[str, int]
    started: int = 0
    outputs: list[Path] = field(default_factory=list)
    #: run id -> run type of the probe DAG's runs seen so far
    probe_runs: dict[str, str] = field(default_factory=dict)

    def service_pids(self) -> dict[str, int]:
        return {
            name: int((self.state / "run" / f"{name}.pid").read_text().split()[0])
            for name in SERVICES
            if (self.state / "run" / f"{name}.pid").exists()
        }

    def api(self) -> object:
        import json

        from dev.run_cycle import Api

        secrets = json.loads((self.state / "secrets.json").read_text())
        return Api(f"http://127.0.0.1:{self.ports['PULSE_API_PORT']}", secrets["airflow_admin_password"])

    def diagnostics(self) -> str:
        parts = [f"--- {path.name}\n{tail(path, 3000)}" for path in self.outputs]
        parts += [
            f"--- {path.name}\n{tail(path, 1200)}" for path in sorted((self.state / "logs").glob("*.log"))
        ]
        return "\n".join(parts)[-25000:]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """A private state folder, ports and a DAG folder with the probe DAG; stopped and deleted at the end."""
    state, ports = new_state("pulse-live-lifecycle-")
    dags = state / "dags"
    dags.mkdir()
    (dags / f"{PROBE_DAG}.py").write_text(PROBE_SOURCE)
    # A generous SIGTERM grace: on a loaded machine the api-server can take 10+ s to stop, and "killed" must
    # mean a service that hung, not a slow one.
    env = stack_env(state, ports, dags, {"PULSE_STOP_GRACE": "90"})
    live = Stack(state=state, env=env, ports=ports)
    try:
        yield live
    finally:
        try:
            run_stack(live.env, state, "down", STOP_TIMEOUT)
        finally:
            remove_state(state)


@dataclass
class MakeRun:
    proc: subprocess.Popen[bytes]
    out: Path

    def output(self) -> str:
        return self.out.read_text(errors="replace")


def start_make_run(stack: Stack) -> MakeRun:
    """``python -m dev.run_cycle --dags lifecycle_probe`` in its own session (its own terminal, as it were);
    returns once the cycle is done and it keeps the stack up."""
    stack.started += 1
    out = stack.state / f"make-run-{stack.started}.out"
    stack.outputs.append(out)
    with out.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dev.run_cycle", "--dags", PROBE_DAG],
            cwd=ROOT,
            env=stack.env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    run = MakeRun(proc, out)
    t0 = time.monotonic()
    while "the UI stays up" not in run.output():
        if proc.poll() is not None:
            pytest.fail(f"make run exited with {proc.returncode} before the UI was up\n{stack.diagnostics()}")
        if time.monotonic() - t0 > UP_TIMEOUT:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(120)
            pytest.fail(f"make run did not finish its cycle within {UP_TIMEOUT:.0f}s\n{stack.diagnostics()}")
        time.sleep(1)
    print(
        f"\n[lifecycle] make run #{stack.started}: stack up and cycle done in {time.monotonic() - t0:.0f} s"
    )
    return run


def snapshot(stack: Stack) -> dict[tuple[int, str], str]:
    """The processes of the running stack; checks it holds what must be stopped: every service, the
    LocalExecutor workers, PostgreSQL."""
    pids = stack.service_pids()
    assert sorted(pids) == sorted(SERVICES)
    tree = stack_tree(stack.state, set(pids.values()))
    cmds = list(tree.values())
    assert {pid for pid, _ in tree} >= set(pids.values()), cmds
    assert any("LocalExecutor" in cmd for cmd in cmds), cmds
    assert any(cmd.startswith("postgres: ") for cmd in cmds), cmds  # backends: their own sessions
    return tree


def assert_nothing_left(stack: Stack, before: dict[tuple[int, str], str]) -> None:
    left = still_there(before)
    assert not left, f"processes of the stack still running: {left}"
    again = stack_tree(stack.state, {pid for pid, _ in before})
    assert not again, f"processes of the stack still running: {again}"


def assert_truthful_stop_report(output: str, stack: Stack) -> None:
    """One line per service saying it stopped (not "killed": none of them needed SIGKILL), PostgreSQL too."""
    for name in SERVICES:
        line = rf"^\[stack\] {re.escape(name)}\s+stopped \(pid \d+, after \d+\.\d s(; [^\n]*)?\)$"
        assert re.search(line, output, re.M), f"{name}:\n{output}\n{stack.diagnostics()}"
    assert re.search(r"^\[stack\] postgres\s+stopped \(after \d+\.\d s\)$", output, re.M), output
    assert "killed" not in output, output


def assert_probe_ran_once(stack: Stack, run: MakeRun) -> None:
    """The cycle ran the probe DAG exactly once: the scheduled run of its due tick (queued on unpausing, or
    when the scheduler started) and no manual run beside it, or, when no tick was due, one manual run."""
    api = stack.api()
    runs = api.get(f"/dags/{PROBE_DAG}/dagRuns", limit=50)["dag_runs"]  # type: ignore[attr-defined]
    new = {
        r["dag_run_id"]: (r["run_type"], r["state"]) for r in runs if r["dag_run_id"] not in stack.probe_runs
    }
    output = run.output()
    if f"triggered {PROBE_DAG} run " in output:
        assert sorted(new.values()) == [("manual", "success")], (new, output)
        (run_id,) = new
        assert f"triggered {PROBE_DAG} run {run_id} (no scheduled run due before " in output, output
    else:
        assert sorted(new.values()) == [("scheduled", "success")], (new, output)
        assert (
            f"{PROBE_DAG}: Airflow runs its latest scheduled interval" in output
            or f"{PROBE_DAG}: the scheduler already queued this cycle's run" in output
        ), output
    stack.probe_runs.update({run_id: run_type for run_id, (run_type, _) in new.items()})


# ------------------------------------------------------------------------------------------------------
# live tests (in this order: the second start finds the probe DAG unpaused and its next tick ahead)
# ------------------------------------------------------------------------------------------------------


def test_make_stop_ends_make_run_and_leaves_nothing(stack: Stack) -> None:
    run = start_make_run(stack)
    assert_probe_ran_once(stack, run)
    if stack.started == 1:  # a fresh DAG: unpausing it runs its latest tick
        assert list(stack.probe_runs.values()) == ["scheduled"], run.output()
    before = snapshot(stack)

    res = run_stack(stack.env, stack.state, "down", STOP_TIMEOUT)
    print(f"\n[lifecycle] make stop:\n{res.stdout}{res.stderr}")
    assert res.returncode == 0, res.stdout + res.stderr
    assert_truthful_stop_report(res.stdout, stack)
    assert re.search(
        rf"^\[stack\] make run\s+asked to stop \(SIGTERM to pid {run.proc.pid}\)$", res.stdout, re.M
    )
    assert re.search(rf"^\[stack\] make run\s+ended \(pid {run.proc.pid}\)$", res.stdout, re.M), res.stdout

    # make run noticed, said why, and exited with SIGTERM's status.
    assert run.proc.wait(30) == 128 + signal.SIGTERM, run.output()
    assert "SIGTERM (`make stop` sends SIGTERM): stopping everything make run started" in run.output()
    assert run.output().rstrip().endswith("[run] stopped; exit status 143"), run.output()
    assert_nothing_left(stack, before)


def running_task_group(stack: Stack) -> int | None:
    """The process group of a task the scheduler runs, apart from its own (Airflow's task supervisor puts
    the task process in a process group of its own, which SIGTERM to the scheduler's group misses)."""
    scheduler = stack.service_pids()["scheduler"]
    for key in stack_tree(stack.state, {scheduler}):
        fields = _stat(key[0])
        if fields and fields[3] == str(scheduler) and fields[2] != str(scheduler):
            return int(fields[2])
    return None


def test_ctrl_c_on_make_run_stops_everything(stack: Stack) -> None:
    run = start_make_run(stack)
    # Once per cycle again; after the first test, the daily tick is ahead: one manual run.
    assert_probe_ran_once(stack, run)
    # Ctrl-C while a task runs: the scheduler's LocalExecutor worker supervises a task process in its own
    # process group.
    api = stack.api()
    long_run = api.post(f"/dags/{PROBE_DAG}/dagRuns", {"logical_date": None, "conf": {"sleep": 900}})  # type: ignore[attr-defined]
    t0 = time.monotonic()
    while (group := running_task_group(stack)) is None:
        state = api.get(f"/dags/{PROBE_DAG}/dagRuns/{long_run['dag_run_id']}")["state"]  # type: ignore[attr-defined]
        assert state in ("queued", "running") and time.monotonic() - t0 < 180, (state, stack.diagnostics())
        time.sleep(1)
    before = snapshot(stack)
    assert any(_stat(pid) and _stat(pid)[2] == str(group) for pid, _ in before)  # type: ignore[index]

    os.killpg(run.proc.pid, signal.SIGINT)  # what Ctrl-C in its terminal does
    assert run.proc.wait(STOP_TIMEOUT) == 130, run.output()
    output = run.output()
    print(f"\n[lifecycle] make run after Ctrl-C:\n{output[output.index('[run] Ctrl-C') :]}")
    assert "[run] Ctrl-C: stopping everything make run started" in output
    assert_truthful_stop_report(output[output.index("[run] Ctrl-C") :], stack)
    # The scheduler waited for the running task (Airflow's task runner goes on after SIGTERM): make run's
    # stop ended the task process and says so.
    assert re.search(
        rf"^\[stack\] scheduler\s+stopped \(pid \d+, after \d+\.\d s; ended 1 process it waited for, in "
        rf"process groups of their own \(running tasks\): {group} \(",
        output,
        re.M,
    ), output
    assert_nothing_left(stack, before)
    assert not (stack.state / "run" / "make-run.pid").exists()


# ------------------------------------------------------------------------------------------------------
# unit tests: real processes, no stack
# ------------------------------------------------------------------------------------------------------


def _wait_state(pid: int, state: str) -> None:
    for _ in range(200):
        fields = _stat(pid)
        if fields and fields[0] == state:
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} never reached state {state}: {_stat(pid)}")


def test_a_zombie_counts_as_stopped() -> None:
    from dev import stack

    pid = os.fork()
    if pid == 0:  # the child exits at once; the parent does not reap it yet
        os._exit(0)
    try:
        _wait_state(pid, "Z")
        os.kill(pid, 0)  # the old probe: the kernel still has the pid, so it looked "alive"
        assert stack.process_state(pid) == "Z"
        assert not stack.is_running(pid)
    finally:
        os.waitpid(pid, 0)
    assert stack.process_state(pid) is None
    assert not stack.is_running(pid)
    # A running process is running, whoever its parent is.
    assert stack.is_running(os.getpid())
    assert stack.is_running(1)


SERVICE_WITH_ESCAPEE = textwrap.dedent(
    """
    import subprocess, sys, time
    # A child in its own process group (as Airflow's task supervisors make one): SIGTERM to the service's
    # process group does not reach it.
    subprocess.Popen([sys.executable, "-c", "import os, time; os.setpgid(0, 0); time.sleep(600)"])
    time.sleep(600)
    """
)


def test_stop_from_another_process_reports_exited_services_as_stopped(tmp_path: Path) -> None:
    """The services are this test process's children, which does not reap them (like make run while make
    stop runs); ``down``'s ``stop_services`` runs in another process (like make stop)."""
    state = tmp_path / "state"
    (state / "run").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
    env.update({"PULSE_STATE_DIR": str(state), "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}"})
    services = {
        "plain": subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(600)"], env=env, start_new_session=True
        ),
        "parent": subprocess.Popen(
            [sys.executable, "-c", SERVICE_WITH_ESCAPEE], env=env, start_new_session=True
        ),
    }
    try:
        for name, proc in services.items():
            (state / "run" / f"{name}.pid").write_text(f"{proc.pid} {_stat(proc.pid)[19]}")  # type: ignore[index]
        for _ in range(200):  # the escapee is up and in its own process group
            escapees = [
                pid
                for p in Path("/proc").iterdir()
                if p.name.isdigit()
                and (f := _stat(pid := int(p.name)))
                and f[3] == str(services["parent"].pid)
                and f[2] == str(pid)
                and pid != services["parent"].pid
            ]
            if escapees:
                break
            time.sleep(0.05)
        assert escapees, "the escapee did not start"
        res = subprocess.run(
            [sys.executable, "-c", "from dev import stack; stack.stop_services(['plain', 'parent', 'gone'])"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        print(res.stdout)
        for name in ("plain", "parent"):
            pid = services[name].pid
            assert re.search(
                rf"^\[stack\] {name}\s+stopped \(pid {pid}, after \d+\.\d s\)$", res.stdout, re.M
            ), res.stdout
            assert _stat(pid)[0] == "Z"  # type: ignore[index]  # exited, and still not reaped by us
        assert re.search(r"^\[stack\] gone\s+already stopped$", res.stdout, re.M), res.stdout
        assert "killed" not in res.stdout, res.stdout
        # The escapee: found through the session, ended, and said so.
        assert re.search(
            rf"^\[stack\] parent\s+ended 1 process left in its session: {escapees[0]} ",
            res.stdout,
            re.M,
        ), res.stdout
        assert _identity(escapees[0]) is None
        assert not list((state / "run").glob("*.pid"))
    finally:
        sessions = {str(proc.pid) for proc in services.values()}
        for p in Path("/proc").iterdir():  # whatever a failed stop left in the services' sessions
            if p.name.isdigit() and (f := _stat(int(p.name))) and f[3] in sessions and f[0] != "Z":
                os.kill(int(p.name), signal.SIGKILL)
        for proc in services.values():
            proc.wait(10)
