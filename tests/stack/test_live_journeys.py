"""What on-call and analysts do first, on the running stack (issue 12 item 8): a scheduler, api-server,
dag-processor and triggerer started by ``python -m dev.stack up`` in a private state folder
(``tests/stack/conftest.py``), driven through the REST API and the CLI like a person would.

* a run triggered through ``POST /api/v2/dags/ingest_reddit/dagRuns`` with ``window_start``/``window_end``
  loads exactly that window;
* failed runs whose queued-at Deadline Alert is still pending are cleared through
  ``POST .../dagRuns/{run}/clear``, ``POST .../clearTaskInstances`` and ``airflow tasks clear`` (HTTP 200, no
  crash: apache/airflow#70368 and ``plugins/pulse/deadlines.py``), their failed task runs again (try 2) and,
  the fault gone, succeeds; the deadline moves with the retry and still fires when the retry misses it;
* a backfill created through ``POST /api/v2/backfills`` run twice over the same hours (the second with
  ``reprocess_behavior: completed``) leaves the same rows;
* rows a backfill brings into hours that were already audited stay out of the analysts' views
  (``analytics.daily_volume``, ``analytics.daily_sentiment`` read as the ``analyst`` role) until the
  ``quality`` DAG audits those hours again, which it finds by itself;
* ``GET /pulse/metrics`` answers Prometheus text with the warehouse up and a series per source;
* a ``quality`` run a user triggers updates the ``published_hours`` Asset, and the ``trends`` DAG runs on it by
  itself (``run_type`` asset_triggered) and succeeds; its tables and views answer the ``analyst`` role, and a
  second Asset-triggered run with nothing new published recomputes nothing;
* a 12-hour backfill with ``max_active_runs`` 10 never puts more requests in flight at the simulator than the
  source's pool has slots, spends no more than the source's persisted budget (``ops.api_budget``) and, once the
  budget is spent, ends its runs cleanly with ``budget_exhausted`` gaps instead of a 429 storm.
* the health endpoint ``GET /pulse/health`` (plugin ``plugins/pulse_health_plugin.py``, issue 17 item 4) is
  listed by ``GET /api/v2/plugins``, answers 401 without a token and, with one, 200 or 503 with every part
  (Airflow and the warehouse healthy; sources may be stale here, only a few DAGs run).

One stack for the module, everything started at once so the journeys run side by side. Its DAG folder holds
copies of the DAG files the journeys use (fewer files for the dag-processor to parse) and ``clear_probe``, a
DAG with the house deadline set to 60 s whose task fails on its first try and, once cleared, outlasts the
deadline. Its sources file is ``include/sources.yaml`` with a tiny X budget (so that it runs out) and a circuit
breaker that tolerates the failures this module causes on purpose.

The stack's clock is the machine's (Airflow schedules and fires deadlines on it), so every window is taken
relative to the stack's own time, read from its PostgreSQL, never from a calendar date.

About 3 minutes here (50-110 s of it to start the stack and register the DAGs, 12-20 s to stop it).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
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
HOUR = timedelta(hours=1)
#: The DAG files the journeys use, copied as they are into the stack's DAG folder.
DAG_FILES = ("ingest_reddit", "ingest_x", "ingest_newsapi", "quality", "enrich", "trends")
PROBE = "clear_probe"
PROBE_DEADLINE = timedelta(seconds=60)
PROBE_SLEEP_S = 95
NEWSAPI_DEADLINE = timedelta(minutes=45)  # dags/ingest_newsapi.py
X_BUDGET = 8  # calls per day: less than the X backfill needs
#: Reddit items the simulator serves broken (quarantined), until the late-rows journey fixes them.
REDDIT_BAD_RATIO = 0.1
TERMINAL = {"success", "failed"}

PROBE_DAG = f'''"""
### {PROBE}

