"""``make run``: bring the local stack up, run every ingest DAG once through the real scheduler, summarise.

Each DAG runs **once**, as a user who opens the UI for the first time would see it: the DAGs come paused, the
user unpauses them, and Airflow at once runs each one's latest scheduled interval (``catchup=False``). So
``make run`` unpauses each DAG and waits for that scheduled run; it triggers a manual run (no logical date,
like the UI's Trigger button) only for a DAG that gets no scheduled run then (no schedule, or its next tick is
still ahead, e.g. after an earlier ``make run`` on the same state folder). Triggering a manual run *and*
unpausing would run every DAG twice: unpausing creates the scheduled run beside the manual one (AIRFLOW3.md
§12 item 19). ``enrich`` follows the ingest runs through their Asset events, so it is unpaused first (paused
DAGs get no Asset-triggered runs).

With ``--once`` the stack stops afterwards and the exit status says whether every run succeeded; otherwise
the UI stays up until Ctrl-C or ``make stop`` (in another terminal). Either way everything ``make run``
started is stopped before it exits: Ctrl-C exits with status 130, SIGTERM (what ``make stop`` sends) with 143.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from dev import stack

TERMINAL = {"success", "failed"}


def ingest_dag_ids() -> list[str]:
    return sorted(p.stem for p in (stack.ROOT / "dags").glob("ingest_*.py"))


#: DAGs triggered by hand next to the ingest DAGs, and DAGs that follow them through Assets.
TRIGGERED_TOO = ["warehouse_maintenance"]
FOLLOWERS = ["enrich"]
#: Then, one after the other: audit and publish, export what is published, archive what is old.
AFTERWARDS = ["quality", "export", "retention"]
#: DAGs that follow one of AFTERWARDS through an Asset (trends runs on quality's ``published_hours``): unpaused
#: before it, waited for right after it.
FOLLOW_AFTER = {"quality": ["trends"]}


def wait_for_followers(
    api: Api, dag_ids: list[str], since: datetime, timeout: float = 900
) -> list[dict[str, Any]]:
    """Wait until the Asset-triggered runs of ``dag_ids`` queued since ``since`` are done and no new one
    appears for a while (the scheduler queues them as the ingest runs' Asset events arrive)."""
    deadline = time.time() + timeout
    quiet = 0
    while True:
        runs = [
            r
            for dag_id in dag_ids
            for r in api.get(f"/dags/{dag_id}/dagRuns", limit=50, order_by="-run_after")["dag_runs"]
            if datetime.fromisoformat(r["queued_at"] or r["run_after"]) >= since
        ]
        done = bool(runs) and all(r["state"] in TERMINAL for r in runs)
        quiet = quiet + 1 if done else 0
        if quiet >= 3:
            return runs
        if time.time() > deadline:
            raise SystemExit(f"{dag_ids} runs did not finish within {timeout:.0f}s")
        time.sleep(5)


class Api:
    """A small client for Airflow's REST API v2 with a JWT from the simple auth manager."""

    def __init__(self, base: str, password: str) -> None:
        self.base = base
        resp = requests.post(
            f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=30
        )
        resp.raise_for_status()
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def get(self, path: str, **params: Any) -> Any:
        resp = self.session.get(f"{self.base}/api/v2{path}", params=params, timeout=30)
        resp.raise_for_status()
        return resp.json()

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        resp = self.session.patch(f"{self.base}/api/v2{path}", json=body, timeout=30)
        resp.raise_for_status()
        return resp.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        resp = self.session.post(f"{self.base}/api/v2{path}", json=body, timeout=30)
        resp.raise_for_status()
        return resp.json()


def wait_for_dags(api: Api, dag_ids: list[str], timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        errors = api.get("/importErrors").get("import_errors", [])
        if errors:
            details = "\n".join(f"{e['filename']}: {e['stack_trace'][-800:]}" for e in errors)
            raise SystemExit(f"DAG import errors:\n{details}")
        known = {d["dag_id"] for d in api.get("/dags", limit=100).get("dags", [])}
        if set(dag_ids) <= known:
            return
        time.sleep(3)
    raise SystemExit(
        f"the dag-processor did not register {dag_ids} within {timeout:.0f}s; see {stack.STATE / 'logs'}"
    )


def _runs_since(api: Api, dag_id: str, since: datetime) -> list[dict[str, Any]]:
    """The runs of ``dag_id`` queued since ``since``, and any still unfinished."""
    listed = api.get(f"/dags/{dag_id}/dagRuns", limit=50, order_by="-run_after")["dag_runs"]
    return [
        r
        for r in listed
        if datetime.fromisoformat(r["queued_at"] or r["run_after"]) >= since or r["state"] not in TERMINAL
    ]


def trigger(api: Api, dag_id: str, why: str) -> None:
    run = api.post(f"/dags/{dag_id}/dagRuns", {"logical_date": None, "note": f"make run: {why}"})
    print(f"[run] triggered {dag_id} run {run['dag_run_id']} ({why})", flush=True)


def start_runs(api: Api, dag_ids: list[str], since: datetime) -> set[str]:
    """Get each DAG one run of this cycle; returns the DAGs whose scheduled run is awaited.

    A DAG that already has a run queued since ``since`` has its run: the scheduler queues the due tick of an
    unpaused DAG as soon as it starts (a second ``make run`` on the same state folder). Otherwise the DAG is
    unpaused and, if a tick is due, Airflow runs that latest scheduled interval at once; only a DAG with no
    tick due gets a manual run."""
    now = datetime.now(tz=UTC)
    awaited: set[str] = set()
    for dag_id in dag_ids:
        # The DAG before its runs: the scheduler queues the due run and moves this date in one transaction,
        # so a run queued between the two reads shows in the second.
        dag = api.get(f"/dags/{dag_id}")
        due = dag.get("next_dagrun_run_after")
        existing = _runs_since(api, dag_id, since)
        if dag["is_paused"]:
            api.patch(f"/dags/{dag_id}", {"is_paused": False})
        if existing:
            awaited.add(dag_id)
            ids = ", ".join(r["dag_run_id"] for r in reversed(existing))
            print(f"[run] {dag_id}: the scheduler already queued this cycle's run {ids}", flush=True)
        elif due and datetime.fromisoformat(due) <= now:
            awaited.add(dag_id)
            window = (dag.get("next_dagrun_data_interval_start"), dag.get("next_dagrun_data_interval_end"))
            print(
                f"[run] {'unpaused ' if dag['is_paused'] else ''}{dag_id}: Airflow runs its latest scheduled interval "
                + (f"{window[0]} to {window[1]}" if window[0] != window[1] else f"(tick {due})"),
                flush=True,
            )
        else:
            trigger(api, dag_id, "no scheduled run due" + (f" before {due}" if due else ": no schedule"))
    return awaited


def run_cycle(
    api: Api,
    dag_ids: list[str],
    since: datetime | None = None,
    timeout: float = 1200,
    scheduled_wait: float = 120,
) -> list[dict[str, Any]]:
    """Run each of ``dag_ids`` once (see :func:`start_runs`; runs queued since ``since``, default now, count)
    and wait until every run is done.

    A DAG whose scheduled run has not appeared ``scheduled_wait`` seconds after unpausing gets a manual run,
    so the cycle never waits for nothing."""
    started = datetime.now(tz=UTC)
    since = since or started
    awaited = start_runs(api, dag_ids, since)
    deadline = time.time() + timeout
    while True:
        by_dag = {dag_id: _runs_since(api, dag_id, since) for dag_id in dag_ids}
        for dag_id in sorted(awaited):
            if by_dag[dag_id]:
                awaited.discard(dag_id)
            elif (datetime.now(tz=UTC) - started).total_seconds() > scheduled_wait:
                awaited.discard(dag_id)
                trigger(api, dag_id, f"Airflow created no scheduled run within {scheduled_wait:.0f} s")
        runs = [r for dag_runs in by_dag.values() for r in dag_runs]
        if all(by_dag.values()) and all(r["state"] in TERMINAL for r in runs):
            return runs
        if time.time() > deadline:
            raise SystemExit(
                f"runs did not finish within {timeout:.0f}s: {[(r['dag_run_id'], r['state']) for r in runs]}"
            )
        time.sleep(3)


#: What the columns of the summary's table mean (pulse/warehouse/loader.py, pulse/ops.py: ops.ingest_runs).
LEGEND = [
    "columns: pages = API pages fetched for the run's window; items = items in them as the source sent them;",
    "  loaded = rows made of those items that the loader accepted (documents and fact rows: one item can give",
    "    several), once per key, new or already stored alike;",
    "  changed = rows the run wrote: inserted, or rewritten because their content changed (a row delivered",
    "    again unchanged counts in loaded only);",
    "  quar. = items or rows put into quality.quarantine (unparseable, or refused by the loader, e.g.",
    "    archived_period: the month was archived).",
    "why loaded can exceed the rows stored in core: a row delivered again (same key: overlapping windows,",
    "  Alpha Vantage re-sending every day since the listing, forecasts re-issued for the same hour) updates its",
    "  row instead of adding one; and retention, last in the cycle, moves months older than the hot period",
    "  (include/retention.yaml) out of core into archives (counted below), so rows loaded into those months are",
    "  in the archives now. Later runs quarantine rows of archived months (archived_period) instead of loading",
    "  them; replay_quarantine loads them after restore_archive brings the month back.",
    "runs: one per DAG (scheduled__: the latest tick, run on unpausing; manual__: no tick was due); a DAG whose",
    "  next tick came during the cycle ran that tick too (the DAGs stay unpaused, as in production).",
]


def executor_lines() -> list[str]:
    """The executor, and with Celery the workers with the queues each consumes (Flower's API) and Flower."""
    if stack.EXECUTOR != "celery":
        return ["executor: LocalExecutor (the scheduler runs the tasks; PULSE_EXECUTOR=celery for Celery)"]
    lines = [
        f"executor: CeleryExecutor, broker Redis {stack.HOST}:{stack.REDIS_PORT}, {stack.CELERY_WORKERS} workers:"
    ]
    try:
        workers = stack.celery_workers()
    except (OSError, requests.RequestException) as exc:
        workers = {}
        lines.append(f"  (Flower did not answer: {exc}; `airflow celery list-workers` lists them)")
    lines += [f"  {name:24} queues {', '.join(queues) or '(none)'}" for name, queues in workers.items()]
    lines.append(
        f"  Flower       http://{stack.HOST}:{stack.FLOWER_PORT}  (user admin, password flower_password in "
        f"{stack.STATE / 'secrets.json'})"
    )
    return lines


def task_placements(api: Api, runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The task instances of each run (``run id -> [task instance]``): their queue and host (the worker)."""
    from urllib.parse import quote

    return {
        r["dag_run_id"]: api.get(
            f"/dags/{r['dag_id']}/dagRuns/{quote(r['dag_run_id'], safe='')}/taskInstances"
        )["task_instances"]
        for r in runs
    }


def placement_lines(placements: dict[str, list[dict[str, Any]]], runs: list[dict[str, Any]]) -> list[str]:
    """Per run, each task's queue and the worker that ran it (the TI's hostname; with Celery the worker's
    name, ``worker-1@host``: dev/stack.py worker_hostname), and the tasks per worker."""
    lines = ["tasks: queue @ the worker that ran it (the task instance's hostname)"]
    per_worker: dict[str, int] = {}
    for r in runs:
        tis = sorted(
            placements.get(r["dag_run_id"], []), key=lambda t: (t.get("start_date") or "", t["task_id"])
        )
        cells = []
        for ti in tis:
            host = ti.get("hostname") or "-"
            task = ti["task_id"] + (f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else "")
            cells.append(
                f"{task} {ti.get('queue') or '-'} @ {host}"
                + (f" try {ti['try_number']}" if ti.get("try_number", 1) > 1 else "")
            )
            if ti.get("hostname"):
                per_worker[host] = per_worker.get(host, 0) + 1
        lines.append(f"  {r['dag_id']:22} " + ("; ".join(cells) or "no tasks"))
    lines.append(
        "tasks per worker: " + (", ".join(f"{h} {n}" for h, n in sorted(per_worker.items())) or "none")
    )
    return lines


def summary(
    runs: list[dict[str, Any]],
    up_seconds: float,
    run_seconds: float,
    placements: dict[str, list[dict[str, Any]]] | None = None,
) -> str:
    import psycopg

    with psycopg.connect(**stack.warehouse_dsn()) as conn:
        if conn.execute("SELECT to_regclass('ops.ingest_runs') IS NULL").fetchone()[0]:
            # The warehouse migrates itself in every Pulse DAG's first task (warehouse_ready); a cycle of DAGs
            # without it (e.g. `make run DAGS=<a test probe>`) leaves it empty: say so instead of failing.
            lines = [f"{r['dag_id']} {r['dag_run_id']}: {r['state']}" for r in runs]
            lines.append("warehouse: not migrated yet (no DAG of this cycle ran warehouse_ready)")
            return "\n".join(lines)
        rows = conn.execute(
            """
            SELECT dag_id, dag_run_id, source, window_start, window_end, pages, items, loaded, changed,
                   quarantined
            FROM ops.ingest_runs WHERE dag_run_id = ANY(%s) ORDER BY dag_id, window_end
            """,
            ([r["dag_run_id"] for r in runs],),
        ).fetchall()
        totals = conn.execute(
            """
            SELECT 'documents', source, count(*) FROM core.documents GROUP BY 2
            UNION ALL SELECT 'market_bars', source, count(*) FROM core.market_bars GROUP BY 2
            UNION ALL SELECT 'weather_observations', source, count(*) FROM core.weather_observations GROUP BY 2
            UNION ALL SELECT 'github_repo_snapshots', source, count(*) FROM core.github_repo_snapshots GROUP BY 2
            ORDER BY 2, 1
            """
        ).fetchall()
        gaps = conn.execute(
            "SELECT source, reason, count(*) FROM ops.coverage WHERE status = 'gap' GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        quarantine = conn.execute(
            "SELECT source, count(*) FROM quality.quarantine GROUP BY 1 ORDER BY 1"
        ).fetchall()
        published = conn.execute(
            "SELECT source, published_until, held_windows FROM analytics.publication ORDER BY 1"
        ).fetchall()
        exported = conn.execute(
            "SELECT count(*), coalesce(sum(rows), 0), count(DISTINCT day) FROM ops.exports"
        ).fetchone()
        webhooks = conn.execute(
            "SELECT count(*) FILTER (WHERE ok), count(*) FILTER (WHERE NOT ok) FROM ops.webhook_deliveries"
        ).fetchone()
        archives = conn.execute("SELECT status, count(*) FROM ops.archives GROUP BY 1 ORDER BY 1").fetchall()
        # Rows that retention moved out of PostgreSQL: the latest manifest row of each period says "dropped".
        archived = conn.execute(
            """
            SELECT relation, count(*), sum(rows) FROM (
                SELECT DISTINCT ON (relation, period_start) relation, status, rows FROM ops.archives
                 WHERE relation LIKE 'core.%' ORDER BY relation, period_start, id DESC
            ) latest WHERE status = 'dropped' GROUP BY 1 ORDER BY 1
            """
        ).fetchall()
        enriched = conn.execute(
            """
            SELECT (SELECT count(*) FROM enriched.document_features),
                   (SELECT count(*) FROM enriched.entity_mentions),
                   (SELECT count(*) FROM enriched.enrichment_errors),
                   (SELECT count(*) FROM analytics.duplicate_clusters),
                   (SELECT count(*) FROM enriched.duplicate_clusters)
            """
        ).fetchone()
        trends = conn.execute(
            """
            SELECT (SELECT count(*) FROM analytics.trend_series),
                   (SELECT count(*) FROM analytics.trend_series_hourly),
                   (SELECT count(*) FILTER (WHERE observed) FROM analytics.trend_source_hours),
                   (SELECT count(*) FILTER (WHERE NOT observed) FROM analytics.trend_source_hours),
                   (SELECT count(*) FROM analytics.trend_spikes),
                   (SELECT count(*) FROM analytics.trend_spikes WHERE alerted_at IS NOT NULL),
                   (SELECT count(DISTINCT (source, dimension, key)) FROM analytics.trend_forecasts)
            """
        ).fetchone()
    state = {r["dag_run_id"]: r["state"] for r in runs}
    storage = stack.storage_env()
    lines = [
        "",
        "=" * 100,
        f"Pulse cycle: stack up in {up_seconds:.0f} s, DAG runs done {run_seconds:.0f} s after triggering",
        "",
    ]
    lines.append(
        f"{'dag / run':58} {'state':8} {'pages':>5} {'items':>6} {'loaded':>6} {'changed':>7} {'quar.':>5}"
    )
    by_run = {(row[0], row[1]): row for row in rows}
    for r in runs:
        row = by_run.get((r["dag_id"], r["dag_run_id"]))
        nums = (
            f"{row[5]:>5} {row[6]:>6} {row[7]:>6} {row[8]:>7} {row[9]:>5}"
            if row
            else "    -      -      -       -     -"
        )
        lines.append(f"{r['dag_id'] + ' ' + r['dag_run_id']:58.58} {state[r['dag_run_id']]:8} {nums}")
        if row:
            lines.append(f"    window {row[3]:%Y-%m-%d %H:%M} to {row[4]:%Y-%m-%d %H:%M} UTC")
    lines += ["", *executor_lines()]
    if placements is not None:
        lines += placement_lines(placements, runs)
    lines += ["", *LEGEND, "", "warehouse totals (core):"]
    lines += [f"  {source:15} {n:>7} rows in core.{table}" for table, source, n in totals]
    lines += [
        f"  {'(archived)':15} {rows:>7} rows of core.{relation.split('.', 1)[1]} in {months} archived periods"
        for relation, months, rows in archived
    ]
    lines.append("coverage gaps: " + (", ".join(f"{s} {r}: {n}" for s, r, n in gaps) or "none"))
    lines.append("quarantine totals: " + (", ".join(f"{s}: {n}" for s, n in quarantine) or "none"))
    lines.append(
        f"enriched: {enriched[0]} documents with features, {enriched[1]} entity mentions, {enriched[2]} enricher "
        f"errors; {enriched[3]} duplicate clusters holding {enriched[4]} documents"
    )
    lines.append(
        f"trends: {trends[0]} series, {trends[1]} series-hours over {trends[2]} observed source hours "
        f"({trends[3]} in coverage gaps); {trends[4]} spike episodes ({trends[5]} posted to Slack); "
        f"forecasts for {trends[6]} series (analytics.trend_hourly, analytics.trend_spikes, docs/trends.md)"
    )
    lines.append(
        "published (analyst views): "
        + (
            ", ".join(
                f"{s} to {u:%Y-%m-%d %H:%M}" + (f" ({h} held)" if h else "") if u else f"{s} (held)"
                for s, u, h in published
            )
            or "nothing yet"
        )
    )
    lines.append(
        f"exports: {exported[0]} mart-days ({exported[2]} days, {exported[1]} rows) in {storage['PULSE_EXPORT_URL']}; "
        f"webhooks delivered {webhooks[0]}, failed {webhooks[1]}"
    )
    lines.append(
        "archives: "
        + (", ".join(f"{st} {n}" for st, n in archives) or "none (no data old enough)")
        + f" in {storage['PULSE_ARCHIVE_URL']}"
    )
    slack_file = stack.STATE / "slack" / "messages.jsonl"
    slack_count = len(slack_file.read_text().splitlines()) if slack_file.exists() else 0
    lines += [
        "",
        "where to look:",
        f"  Airflow UI   http://{stack.HOST}:{stack.API_PORT}  (user admin, password in {stack.STATE / 'secrets.json'})",
        '  warehouse    make psql   or   make psql SQL="select * from ops.ingest_runs"',
        f"  Slack posts  {slack_file} ({slack_count} so far)",
        f"  object store S3 API http://{stack.HOST}:{stack.S3_PORT} (connection {stack.S3_CONN_ID}; a moto "
        f"server: `make stop` saves its objects to {stack.STATE / 's3'})",
        f"  logs         {stack.STATE / 'logs'} (services), {stack.STATE / 'airflow' / 'logs'} (tasks)",
        "=" * 100,
    ]
    return "\n".join(lines)


class Terminated(BaseException):
    """SIGTERM or SIGHUP reached ``make run`` (``make stop`` sends SIGTERM); like KeyboardInterrupt, not an
    Exception, so no ``except Exception`` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminated(signum: int, frame: Any) -> None:
    raise Terminated(signum)


def stay_up(poll: float = 5.0) -> int:
    """Keep the stack up until a signal ends ``make run``; return 1 if a service exits meanwhile (a Celery
    worker may: the others serve its queues; only when none is left)."""
    names = [svc.name for svc in stack.services()]
    workers = [name for name in names if name.startswith("worker-")]
    reported: set[str] = set()
    while True:
        time.sleep(poll)
        gone = [name for name in names if not stack.running_pid(name)]
        dead = [name for name in gone if name in workers]
        if dead and len(dead) < len(workers):
            lost = [name for name in dead if name not in reported]
            if lost:
                reported.update(lost)
                print(
                    f"[run] {', '.join(lost)} stopped (see {stack.STATE / 'logs'}); the other workers serve "
                    "its queues, the stack stays up",
                    file=sys.stderr,
                    flush=True,
                )
            gone = [name for name in gone if name not in workers]
        if gone:
            print(
                f"[run] {', '.join(gone)} stopped without make run (see {stack.STATE / 'logs'}); "
                "stopping the rest of the stack",
                file=sys.stderr,
                flush=True,
            )
            return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--once", action="store_true", help="stop the stack after the cycle")
    parser.add_argument(
        "--dags",
        nargs="+",
        metavar="DAG_ID",
        help="run only these DAGs, each once (no enrich, quality, export, retention afterwards)",
    )
    args = parser.parse_args(argv)
    t0 = time.time()
    #: Runs queued from here on belong to this cycle (the scheduler queues due ticks as soon as it starts).
    cycle_start = datetime.now(tz=UTC)
    ok = False
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _terminated)
    stack.register_runner()
    code = 1
    try:
        stack.up()
        t_up = time.time() - t0
        print(f"[run] stack up in {t_up:.0f} s", flush=True)
        for line in executor_lines():
            print(f"[run] {line}", flush=True)
        api = Api(f"http://{stack.HOST}:{stack.API_PORT}", stack.load_secrets()["airflow_admin_password"])
        if args.dags:
            dag_ids, followers, afterwards = list(args.dags), [], []
        else:
            dag_ids, followers, afterwards = ingest_dag_ids() + TRIGGERED_TOO, FOLLOWERS, AFTERWARDS
        wait_for_dags(
            api, dag_ids + followers + afterwards + [f for a in afterwards for f in FOLLOW_AFTER.get(a, [])]
        )
        t1 = time.time()
        since = datetime.now(tz=UTC)
        for dag_id in followers:  # unpaused first, so the ingest runs' Asset events queue their runs
            api.patch(f"/dags/{dag_id}", {"is_paused": False})
        runs = run_cycle(api, dag_ids, since=cycle_start)
        if followers:
            runs += wait_for_followers(api, followers, since)
        for dag_id in afterwards:
            chained = FOLLOW_AFTER.get(dag_id, [])
            for follower in chained:
                api.patch(f"/dags/{follower}", {"is_paused": False})
            started = datetime.now(tz=UTC)
            runs += run_cycle(api, [dag_id])
            if chained:
                runs += wait_for_followers(api, chained, started)
        print(summary(runs, t_up, time.time() - t1, task_placements(api, runs)), flush=True)
        ok = all(r["state"] == "success" for r in runs)
        if not ok:
            print(
                f"[run] some runs failed: see the UI or {stack.STATE / 'airflow' / 'logs'}", file=sys.stderr
            )
        code = 0 if ok else 1
        if args.once:
            return code
        print(
            f"[run] the UI stays up at http://{stack.HOST}:{stack.API_PORT}; Ctrl-C here or `make stop` "
            "elsewhere stops the stack",
            flush=True,
        )
        code = stay_up()
        return code
    except KeyboardInterrupt:
        print("\n[run] Ctrl-C: stopping everything make run started", flush=True)
        code = 130
        return code
    except Terminated as exc:
        name = signal.Signals(exc.signum).name
        print(f"[run] {name} (`make stop` sends SIGTERM): stopping everything make run started", flush=True)
        code = 128 + exc.signum
        return code
    finally:
        # No second Ctrl-C may cut the clean-up short and leave services behind; it is bounded (down's
        # grace periods) and says what it does.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        try:
            stack.down()
            stack.reap_children()
        finally:
            stack.unregister_runner()
        print(f"[run] stopped; exit status {code}", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
