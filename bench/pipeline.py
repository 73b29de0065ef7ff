"""Pipeline load test: the whole pipeline on a private stack, the simulator at volume, hours of backfill.

Method. For each configuration (``local``: LocalExecutor; ``celery1`` / ``celery2``: CeleryExecutor with one or
two workers, ``PULSE_EXECUTOR=celery`` and ``PULSE_CELERY_WORKERS`` of dev/stack.py), one after the other in
the same run:

1. A private stack (``dev.stack up`` in a fresh state folder on free ports, as tests/stack/conftest.py does;
   never the developer's ``.local``) with ``PULSE_SOURCES_FILE`` pointing at a generated sources file that
   asks for many streams (``--scale`` multiplies them: subreddits, queries, repositories, cities) and
   generous API budgets (the bench measures the pipeline, not the vendors' free plans; docs/scaling.md
   works out what the real budgets allow). The simulator is configured through ``/_sim/config`` to serve
   thousands of items per hour per source (:func:`sim_config`).
2. The ingest DAGs, ``enrich`` (Asset-triggered by the loads) and ``quality`` are unpaused, and one backfill
   per ingest DAG over the last ``--hours`` hours is created through ``POST /api/v2/backfills``. While the
   backfills run, a ``quality`` run is triggered whenever none is queued or running (an hourly audit that
   keeps up as fast as it can: what an item waits for before it is published). When every backfill is done
   and the enrich runs are quiet, a last ``quality`` run publishes what is left; with ``--hours 24`` the
   backfill is exactly yesterday (UTC) and an ``export`` run of that day follows.
3. Measured from Airflow's REST API (task instances and runs) and the warehouse (``ops.ingest_runs``,
   ``enriched.document_features``, ``quality.hour_audits``, ``ops.exports``):

   * ``items/h end to end``: new items stored (documents and weather rows first loaded during the run) /
     wall time from the backfills' creation to the end of the last quality run (publishing included), per
     hour. ``items loaded`` also counts what runs fetched again (a newest-first listing such as Reddit's is
     paged from now back to the window's start, so a backfill re-fetches everything newer).
   * ``<stage> items/s``: per task instance, items handled / its duration; median over task instances.
     extract: ``ops.ingest_runs.items``; load: ``.loaded``; enrich: features written during the task;
     quality: documents of the hours the audit published; export: ``ops.exports.rows``.
   * ``sched delay s``: a task instance's start minus the moment it became runnable (the end of the task
     before it in its run, or the run's start for the first task); median, and p95.
   * ``queue->start s``: start minus ``queued_when`` (the executor's pick-up and the task process start).
   * ``task overhead s``: the duration of the no-op-ish setup task ``warehouse_ready`` (cheap at head) when
     the DAGs have it, else the shortest task's duration.
   * ``freshness min``: posted at the source -> visible in ``published.documents``, as it would be live
     with the audit running continuously: (the source's next hourly tick - ``created_at``: the wait for the
     schedule) + (the item's hour's ``published_at`` - the ``queued_at`` of the ingest run that loaded it:
     scheduler, extract, load, enrich and the audit). Medians over the items of the ingested period. The
     direct ``published_at - created_at`` of a backfill would measure how old the backfilled hour is; the
     shipped hourly ``quality`` schedule (minute 10) adds its own wait (docs/scaling.md).

Medians over task instances and items of one configuration; configurations side by side in one run; the
table's last columns are ratios between configurations (celery2/celery1, celery1/local). The load average
(1 min) is sampled every few seconds during each configuration. Usage: ``make bench BENCHES=pipeline`` or
``python -m bench.pipeline [--hours 3] [--scale 1] [--configs local,celery1,celery2]``; a quick run:
``--hours 2 --scale 0.5 --configs local``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: The sources driven by the bench. Alpha Vantage is left out: its window is a day and its free quota 25
#: calls a day, so hours of backfill give it nothing to do (docs/scaling.md).
SOURCES = ("reddit", "x", "newsapi", "github", "openweathermap")
CONFIGS: dict[str, dict[str, str]] = {
    "local": {"PULSE_EXECUTOR": "local"},
    "celery1": {"PULSE_EXECUTOR": "celery", "PULSE_CELERY_WORKERS": "1"},
    "celery2": {"PULSE_EXECUTOR": "celery", "PULSE_CELERY_WORKERS": "2"},
}
TERMINAL = {"success", "failed", "skipped", "upstream_failed", "removed"}
SETUP_TASK = "warehouse_ready"

# Per stream and simulated hour at --scale 1: reddit 8 subreddits x (100 posts + 300 comments) = 3,200/h;
# x 6 queries x 500 = 3,000/h; newsapi 6 queries x 500 = 3,000/h (+ headlines); github 6 repositories x
# (500 events + 20 issues) = 3,120/h; openweathermap 24 cities (1 observation + 40 forecast rows each).
STREAMS = {"reddit": 8, "x": 6, "newsapi": 6, "github": 6, "openweathermap": 24}
RATES = {
    "reddit": {"posts_per_hour": 100, "comments_per_hour": 300},
    "x": {"tweets_per_hour": 500},
    "newsapi": {"articles_per_hour": 500, "headlines_per_hour": 20},
    "github": {"events_per_hour": 500, "issues_per_hour": 20},
}
WORDS = [
    "data",
    "python",
    "cloud",
    "market",
    "storm",
    "release",
    "crypto",
    "ml",
    "infra",
    "ops",
    "web",
    "sec",
]


# ------------------------------------------------------------------------------------------------
# configuration of the pipeline and the simulator (pure)
# ------------------------------------------------------------------------------------------------


def n_streams(source: str, scale: float) -> int:
    """How many streams (subreddits, queries, repositories, cities) ``source`` gets at ``scale``."""
    return max(1, round(STREAMS[source] * scale))


def sources_file(scale: float) -> dict[str, Any]:
    """The generated sources file (the same schema as include/sources.yaml, validated by pulse.config)."""
    words = [f"{w}{i // len(WORDS) or ''}" for i, w in enumerate(WORDS * 20)]
    cities = [
        {
            "name": f"City{i:03d}",
            "country": "GB",
            "lat": round(-60 + (i * 7.3) % 120, 4),
            "lon": round(-170 + (i * 13.7) % 340, 4),
        }
        for i in range(n_streams("openweathermap", scale))
    ]
    generous = [{"per_seconds": 60, "calls": 100_000}]
    return {
        "reddit": {
            "conn_id": "reddit_default",
            "subreddits": [f"bench_{w}" for w in words[: n_streams("reddit", scale)]],
            "listings": ["new", "comments"],
            "page_size": 100,
        },
        "x": {
            "conn_id": "x_default",
            "queries": [f"{w} lang:en -is:retweet" for w in words[: n_streams("x", scale)]],
            "max_results": 100,
        },
        "newsapi": {
            "conn_id": "newsapi_default",
            "queries": [f"{w} news" for w in words[: n_streams("newsapi", scale)]],
            "top_headlines": [{"country": "us", "category": "technology"}],
            "page_size": 100,
        },
        "github": {
            "conn_id": "github_default",
            "repositories": [f"benchorg/{w}-repo" for w in words[: n_streams("github", scale)]],
            "search_max_items": 100,
        },
        "openweathermap": {"conn_id": "openweathermap_default", "cities": cities, "forecast": True},
        "alphavantage": {
            "conn_id": "alphavantage_default",
            "stocks": ["IBM"],
            "intraday_interval": "60min",
            "crypto": [{"symbol": "BTC", "market": "EUR"}],
        },
        "budgets": dict.fromkeys(SOURCES, generous),
        "circuit_breaker": {"failures": 3, "cool_down_minutes": 60},
    }


def sim_config(scale: float, hours: int) -> dict[str, Any]:
    """The simulator at volume. Listings that page newest-first (Reddit's, GitHub's events) reach back far
    enough for ``hours`` of backfill plus slack; the simulated vendors' own rate limits are lifted."""
    reach = hours + 3
    reddit_per_hour = sum(RATES["reddit"].values()) * n_streams("reddit", scale)
    return {
        "reddit": {**RATES["reddit"], "listing_cap": reddit_per_hour * reach, "ratelimit_budget": 1_000_000},
        "x": {**RATES["x"], "ratelimit_budget": 1_000_000},
        # 0: no cap on results per query (a paid plan; the Developer plan's 100 would cap every query's hour).
        "newsapi": {**RATES["newsapi"], "max_results": 0},
        "github": {
            **RATES["github"],
            "events_cap": min(100_000, RATES["github"]["events_per_hour"] * reach),
            "ratelimit_budget": 1_000_000,
        },
    }