Written by tests/stack/test_live_journeys.py. The house Deadline Alert (``pulse.dag_defaults.deadline``) at
{int(PROBE_DEADLINE.total_seconds())} s; the task fails on its first try (no retries) and, once cleared, runs
{PROBE_SLEEP_S} s, past the deadline counted from when the clear queued the run again.
"""

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task

from pulse.dag_defaults import dag_failure_notifier, deadline, default_args, warehouse_ready

with DAG(
    dag_id="{PROBE}",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    default_args=default_args(retries=0),
    tags=["maintenance"],
    on_failure_callback=dag_failure_notifier(),
    deadline=deadline(timedelta(seconds={int(PROBE_DEADLINE.total_seconds())})),
):

    @task
    def work(**context):
        import time

        from airflow.sdk.exceptions import AirflowFailException

        if context["ti"].try_number == 1:
            raise AirflowFailException("{PROBE}: the first try fails")
        time.sleep({PROBE_SLEEP_S})

    warehouse_ready() >> work()
'''


# --------------------------------------------------------------------------------------------------
# the stack and its helpers
# --------------------------------------------------------------------------------------------------


def _sources_file(path: Path) -> None:
    """include/sources.yaml with a small X budget and a breaker that tolerates this module's failures."""
    data = yaml.safe_load((ROOT / "include" / "sources.yaml").read_text())
    data["budgets"] = {**(data.get("budgets") or {}), "x": [{"per_seconds": 86400, "calls": X_BUDGET}]}
    data["circuit_breaker"] = {"failures": 10, "cool_down_minutes": 60}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def live() -> Iterator[LiveStack]:
    conf = Path(tempfile.mkdtemp(prefix="pulse-journeys-conf-"))
    try:
        dags = conf / "dags"
        dags.mkdir()
        for name in DAG_FILES:
            shutil.copy(ROOT / "dags" / f"{name}.py", dags / f"{name}.py")
        (dags / f"{PROBE}.py").write_text(PROBE_DAG)
        _sources_file(conf / "sources.yaml")
        with private_stack(
            "pulse-live-journeys-",
            dags_folder=dags,
            extra_env={"PULSE_SOURCES_FILE": str(conf / "sources.yaml")},
            wait_dags=[*DAG_FILES, PROBE],
        ) as stack:
            yield stack
    finally:
        shutil.rmtree(conf, ignore_errors=True)


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _secrets(live: LiveStack) -> dict[str, str]:
    return dict(json.loads((live.state / "secrets.json").read_text()))


