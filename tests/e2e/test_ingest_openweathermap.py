"""ingest_openweathermap end to end: simulator over HTTP -> raw -> core.weather_observations/quarantine."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import SIM_NOW, WINDOW, dag_test, truncate_warehouse

pytestmark = pytest.mark.e2e

BAD_REASONS = {"bad_timestamp", "future_timestamp", "bad_field", "text_nul_byte"}


@pytest.fixture
def window() -> tuple[str, str]:
    """The hour before the simulator's clock; the pipeline clock (``PULSE_NOW``, 12:05) keeps it within the
    2-hour reach of these present-only endpoints on whatever day the suite runs."""
    return WINDOW


@pytest.fixture
def ingest(
    dagbag: Any, airflow_db: None, warehouse: Any, sim: Any, slack: Any, window: tuple[str, str]
) -> Any:
    dag = dagbag.dags.get("ingest_openweathermap")
    assert dag is not None, dagbag.import_errors

    def run(chosen: tuple[str, str] = window) -> Any:
        return dag_test(dag, run_conf={"window_start": chosen[0], "window_end": chosen[1]})

    run.dag = dag
    return run


def _counts(db: Any) -> tuple[int, int, int]:
    facts = db.execute(
        "SELECT count(*) FROM core.weather_observations WHERE source = 'openweathermap'"
    ).fetchone()[0]
    quar = db.execute("SELECT count(*) FROM quality.quarantine WHERE source = 'openweathermap'").fetchone()[0]
    raw = db.execute("SELECT count(*) FROM raw.api_responses WHERE source = 'openweathermap'").fetchone()[0]
    return facts, quar, raw


def _shifted_back(key: str) -> str:
    """The served identity of a forecast entry the simulator moved 10 days ahead (``future_timestamp``)."""
    city_kind, _, dt = key.rpartition(":")
    return f"{city_kind}:{int(dt) - 10 * 86400}"


def _snapshot(db: Any) -> dict[tuple[str, str, datetime], str]:
    rows = db.execute("SELECT city, kind, valid_at, content_sha256 FROM core.weather_observations").fetchall()
    return {(r[0], r[1], r[2]): r[3] for r in rows}


def test_every_served_item_is_loaded_or_quarantined(
    ingest: Any, db: Any, sim: Any, window: tuple[str, str]
) -> None:
    truncate_warehouse(db)
    sim.configure({"openweathermap": {"bad_items_ratio": 0.25}})
    dr = ingest()
    assert dr.state == "success"

    facts, quar, raw = _counts(db)
    served = sim.stats()["openweathermap"]
    assert (
        served["served_count"] == 41
    )  # London (tests/data/sources.yaml): 1 observation + 40 forecast entries
    assert facts + quar == served["served_count"]
    assert raw == 2 and facts > 25 and quar > 3
    bad_served = {ident for ident, v in served["served"].items() if v["bad"]}
    assert quar == len(bad_served)
    reasons = {r for (r,) in db.execute("SELECT DISTINCT reason_code FROM quality.quarantine").fetchall()}
    assert reasons == BAD_REASONS, reasons
    # Every good item is in core under the configured city name, with the time the API gave it.
    in_core = {
        f"{city}:{kind}:{int(valid_at.timestamp())}"
        for city, kind, valid_at in db.execute("SELECT city, kind, valid_at FROM core.weather_observations")
    }
    assert in_core == {ident for ident, v in served["served"].items() if not v["bad"]}
    # Quarantined items with a usable dt are keyed "<city>:<kind>:<dt>".
    keyed = {
        k for (k,) in db.execute("SELECT item_key FROM quality.quarantine") if not k.startswith("sha256:")
    }
    assert keyed and all(k in bad_served or _shifted_back(k) in bad_served for k in keyed)

    run = db.execute(
        "SELECT pages, items, loaded, quarantined, window_start, window_end FROM ops.ingest_runs"
    ).fetchone()
    assert run[:4] == (2, 41, facts, quar)
    assert (run[4].isoformat(), run[5].isoformat()) == window


def test_rows_carry_metric_values_and_the_forecast_issue_time(ingest: Any, db: Any) -> None:
    truncate_warehouse(db)
    assert ingest().state == "success"
    current = db.execute(
        "SELECT country, lat, lon, valid_at, issued_at, temp_c, pressure_hpa, humidity_pct, condition "
        "FROM core.weather_observations WHERE kind = 'current'"
    ).fetchall()
    sim_now = datetime.fromisoformat(SIM_NOW)
    assert len(current) == 1
    country, lat, lon, valid_at, issued_at, temp, pressure, humidity, condition = current[0]
    assert (country, lat, lon, valid_at, issued_at) == ("GB", 51.5085, -0.1257, sim_now, sim_now)
    assert -10 < temp < 25 and 980 <= pressure <= 1040 and 0 <= humidity <= 100 and condition
    forecast = db.execute(
        "SELECT min(valid_at), max(valid_at), count(*), count(DISTINCT issued_at), min(issued_at) "
        "FROM core.weather_observations WHERE kind = 'forecast'"
    ).fetchone()
    assert forecast == (sim_now + timedelta(hours=3), sim_now + timedelta(hours=120), 40, 1, sim_now)


def test_no_api_key_is_stored(ingest: Any, db: Any) -> None:
    truncate_warehouse(db)
    assert ingest().state == "success"
    rows = db.execute("SELECT endpoint, request_params, headers, body FROM raw.api_responses").fetchall()
    assert {r[0] for r in rows} == {"/data/2.5/weather", "/data/2.5/forecast"}
    for _endpoint, params, headers, body in rows:
        assert params == {"lat": 51.5085, "lon": -0.1257, "units": "metric"}
        assert "sim-owm-key" not in json.dumps(headers) + body


def test_same_window_again_adds_no_rows(ingest: Any, db: Any, sim: Any) -> None:
    truncate_warehouse(db)
    sim.configure({"openweathermap": {"bad_items_ratio": 0.25}})
    assert ingest().state == "success"
    facts, quar, _ = _counts(db)
    before = _snapshot(db)
    assert ingest().state == "success"
    assert _counts(db)[:2] == (facts, quar)
    assert _snapshot(db) == before
    changed = db.execute("SELECT changed FROM ops.ingest_runs ORDER BY loaded_at DESC LIMIT 1").fetchone()[0]
    assert changed == 0


def test_throttling_and_5xx_burst_end_with_the_same_rows(ingest: Any, db: Any, sim: Any) -> None:
    truncate_warehouse(db)
    assert ingest().state == "success"
    clean = _snapshot(db)
    truncate_warehouse(db)
    sim.reset()
    # Three failed answers in a row on the first page: within the connection's 4 attempts, so the hook absorbs
    # them with its waits (1 s Retry-After, 0.2 s and 0.4 s backoff) and the task needs no retry.
    sim.configure(
        {
            "openweathermap": {
                "server_errors": {"count": 2, "status": 503},
                "rate_limit": {"count": 1, "retry_after": 1},
            }
        }
    )
    dr = ingest()
    assert dr.state == "success"
    assert {ti.task_id: ti.try_number for ti in dr.get_task_instances()} == {"extract": 1, "load": 1}
    assert sim.stats()["openweathermap"]["by_status"] == {"503": 2, "429": 1, "200": 2}
    assert _snapshot(db) == clean and len(clean) == 41


def test_rejected_key_fails_fast_and_alerts_slack(
    ingest: Any, db: Any, sim: Any, slack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    truncate_warehouse(db)  # also closes the source's circuit breaker: one failed run must not open it
    conn = json.loads(os.environ["AIRFLOW_CONN_OPENWEATHERMAP_DEFAULT"])
    monkeypatch.setenv(
        "AIRFLOW_CONN_OPENWEATHERMAP_DEFAULT", json.dumps({**conn, "password": "wrong-owm-key"})
    )
    slack.clear()
    dr = ingest()
    assert dr.state == "failed"
    ti = next(t for t in dr.get_task_instances() if t.task_id == "extract")
    assert ti.state == "failed"
    assert ti.try_number == 1, "a 401 must not be retried"
    assert sim.stats()["openweathermap"]["by_status"] == {"401": 1}
    texts = [t for t in slack.texts("failures") if "Task failed" in t]
    assert len(texts) == 1, slack.texts()
    assert [t for t in slack.texts("failures") if "DAG run failed" in t], slack.texts()
    assert "ingest_openweathermap.extract" in texts[0]
    assert "openweathermap_default" in texts[0] and "401" in texts[0]
    assert "wrong-owm-key" not in texts[0]
    assert db.execute("SELECT consecutive_failures FROM quality.source_health").fetchone() == (1,)


def test_a_window_beyond_reach_is_a_coverage_gap(
    ingest: Any, db: Any, sim: Any, window: tuple[str, str]
) -> None:
    truncate_warehouse(db)
    end = datetime.fromisoformat(window[1])
    old = ((end - timedelta(hours=4)).isoformat(), (end - timedelta(hours=3)).isoformat())
    dr = ingest(old)
    assert dr.state == "success"
    assert sim.stats()["openweathermap"]["requests"] == 0
    assert _counts(db) == (0, 0, 0)
    gaps = db.execute(
        "SELECT stream, window_start, window_end, status, reason FROM ops.coverage ORDER BY stream"
    ).fetchall()
    assert [(g[0], g[1].isoformat(), g[2].isoformat(), g[3], g[4]) for g in gaps] == [
        ("current:London", *old, "gap", "beyond_reach"),
        ("forecast:London", *old, "gap", "beyond_reach"),
    ]
    assert db.execute("SELECT pages, items, loaded FROM ops.ingest_runs").fetchone() == (0, 0, 0)


def test_page_that_stays_malformed_fails_and_the_retry_resumes(
    ingest: Any, db: Any, sim: Any, window: tuple[str, str]
) -> None:
    from airflow.sdk.exceptions import AirflowException

    truncate_warehouse(db)
    # The current weather comes through; every forecast answer after it is truncated JSON.
    sim.configure({"openweathermap": {"malformed": {"count": 100, "skip": 1}}})
    task = ingest.dag.get_task("extract")
    context = {
        "dag": ingest.dag,
        "run_id": "test_malformed",
        "ti": SimpleNamespace(try_number=1),
        "params": {"window_start": window[0], "window_end": window[1]},
    }
    with pytest.raises(
        AirflowException, match=r"forecast:London\) page 0 stayed malformed after 4 attempts"
    ) as err:
        task.execute(context)
    assert "Pages stored before it are kept" in str(err.value)
    rows = db.execute(
        "SELECT stream, is_valid, error FROM raw.api_responses WHERE dag_run_id = 'test_malformed' ORDER BY id"
    ).fetchall()
    assert [r[:2] for r in rows] == [("current:London", True), ("forecast:London", False)]
    assert "not JSON" in rows[1][2]
    # A retry skips the stored current weather and fetches only the forecast.
    sim.reset()
    context["ti"] = SimpleNamespace(try_number=2)
    task.execute(context)
    assert sim.stats()["openweathermap"]["requests"] == 1
    valid = db.execute(
        "SELECT stream, task_try FROM raw.api_responses WHERE dag_run_id = 'test_malformed' AND is_valid ORDER BY id"
    ).fetchall()
    assert valid == [("current:London", 1), ("forecast:London", 2)]