def backfill_range(now: datetime, hours: int) -> tuple[datetime, datetime]:
    """Logical dates (both inclusive) of the backfill: ``hours`` hourly ticks of each ingest DAG before the
    latest one (which unpausing runs, ``catchup=False``): the windows of the hours before the current one.
    ``hours >= 24``: every tick whose window touches yesterday (UTC), so the whole day is ingested and an
    export of it can follow (ticks at minute m cover [tick - 1 h, tick): the day needs 00:mm to 00:mm)."""
    top = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if hours >= 24:
        day = top.replace(hour=0) - timedelta(days=1)
        return day, day + timedelta(hours=24, minutes=59)
    return top - timedelta(hours=hours), top - timedelta(minutes=1)


# ------------------------------------------------------------------------------------------------
# aggregation (pure; tests/bench/test_pipeline_bench.py)
# ------------------------------------------------------------------------------------------------


def ts(value: str | None) -> datetime | None:
    """An API timestamp (ISO 8601, ``Z`` or offset) as an aware datetime."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def median(values: Iterable[float]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def quantile(values: Iterable[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank) of ``values``; None when empty."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    return vals[min(len(vals) - 1, max(0, round(q * (len(vals) - 1))))]


def weighted_median(pairs: Iterable[tuple[float, int]]) -> float | None:
    """The median of values given as (value, how many items have it)."""
    items = sorted((v, w) for v, w in pairs if w > 0)
    total = sum(w for _, w in items)
    if not total:
        return None
    seen = 0
    for value, weight in items:
        seen += weight
        if seen * 2 >= total:
            return value
    return items[-1][0]


def scheduler_delays(
    tis: Sequence[Mapping[str, Any]],
    runs: Mapping[tuple[str, str], Mapping[str, Any]],
    task_id: str | None = None,
) -> list[float]:
    """Per task instance (of ``task_id`` only, when given): its start minus when it became runnable (the
    latest end of a task of the same run that ended before it started, else the run's start). Task instances
    that never started are left out."""
    by_run: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for ti in tis:
        by_run.setdefault((ti["dag_id"], ti["dag_run_id"]), []).append(ti)
    out = []
    for key, group in by_run.items():
        run = runs.get(key, {})
        run_start = ts(run.get("start_date"))
        for ti in group:
            start = ts(ti.get("start_date"))
            if start is None or (task_id is not None and ti["task_id"] != task_id):
                continue
            ends = [
                ts(o["end_date"])
                for o in group
                if o is not ti and o.get("end_date") and ts(o["end_date"]) <= start
            ]
            ready = max(ends) if ends else run_start
            if ready is not None:
                out.append(max(0.0, (start - ready).total_seconds()))
    return out


def queue_delays(tis: Sequence[Mapping[str, Any]]) -> list[float]:
    """Per task instance: start minus ``queued_when`` (executor pick-up and process start)."""
    out = []
    for ti in tis:
        start, queued = ts(ti.get("start_date")), ts(ti.get("queued_when"))
        if start and queued:
            out.append(max(0.0, (start - queued).total_seconds()))
    return out


def rates(
    tis: Sequence[Mapping[str, Any]], task_id: str, items: Mapping[tuple[str, str], int]
) -> list[float]:
    """items/s of each successful ``task_id`` instance whose run has an item count (``items[(dag, run)]``)."""
    out = []
    for ti in tis:
        if ti["task_id"] != task_id or ti.get("state") != "success" or not ti.get("duration"):
            continue
        n = items.get((ti["dag_id"], ti["dag_run_id"]))
        if n is not None:
            out.append(n / float(ti["duration"]))
    return out


@dataclass
class Result:
    """What one configuration measured."""

    config: str
    metrics: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


#: The table's rows: (metric key, label, format, higher is better).
METRICS: list[tuple[str, str, str]] = [
    ("items", "items loaded (incl. re-fetched)", "{:,.0f}"),
    ("new_items", "new items stored", "{:,.0f}"),
    ("wall_s", "wall s (backfill -> published)", "{:,.0f}"),
    ("items_per_hour", "items/h end to end", "{:,.0f}"),
    ("data_hours_per_hour", "data hours per wall hour", "{:,.1f}"),
    ("extract_rate", "extract items/s (median TI)", "{:,.0f}"),
    ("load_rate", "load items/s (median TI)", "{:,.0f}"),
    ("enrich_rate", "enrich items/s (median TI)", "{:,.0f}"),
    ("quality_rate", "quality items/s (median TI)", "{:,.0f}"),
    ("export_rate", "export rows/s (median TI)", "{:,.0f}"),
    ("sched_delay", "sched delay s (median)", "{:,.1f}"),
    ("sched_delay_p95", "sched delay s (p95)", "{:,.1f}"),
    ("sched_delay_extract", "sched delay of extract s (median)", "{:,.1f}"),
    ("queue_delay", "queued->start s (median)", "{:,.1f}"),
    ("overhead", "task overhead s (median)", "{:,.1f}"),
    ("tick_wait_min", "freshness: wait for tick min", "{:,.1f}"),
    ("processing_min", "freshness: run -> published min", "{:,.1f}"),
    ("freshness_min", "freshness min (median, live)", "{:,.1f}"),
    ("published_pct", "items published %", "{:,.1f}"),
    ("task_instances", "task instances", "{:,.0f}"),
    ("failed_tis", "failed task instances", "{:,.0f}"),
    ("load1_median", "load average 1 min (median)", "{:,.2f}"),
    ("load1_max", "load average 1 min (max)", "{:,.2f}"),
]


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else spec.format(value)


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}x"


def render_table(results: Sequence[Result]) -> str:
    """One Markdown table: metric x configuration, then ratios between neighbouring configurations."""
    names = [r.config for r in results]
    pairs = [(names[i + 1], names[i]) for i in range(len(names) - 1)]
    head = ["metric", *names, *(f"{a}/{b}" for a, b in pairs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by = {r.config: r.metrics for r in results}
    for key, label, spec in METRICS:
        cells = [fmt(by[n].get(key), spec) for n in names]
        cells += [ratio(by[a].get(key), by[b].get(key)) for a, b in pairs]
        lines.append("| " + " | ".join([label, *cells]) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# driving a stack
# ------------------------------------------------------------------------------------------------


class LoadSampler(threading.Thread):
    """Samples the 1-minute load average every ``every`` seconds until stopped."""

    def __init__(self, every: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.samples: list[float] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> None:
        self._stop_event.set()


def log(msg: str) -> None:
    print(f"[pipeline {datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


def celery_available() -> bool:
    """True once dev/stack.py knows PULSE_EXECUTOR (the CeleryExecutor stack)."""
    return "PULSE_EXECUTOR" in (ROOT / "dev" / "stack.py").read_text()


class PatientApi:
    """The REST client of dev.run_cycle, patient with an api-server starved of CPU: a GET that times out or
    finds no connection is retried (a loaded 2-core machine answered in more than 30 s at times)."""

    def __init__(self, api: Any, tries: int = 6, pause: float = 10.0) -> None:
        self.api, self.tries, self.pause = api, tries, pause

    def get(self, path: str, **params: Any) -> Any:
        import requests

        for attempt in range(1, self.tries + 1):
            try:
                return self.api.get(path, **params)
            except (requests.ConnectionError, requests.Timeout):
                if attempt == self.tries:
                    raise
                log(f"GET {path} timed out (attempt {attempt}); retrying")
                time.sleep(self.pause)
        raise AssertionError("unreachable")

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.api.post(path, body)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self.api.patch(path, body)


def all_pages(api: Any, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        page = api.get(path, limit=100, offset=len(out), **params)
        out.extend(page[key])
        if len(page[key]) < 100 or len(out) >= page.get("total_entries", 0):
            return out


def task_instances(api: Any, dag_ids: list[str], since: datetime) -> list[dict[str, Any]]:
    """Every task instance of ``dag_ids`` whose run was queued since ``since`` (batch endpoint, paged)."""
    out: list[dict[str, Any]] = []
    while True:
        page = api.post(
            "/dags/~/dagRuns/~/taskInstances/list",
            {"dag_ids": dag_ids, "page_offset": len(out), "page_limit": 100},
        )
        out.extend(page["task_instances"])
        if len(page["task_instances"]) < 100:
            break
    runs = dag_runs(api, dag_ids, since)
    return [ti for ti in out if (ti["dag_id"], ti["dag_run_id"]) in runs]


def dag_runs(api: Any, dag_ids: list[str], since: datetime) -> dict[tuple[str, str], dict[str, Any]]:
    """The runs of ``dag_ids`` queued since ``since`` (the API filters on updated_at; queued_at here)."""
    return {
        (r["dag_id"], r["dag_run_id"]): r
        for dag_id in dag_ids
        for r in all_pages(api, f"/dags/{dag_id}/dagRuns", "dag_runs", updated_at_gte=since.isoformat())
        if r.get("queued_at") and ts(r["queued_at"]) >= since
    }


def active_runs(api: Any, dag_id: str) -> int:
    page = api.get(f"/dags/{dag_id}/dagRuns", limit=1, state=["queued", "running"])
    return int(page["total_entries"])


def wait_quiet(api: Any, dag_ids: list[str], timeout: float, sampler_every: float = 5.0) -> None:
    """Until no run of ``dag_ids`` is queued or running three polls in a row."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 3:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{dag_ids} still busy after {timeout:.0f}s")
        quiet = quiet + 1 if all(active_runs(api, d) == 0 for d in dag_ids) else 0
        time.sleep(sampler_every)