def airflow_db(live: LiveStack, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """A query on the stack's Airflow metadata database (deadlines, runs, backfills as Airflow keeps them)."""
    import psycopg

    with psycopg.connect(
        host="127.0.0.1",
        port=live.ports["PULSE_PG_PORT"],
        user="airflow",
        password=_secrets(live)["airflow_db_password"],
        dbname="airflow",
        autocommit=True,
        connect_timeout=10,
    ) as conn:
        return conn.execute(sql, params).fetchall()


def stack_now(live: LiveStack) -> datetime:
    """The stack's clock (its PostgreSQL's), which Airflow, the simulator and the pipeline all run on."""
    return live.query("SELECT now()")[0][0]


def sim(live: LiveStack, path: str, body: dict[str, Any] | None = None) -> Any:
    url = f"{live.sim_url}/_sim/{path}"
    resp = requests.post(url, json=body, timeout=10) if body is not None else requests.get(url, timeout=10)
    resp.raise_for_status()
    return resp.json()


def deadlines(live: LiveStack, dag_id: str, run_id: str) -> list[tuple[Any, ...]]:
    """``(deadline_time, missed, queued_at, clear_number)`` of the run's Deadline rows."""
    return airflow_db(
        live,
        "SELECT d.deadline_time, d.missed, r.queued_at, r.clear_number FROM deadline d"
        " JOIN dag_run r ON r.id = d.dagrun_id WHERE r.dag_id = %s AND r.run_id = %s",
        (dag_id, run_id),
    )


def task_instances(live: LiveStack, dag_id: str, run_id: str) -> dict[str, tuple[str | None, int]]:
    """``task_id -> (state, try_number)`` through the REST API."""
    tis = live.api.get(f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances")["task_instances"]
    return {t["task_id"]: (t["state"], t["try_number"]) for t in tis}


def task_errors(live: LiveStack, dag_id: str, run_id: str) -> list[str]:
    """The exceptions the run's task tries ended with, from their logs: ``task try N: Type: message``."""
    found = []
    logs = live.state / "airflow" / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
    for path in sorted(logs.glob("task_id=*/attempt=*.log")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            for error in entry.get("error_detail") or []:
                found.append(
                    f"{path.parent.name} {path.stem}: {error.get('exc_type')}: {str(error.get('exc_value'))[:500]}"
                )
    return found


def wait_run(live: LiveStack, dag_id: str, run_id: str, state: str = "success", timeout: float = 300) -> None:
    """Wait for the run to end. Fail at once, naming the tasks' errors, when it ends otherwise or when one of
    its tasks waits for a retry (no journey expects one; the retry delay is minutes)."""

    def ended() -> str | None:
        current = live.run_state(dag_id, run_id)
        if current in TERMINAL:
            return current
        tis = task_instances(live, dag_id, run_id)
        if state == "success" and any(s == "up_for_retry" for s, _ in tis.values()):
            return "up_for_retry"
        return None

    final = live.wait_for(f"{dag_id} run {run_id} ends", ended, timeout=timeout, about=dag_id)
    if final != state:
        errors = "\n".join(task_errors(live, dag_id, run_id))
        pytest.fail(
            f"{dag_id} run {run_id} is {final}, expected {state}: {task_instances(live, dag_id, run_id)}\n"
            f"{errors}"
        )


def backfill(live: LiveStack, dag_id: str, start: datetime, end: datetime, reprocess: str = "none") -> int:
    """``POST /api/v2/backfills`` (max_active_runs 10, the dialog's default); returns its id."""
    created = live.api.post(
        "/backfills",
        {
            "dag_id": dag_id,
            "from_date": _iso(start),
            "to_date": _iso(end),
            "reprocess_behavior": reprocess,
            "max_active_runs": 10,
            "run_backwards": False,
            "dag_run_conf": {},
        },
    )
    return int(created["id"])


def wait_backfill(live: LiveStack, backfill_id: int, runs: int, timeout: float = 300) -> list[str]:
    """Wait for the backfill to complete; its ``runs`` runs must all have succeeded. Returns their run ids."""
    live.wait_for(
        f"backfill {backfill_id} completes",
        lambda: live.api.get(f"/backfills/{backfill_id}")["completed_at"] is not None,
        timeout=timeout,
    )
    states = dict(
        airflow_db(live, "SELECT run_id, state FROM dag_run WHERE backfill_id = %s", (backfill_id,))
    )
    assert len(states) == runs and set(states.values()) == {"success"}, f"backfill {backfill_id}: {states}"
    return sorted(states)


def analyst_totals(live: LiveStack, source: str) -> tuple[int, int]:
    """What an analyst sees of ``source``: rows in ``analytics.daily_volume`` and documents in
    ``analytics.daily_sentiment``, read as the ``analyst`` role."""
    import psycopg

    with psycopg.connect(**live.dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SET ROLE analyst")
        volume = conn.execute(
            "SELECT coalesce(sum(items), 0) FROM analytics.daily_volume WHERE source = %s", (source,)
        ).fetchone()
        sentiment = conn.execute(
            "SELECT coalesce(sum(documents), 0) FROM analytics.daily_sentiment WHERE source = %s", (source,)
        ).fetchone()
    assert volume is not None and sentiment is not None
    return int(volume[0]), int(sentiment[0])


def horizon(live: LiveStack, source: str) -> datetime | None:
    rows = live.query("SELECT published_until FROM quality.publish_state WHERE source = %s", (source,))
    return rows[0][0] if rows else None


# --------------------------------------------------------------------------------------------------
# everything the journeys need, started at once
# --------------------------------------------------------------------------------------------------


@dataclass
class Journeys:
    hour: datetime  #: the stack's current hour when the journeys started
    window: tuple[datetime, datetime]  #: the window of the triggered Reddit run
    window_run: str
    failing: dict[
        str, str
    ]  #: how each failing newsapi run is cleared ("dag_run" / "task_instances") -> run id
    probe_run: str
    backfill_range: tuple[datetime, datetime]  #: ticks of the Reddit backfill run twice
    first_backfill: int
    x_range: tuple[datetime, datetime]
    x_backfill: int


@pytest.fixture(scope="module")
def journeys(live: LiveStack) -> Journeys:
    """Configure the simulator, unpause the DAGs and start every run and backfill of the module."""
    hour = stack_now(live).replace(minute=0, second=0, microsecond=0)
    # Latency makes overlapping requests visible to the simulator's in-flight counter; some broken Reddit
    # items are quarantined until the late-rows journey serves them fixed.
    sim(
        live,
        "config",
        {
            "reddit": {"latency_ms": 150, "bad_items_ratio": REDDIT_BAD_RATIO},
            "x": {"latency_ms": 300},
            "newsapi": {"latency_ms": 100},
        },
    )
    # Unpausing makes Airflow create each DAG's latest scheduled run too (AIRFLOW3.md pitfall 19): windows
    # of the journeys are all older than that one. quality and enrich stay paused until their journey.
    for dag_id in ("ingest_reddit", "ingest_x", "ingest_newsapi", PROBE):
        live.api.patch(f"/dags/{dag_id}", {"is_paused": False})
    sim(live, "config", {"newsapi": {"reject_auth": True}})  # bad credentials: 401, no retries

    window = (hour - 3 * HOUR, hour - 2 * HOUR)
    window_run = live.trigger(
        "ingest_reddit", {"window_start": _iso(window[0]), "window_end": _iso(window[1])}
    )
    probe_run = live.trigger(PROBE)
    news_conf = {"window_start": _iso(hour - 4 * HOUR), "window_end": _iso(hour - 3 * HOUR)}
    failing = {how: live.trigger("ingest_newsapi", news_conf) for how in ("dag_run", "task_instances")}
    # Ticks H-7 .. H-5: the windows [H-8, H-5) (README "Backfills").
    backfill_range = (hour - 7 * HOUR, hour - 5 * HOUR)
    first_backfill = backfill(live, "ingest_reddit", *backfill_range)
    # 12 ticks of ingest_x (minute 15): H-13h .. H-2h+15m.
    x_range = (hour - 13 * HOUR, hour - HOUR)
    x_backfill = backfill(live, "ingest_x", *x_range)
    return Journeys(
        hour=hour,
        window=window,
        window_run=window_run,
        failing=failing,
        probe_run=probe_run,
        backfill_range=backfill_range,
        first_backfill=first_backfill,
        x_range=x_range,
        x_backfill=x_backfill,
    )


def _wait_failed(live: LiveStack, dag_id: str, run_id: str, task_id: str) -> None:
    wait_run(live, dag_id, run_id, state="failed", timeout=180)
    assert task_instances(live, dag_id, run_id)[task_id] == ("failed", 1)


def _pending(live: LiveStack, dag_id: str, run_id: str) -> tuple[datetime, datetime]:
    """The run's one queued-at deadline, which must still be pending; returns it and the run's queued_at."""
    ((due, missed, queued_at, clear_number),) = deadlines(live, dag_id, run_id)
    now = airflow_db(live, "SELECT now()")[0][0]
    if missed or due < now + timedelta(seconds=5):
        pytest.fail(
            f"{dag_id} {run_id}: its deadline ({due}, missed={missed}) passed before the test could clear the "
            f"run (now {now}); the machine is too slow for this probe"
        )
    assert clear_number == 0
    return due, queued_at


def _moved(live: LiveStack, dag_id: str, run_id: str, before: datetime, interval: timedelta) -> None:
    """The deadline now counts from when the clear queued the run again, and is pending again."""
    ((due, missed, queued_at, clear_number),) = deadlines(live, dag_id, run_id)
    assert clear_number == 1
    assert not missed
    assert due > before
    # Airflow stamps queued_at twice while clearing, a moment apart: the deadline counts from the first.
    assert timedelta(0) <= queued_at + interval - due < timedelta(minutes=1), (due, queued_at)


# --------------------------------------------------------------------------------------------------
# the journeys
# --------------------------------------------------------------------------------------------------


def test_simulator_counts_requests_in_flight_per_source() -> None:
    """The counter the pool checks below rely on sees overlapping requests (no stack needed)."""
    from dev.simulator import SimulatorServer

    server = SimulatorServer(host="127.0.0.1", port=0, now="2026-11-28T12:00:00+00:00").start()
    try:
        server.configure({"newsapi": {"latency_ms": 300}})
        url = f"{server.url}/v2/everything?q=bitcoin&apiKey=sim-newsapi-key"
        requests.get(url, timeout=10)
        assert server.concurrency()["newsapi"] == {"in_flight": 0, "max_in_flight": 1}
        threads = [
            threading.Thread(target=requests.get, args=(url,), kwargs={"timeout": 10}) for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        served = requests.get(f"{server.url}/_sim/concurrency", timeout=10).json()
        assert served["newsapi"] == {"in_flight": 0, "max_in_flight": 3}
        assert served["reddit"] == {"in_flight": 0, "max_in_flight": 0}
        server.reset()
        assert server.concurrency()["newsapi"] == {"in_flight": 0, "max_in_flight": 0}
    finally:
        server.stop()


def test_airflow_tasks_clear_retries_a_failed_run_whose_deadline_is_pending(
    live: LiveStack, journeys: Journeys
) -> None:
    run = journeys.probe_run
    _wait_failed(live, PROBE, run, "work")
    due, _ = _pending(live, PROBE, run)

    res = live.airflow_cli("tasks", "clear", PROBE, "--only-failed", "--yes")
    assert res.returncode == 0, f"airflow tasks clear failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr, res.stderr[-3000:]

    _moved(live, PROBE, run, due, PROBE_DEADLINE)
    live.wait_for(
        "the cleared probe task runs its second try",
        lambda: task_instances(live, PROBE, run)["work"] in {("running", 2), ("queued", 2)},
        timeout=120,
        about=PROBE,
    )


def test_rest_api_clears_failed_runs_whose_deadline_is_pending(live: LiveStack, journeys: Journeys) -> None:
    due = {}
    for run in journeys.failing.values():
        _wait_failed(live, "ingest_newsapi", run, "extract")
        due[run], _ = _pending(live, "ingest_newsapi", run)
    # On-call fixes the credentials, then clears.
    sim(live, "config", {"newsapi": {"reject_auth": False}})

    base = f"{live.api_url}/api/v2/dags/ingest_newsapi"
    run = journeys.failing["dag_run"]
    resp = live.api.session.post(
        f"{base}/dagRuns/{quote(run, safe='')}/clear",
        json={"dry_run": False, "only_failed": True},
        timeout=60,
    )
    assert resp.status_code == 200, f"POST .../dagRuns/{run}/clear: {resp.status_code} {resp.text[:2000]}"
    assert resp.json()["dag_run_id"] == run

    run = journeys.failing["task_instances"]
    resp = live.api.session.post(
        f"{base}/clearTaskInstances",
        json={
            "dry_run": False,
            "dag_run_id": run,
            "task_ids": ["extract"],
            "only_failed": True,
            "include_downstream": True,
        },
        timeout=60,
    )
    assert resp.status_code == 200, f"POST .../clearTaskInstances: {resp.status_code} {resp.text[:2000]}"
    assert {t["task_id"] for t in resp.json()["task_instances"]} == {"extract", "load"}

    for run, before in due.items():
        _moved(live, "ingest_newsapi", run, before, NEWSAPI_DEADLINE)


def test_trigger_with_a_window_through_the_rest_api_loads_exactly_that_window(
    live: LiveStack, journeys: Journeys
) -> None:
    import psycopg

    from pulse.sources import reddit
    from pulse.sources.base import Document
    from pulse.warehouse.raw import RawStore

    start, end = journeys.window
    run = journeys.window_run
    wait_run(live, "ingest_reddit", run)
    assert live.api.get(f"/dags/ingest_reddit/dagRuns/{quote(run, safe='')}")["logical_date"] is None

    # The run asked the API for that window, stream by stream, and recorded it as ingested.
    fetched = live.query(
        "SELECT DISTINCT window_start, window_end FROM raw.api_responses WHERE dag_run_id = %s", (run,)
    )
    assert fetched == [(start, end)]
    covered = live.query(
        "SELECT stream, window_start, window_end FROM ops.coverage WHERE dag_run_id = %s AND status = 'ingested'",
        (run,),
    )
    assert {(s, e) for _, s, e in covered} == {(start, end)}
    assert len({stream for stream, _, _ in covered}) == 6  # 3 subreddits x (new, comments)

    # Every good item of the window that Reddit served this run is in core.documents, and nothing else is in
    # the window. (Reddit lists newest first: the pages also hold newer items, which load too.)
    now = stack_now(live)
    with psycopg.connect(**live.dsn) as conn:
        pages = RawStore(conn).valid_pages("reddit", run)
    parsed = [out for page in pages for _, out in reddit.parse_page(page, lambda a: a, now)]
    expected = {d.external_id for d in parsed if isinstance(d, Document) and start <= d.created_at < end}
    assert expected, "the window held no Reddit items"
    loaded = live.query(
        "SELECT external_id FROM core.documents WHERE source = 'reddit' AND created_at >= %s AND created_at < %s",
        (start, end),
    )
    assert {r[0] for r in loaded} == expected
    assert len(loaded) == len(expected)


def test_cleared_runs_run_their_failed_task_again_and_succeed(live: LiveStack, journeys: Journeys) -> None:
    for run in journeys.failing.values():
        wait_run(live, "ingest_newsapi", run)
        tis = task_instances(live, "ingest_newsapi", run)
        assert tis["extract"] == ("success", 2), tis
        assert tis["load"][0] == "success", tis
        # The success pruned the run's deadline: nothing is left to fire.
        assert deadlines(live, "ingest_newsapi", run) == []


def _rows(live: LiveStack, start: datetime, end: datetime) -> set[tuple[Any, ...]]:
    return set(
        live.query(
            "SELECT external_id, kind, created_at, content_sha256 FROM core.documents"
            " WHERE source = 'reddit' AND created_at >= %s AND created_at < %s",
            (start, end),
        )
    )


def _quarantined(live: LiveStack) -> dict[tuple[str, str], str]:
    """``(item_key, reason_code) -> dag_run_id`` of Reddit's quarantine (one row per item: the latest run
    that met it)."""
    rows = live.query(
        "SELECT item_key, reason_code, dag_run_id FROM quality.quarantine WHERE source = 'reddit'"
    )
    return {(key, reason): run for key, reason, run in rows}


def test_a_backfill_run_twice_over_the_same_hours_leaves_the_same_rows(
    live: LiveStack, journeys: Journeys
) -> None:
    first, last = journeys.backfill_range
    windows = (first - HOUR, last)  # ticks first..last load the windows ending at them
    runs = wait_backfill(live, journeys.first_backfill, 3)
    assert runs == [f"backfill__{t.isoformat()}" for t in (first, first + HOUR, last)]
    before = _rows(live, *windows)
    assert before, "the backfill loaded nothing"
    quarantined = _quarantined(live)
    assert quarantined, f"no broken item was quarantined ({REDDIT_BAD_RATIO:.0%} of them are broken)"
    pages = live.query("SELECT count(*) FROM raw.api_responses WHERE dag_run_id = ANY(%s)", (runs,))

    again = backfill(live, "ingest_reddit", first, last, reprocess="completed")
    assert wait_backfill(live, again, 3) == runs  # the same runs, run again
    assert {
        r[0] for r in airflow_db(live, "SELECT clear_number FROM dag_run WHERE backfill_id = %s", (again,))
    } == {1}
    # The runs ran again on the pages they had stored: no API call, the same rows.
    assert live.query("SELECT count(*) FROM raw.api_responses WHERE dag_run_id = ANY(%s)", (runs,)) == pages
    after = _rows(live, *windows)
    assert len(after) == len(before)
    assert after == before
    # The broken items of those hours keep their one quarantine row each; the second run added none.
    again_quarantined = _quarantined(live)
    assert quarantined.keys() <= again_quarantined.keys()
    assert not {run for key, run in again_quarantined.items() if key not in quarantined} & set(runs)


def _as_analyst(live: LiveStack, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(**live.dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SET ROLE analyst")
        return conn.execute(sql, params).fetchall()


def _behind(live: LiveStack, table: str, published: datetime) -> int:
    """Reddit rows of ``table`` created before the horizon, as the pipeline sees them."""
    return int(
        live.query(f"SELECT count(*) FROM {table} WHERE source = 'reddit' AND created_at < %s", (published,))[
            0
        ][0]
    )


def test_backfilled_rows_stay_out_of_analyst_views_until_quality_audits_their_hours_again(
    live: LiveStack, journeys: Journeys
) -> None:
    # The rows of the earlier journeys, enriched, audited and published. No scheduled Reddit run meanwhile.
    live.wait_for(
        "every Reddit run so far has ended",
        lambda: (
            not airflow_db(
                live,
                "SELECT 1 FROM dag_run WHERE dag_id = 'ingest_reddit' AND state NOT IN ('success', 'failed')",
            )
        ),
    )
    for dag_id, paused in (("ingest_reddit", True), ("enrich", False), ("quality", False)):
        live.api.patch(f"/dags/{dag_id}", {"is_paused": paused})
    wait_run(live, "enrich", live.trigger("enrich"), timeout=420)
    wait_run(live, "quality", live.trigger("quality"), timeout=300)
    live.api.patch("/dags/quality", {"is_paused": True})  # no audit until we ask for one
    audited = stack_now(live)
    published = horizon(live, "reddit")
    assert published is not None and published > journeys.hour - 4 * HOUR, published
    seen = analyst_totals(live, "reddit")
    assert seen == (
        _behind(live, "core.documents", published),
        _behind(live, "enriched.document_features", published),
    )

    # The broken items are fixed at the source; a backfill of tick H-4 (window [H-5, H-4): no run had it) lists
    # Reddit back from now and brings them into hours that were audited already.
    sim(live, "config", {"reddit": {"bad_items_ratio": 0.0}})
    live.api.patch("/dags/ingest_reddit", {"is_paused": False})
    tick = journeys.hour - 4 * HOUR
    wait_backfill(live, backfill(live, "ingest_reddit", tick, tick), 1)
    wait_run(live, "enrich", live.trigger("enrich"), timeout=420)
    late = [
        r[0]
        for r in live.query(
            "SELECT external_id FROM core.documents WHERE source = 'reddit' AND created_at < %s"
            " AND first_loaded_at > %s",
            (published, audited),
        )
    ]
    assert late, "the backfill brought no rows into audited hours"
    assert horizon(live, "reddit") == published
    # Not one late row is visible: the totals do not grow (rows the backfill rewrote, e.g. a post whose comment
    # count changed, may be held back too until the re-audit) and no late row can be read.
    volume, sentiment = analyst_totals(live, "reddit")
    assert volume <= seen[0] and sentiment <= seen[1], (
        f"{len(late)} late rows: analysts saw {seen} before the backfill, {(volume, sentiment)} after it"
    )
    visible = "SELECT count(*) FROM published.documents WHERE source = 'reddit' AND external_id = ANY(%s)"
    assert _as_analyst(live, visible, (late,)) == [(0,)]

    # quality finds the hours with late rows by itself: a plain run, no params.
    live.api.patch("/dags/quality", {"is_paused": False})
    wait_run(live, "quality", live.trigger("quality"), timeout=300)
    published = horizon(live, "reddit")
    assert published is not None
    assert analyst_totals(live, "reddit") == (
        _behind(live, "core.documents", published),
        _behind(live, "enriched.document_features", published),
    )
    assert _as_analyst(live, visible, (late,)) == [(len(late),)]


def test_pools_and_budget_protect_the_api_during_a_backfill(live: LiveStack, journeys: Journeys) -> None:
    runs = wait_backfill(live, journeys.x_backfill, 12)
    # Airflow ran the backfill's runs side by side (its max_active_runs 10 overrides the DAG's 2) ...
    spans = airflow_db(
        live, "SELECT start_date, end_date FROM dag_run WHERE backfill_id = %s", (journeys.x_backfill,)
    )
    overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert overlap > 2, f"the backfill never ran more than {overlap} runs at once"

    # ... but no source ever had more requests in flight than its pool has slots,
    slots = {p["name"]: p["slots"] for p in live.api.get("/pools")["pools"]}
    concurrency = sim(live, "concurrency")
    for source in ("x", "reddit", "newsapi"):
        assert 0 < concurrency[source]["max_in_flight"] <= slots[f"{source}_api"], (
            source,
            concurrency,
            slots,
        )

    # ... X was called no more often than its persisted budget allows, and never answered 429,
    stats = sim(live, "stats")["x"]
    assert "429" not in stats["by_status"], stats["by_status"]
    spent = live.query(
        "SELECT bucket_start, used FROM ops.api_budget WHERE source = 'x' AND period_s = 86400"
    )
    assert spent and all(used <= X_BUDGET for _, used in spent), spent
    assert stats["requests"] == sum(used for _, used in spent)

    # ... and the runs the budget could not serve ended cleanly, their windows recorded as gaps.
    gaps = live.query(
        "SELECT DISTINCT dag_run_id FROM ops.coverage WHERE source = 'x' AND reason = 'budget_exhausted'"
        " AND dag_run_id = ANY(%s)",
        (runs,),
    )
    assert gaps, "the budget never ran out"


def test_the_deadline_still_fires_when_the_retried_run_misses_it(live: LiveStack, journeys: Journeys) -> None:
    run = journeys.probe_run
    about = f"*DAG*: `{PROBE}` · *Run*: `{run}`"
    posts = live.wait_for(
        "the probe's deadline alert after its retry",
        lambda: live.messages(containing=f"*Deadline missed* `{PROBE}`"),
        timeout=240,
        about=PROBE,
    )
    assert len(posts) == 1, [p["body"] for p in posts]
    text = posts[0]["body"]["text"]
    assert about in text, text
    assert "state running)" in text, text  # missed while the retry ran: posted, not held back
    ((due, missed, queued_at, clear_number),) = deadlines(live, PROBE, run)
    assert missed and clear_number == 1
    assert timedelta(0) <= queued_at + PROBE_DEADLINE - due < timedelta(minutes=1)  # the moved deadline fired
    events = live.query(
        "SELECT posted FROM ops.alert_events WHERE kind = 'deadline_missed' AND dag_id = %s AND run_id = %s",
        (PROBE, run),
    )
    assert events == [(True,)]
    wait_run(live, PROBE, run)


def test_a_quality_run_triggers_trends_through_its_asset(live: LiveStack, journeys: Journeys) -> None:
    live.api.patch("/dags/trends", {"is_paused": False})
    live.api.patch("/dags/quality", {"is_paused": False})
    before = {r[0] for r in airflow_db(live, "SELECT run_id FROM dag_run WHERE dag_id = 'trends'")}

    def asset_runs() -> list[tuple[Any, ...]] | None:
        rows = airflow_db(
            live, "SELECT run_id, run_type, state FROM dag_run WHERE dag_id = 'trends' ORDER BY queued_at"
        )
        new = [r for r in rows if r[0] not in before]
        return new or None

    wait_run(live, "quality", live.trigger("quality"), timeout=300)
    first = live.wait_for("the Asset-triggered trends run", asset_runs, timeout=240, about="trends")
    run_id, run_type, _ = first[0]
    assert run_type == "asset_triggered", first
    wait_run(live, "trends", run_id, timeout=300)
    published = horizon(live, "reddit")
    assert published is not None
    # What it computed is there for analysts, up to the publication horizon and not past it.
    hours = _as_analyst(
        live,
        "SELECT count(*), max(hour) FROM analytics.trend_source_hours WHERE source = 'reddit'",
    )[0]
    assert hours[0] > 0 and hours[1] < published, (hours, published)
    series = _as_analyst(
        live,
        "SELECT count(*) FROM analytics.trend_hourly WHERE source = 'reddit' AND dimension = 'source'",
    )[0][0]
    assert series > 0
    for view in ("trend_daily", "trend_spikes", "trend_forecasts", "emerging_terms", "github_trending"):
        _as_analyst(live, f"SELECT * FROM analytics.{view} LIMIT 5")
    # Another quality run, nothing new published: the next Asset-triggered run recomputes nothing.
    seen = {r[0] for r in asset_runs() or []}
    wait_run(live, "quality", live.trigger("quality"), timeout=300)
    second = live.wait_for(
        "a second Asset-triggered trends run",
        lambda: [r for r in asset_runs() or [] if r[0] not in seen] or None,
        timeout=240,
        about="trends",
    )
    wait_run(live, "trends", second[0][0], timeout=300)

    def recomputed(run: str) -> dict[str, int]:
        xcom = live.api.get(
            f"/dags/trends/dagRuns/{quote(run)}/taskInstances/compute_trends/xcomEntries/return_value"
        )
        value = xcom["value"]
        out = json.loads(value) if isinstance(value, str) else value
        return {s: v["recomputed_hours"] for s, v in out["sources"].items()}

    # The first run read every published hour; the second only what the clock published since (an hour at
    # most, or a late hour the quality run found).
    once, again = recomputed(run_id), recomputed(second[0][0])
    assert once["reddit"] > 2 and again["reddit"] <= 2, (once, again)


def test_the_health_endpoint_answers_behind_airflow_auth(live: LiveStack) -> None:
    """``GET /pulse/health`` on the api-server: the plugin is listed, no token 401, a token gets the parts."""
    plugins = {p["name"]: p for p in live.api.get("/plugins", limit=100)["plugins"]}
    assert "pulse_health" in plugins, sorted(plugins)
    assert [a["url_prefix"] for a in plugins["pulse_health"]["fastapi_apps"]] == ["/pulse"]
    url = f"{live.api_url}/pulse/health"
    assert requests.get(url, timeout=30).status_code == 401

    def answer() -> tuple[int, dict[str, Any]] | None:
        resp = live.api.session.get(url, timeout=30)
        assert resp.status_code in (200, 503), resp.text
        body = resp.json()
        # The triggerer and dag-processor may heartbeat a little after the stack is up: wait for Airflow.
        return (resp.status_code, body) if body["parts"]["airflow"]["status"] == "healthy" else None

    status, body = live.wait_for("Airflow's part of /pulse/health healthy", answer, timeout=120)
    if body["parts"]["migrations"]["status"] != "healthy":
        # A fresh stack: no DAG ran warehouse_ready yet. Do what the part's detail says, then ask again.
        import subprocess
        import sys

        assert body["failing"] == ["migrations", *body["failing"][1:]], body
        d = live.dsn
        uri = (
            f"postgresql://{d['user']}:{quote(d['password'], safe='')}@{d['host']}:{d['port']}/{d['dbname']}"
        )
        env = {**live.env, "PULSE_WAREHOUSE_DSN": uri}
        subprocess.run(
            [sys.executable, "-m", "pulse.warehouse.migrate", "upgrade"], cwd=ROOT, env=env, check=True
        )
        status, body = live.wait_for("/pulse/health after migrating", answer, timeout=60)
    parts = body["parts"]
    assert parts["migrations"]["status"] == "healthy", parts["migrations"]
    assert {"airflow", "warehouse", "sources", "publication", "object_storage"} <= set(parts), body
    assert parts["warehouse"]["status"] == "healthy", parts["warehouse"]
    assert parts["object_storage"]["status"] == "healthy", parts["object_storage"]
    assert parts["sources"]["status"] in ("healthy", "unhealthy"), parts["sources"]
    assert set(parts["sources"]["sources"]) >= {"reddit", "x", "newsapi"}, parts["sources"]
    assert set(parts["publication"]["sources"]) >= {"reddit", "x", "newsapi"}, parts["publication"]
    assert body["failing"] == [n for n, p in parts.items() if p["status"] == "unhealthy"]
    assert (status == 200) == (body["status"] == "healthy") == (body["failing"] == [])
    text = json.dumps(body)
    leaked = [name for name, value in _secrets(live).items() if len(str(value)) >= 8 and str(value) in text]
    assert not leaked, leaked
    print(f"/pulse/health answered {status}:\n{json.dumps(body, indent=1)}")


def test_pulse_metrics_answer_on_the_running_stack(live: LiveStack) -> None:
    """``GET /pulse/metrics`` on the api-server: Prometheus text, the warehouse up, per-source series present."""
    from prometheus_client.parser import text_string_to_metric_families

    resp = requests.get(f"{live.api_url}/pulse/metrics", timeout=60)  # no PULSE_METRICS_TOKEN on this stack
    assert resp.status_code == 200, resp.text[:500]
    assert resp.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }
    assert samples[("pulse_warehouse_up", ())] == 1.0
    errors = {k: v for k, v in samples.items() if k[0] == "pulse_metrics_scrape_errors" and v}
    assert not errors, errors
    # One series per source analytics.source_health knows (every source that ran, or has a budget or horizon).
    known = {r[0] for r in live.query("SELECT source FROM analytics.source_health")}
    sources = {dict(labels).get("source") for name, labels in samples if name == "pulse_breaker_open"}
    assert sources == known, (sources, known)
