"""ingest_reddit end to end: simulator over HTTP -> raw -> core/quarantine in the real PostgreSQL."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import WINDOW, dag_test, truncate_warehouse

pytestmark = pytest.mark.e2e


@pytest.fixture
def ingest(dagbag: Any, airflow_db: None, warehouse: Any, sim: Any, slack: Any) -> Any:
    dag = dagbag.dags.get("ingest_reddit")
    assert dag is not None, dagbag.import_errors

    def run(window: tuple[str, str] | None = WINDOW) -> Any:
        conf = {"window_start": window[0], "window_end": window[1]} if window else {}
        return dag_test(dag, run_conf=conf)

    run.dag = dag
    return run


def _counts(db: Any) -> tuple[int, int, int]:
    docs = db.execute("SELECT count(*) FROM core.documents WHERE source = 'reddit'").fetchone()[0]
    quar = db.execute("SELECT count(*) FROM quality.quarantine WHERE source = 'reddit'").fetchone()[0]
    raw = db.execute("SELECT count(*) FROM raw.api_responses WHERE source = 'reddit'").fetchone()[0]
    return docs, quar, raw


def _snapshot(db: Any) -> dict[str, str]:
    rows = db.execute(
        "SELECT external_id, content_sha256 FROM core.documents WHERE source = 'reddit'"
    ).fetchall()
    return dict(rows)


def test_every_served_item_is_loaded_or_quarantined(ingest: Any, db: Any, sim: Any) -> None:
    truncate_warehouse(db)
    sim.configure({"reddit": {"bad_items_ratio": 0.2}})
    dr = ingest()
    assert dr.state == "success"

    docs, quar, raw = _counts(db)
    served = sim.stats()["reddit"]
    assert served["served_count"] > 50
    assert docs + quar == served["served_count"]
    assert docs > 0 and quar > 0 and raw >= 4
    bad_served = {ident: v["bad"] for ident, v in served["served"].items() if v["bad"]}
    reasons = {r for (r,) in db.execute("SELECT DISTINCT reason_code FROM quality.quarantine").fetchall()}
    assert reasons <= {
        "missing_id",
        "bad_timestamp",
        "future_timestamp",
        "text_nul_byte",
        "text_too_large",
        "missing_text",
    }
    assert len(reasons) >= 4, reasons
    assert quar == len(bad_served)
    # Bad items with an id are keyed by it; every good item is in core under its fullname.
    good = {ident for ident, v in served["served"].items() if not v["bad"]}
    in_core = {r[0] for r in db.execute("SELECT external_id FROM core.documents").fetchall()}
    assert in_core == good

    run = db.execute(
        "SELECT pages, items, loaded, quarantined, window_start, window_end FROM ops.ingest_runs"
    ).fetchone()
    assert run[2] == docs and run[3] == quar
    assert run[4].isoformat() == WINDOW[0] and run[5].isoformat() == WINDOW[1]


def test_bad_items_leave_the_rest_of_their_page_loaded(ingest: Any, db: Any, sim: Any) -> None:
    truncate_warehouse(db)
    sim.configure({"reddit": {"bad_items_ratio": 0.2}})
    assert ingest().state == "success"
    rows = db.execute(
        """
        SELECT q.raw_response_id, r.item_count,
               (SELECT count(*) FROM core.documents d WHERE d.raw_response_id = q.raw_response_id) AS loaded,
               (SELECT count(*) FROM quality.quarantine q2 WHERE q2.raw_response_id = q.raw_response_id) AS bad
        FROM quality.quarantine q JOIN raw.api_responses r ON r.id = q.raw_response_id
        GROUP BY q.raw_response_id, r.item_count
        """
    ).fetchall()
    assert rows
    for _raw_id, item_count, loaded, bad in rows:
        assert loaded > 0, "good items of a page with a bad item must load"
        assert loaded + bad == item_count


def test_authors_are_pseudonymised_outside_raw(ingest: Any, db: Any) -> None:
    truncate_warehouse(db)
    assert ingest().state == "success"
    raw_authors = set()
    for (body,) in db.execute("SELECT body FROM raw.api_responses").fetchall():
        for child in json.loads(body)["data"]["children"]:
            raw_authors.add(child["data"]["author"])
    assert raw_authors
    core_text = " ".join(
        json.dumps(r)
        for r in db.execute("SELECT author_pseudonym, payload, metrics FROM core.documents").fetchall()
    )
    assert not any(a in core_text for a in raw_authors)
    pseudonyms = {r[0] for r in db.execute("SELECT author_pseudonym FROM core.documents").fetchall()}
    assert all(p and len(p) == 32 for p in pseudonyms)


def test_same_window_again_adds_no_rows(ingest: Any, db: Any, sim: Any) -> None:
    truncate_warehouse(db)
    sim.configure({"reddit": {"bad_items_ratio": 0.2}})
    assert ingest().state == "success"
    docs, quar, _ = _counts(db)
    before = _snapshot(db)
    assert ingest().state == "success"
    docs2, quar2, _ = _counts(db)
    assert (docs2, quar2) == (docs, quar)
    assert _snapshot(db) == before
    changed = db.execute("SELECT changed FROM ops.ingest_runs ORDER BY loaded_at DESC LIMIT 1").fetchone()[0]
    assert changed == 0


def test_throttling_and_5xx_burst_end_with_the_same_rows(ingest: Any, db: Any, sim: Any) -> None:
    truncate_warehouse(db)
    assert ingest().state == "success"
    clean = _snapshot(db)
    truncate_warehouse(db)
    sim.reset()
    sim.configure(
        {
            "reddit": {
                "rate_limit": {"count": 2, "retry_after": 1},
                "server_errors": {"count": 4, "status": 503},
            }
        }
    )
    assert ingest().state == "success"
    by_status = sim.stats()["reddit"]["by_status"]
    assert by_status.get("429") == 2 and by_status.get("503") == 4
    assert _snapshot(db) == clean


def test_rejected_credentials_fail_fast_and_alert_slack(
    ingest: Any, db: Any, slack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_REDDIT_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_REDDIT_DEFAULT", json.dumps({**conn, "password": "wrong-secret"}))
    slack.clear()
    dr = ingest()
    assert dr.state == "failed"
    ti = next(t for t in dr.get_task_instances() if t.task_id == "extract")
    assert ti.state == "failed"
    assert ti.try_number == 1, "a 401 must not be retried"
    texts = [t for t in slack.texts("failures") if "Task failed" in t]
    assert len(texts) == 1, slack.texts()
    assert [t for t in slack.texts("failures") if "DAG run failed" in t], slack.texts()
    assert "ingest_reddit.extract" in texts[0]
    assert "reddit_default" in texts[0] and "401" in texts[0]


def test_page_that_stays_malformed_fails_with_clear_error_and_keeps_earlier_pages(
    ingest: Any, db: Any, sim: Any
) -> None:
    from airflow.sdk.exceptions import AirflowException

    truncate_warehouse(db)
    # The first listing response is fine, every later one is truncated JSON.
    sim.configure({"reddit": {"malformed": {"count": 100, "skip": 1}}})
    task = ingest.dag.get_task("extract")
    context = {
        "dag": ingest.dag,
        "run_id": "test_malformed",
        "ti": SimpleNamespace(try_number=1),
        "params": {"window_start": WINDOW[0], "window_end": WINDOW[1]},
    }
    with pytest.raises(AirflowException, match=r"stayed malformed after 4 attempts") as err:
        task.execute(context)
    assert "Pages stored before it are kept" in str(err.value)
    rows = db.execute(
        "SELECT page_no, is_valid, error FROM raw.api_responses WHERE dag_run_id = 'test_malformed' ORDER BY id"
    ).fetchall()
    assert rows[0][:2] == (0, True)
    assert rows[-1][1] is False and "not JSON" in rows[-1][2]
    # A retry resumes after the stored page instead of starting over.
    sim.reset()
    sim.configure({"reddit": {"bad_items_ratio": 0.0}})
    context["ti"] = SimpleNamespace(try_number=2)
    task.execute(context)
    pages = db.execute(
        "SELECT stream, page_no, task_try FROM raw.api_responses WHERE dag_run_id = 'test_malformed' AND is_valid"
        " ORDER BY id"
    ).fetchall()
    first_stream = pages[0][0]
    assert [p for p in pages if p[0] == first_stream][1][1:] == (1, 2)


def test_manual_run_without_logical_date_fetches_the_last_hour(ingest: Any, db: Any) -> None:
    truncate_warehouse(db)
    dr = ingest(window=None)
    assert dr.state == "success"
    start, end = db.execute("SELECT window_start, window_end FROM ops.ingest_runs").fetchone()
    # Either the interval the timetable infers for the run (a full hour before it) or the hour before
    # run_after: an hour-long window that ends before the run and not long before it.
    assert (end - start).total_seconds() == 3600
    assert timedelta(0) <= dr.run_after - end < timedelta(hours=2)


def test_duplicates_across_pages_load_once(ingest: Any, db: Any, sim: Any) -> None:
    truncate_warehouse(db)
    sim.configure({"reddit": {"duplicate_across_pages": True}})
    assert ingest().state == "success"
    docs, quar, _ = _counts(db)
    served = sim.stats()["reddit"]["served_count"]
    assert docs + quar == served
    items = db.execute("SELECT sum(item_count) FROM raw.api_responses WHERE is_valid").fetchone()[0]
    assert items > served, "pages repeated items, yet every item is one row"


def test_schema_drift_quarantines_what_breaks_and_loads_what_does_not(ingest: Any, db: Any, sim: Any) -> None:
    truncate_warehouse(db)
    # Posts lose their title (required): quarantined as missing_text. Comments' body becomes "text": the same.
    # A renamed optional field (selftext) just leaves the body empty.
    sim.configure(
        {"reddit": {"drift": {"rename": {"selftext": "self_text", "body": "text"}, "drop": ["title"]}}}
    )
    assert ingest().state == "success"
    reasons = dict(db.execute("SELECT reason_code, count(*) FROM quality.quarantine GROUP BY 1").fetchall())
    docs, quar, _ = _counts(db)
    assert set(reasons) == {"missing_text"}
    assert docs == 0
    assert quar == sim.stats()["reddit"]["served_count"]


def test_backfill_in_any_order_gives_the_rows_of_the_scheduled_runs(ingest: Any, db: Any, sim: Any) -> None:
    windows = [
        ("2026-11-28T09:00:00+00:00", "2026-11-28T10:00:00+00:00"),
        ("2026-11-28T10:00:00+00:00", "2026-11-28T11:00:00+00:00"),
        ("2026-11-28T11:00:00+00:00", "2026-11-28T12:00:00+00:00"),
    ]
    sim.configure({"reddit": {"bad_items_ratio": 0.1}})
    truncate_warehouse(db)
    for window in windows:  # as the hourly schedule ran them
        assert ingest(window).state == "success"
    scheduled = _snapshot(db)
    quarantined = {r[0] for r in db.execute("SELECT item_key FROM quality.quarantine").fetchall()}
    truncate_warehouse(db)
    for window in reversed(windows):  # a backfill may run them backwards, or in parallel
        assert ingest(window).state == "success"
    assert _snapshot(db) == scheduled
    assert {r[0] for r in db.execute("SELECT item_key FROM quality.quarantine").fetchall()} == quarantined
    ingested = db.execute("SELECT count(DISTINCT window_start) FROM ops.coverage WHERE status = 'ingested'")
    assert ingested.fetchone()[0] == 3


# ------------------------------------------------------------------------------------------------
# hostile items (issue 12, item 5): planted into the simulator's real listings
# ------------------------------------------------------------------------------------------------


def _hostile(sim: Any, *rules: dict[str, Any]) -> None:
    sim.configure({"reddit": {"hostile": {"tamper": list(rules)}}})


@pytest.mark.parametrize("created", [float("nan"), -1e20, 1e20, float("-inf"), "1764327600", True])
def test_a_hostile_created_utc_is_quarantined_while_its_neighbours_load(
    ingest: Any, db: Any, sim: Any, created: Any
) -> None:
    """NaN or -1e20 as ``created_utc`` used to fail the extract (ValueError / OverflowError in the listing-cap
    check); the item is quarantined as ``bad_timestamp`` and every other item loads."""
    truncate_warehouse(db)
    # The first post of every listing page (a retry would meet the same item again).
    rule = {"where": {"kind": "t3"}, "set": {"data.created_utc": created}, "limit": 1, "per_response": True}
    _hostile(sim, rule)
    dr = ingest()
    assert dr.state == "success"
    extract = next(t for t in dr.get_task_instances() if t.task_id == "extract")
    assert extract.try_number == 1, "the extract must not fail on an item's value"
    docs, quar, _ = _counts(db)
    served = sim.stats()["reddit"]["served_count"]
    pages = db.execute(  # listing pages of posts (comment pages hold no t3)
        "SELECT count(*) FROM raw.api_responses WHERE stream LIKE 'new:%' AND item_count > 0"
    ).fetchone()[0]
    assert pages >= 2
    assert (docs, quar) == (served - pages, pages)
    reasons = db.execute("SELECT item_key, reason_code FROM quality.quarantine").fetchall()
    assert {reason for _, reason in reasons} == {"bad_timestamp"}
    assert all(key.startswith("t3_") for key, _ in reasons)
    keys = [key for key, _ in reasons]
    assert (
        db.execute("SELECT count(*) FROM core.documents WHERE external_id = ANY(%s)", (keys,)).fetchone()[0]
        == 0
    )
    # The listing was paged as without the item: no listing_cap gap was made up from its time.
    gaps = db.execute("SELECT count(*) FROM ops.coverage WHERE reason = 'listing_cap'").fetchone()[0]
    assert gaps == 0


def test_a_lone_surrogate_in_an_id_is_quarantined_and_the_run_loads(ingest: Any, db: Any, sim: Any) -> None:
    """A lone UTF-16 surrogate in ``name`` used to fail the load on every retry with UnicodeEncodeError: now
    the item is quarantined (its key and item escaped, nothing dropped) and the rest of the run loads; a
    re-run gives the same rows."""
    truncate_warehouse(db)
    surrogate = {
        "where": {"kind": "t1"},
        "set": {"data.name": "t1_\ud800x", "data.id": "\ud800x"},
        "limit": 1,
    }
    _hostile(sim, surrogate)
    assert ingest().state == "success"
    docs, quar, _ = _counts(db)
    assert (docs, quar) == (sim.stats()["reddit"]["served_count"] - 1, 1)
    row = db.execute(
        "SELECT item_key, external_id, reason_code, reason_detail, item FROM quality.quarantine"
    ).fetchone()
    assert row[:3] == ("t1_\\ud800x", "t1_\\ud800x", "bad_field")
    assert "surrogate" in row[3]
    assert row[4]["external_id"] == "t1_\\ud800x"  # the refused row, escaped: the evidence is kept
    before = (_snapshot(db), db.execute("SELECT item_key, reason_code FROM quality.quarantine").fetchall())
    _hostile(sim, surrogate)  # served the same way again
    assert ingest().state == "success"
    assert (
        _snapshot(db),
        db.execute("SELECT item_key, reason_code FROM quality.quarantine").fetchall(),
    ) == before


def test_a_fractional_score_is_quarantined_never_truncated(ingest: Any, db: Any, sim: Any) -> None:
    truncate_warehouse(db)
    _hostile(
        sim,
        {"where": {"kind": "t3"}, "set": {"data.score": 12.5}, "limit": 1},
        {"where": {"kind": "t1"}, "set": {"data.score": 7.0, "data.body": "seven point oh"}, "limit": 1},
    )
    assert ingest().state == "success"
    [(key, reason, detail)] = db.execute(
        "SELECT item_key, reason_code, reason_detail FROM quality.quarantine"
    ).fetchall()
    assert reason == "bad_field" and "12.5" in detail
    assert db.execute("SELECT count(*) FROM core.documents WHERE external_id = %s", (key,)).fetchone()[0] == 0
    # 7.0 is the integer 7: no change of value, loaded.
    assert db.execute("SELECT score FROM core.documents WHERE body = 'seven point oh'").fetchone() == (7,)
