"""The local stack on the CeleryExecutor (``PULSE_EXECUTOR=celery``): Redis, two workers, Flower, the S3 API.

One private stack runs ``make run``'s cycle through the real scheduler and workers (dev/run_cycle.py: every
ingest DAG and ``warehouse_maintenance`` once, ``enrich`` on their Asset events), then ``retention`` (documents
hot 1 day, after an old month was seeded: a fresh stack has nothing old), ``quality`` and ``export`` (the
latest day every source published). Then:

* every run succeeded, and every task ran on the queue ``pulse.queues`` gives it (the TI's ``queue``);
* both workers ran tasks (the TI's ``hostname`` is the worker's name: dev/stack.py ``worker_hostname``),
  and ``airflow celery list-workers`` and Flower list both, each consuming every queue;
* the archives and exports are objects in the moto server's buckets, and ``ops.archives`` / ``ops.exports``
  point there: nothing went to a worker's local folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from pulse import queues
from tests.stack.conftest import ROOT, LiveStack, private_stack

WORKERS = ("worker-1", "worker-2")
TERMINAL = {"success", "failed"}
DAGS = ["ingest_reddit", "enrich", "retention", "quality", "export"]
#: Every DAG of dags/: the cycle runs the ingest DAGs and warehouse_maintenance too.
ALL_DAGS = sorted(p.stem for p in (ROOT / "dags").glob("*.py"))


@pytest.fixture(scope="module")
def live() -> Iterator[LiveStack]:
    with private_stack(
        "pulse-live-celery-", executor="celery", workers=len(WORKERS), wait_dags=ALL_DAGS
    ) as stack:
        yield stack


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def runs_since(live: LiveStack, dag_id: str, since: datetime) -> list[dict[str, Any]]:
    listed = live.api.get(f"/dags/{dag_id}/dagRuns", limit=50, order_by="-run_after")["dag_runs"]
    return [
        r
        for r in listed
        if datetime.fromisoformat(r["queued_at"] or r["run_after"]) >= since or r["state"] not in TERMINAL
    ]


#: How long the runs of one DAG may take (minutes on a loaded machine: retries wait 2 min).
SETTLE = 480.0


def settle(live: LiveStack, dag_id: str, since: datetime, quiet: int = 3) -> list[dict[str, Any]]:
    """Every run of ``dag_id`` queued since ``since``, once all are done and no new one came for a while."""
    calm = [0]

    def probe() -> list[dict[str, Any]] | None:
        try:
            runs = runs_since(live, dag_id, since)
        except requests.RequestException as exc:  # a loaded machine: the api-server answers late; poll again
            print(f"[live-celery] polling {dag_id}: {exc}")
            return None
        done = bool(runs) and all(r["state"] in TERMINAL for r in runs)
        calm[0] = calm[0] + 1 if done else 0
        return runs if calm[0] >= quiet else None

    return live.wait_for(f"the runs of {dag_id} finish", probe, timeout=SETTLE, about=dag_id)


def run_dag(live: LiveStack, dag_id: str, conf: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Unpause ``dag_id``, trigger it (with ``conf``) and wait for all its runs since (a scheduled one too)."""
    since = live.query("SELECT now()")[0][0]
    live.api.patch(f"/dags/{dag_id}", {"is_paused": False})
    live.trigger(dag_id, conf)
    return settle(live, dag_id, since)


