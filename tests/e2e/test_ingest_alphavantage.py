"""ingest_alphavantage end to end: simulator over HTTP -> raw -> core.market_bars/quarantine in PostgreSQL."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import WINDOW, dag_test, truncate_warehouse

pytestmark = pytest.mark.e2e

KEY = "sim-alphavantage-key"
#: tests/data/sources.yaml: IBM daily + IBM 60min intraday for November 2026 + BTC/EUR daily
STREAMS = {"daily:IBM", "intraday:IBM:60min:2026-11", "crypto_daily:BTC:EUR"}


@pytest.fixture
def ingest(dagbag: Any, airflow_db: None, warehouse: Any, sim: Any, slack: Any) -> Any:
    dag = dagbag.dags.get("ingest_alphavantage")
    assert dag is not None, dagbag.import_errors

    def run(window: tuple[str, str] | None = WINDOW) -> Any:
        # (explicit None, not {}: in-process, dag.test() leaves the previous run's conf in the DAG's params)
        conf = {"window_start": window[0] if window else None, "window_end": window[1] if window else None}
        return dag_test(dag, run_conf=conf)

    run.dag = dag
    return run


def _counts(db: Any) -> tuple[int, int, int]:
    bars = db.execute("SELECT count(*) FROM core.market_bars WHERE source = 'alphavantage'").fetchone()[0]
    quar = db.execute("SELECT count(*) FROM quality.quarantine WHERE source = 'alphavantage'").fetchone()[0]
    raw = db.execute("SELECT count(*) FROM raw.api_responses WHERE source = 'alphavantage'").fetchone()[0]
    return bars, quar, raw


def _snapshot(db: Any) -> dict[tuple[str, str, str, str], str]:
    rows = db.execute(
        "SELECT symbol, market, interval, ts::text, content_sha256 FROM core.market_bars"
        " WHERE source = 'alphavantage'"
    ).fetchall()
    return {tuple(r[:4]): r[4] for r in rows}


def test_every_served_bar_is_loaded_or_quarantined(ingest: Any, db: Any, sim: Any) -> None:
    truncate_warehouse(db)
    sim.configure({"alphavantage": {"bad_items_ratio": 0.05}})
    dr = ingest()
    assert dr.state == "success"

    bars, quar, raw = _counts(db)
    served = sim.stats()["alphavantage"]
    assert served["served_count"] > 1000
    assert bars + quar == served["served_count"]
    assert raw == 3 and bars > 0 and quar > 0
    streams = {r[0] for r in db.execute("SELECT stream FROM raw.api_responses").fetchall()}
    assert streams == STREAMS

    bad_served = {ident: v["bad"] for ident, v in served["served"].items() if v["bad"]}
    assert quar == len(bad_served)
    quarantined = dict(db.execute("SELECT item_key, reason_code FROM quality.quarantine").fetchall())
    assert set(quarantined) == set(bad_served), "quarantine rows are keyed by the served bar identity"
    expected = {
        "non_numeric": "bad_field",
        "missing_value": "bad_field",
        "high_below_low": "bad_field",
        "bad_timestamp": "bad_timestamp",
        "future_timestamp": "future_timestamp",
    }
    assert {quarantined[i] for i in bad_served} == {"bad_field", "bad_timestamp", "future_timestamp"}
    assert all(quarantined[i] == expected[kind] for i, kind in bad_served.items())

    by_kind = dict(
        db.execute(
            "SELECT interval || ':' || asset_class || ':' || market, count(*) FROM core.market_bars GROUP BY 1"
        ).fetchall()
    )
    assert set(by_kind) == {"1d:stock:USD", "60min:stock:USD", "1d:crypto:EUR"}
    run = db.execute(
        "SELECT pages, items, loaded, quarantined, window_start, window_end FROM ops.ingest_runs"
    ).fetchone()
    assert run[0] == 3 and run[1] == served["served_count"]
    assert run[2] == bars and run[3] == quar
    assert run[4].isoformat() == WINDOW[0] and run[5].isoformat() == WINDOW[1]


def test_bars_land_with_utc_timestamps_and_numbers(ingest: Any, db: Any) -> None:
    truncate_warehouse(db)
    assert ingest().state == "success"
    daily = db.execute(
        "SELECT ts, open, high, low, close, volume FROM core.market_bars"
        " WHERE symbol = 'IBM' AND interval = '1d' ORDER BY ts DESC LIMIT 1"
    ).fetchone()
    assert daily[0].isoformat() == "2026-11-27T00:00:00+00:00", "Friday's bar; Saturday has none"
    assert daily[3] <= min(daily[1], daily[4]) <= max(daily[1], daily[4]) <= daily[2] and daily[5] > 0
    first, last = db.execute(
        "SELECT min(ts), max(ts) FROM core.market_bars WHERE symbol = 'IBM' AND interval = '60min'"
    ).fetchone()
    # the first bar of November: Mon 2 Nov 04:00 EST = 09:00 UTC; the last: Fri 27 Nov 19:00 EST = 00:00 UTC
    assert first.isoformat() == "2026-11-02T09:00:00+00:00"
    assert last.isoformat() == "2026-11-28T00:00:00+00:00"
    assert db.execute("SELECT count(*) FROM core.market_bars WHERE symbol = 'BTC'").fetchone()[0] == 1000


def test_the_api_key_is_stored_nowhere(ingest: Any, db: Any) -> None:
    truncate_warehouse(db)
    assert ingest().state == "success"
    rows = db.execute("SELECT request_params::text, headers::text, body FROM raw.api_responses").fetchall()
    assert len(rows) == 3
    for params, headers, body in rows:
        assert KEY not in params + headers + body
        assert '"function"' in params and "apikey" not in params


def test_same_window_again_adds_no_rows(ingest: Any, db: Any, sim: Any) -> None:
    truncate_warehouse(db)
    sim.configure({"alphavantage": {"bad_items_ratio": 0.05}})
    assert ingest().state == "success"
    bars, quar, _ = _counts(db)
    before = _snapshot(db)
    assert ingest().state == "success"
    assert _counts(db)[:2] == (bars, quar)
    assert _snapshot(db) == before
    changed = db.execute("SELECT changed FROM ops.ingest_runs ORDER BY loaded_at DESC LIMIT 1").fetchone()[0]
    assert changed == 0


def test_throttling_and_5xx_burst_end_with_the_same_rows(
    ingest: Any, db: Any, sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    truncate_warehouse(db)
    assert ingest().state == "success"
    clean = _snapshot(db)
    truncate_warehouse(db)
    sim.reset()
    conn = json.loads(os.environ["AIRFLOW_CONN_ALPHAVANTAGE_DEFAULT"])
    monkeypatch.setenv(
        "AIRFLOW_CONN_ALPHAVANTAGE_DEFAULT",
        # the simulator serves its faults in request order, so the first page meets all seven: give it room
        json.dumps({**conn, "extra": {**conn["extra"], "throttle_wait": 0.1, "max_attempts": 8}}),
    )
    sim.configure(
        {
            "alphavantage": {
                "rate_limit": {"count": 2, "retry_after": 1},
                "server_errors": {"count": 3, "status": 503},
                "note_throttle": {"count": 2},
            }
        }
    )
    dr = ingest()
    assert dr.state == "success"
    assert [t.try_number for t in dr.get_task_instances() if t.task_id == "extract"] == [1], "no task retry"
    stats = sim.stats()["alphavantage"]
    assert stats["by_status"] == {"503": 3, "429": 2, "200": 5}, "3 pages + 2 HTTP-200 Note throttles"
    assert _snapshot(db) == clean
    assert (
        db.execute("SELECT count(*) FROM raw.api_responses WHERE body LIKE '%Thank you%'").fetchone()[0] == 0
    )


def test_rejected_key_fails_fast_and_alerts_slack(
    ingest: Any, db: Any, sim: Any, slack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    truncate_warehouse(db)
    conn = json.loads(os.environ["AIRFLOW_CONN_ALPHAVANTAGE_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_ALPHAVANTAGE_DEFAULT", json.dumps({**conn, "password": "wrong-key"}))
    slack.clear()
    dr = ingest()
    assert dr.state == "failed"
    ti = next(t for t in dr.get_task_instances() if t.task_id == "extract")
    assert ti.state == "failed"
    assert ti.try_number == 1, "a rejected key must not be retried"
    assert sim.stats()["alphavantage"]["requests"] == 1
    texts = [t for t in slack.texts("failures") if "Task failed" in t]
    assert len(texts) == 1, slack.texts()
    assert [t for t in slack.texts("failures") if "DAG run failed" in t], slack.texts()
    assert "ingest_alphavantage.extract" in texts[0]
    assert "alphavantage_default" in texts[0] and "apikey" in texts[0]
    assert "wrong-key" not in texts[0]
    assert _counts(db) == (0, 0, 0)


def test_page_that_stays_malformed_fails_and_the_retry_skips_stored_series(
    ingest: Any, db: Any, sim: Any
) -> None:
    from airflow.sdk.exceptions import AirflowException

    truncate_warehouse(db)
    # The first series is fine, every later answer is truncated JSON.
    sim.configure({"alphavantage": {"malformed": {"count": 100, "skip": 1}}})
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
        "SELECT stream, is_valid, error FROM raw.api_responses WHERE dag_run_id = 'test_malformed' ORDER BY id"
    ).fetchall()
    assert rows[0][:2] == ("daily:IBM", True)
    assert rows[-1][1] is False and "not JSON" in rows[-1][2]
    # A retry skips the stored series and fetches only the others.
    sim.reset()
    context["ti"] = SimpleNamespace(try_number=2)
    result = task.execute(context)
    assert result["pages"] == 3
    assert sim.stats()["alphavantage"]["requests"] == 2
    valid = db.execute(
        "SELECT stream, task_try FROM raw.api_responses WHERE dag_run_id = 'test_malformed' AND is_valid"
        " ORDER BY id"
    ).fetchall()
    assert valid == [("daily:IBM", 1), ("intraday:IBM:60min:2026-11", 2), ("crypto_daily:BTC:EUR", 2)]


def test_manual_run_without_logical_date_fetches_the_last_day(ingest: Any, db: Any) -> None:
    truncate_warehouse(db)
    dr = ingest(window=None)
    assert dr.state == "success"
    start, end = db.execute("SELECT window_start, window_end FROM ops.ingest_runs").fetchone()
    assert end - start == timedelta(days=1)
    assert timedelta(0) <= dr.run_after - end < timedelta(days=1)


def test_backfill_beyond_the_daily_reach_records_a_gap_and_still_fetches_the_month(
    ingest: Any, db: Any, sim: Any
) -> None:
    truncate_warehouse(db)
    window = ("2026-05-11T22:30:00+00:00", "2026-05-12T22:30:00+00:00")  # about 200 days ago
    assert ingest(window=window).state == "success"
    coverage = {
        stream: (status, reason)
        for stream, status, reason in db.execute("SELECT stream, status, reason FROM ops.coverage").fetchall()
    }
    assert coverage == {
        "daily:IBM": ("gap", "beyond_reach"),
        "intraday:IBM:60min:2026-05": ("ingested", None),
        "crypto_daily:BTC:EUR": ("ingested", None),
    }
    assert sim.stats()["alphavantage"]["requests"] == 2, "the compact daily series was not asked for"
    months = db.execute(
        "SELECT DISTINCT to_char(ts AT TIME ZONE 'America/New_York', 'YYYY-MM') FROM core.market_bars"
        " WHERE interval = '60min'"
    ).fetchall()
    assert months == [("2026-05",)]
    assert (
        db.execute(
            "SELECT count(*) FROM core.market_bars WHERE symbol = 'IBM' AND interval = '1d'"
        ).fetchone()[0]
        == 0
    )


def test_budget_running_out_ends_the_run_cleanly_with_a_gap(
    ingest: Any, db: Any, sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    truncate_warehouse(db)
    data = yaml.safe_load(Path(os.environ["PULSE_SOURCES_FILE"]).read_text())
    data["budgets"] = {"alphavantage": [{"per_seconds": 86400, "calls": 2}]}
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("PULSE_SOURCES_FILE", str(path))
    dr = ingest()
    assert dr.state == "success"
    assert sim.stats()["alphavantage"]["requests"] == 2
    stored = {r[0] for r in db.execute("SELECT stream FROM raw.api_responses").fetchall()}
    assert stored == {"daily:IBM", "intraday:IBM:60min:2026-11"}
    coverage = dict(db.execute("SELECT stream, coalesce(reason, status) FROM ops.coverage").fetchall())
    assert coverage["daily:IBM"] == "ingested"
    assert coverage["crypto_daily:BTC:EUR"] == "budget_exhausted"
    # (the intraday series was stored whole; the operator still tries one more budget call after a stream's
    # last page, so it may record that stream as budget_exhausted too: see the report)
    assert db.execute("SELECT count(*) FROM core.market_bars WHERE symbol = 'BTC'").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM core.market_bars WHERE interval = '60min'").fetchone()[0] > 0
