"""``make run``: bring the local stack up, run every ingest DAG once through the real scheduler, summarise.

The DAGs are unpaused and triggered through Airflow's REST API like a user would from the UI (a manual run
without a logical date); any scheduled run the scheduler creates on unpausing is waited for too. With
``--once`` the stack stops afterwards and the exit status says whether every run succeeded; otherwise the UI
stays up until Ctrl-C.
"""

from __future__ import annotations

import argparse
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
    raise SystemExit(f"the dag-processor did not register {dag_ids} within {timeout:.0f}s; see .local/logs/")


def run_cycle(api: Api, dag_ids: list[str], timeout: float = 1200) -> list[dict[str, Any]]:
    started = datetime.now(tz=UTC)
    for dag_id in dag_ids:
        api.patch(f"/dags/{dag_id}", {"is_paused": False})
        run = api.post(f"/dags/{dag_id}/dagRuns", {"logical_date": None, "note": "make run"})
        print(f"[run] triggered {dag_id} run {run['dag_run_id']}", flush=True)
    deadline = time.time() + timeout
    while True:
        runs: list[dict[str, Any]] = []
        for dag_id in dag_ids:
            listed = api.get(f"/dags/{dag_id}/dagRuns", limit=50, order_by="-run_after")["dag_runs"]
            runs += [
                r
                for r in listed
                if datetime.fromisoformat(r["queued_at"] or r["run_after"]) >= started
                or r["state"] not in TERMINAL
            ]
        if runs and all(r["state"] in TERMINAL for r in runs):
            return runs
        if time.time() > deadline:
            raise SystemExit(
                f"runs did not finish within {timeout:.0f}s: {[(r['dag_run_id'], r['state']) for r in runs]}"
            )
        time.sleep(3)


def summary(runs: list[dict[str, Any]], up_seconds: float, run_seconds: float) -> str:
    import psycopg

    with psycopg.connect(**stack.warehouse_dsn()) as conn:
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
        enriched = conn.execute(
            """
            SELECT (SELECT count(*) FROM enriched.document_features),
                   (SELECT count(*) FROM enriched.entity_mentions),
                   (SELECT count(*) FROM enriched.enrichment_errors),
                   (SELECT count(*) FROM analytics.duplicate_clusters),
                   (SELECT count(*) FROM enriched.duplicate_clusters)
            """
        ).fetchone()
    state = {r["dag_run_id"]: r["state"] for r in runs}
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
    lines.append("")
    lines.append("warehouse totals (core):")
    lines += [f"  {source:15} {n:>7} rows in core.{table}" for table, source, n in totals]
    lines.append("coverage gaps: " + (", ".join(f"{s} {r}: {n}" for s, r, n in gaps) or "none"))
    lines.append("quarantine totals: " + (", ".join(f"{s}: {n}" for s, n in quarantine) or "none"))
    lines.append(
        f"enriched: {enriched[0]} documents with features, {enriched[1]} entity mentions, {enriched[2]} enricher "
        f"errors; {enriched[3]} duplicate clusters holding {enriched[4]} documents"
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
        f"exports: {exported[0]} mart-days ({exported[2]} days, {exported[1]} rows) in {stack.STATE / 'exports'}; "
        f"webhooks delivered {webhooks[0]}, failed {webhooks[1]}"
    )
    lines.append("archives: " + (", ".join(f"{st} {n}" for st, n in archives) or "none (no data old enough)"))
    slack_file = stack.STATE / "slack" / "messages.jsonl"
    slack_count = len(slack_file.read_text().splitlines()) if slack_file.exists() else 0
    lines += [
        "",
        "where to look:",
        f"  Airflow UI   http://{stack.HOST}:{stack.API_PORT}  (user admin, password in .local/secrets.json)",
        '  warehouse    make psql   or   make psql SQL="select * from ops.ingest_runs"',
        f"  Slack posts  {slack_file} ({slack_count} so far)",
        "  logs         .local/logs/ (services), .local/airflow/logs/ (tasks)",
        "=" * 100,
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--once", action="store_true", help="stop the stack after the cycle")
    args = parser.parse_args(argv)
    t0 = time.time()
    ok = False
    try:
        stack.up()
        t_up = time.time() - t0
        print(f"[run] stack up in {t_up:.0f} s", flush=True)
        api = Api(f"http://{stack.HOST}:{stack.API_PORT}", stack.load_secrets()["airflow_admin_password"])
        dag_ids = ingest_dag_ids() + TRIGGERED_TOO
        wait_for_dags(api, dag_ids + FOLLOWERS + AFTERWARDS)
        t1 = time.time()
        since = datetime.now(tz=UTC)
        for dag_id in FOLLOWERS:  # unpaused first, so the ingest runs' Asset events queue their runs
            api.patch(f"/dags/{dag_id}", {"is_paused": False})
        runs = run_cycle(api, dag_ids)
        runs += wait_for_followers(api, FOLLOWERS, since)
        for dag_id in AFTERWARDS:
            runs += run_cycle(api, [dag_id])
        print(summary(runs, t_up, time.time() - t1), flush=True)
        ok = all(r["state"] == "success" for r in runs)
        if not ok:
            print("[run] some runs failed: see the UI or .local/airflow/logs/", file=sys.stderr)
        if args.once:
            return 0 if ok else 1
        print(
            f"[run] the UI stays up at http://{stack.HOST}:{stack.API_PORT}; Ctrl-C stops the stack",
            flush=True,
        )
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\n[run] stopping", flush=True)
        return 0 if ok else 130
    finally:
        stack.down()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