def s3_keys(live: LiveStack, bucket: str) -> list[str]:
    import boto3

    secrets = json.loads((live.state / "secrets.json").read_text())
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{live.ports['PULSE_S3_PORT']}",
        aws_access_key_id="pulse",
        aws_secret_access_key=secrets["s3_secret_key"],
        region_name="us-east-1",
    )
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def task_instances(live: LiveStack, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in runs:
        path = f"/dags/{r['dag_id']}/dagRuns/{quote(r['dag_run_id'], safe='')}/taskInstances"
        out += live.api.get(path)["task_instances"]
    return out


def seed_old_month(live: LiveStack, month: datetime, count: int = 20) -> None:
    """Documents in a month long gone (its partition first), so that retention has something to archive: a
    fresh stack holds only this month's data."""
    live.query(
        "SELECT ops.ensure_month_partitions('core.documents'::regclass, %s::date, %s::date)",
        (month.date(), month.date()),
    )
    live.query(
        "INSERT INTO core.documents (source, external_id, kind, created_at, title, body, author_pseudonym,"
        " score, metrics, payload, content_sha256, raw_response_id, dag_run_id)"
        " SELECT 'reddit', 't3_old_' || g, 'post', %s::timestamptz + g * interval '1 minute', 'title ' || g,"
        " 'body ' || g, 'p' || g, g, '{}'::jsonb, '{}'::jsonb, md5(g::text), g, 'seed'"
        " FROM generate_series(1, %s) g RETURNING 1",
        (month + timedelta(days=9), count),
    )


def test_a_cycle_on_two_celery_workers(live: LiveStack) -> None:
    """What ``make run`` runs (dev/run_cycle.py: every ingest DAG once, ``enrich`` on their Asset events),
    then retention (documents hot 1 day, after seeding an old month), quality and export (the latest day all
    sources published)."""
    from dev.run_cycle import FOLLOWERS, TRIGGERED_TOO, ingest_dag_ids, run_cycle, wait_for_followers

    # A loaded machine: the api-server may answer a poll late; GETs are retried instead of failing the test.
    retry = Retry(total=5, connect=3, read=5, backoff_factor=1, allowed_methods=frozenset({"GET"}))
    live.api.session.mount("http://", HTTPAdapter(max_retries=retry))
    t0 = time.monotonic()
    now = live.query("SELECT now()")[0][0]
    since = now
    for dag_id in FOLLOWERS:
        live.api.patch(f"/dags/{dag_id}", {"is_paused": False})
    runs = run_cycle(live.api, ingest_dag_ids() + TRIGGERED_TOO, since=since)
    runs += wait_for_followers(live.api, FOLLOWERS, since)
    old_month = (now.replace(day=1) - timedelta(days=40)).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    seed_old_month(live, old_month)
    runs += run_dag(live, "retention", {"documents_days": 1})
    runs += run_cycle(live.api, ["quality"])
    # The latest day every source has published (a market source's horizon stops at Friday's close over a
    # weekend, so "yesterday", what a scheduled export takes, may not be): exported by hand, like on-call.
    (horizon,) = live.query("SELECT min(published_until) FROM quality.publish_state")[0]
    assert horizon is not None, "quality published nothing"
    runs += run_dag(live, "export", {"day": (horizon.date() - timedelta(days=1)).isoformat()})
    print(f"\n[live-celery] cycle of {len(runs)} runs in {time.monotonic() - t0:.0f} s")

    failed = [(r["dag_id"], r["dag_run_id"], r["state"]) for r in runs if r["state"] != "success"]
    assert not failed, f"{failed}\n{live.diagnostics()}"
    assert set(DAGS) <= {r["dag_id"] for r in runs}

    # Every task on its queue, run by a worker of the stack; both workers worked.
    tis = task_instances(live, runs)
    off = [
        (t["dag_id"], t["task_id"], t["queue"])
        for t in tis
        if t["queue"] != queues.queue_for(t["dag_id"], t["task_id"], t["operator"])
    ]
    assert not off, off
    assert {t["queue"] for t in tis} == set(queues.QUEUE_NAMES)
    hosts = {(t["hostname"] or "").partition("@")[0] for t in tis if t["state"] == "success"}
    by_worker = {w: sum(1 for t in tis if (t["hostname"] or "").startswith(w + "@")) for w in WORKERS}
    print(f"[live-celery] {len(tis)} task instances, per worker: {by_worker}")
    assert hosts == set(WORKERS), f"task hosts {hosts}: both workers must have run tasks ({by_worker})"

    # Archives and exports: objects in the buckets, and the books point there.
    archive_keys, export_keys = s3_keys(live, "pulse-archive"), s3_keys(live, "pulse-exports")
    print(f"[live-celery] {len(archive_keys)} archive objects, {len(export_keys)} export objects")
    assert any(k.endswith(".parquet") for k in archive_keys), archive_keys
    assert export_keys, "the export run wrote no object"
    archived = live.query("SELECT DISTINCT location FROM ops.archives WHERE status = 'dropped'")
    assert archived and all(p.startswith("s3://pulse-archive/") for (p,) in archived), archived
    assert {p.removeprefix("s3://pulse-archive/") for (p,) in archived} <= set(archive_keys)
    exported = live.query("SELECT manifest_path FROM ops.exports")
    assert exported and all(p.startswith("s3://pulse-exports/") for (p,) in exported), exported
    assert not (live.state / "archive").exists() and not (live.state / "exports").exists()


def test_the_workers_are_listed_with_their_queues(live: LiveStack) -> None:
    res = live.airflow_cli("celery", "list-workers", "--output", "json")
    assert res.returncode == 0, res.stdout + res.stderr
    listed = {w["worker_name"].partition("@")[0]: sorted(w["queues"]) for w in json.loads(res.stdout)}
    assert listed == {w: sorted(queues.QUEUE_NAMES) for w in WORKERS}, res.stdout

    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json; from dev import stack; print(json.dumps(stack.celery_workers()))",
        ],
        cwd=ROOT,
        env=live.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    flower = {name.partition("@")[0]: qs for name, qs in json.loads(out).items()}
    assert flower == {w: sorted(queues.QUEUE_NAMES) for w in WORKERS}, out

    status = live.stack("status", 60).stdout
    for name in ("redis", "s3", "flower", *WORKERS):
        assert f"\n{name:14} running pid " in f"\n{status}", status
    assert "executor       celery" in status, status
