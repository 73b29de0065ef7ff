"""Budgets, circuit breaker and coverage gaps, through the real operators, PostgreSQL and simulator (Reddit)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from pulse.budget import Budget
from tests.conftest import ROOT, WINDOW, dag_test, truncate_warehouse

pytestmark = pytest.mark.e2e


def _sources_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    data = yaml.safe_load((ROOT / "tests" / "data" / "sources.yaml").read_text())
    data.update(extra)
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("PULSE_SOURCES_FILE", str(path))


def _context(dag: Any, run_id: str, window: tuple[str, str] = WINDOW) -> dict[str, Any]:
    return {
        "dag": dag,
        "run_id": run_id,
        "ti": SimpleNamespace(try_number=1),
        "params": {"window_start": window[0], "window_end": window[1]},
    }


@pytest.fixture
def reddit_dag(dagbag: Any, airflow_db: None, warehouse: Any, sim: Any, slack: Any) -> Any:
    return dagbag.dags["ingest_reddit"]


def test_budget_running_out_mid_run_ends_cleanly_with_a_gap(
    reddit_dag: Any, db: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    truncate_warehouse(db)
    _sources_with(tmp_path, monkeypatch, budgets={"reddit": [{"per_seconds": 86400, "calls": 3}]})
    result = reddit_dag.get_task("extract").execute(_context(reddit_dag, "budget_run"))
    # new:python needs 2 pages, comments:python 3: the third call is the last one the budget allows.
    assert result["pages"] == 3
    assert result["gaps"] == 3, "the stream cut short and the two never started are gaps"
    rows = dict(
        db.execute(
            "SELECT stream, coalesce(reason, status) FROM ops.coverage WHERE dag_run_id = 'budget_run'"
        ).fetchall()
    )
    assert rows == {
        "new:python": "ingested",
        "comments:python": "budget_exhausted",
        "new:dataengineering": "budget_exhausted",
        "comments:dataengineering": "budget_exhausted",
    }
    used = db.execute("SELECT sum(used) FROM ops.api_budget WHERE source = 'reddit'").fetchone()[0]
    assert used == 3
    # The pages it did fetch load normally.
    from collections import defaultdict

    events: Any = defaultdict(SimpleNamespace)
    load = reddit_dag.get_task("load").execute(
        {**_context(reddit_dag, "budget_run"), "outlet_events": events}
    )
    assert load["loaded"] + load["quarantined"] > 0


def test_budget_never_overspends_across_concurrent_workers(warehouse: Any, db: Any) -> None:
    import psycopg

    truncate_warehouse(db)
    allowed: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        with psycopg.connect(**warehouse) as conn:
            budget = Budget(conn, "alphavantage", ((86400, 25),))
            for _ in range(10):
                ok = budget.acquire().allowed
                with lock:
                    allowed.append(ok)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 25
    assert len(allowed) == 60
    assert db.execute("SELECT used FROM ops.api_budget WHERE source = 'alphavantage'").fetchone()[0] == 25


def test_window_older_than_the_listing_reaches_records_a_gap(reddit_dag: Any, db: Any, sim: Any) -> None:
    truncate_warehouse(db)
    sim.configure({"reddit": {"listing_cap": 30}})
    old = ("2026-11-18T11:00:00+00:00", "2026-11-18T12:00:00+00:00")
    result = reddit_dag.get_task("extract").execute(_context(reddit_dag, "old_run", old))
    assert result["gaps"] == 4
    rows = db.execute(
        "SELECT reason, window_start, window_end FROM ops.coverage WHERE status = 'gap' AND dag_run_id = 'old_run'"
    ).fetchall()
    assert {r[0] for r in rows} == {"listing_cap"}
    assert all(r[1].isoformat() == old[0] for r in rows)
    sim.configure({"reddit": {"listing_cap": 1000}})


def test_circuit_opens_skips_and_closes(
    reddit_dag: Any, db: Any, slack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    truncate_warehouse(db)
    _sources_with(tmp_path, monkeypatch, circuit_breaker={"failures": 2, "cool_down_minutes": 60})
    good = os.environ["AIRFLOW_CONN_REDDIT_DEFAULT"]
    monkeypatch.setenv("AIRFLOW_CONN_REDDIT_DEFAULT", json.dumps({**json.loads(good), "password": "wrong"}))
    slack.clear()

    assert (
        dag_test(reddit_dag, run_conf={"window_start": WINDOW[0], "window_end": WINDOW[1]}).state == "failed"
    )
    assert db.execute("SELECT state FROM quality.source_health").fetchone()[0] == "closed"
    assert (
        dag_test(reddit_dag, run_conf={"window_start": WINDOW[0], "window_end": WINDOW[1]}).state == "failed"
    )
    state, failures = db.execute("SELECT state, consecutive_failures FROM quality.source_health").fetchone()
    assert (state, failures) == ("open", 2)
    opened = [t for t in slack.texts() if "Circuit opened" in t]
    assert len(opened) == 1
    assert "reddit" in opened[0]

    # Open: the next run skips at once, without calling the API and without another circuit alert.
    monkeypatch.setenv("AIRFLOW_CONN_REDDIT_DEFAULT", good)
    dr = dag_test(reddit_dag, run_conf={"window_start": WINDOW[0], "window_end": WINDOW[1]})
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert states == {"warehouse_ready": "success", "extract": "skipped", "load": "skipped"}
    assert db.execute("SELECT count(*) FROM raw.api_responses").fetchone()[0] == 0
    assert len([t for t in slack.texts() if "Circuit opened" in t]) == 1

    # After the cool-down it half-opens; a successful run closes it.
    # (The breaker runs on the pipeline clock, pinned in tests: move the opening back, not to the real now().)
    db.execute("UPDATE quality.source_health SET opened_at = opened_at - interval '2 hours'")
    dr = dag_test(reddit_dag, run_conf={"window_start": WINDOW[0], "window_end": WINDOW[1]})
    assert dr.state == "success"
    assert db.execute("SELECT state, consecutive_failures FROM quality.source_health").fetchone() == (
        "closed",
        0,
    )
