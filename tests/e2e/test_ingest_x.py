"""ingest_x end to end: simulator over HTTP -> raw -> core/quarantine in the real PostgreSQL."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import SIM_NOW, WINDOW, dag_test, truncate_warehouse

pytestmark = pytest.mark.e2e

#: Test config (tests/data/sources.yaml): two queries, 10 tweets a page; the simulator makes 30 an hour.
QUERIES = {"python lang:en", "airflow"}


@pytest.fixture
def ingest(dagbag: Any, airflow_db: None, warehouse: Any, sim: Any, slack: Any, db: Any) -> Any:
    dag = dagbag.dags.get("ingest_x")
    assert dag is not None, dagbag.import_errors
    sim.configure({"x": {"tweets_per_hour": 30, "reply_ratio": 0.3}})
    truncate_warehouse(db)

    def run(window: tuple[str, str] | None = WINDOW) -> Any:
        conf = {"window_start": window[0], "window_end": window[1]} if window else {}
        return dag_test(dag, run_conf=conf)

    run.dag = dag
    return run


def _counts(db: Any) -> tuple[int, int, int]:
    docs = db.execute("SELECT count(*) FROM core.documents WHERE source = 'x'").fetchone()[0]
    quar = db.execute("SELECT count(*) FROM quality.quarantine WHERE source = 'x'").fetchone()[0]
    raw = db.execute("SELECT count(*) FROM raw.api_responses WHERE source = 'x'").fetchone()[0]
    return docs, quar, raw


def _snapshot(db: Any) -> dict[str, str]:
    return dict(
        db.execute("SELECT external_id, content_sha256 FROM core.documents WHERE source = 'x'").fetchall()
    )


def test_every_served_tweet_is_loaded_or_quarantined(ingest: Any, db: Any, sim: Any) -> None:
    sim.configure({"x": {"bad_items_ratio": 0.2}})
    dr = ingest()
    assert dr.state == "success"

    docs, quar, raw = _counts(db)
    served = sim.stats()["x"]
    assert served["served_count"] > 50
    assert docs + quar == served["served_count"]
    bad_served = {ident for ident, v in served["served"].items() if v["bad"]}
    assert quar == len(bad_served) > 0
    good = {ident for ident, v in served["served"].items() if not v["bad"]}
    assert {r[0] for r in db.execute("SELECT external_id FROM core.documents WHERE source = 'x'")} == good
    reasons = dict(
        db.execute(
            "SELECT reason_code, count(*) FROM quality.quarantine WHERE source = 'x' GROUP BY 1"
        ).fetchall()
    )
    assert set(reasons) == {
        "missing_id",
        "bad_timestamp",
        "future_timestamp",
        "text_nul_byte",
        "text_too_large",
        "missing_text",
    }, reasons
    # Bad tweets with an id are keyed by it; only the id-less ones by content hash.
    assert (
        db.execute(
            "SELECT count(*) FROM quality.quarantine WHERE source = 'x' AND item_key LIKE 'sha256:%'"
        ).fetchone()[0]
        == reasons["missing_id"]
    )

    # Every page is in raw with its window, as sent (X refused end_time 12:00 at its 12:00: cut to 11:59:48).
    assert raw == 6
    pages = db.execute(
        "SELECT stream, request_params, status_code, item_count FROM raw.api_responses ORDER BY id"
    ).fetchall()
    assert {p[0] for p in pages} == {f"search:{q}" for q in QUERIES}
    assert {(p[1]["start_time"], p[1]["end_time"]) for p in pages} == {
        ("2026-11-28T11:00:00Z", "2026-11-28T11:59:48Z")
    }
    assert {p[2] for p in pages} == {200} and sum(p[3] for p in pages) == served["served_count"]

    rows = db.execute(
        "SELECT channel, kind, url, created_at FROM core.documents WHERE source = 'x' ORDER BY created_at"
    ).fetchall()
    assert {r[0] for r in rows} == QUERIES and {r[1] for r in rows} == {"tweet"}
    assert all(r[2].startswith("https://x.com/i/web/status/") for r in rows)
    assert rows[0][3] >= datetime.fromisoformat(WINDOW[0]) and rows[-1][3] < datetime.fromisoformat(WINDOW[1])

    run = db.execute(
        "SELECT pages, items, loaded, quarantined, window_start, window_end FROM ops.ingest_runs"
    ).fetchone()
    assert run[:4] == (6, served["served_count"], docs, quar)
    assert (run[4].isoformat(), run[5].isoformat()) == WINDOW


def test_authors_are_pseudonymised_outside_raw(ingest: Any, db: Any) -> None:
    assert ingest().state == "success"
    people: set[str] = set()
    for (body,) in db.execute("SELECT body FROM raw.api_responses WHERE source = 'x'").fetchall():
        page = json.loads(body)
        for user in page["includes"]["users"]:
            people |= {user["id"], user["username"], user["name"]}
        people |= {t["in_reply_to_user_id"] for t in page["data"] if "in_reply_to_user_id" in t}
    assert len(people) > 50
    core = db.execute(
        "SELECT author_pseudonym, payload, metrics, channel, url FROM core.documents WHERE source = 'x'"
    ).fetchall()
    text = json.dumps(core)
    assert not [p for p in people if f'"{p}"' in text or f"/{p}/" in text]
    assert all(r[0] and len(r[0]) == 32 for r in core)
    replies = [r[1] for r in core if r[1]["in_reply_to"]]
    assert replies and all(p["reply"] for p in replies)


def test_same_window_again_adds_no_rows(ingest: Any, db: Any, sim: Any) -> None:
    sim.configure({"x": {"bad_items_ratio": 0.2}})
    assert ingest().state == "success"
    docs, quar, _ = _counts(db)
    before = _snapshot(db)
    assert ingest().state == "success"
    assert _counts(db)[:2] == (docs, quar)
    assert _snapshot(db) == before
    changed = db.execute("SELECT changed FROM ops.ingest_runs ORDER BY loaded_at DESC LIMIT 1").fetchone()[0]
    assert changed == 0


def test_throttling_and_5xx_burst_end_with_the_same_rows(ingest: Any, db: Any, sim: Any) -> None:
    assert ingest().state == "success"
    clean = _snapshot(db)
    assert len(clean) > 50
    truncate_warehouse(db)
    sim.reset()
    sim.configure(
        {"x": {"rate_limit": {"count": 2, "retry_after": 1}, "server_errors": {"count": 3, "status": 503}}}
    )
    assert ingest().state == "success"
    by_status = sim.stats()["x"]["by_status"]
    assert by_status.get("429") == 2 and by_status.get("503") == 3
    assert _snapshot(db) == clean


def test_a_backfill_beyond_the_7_day_reach_records_gaps_and_succeeds(ingest: Any, db: Any, sim: Any) -> None:
    now = datetime.fromisoformat(SIM_NOW)
    old = ((now - timedelta(days=9)).isoformat(), (now - timedelta(days=9) + timedelta(hours=1)).isoformat())
    dr = ingest(window=old)
    assert dr.state == "success"
    assert _counts(db) == (0, 0, 0)
    assert sim.stats()["x"]["requests"] == 0, "a window X cannot serve costs no request"
    gaps = db.execute(
        "SELECT stream, window_start, window_end, status, reason FROM ops.coverage WHERE source = 'x' ORDER BY 1"
    ).fetchall()
    assert [(g[0], g[3], g[4]) for g in gaps] == [
        ("search:airflow", "gap", "beyond_reach"),
        ("search:python lang:en", "gap", "beyond_reach"),
    ]
    assert {(g[1].isoformat(), g[2].isoformat()) for g in gaps} == {old}


def test_a_window_partly_beyond_reach_is_clipped_and_the_rest_is_a_gap(
    ingest: Any, db: Any, sim: Any
) -> None:
    pinned = datetime.fromisoformat(os.environ["PULSE_NOW"])  # the pipeline's clock in tests
    edge = pinned - timedelta(days=7) + timedelta(minutes=2)  # recent search's reach, minus the margin
    window = ((edge - timedelta(minutes=30)).isoformat(), (edge + timedelta(minutes=30)).isoformat())
    assert ingest(window=window).state == "success"
    assert sim.stats()["x"]["by_status"] == {"200": 4}  # X accepted the clipped start at once
    starts = {
        r[0]["start_time"] for r in db.execute("SELECT request_params FROM raw.api_responses").fetchall()
    }
    assert starts == {edge.strftime("%Y-%m-%dT%H:%M:%SZ")}
    created = db.execute("SELECT min(created_at) FROM core.documents WHERE source = 'x'").fetchone()[0]
    assert created >= edge
    rows = db.execute(
        "SELECT status, reason, window_start, window_end FROM ops.coverage WHERE stream = 'search:airflow'"
        " ORDER BY status"
    ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [("gap", "beyond_reach"), ("ingested", None)]
    assert (rows[0][2].isoformat(), rows[0][3]) == (window[0], edge)


def test_duplicates_across_pages_load_once(ingest: Any, db: Any, sim: Any) -> None:
    sim.configure({"x": {"duplicate_across_pages": True, "bad_items_ratio": 0.2}})
    assert ingest().state == "success"
    docs, quar, _ = _counts(db)
    served = sim.stats()["x"]["served_count"]
    assert docs + quar == served
    items = db.execute("SELECT sum(item_count) FROM raw.api_responses WHERE is_valid").fetchone()[0]
    assert items > served, "pages repeated tweets, yet every tweet is one row"


def test_schema_drift_quarantines_what_breaks_and_loads_what_does_not(ingest: Any, db: Any, sim: Any) -> None:
    # created_at and public_metrics vanish: tweets still load, their time read from the snowflake id.
    sim.configure({"x": {"drift": {"drop": ["created_at", "public_metrics"]}}})
    assert ingest().state == "success"
    docs, quar, _ = _counts(db)
    assert (docs, quar) == (sim.stats()["x"]["served_count"], 0)
    rows = db.execute("SELECT external_id, created_at, score, metrics FROM core.documents").fetchall()
    assert all(r[2] is None and r[3] == {} for r in rows)
    assert all(abs(r[1].timestamp() * 1000 - ((int(r[0]) >> 22) + 1288834974657)) < 1 for r in rows)
    # text is renamed: every tweet lacks its text and is quarantined; nothing half-loads.
    truncate_warehouse(db)
    sim.reset()
    sim.configure({"x": {"drift": {"rename": {"text": "full_text"}}}})
    assert ingest().state == "success"
    docs, quar, _ = _counts(db)
    reasons = {r[0] for r in db.execute("SELECT reason_code FROM quality.quarantine").fetchall()}
    assert (docs, reasons) == (0, {"missing_text"})
    assert quar == sim.stats()["x"]["served_count"] > 0


def test_backfill_in_any_order_gives_the_rows_of_the_scheduled_runs(ingest: Any, db: Any, sim: Any) -> None:
    windows = [
        ("2026-11-28T08:15:00+00:00", "2026-11-28T09:15:00+00:00"),
        ("2026-11-28T09:15:00+00:00", "2026-11-28T10:15:00+00:00"),
        ("2026-11-28T10:15:00+00:00", "2026-11-28T11:15:00+00:00"),
    ]
    sim.configure({"x": {"bad_items_ratio": 0.1}})
    for window in windows:  # as the hourly schedule (minute 15) ran them
        assert ingest(window).state == "success"
    scheduled = _snapshot(db)
    quarantined = {r[0] for r in db.execute("SELECT item_key FROM quality.quarantine").fetchall()}
    assert len(scheduled) > 100
    truncate_warehouse(db)
    for window in reversed(windows):  # a backfill may run them backwards, or in parallel
        assert ingest(window).state == "success"
    assert _snapshot(db) == scheduled
    assert {r[0] for r in db.execute("SELECT item_key FROM quality.quarantine").fetchall()} == quarantined
    ingested = db.execute("SELECT count(DISTINCT window_start) FROM ops.coverage WHERE status = 'ingested'")
    assert ingested.fetchone()[0] == 3


def test_rejected_token_fails_fast_and_alerts_slack(
    ingest: Any, slack: Any, sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_X_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_X_DEFAULT", json.dumps({**conn, "password": "wrong-token"}))
    slack.clear()
    dr = ingest()
    assert dr.state == "failed"
    ti = next(t for t in dr.get_task_instances() if t.task_id == "extract")
    assert ti.state == "failed"
    assert ti.try_number == 1, "a 401 must not be retried"
    assert sim.stats()["x"]["by_status"] == {"401": 1}
    texts = [t for t in slack.texts("failures") if "Task failed" in t]
    assert len(texts) == 1, slack.texts()
    assert [t for t in slack.texts("failures") if "DAG run failed" in t], slack.texts()
    assert "ingest_x.extract" in texts[0]
    assert "x_default" in texts[0] and "401" in texts[0]


def test_page_that_stays_malformed_fails_and_the_retry_resumes(ingest: Any, db: Any, sim: Any) -> None:
    from airflow.sdk.exceptions import AirflowException

    # The first search page is fine, every later one is truncated JSON.
    sim.configure({"x": {"malformed": {"count": 100, "skip": 1}}})
    task = ingest.dag.get_task("extract")
    context = {
        "dag": ingest.dag,
        "run_id": "test_x_malformed",
        "ti": SimpleNamespace(try_number=1),
        "params": {"window_start": WINDOW[0], "window_end": WINDOW[1]},
    }
    with pytest.raises(AirflowException, match=r"stayed malformed after 4 attempts") as err:
        task.execute(context)
    assert "Pages stored before it are kept" in str(err.value)
    rows = db.execute(
        "SELECT page_no, is_valid, error FROM raw.api_responses WHERE dag_run_id = 'test_x_malformed' ORDER BY id"
    ).fetchall()
    assert [r[:2] for r in rows] == [(0, True), (1, False)]
    assert "not JSON" in rows[1][2]
    sim.reset()
    context["ti"] = SimpleNamespace(try_number=2)
    result = task.execute(context)
    pages = db.execute(
        "SELECT stream, page_no, task_try FROM raw.api_responses WHERE dag_run_id = 'test_x_malformed' AND is_valid"
        " ORDER BY id"
    ).fetchall()
    first = pages[0][0]
    assert [p[1:] for p in pages if p[0] == first] == [(0, 1), (1, 2), (2, 2)]
    assert result["pages"] == 6 and result["items"] == 60