def trigger(api: Any, dag_id: str, conf: dict[str, Any] | None = None) -> str:
    run = api.post(f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
    return str(run["dag_run_id"])


def drive(live: Any, args: argparse.Namespace, result: Result) -> tuple[datetime, datetime, str | None]:
    """Unpause, create the backfills, keep quality publishing, wait; returns (t0, t_end, export day)."""
    import requests

    api = PatientApi(live.api)
    ingest = [f"ingest_{s}" for s in SOURCES]
    start, end = backfill_range(datetime.now(UTC), args.hours)
    t0 = datetime.now(UTC)
    for dag_id in ["enrich", "quality", *ingest]:
        api.patch(f"/dags/{dag_id}", {"is_paused": False})
    backfills = []
    for dag_id in ingest:
        body = {
            "dag_id": dag_id,
            "from_date": start.isoformat(),
            "to_date": end.isoformat(),
            "run_backwards": False,
            "dag_run_conf": {},
            "reprocess_behavior": "none",
            "max_active_runs": args.max_active_runs,
        }
        backfills.append(api.post("/backfills", body)["id"])
    log(f"backfills {backfills} for {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC ({args.hours} h)")
    deadline = time.monotonic() + args.timeout
    quality_runs = 0
    while True:
        done = all(api.get(f"/backfills/{b}").get("completed_at") for b in backfills)
        if done and all(active_runs(api, d) == 0 for d in ingest):
            break
        if active_runs(api, "quality") == 0:
            try:
                trigger(api, "quality")
                quality_runs += 1
            except requests.RequestException as exc:  # a slow api-server: the next poll tries again
                log(f"triggering quality failed ({exc}); next poll")
        if time.monotonic() > deadline:
            result.notes.append(f"backfills not done within {args.timeout:.0f}s")
            break
        time.sleep(5)
    log(f"backfills done ({quality_runs} quality runs meanwhile); waiting for enrich")
    wait_quiet(api, ["enrich"], args.timeout)
    wait_quiet(api, ["quality"], args.timeout)
    trigger(api, "quality")
    wait_quiet(api, ["quality"], args.timeout)
    t_end = datetime.now(UTC)
    export_day = None
    if args.hours >= 24:
        export_day = start.date().isoformat()
        trigger(api, "export", {"day": export_day})
        wait_quiet(api, ["export"], args.timeout)
    return t0, t_end, export_day


def measure(live: Any, t0: datetime, t_end: datetime, result: Result) -> None:
    """Fill ``result.metrics`` from the REST API and the warehouse."""
    api = PatientApi(live.api)
    dag_ids = [*(f"ingest_{s}" for s in SOURCES), "enrich", "quality", "export"]
    runs = dag_runs(api, dag_ids, t0)
    tis = task_instances(api, dag_ids, t0)
    m = result.metrics
    m["task_instances"] = len(tis)
    failed = [ti for ti in tis if ti.get("state") in ("failed", "upstream_failed")]
    m["failed_tis"] = len(failed)
    for ti in failed:
        result.notes.append(
            f"{ti['state']}: {ti['dag_id']}.{ti['task_id']} {ti['dag_run_id']} try {ti['try_number']}"
        )
    ingest_rows = live.query(
        "SELECT dag_id, dag_run_id, items, loaded, window_end FROM ops.ingest_runs WHERE extracted_at >= %s",
        (t0,),
    )
    extract_items = {(d, r): int(i) for d, r, i, _, _ in ingest_rows}
    load_items = {(d, r): int(n) for d, r, _, n, _ in ingest_rows}
    m["items"] = float(sum(load_items.values()))
    new_items = live.query(
        """SELECT (SELECT count(*) FROM core.documents WHERE first_loaded_at >= %s)
                + (SELECT count(*) FROM core.weather_observations WHERE first_loaded_at >= %s)""",
        (t0, t0),
    )[0][0]
    m["new_items"] = float(new_items)
    wall = (t_end - t0).total_seconds()
    m["wall_s"] = wall
    m["items_per_hour"] = m["new_items"] / wall * 3600 if wall else None
    hours_done = sum(
        1 for (d, _r), run in runs.items() if d.startswith("ingest_") and run["state"] == "success"
    )
    m["data_hours_per_hour"] = hours_done / len(SOURCES) / wall * 3600 if wall else None
    m["extract_rate"] = median(rates(tis, "extract", extract_items))
    m["load_rate"] = median(rates(tis, "load", load_items))

    enrich_items = {}
    for ti in tis:
        if ti["task_id"] == "enrich" and ti.get("start_date") and ti.get("end_date"):
            n = live.query(
                "SELECT count(*) FROM enriched.document_features WHERE enriched_at >= %s AND enriched_at <= %s",
                (ts(ti["start_date"]), ts(ti["end_date"])),
            )[0][0]
            enrich_items[(ti["dag_id"], ti["dag_run_id"])] = int(n)
    m["enrich_rate"] = median(rates(tis, "enrich", {k: v for k, v in enrich_items.items() if v}))
    audited = live.query(
        """SELECT h.dag_run_id, count(d.*) FROM quality.hour_audits h
             JOIN core.documents d ON d.source = h.source
              AND d.created_at >= h.hour AND d.created_at < h.hour + interval '1 hour'
            WHERE h.audited_at >= %s GROUP BY h.dag_run_id""",
        (t0,),
    )
    quality_items = {("quality", r): int(n) for r, n in audited}
    m["quality_rate"] = median(rates(tis, "audit_and_publish", quality_items))
    exported = live.query(
        "SELECT dag_run_id, sum(rows) FROM ops.exports WHERE exported_at >= %s GROUP BY 1", (t0,)
    )
    m["export_rate"] = median(rates(tis, "export_marts", {("export", r): int(n) for r, n in exported}))

    delays = scheduler_delays(tis, runs)
    m["sched_delay"] = median(delays)
    # extract waits for its source's pool slot (1-2 per source) besides the scheduler: evidence for the pools.
    m["sched_delay_extract"] = median(scheduler_delays(tis, runs, "extract"))
    m["sched_delay_p95"] = quantile(delays, 0.95)
    m["queue_delay"] = median(queue_delays(tis))
    setup = [float(ti["duration"]) for ti in tis if ti["task_id"] == SETUP_TASK and ti.get("duration")]
    if setup:
        m["overhead"] = median(setup)
    else:
        durations = [
            float(ti["duration"]) for ti in tis if ti.get("duration") and ti.get("state") == "success"
        ]
        m["overhead"] = min(durations) if durations else None
        result.notes.append(f"no {SETUP_TASK} task: task overhead = the shortest task's duration")

    # Freshness, per item of the ingested period (between the bench's first window start and last window
    # end: GitHub's issue updates and Reddit's newest-first pages bring older and newer items too), grouped
    # by the minute: the wait for its source's next hourly tick (pulse.sources.<source>.SPEC.schedule), and
    # the run that loaded it (queued_at) to its hour's published_at (quality.hour_audits).
    minutes = ", ".join(f"('{s}', {tick_minute(s)})" for s in SOURCES)
    groups = live.query(
        f"""WITH period AS (SELECT min(window_start) AS lo, max(window_end) AS hi
                             FROM ops.ingest_runs WHERE extracted_at >= %s),
                 tick(source, minute) AS (VALUES {minutes})
            SELECT d.dag_run_id, r.dag_id, count(*),
                   round(extract(epoch FROM date_trunc('hour', d.created_at - make_interval(mins => t.minute))
                                 + make_interval(hours => 1, mins => t.minute) - d.created_at) / 60),
                   h.published_at
              FROM core.documents d
              JOIN period p ON d.created_at >= p.lo AND d.created_at < p.hi
              JOIN tick t ON t.source = d.source
              JOIN ops.ingest_runs r ON r.dag_run_id = d.dag_run_id AND r.source = d.source
              LEFT JOIN quality.hour_audits h
                ON h.source = d.source
               AND h.hour = date_bin('1 hour', d.created_at, timestamptz '2000-01-01 00:00+00')
               AND d.loaded_at <= h.published_at
             GROUP BY 1, 2, 4, 5""",
        (t0,),
    )
    tick, processing, published, total = [], [], 0, 0
    for run_id, dag_id, n, tick_wait, published_at in groups:
        total += int(n)
        tick.append((float(tick_wait), int(n)))
        run = runs.get((dag_id, run_id))
        queued = ts(run.get("queued_at")) if run else None
        if published_at is not None and queued is not None:
            published += int(n)
            processing.append(((published_at - queued).total_seconds() / 60, int(n)))
    m["tick_wait_min"] = weighted_median(tick)
    m["processing_min"] = weighted_median(processing)
    if m["tick_wait_min"] is not None and m["processing_min"] is not None:
        m["freshness_min"] = m["tick_wait_min"] + m["processing_min"]
    m["published_pct"] = 100.0 * published / total if total else None


def tick_minute(source: str) -> int:
    """The minute of the hour of ``source``'s ingest schedule (``"m * * * *"`` in its spec)."""
    from pulse.sources.base import get_source

    minute, hour, *_ = get_source(source).schedule.split()
    if hour != "*":
        raise ValueError(f"{source}: not an hourly schedule")
    return int(minute)


def run_config(name: str, args: argparse.Namespace) -> Result:
    """One configuration on its own private stack, always stopped and removed afterwards."""
    from dev.run_cycle import wait_for_dags
    from tests.stack.conftest import LiveStack, new_state, remove_state, run_stack, stack_env

    result = Result(config=name)
    state, ports = new_state(f"pulse-bench-{name}-")
    import yaml

    (state / "sources.yaml").write_text(yaml.safe_dump(sources_file(args.scale), sort_keys=False))
    extra = {**CONFIGS[name], "PULSE_SOURCES_FILE": str(state / "sources.yaml")}
    live = LiveStack(state=state, env=stack_env(state, ports, extra=extra), ports=ports)
    sampler = LoadSampler()
    try:
        t_up = time.monotonic()
        res = run_stack(live.env, state, "up", 600)
        if res.returncode != 0:
            raise SystemExit(f"{name}: dev.stack up failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
        live.connect_api()
        wait_for_dags(live.api, [*(f"ingest_{s}" for s in SOURCES), "enrich", "quality", "export"])
        log(f"{name}: stack up in {time.monotonic() - t_up:.0f} s (state {state})")
        import requests

        resp = requests.post(
            f"{live.sim_url}/_sim/config", json=sim_config(args.scale, args.hours), timeout=30
        )
        resp.raise_for_status()
        sampler.start()
        t0, t_end, _day = drive(live, args, result)
        sampler.stop()
        measure(live, t0, t_end, result)
        result.metrics["load1_median"] = median(sampler.samples)
        result.metrics["load1_max"] = max(sampler.samples) if sampler.samples else None
        log(f"{name}: " + json.dumps({k: round(v, 2) for k, v in result.metrics.items() if v is not None}))
    finally:
        sampler.stop()
        if args.keep:
            log(f"{name}: stack left running in {state} (--keep)")
        else:
            run_stack(live.env, state, "down", 300)
            remove_state(state)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--hours", type=int, default=3, help="hours of backfill per ingest DAG (24: yesterday + export)"
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiplies the number of streams per source"
    )
    parser.add_argument(
        "--configs", default="local,celery1,celery2", help="comma-separated: local, celery1, celery2"
    )
    parser.add_argument("--max-active-runs", type=int, default=3, help="of each backfill")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds each wait may take")
    parser.add_argument("--keep", action="store_true", help="leave each stack running (debugging)")
    args = parser.parse_args(argv)
    if not 1 <= args.hours <= 48:
        parser.error("--hours must be in [1, 48]")
    names = [c for c in args.configs.split(",") if c]
    unknown = set(names) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configs {sorted(unknown)}; known: {', '.join(CONFIGS)}")
    if any(CONFIGS[n]["PULSE_EXECUTOR"] == "celery" for n in names) and not celery_available():
        log("dev/stack.py has no PULSE_EXECUTOR yet: the celery configurations are skipped")
        names = [n for n in names if CONFIGS[n]["PULSE_EXECUTOR"] != "celery"]
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "plugins")) if p not in sys.path]
    per_hour = {s: n_streams(s, args.scale) for s in STREAMS}
    log(f"streams {per_hour}; {args.hours} h of backfill; configs {names}; {os.cpu_count()} CPUs")
    results = [run_config(name, args) for name in names]
    print(
        f"\n## Pipeline load test: {args.hours} h backfill, scale {args.scale}, sources {', '.join(SOURCES)}\n"
    )
    print(render_table(results))
    for r in results:
        for note in r.notes:
            print(f"* {r.config}: {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
