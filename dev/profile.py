"""``make profile DAG=<dag> [TASK=<task>] [MEMORY=1]``: a CPU profile, and a memory profile where it helps, of one
task run on the local stack (docs/profiling.md says how to read them).

The task runs through ``airflow tasks test DAG TASK``, which Airflow 3.3 runs **in the calling process** (no fork:
``InProcessTestSupervisor``), so the profiler sees the task's own code, not a supervisor waiting on a child:

* CPU: pyinstrument, a statistical profiler (1 ms samples), wrapped around the Airflow CLI. Written as an
  interactive HTML call tree and as text (the slowest paths, library frames folded).
* Memory (``MEMORY=1``): memray's tracker around the same call; written as the raw capture, an HTML flame graph
  of the allocations alive at the peak and ``memray stats`` (peak, allocations by size and by place).

It uses the local stack's warehouse and Airflow metadata database (started and migrated if needed, like
``make migrate``); a task that calls a source (``extract``) needs the simulator, so run ``make run`` first and
profile while it keeps the stack up. No params are passed: the task runs with its DAG's defaults, now (the
real clock: a profile is a measurement of today's data, not a test).

Output: ``.local/profiles/<dag>.<task>.<UTC stamp>.{cpu.html,cpu.txt,mem.bin,mem.html,mem.txt}``; the paths and
the top of the text profile are printed.

``python -m dev.profile --child ...`` is the process that runs under the profiler (an internal entry point).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".local" / "profiles"
SETUP_TASKS = frozenset({"warehouse_ready"})


def default_task(dag_id: str) -> str:
    """The first task of ``dag_id`` after its setup task, in the DAG's order (e.g. ``compute_trends``)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / f"{dag_id}.py"))
    dag = bag.dags.get(dag_id)
    if dag is None:
        raise SystemExit(f"no DAG {dag_id!r} in dags/{dag_id}.py ({bag.import_errors or 'not found'})")
    for task in dag.topological_sort():
        if task.task_id not in SETUP_TASKS:
            return str(task.task_id)
    raise SystemExit(f"{dag_id} has no task besides {sorted(SETUP_TASKS)}")


def _airflow_main(dag_id: str, task_id: str) -> int:
    """``airflow tasks test dag_id task_id`` in this process: 0 when the task succeeded, else 1.

    ``airflow tasks test`` exits 0 whether the task succeeded or failed (Airflow 3.3.2, ``task_test``), so the
    task instance's state is read where the command runs it (``task_command._run_task``)."""
    from airflow.__main__ import main
    from airflow.cli.commands import task_command

    states: list[str] = []
    run_task = task_command._run_task

    def _recording(*args: object, **kwargs: object) -> object:
        try:
            return run_task(*args, **kwargs)
        finally:
            ti = kwargs.get("ti")
            state = getattr(ti, "state", None)
            states.append(str(getattr(state, "value", state)))

    saved = sys.argv
    sys.argv = ["airflow", "tasks", "test", dag_id, task_id]
    task_command._run_task = _recording  # type: ignore[assignment]
    try:
        main()
    except SystemExit as exc:
        if exc.code not in (None, 0):
            return 1
    finally:
        sys.argv = saved
        task_command._run_task = run_task  # type: ignore[assignment]
    return 0 if states and states[-1] == "success" else 1


def child(dag_id: str, task_id: str, prefix: Path, memory: bool) -> int:
    """Run the task under pyinstrument (and memray with ``memory``), write the reports next to ``prefix``."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001)
    if memory:
        import memray

        # Python allocators traced too (trace_python_allocators): without it most of the task's allocations,
        # made through pymalloc, were reported as "<stack trace unavailable>".
        with memray.Tracker(
            str(prefix) + ".mem.bin", native_traces=False, follow_fork=False, trace_python_allocators=True
        ):
            profiler.start()
            code = _airflow_main(dag_id, task_id)
            profiler.stop()
    else:
        profiler.start()
        code = _airflow_main(dag_id, task_id)
        profiler.stop()
    Path(str(prefix) + ".cpu.html").write_text(profiler.output_html(), encoding="utf-8")
    Path(str(prefix) + ".cpu.txt").write_text(
        profiler.output_text(unicode=True, color=False, show_all=False), encoding="utf-8"
    )
    return code


def _memray_reports(prefix: Path) -> None:
    capture = str(prefix) + ".mem.bin"
    subprocess.run(
        [sys.executable, "-m", "memray", "flamegraph", "--force", "-o", str(prefix) + ".mem.html", capture],
        check=True,
        capture_output=True,
    )
    stats = subprocess.run(
        [sys.executable, "-m", "memray", "stats", "--force", capture],
        check=True,
        capture_output=True,
        text=True,
    )
    Path(str(prefix) + ".mem.txt").write_text(stats.stdout, encoding="utf-8")


def profile(
    dag_id: str, task_id: str | None, *, memory: bool, env: dict[str, str], out: Path = OUT
) -> tuple[int, list[Path]]:
    """Profile one run of ``dag_id.task_id`` in a child process with ``env``; return its status and the files."""
    out.mkdir(parents=True, exist_ok=True)
    task = task_id or default_task(dag_id)
    prefix = out / f"{dag_id}.{task}.{datetime.now(tz=UTC):%Y%m%dT%H%M%SZ}"
    argv = [sys.executable, "-m", "dev.profile", "--child", dag_id, task, str(prefix)]
    if memory:
        argv.append("--memory")
    code = subprocess.run(argv, cwd=ROOT, env=env, check=False).returncode
    if memory and Path(str(prefix) + ".mem.bin").exists():
        _memray_reports(prefix)
    files = sorted(p for p in out.glob(prefix.name + ".*") if p.is_file())
    return code, files


def _top(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[:lines])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dag")
    parser.add_argument("task", nargs="?")
    parser.add_argument("--memory", action="store_true", help="also a memory profile (memray)")
    parser.add_argument("--child", nargs=3, metavar=("DAG", "TASK", "PREFIX"), help=argparse.SUPPRESS)
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "--child":  # the profiled process
        _, dag_id, task_id, prefix, *rest = argv
        return child(dag_id, task_id, Path(prefix), "--memory" in rest)
    args = parser.parse_args(argv)
    from dev import stack

    stack.pg_up()
    stack.migrate_warehouse()
    env = stack.airflow_env()
    stack.airflow_bootstrap(env)
    os.environ.update(env)  # this process parses the DAG (default_task) with the stack's configuration too
    code, files = profile(args.dag, args.task, memory=args.memory, env=env)
    text = next((p for p in files if p.name.endswith(".cpu.txt")), None)
    if text:
        print(_top(text.read_text(encoding="utf-8")))
    print(
        "\n[profile] " + ("the task succeeded" if code == 0 else f"the task failed (exit {code}): see above")
    )
    for path in files:
        print(f"[profile] {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return code


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
