"""Each check type passes and fails on constructed data in the real warehouse; the quality DAG records and alerts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pulse.quality.checks import is_window_check, load_checks, run_check
from tests.conftest import dag_test, truncate_warehouse

NOW = datetime(2026, 11, 28, 12, 5, tzinfo=UTC)
#: Inside the window that window checks judge by default: the last closed hour before NOW (11:00-12:00).
IN_WINDOW = datetime(2026, 11, 28, 11, 30, tzinfo=UTC)


def doc(db: Any, ext: str, created: datetime, loaded: datetime, author: str | None = "p") -> None:
    db.execute(
        """
        INSERT INTO core.documents (source, external_id, kind, created_at, author_pseudonym, content_sha256,
                                    raw_response_id, dag_run_id, loaded_at)
        VALUES ('qtest', %s, 'post', %s, %s, 'h', 1, 'r', %s)
        """,
        (ext, created, author, loaded),
    )


@pytest.fixture
def qdb(db: Any) -> Any:
    truncate_warehouse(db)
    yield db
    truncate_warehouse(db)


def check(qdb: Any, **spec: Any) -> Any:
    return run_check(qdb, {"name": "t", "source": "qtest", **spec}, NOW)


def test_freshness(qdb: Any) -> None:
    spec = {"type": "freshness", "table": "core.documents", "column": "loaded_at", "max_age_minutes": 60}
    assert check(qdb, **spec).status == "fail"  # no rows at all
    doc(qdb, "a", NOW - timedelta(hours=3), NOW - timedelta(minutes=90))
    r = check(qdb, **spec)
    assert (r.status, r.observed) == ("fail", 90.0)
    doc(qdb, "b", NOW - timedelta(hours=1), NOW - timedelta(minutes=10))
    assert check(qdb, **spec).status == "pass"


def test_volume_anomaly_against_the_same_hour_of_previous_weeks(qdb: Any) -> None:
    spec = {"type": "volume_anomaly", "table": "core.documents", "time_column": "created_at", "weeks": 3}
    hour = NOW.replace(minute=30, second=0) - timedelta(hours=1)  # inside the last full hour
    for w in range(1, 4):
        for i in range(10):
            doc(qdb, f"w{w}_{i}", hour - timedelta(weeks=w), NOW)
    r = check(qdb, **spec)
    assert (r.status, r.observed) == ("fail", 0.0)  # nothing in the current hour against a median of 10
    for i in range(9):
        doc(qdb, f"now_{i}", hour, NOW)
    r = check(qdb, **spec)
    assert (r.status, r.observed) == ("pass", 0.9)
    for i in range(60):
        doc(qdb, f"spike_{i}", hour, NOW)
    assert check(qdb, **spec).status == "fail"  # 69 against 10: a spike


def test_null_rate(qdb: Any) -> None:
    spec = {"type": "null_rate", "table": "core.documents", "column": "author_pseudonym", "max_rate": 0.25}
    for i in range(3):
        doc(qdb, f"a{i}", IN_WINDOW, NOW)
    doc(qdb, "n1", IN_WINDOW, NOW, author=None)
    assert (check(qdb, **spec).status, check(qdb, **spec).observed) == ("pass", 0.25)
    doc(qdb, "outside", NOW, NOW, author=None)  # after the window: not judged with it
    assert check(qdb, **spec).status == "pass"
    doc(qdb, "n2", IN_WINDOW, NOW, author=None)
    r = check(qdb, **spec)
    assert (r.status, r.scope, r.window_start) == ("fail", "window", IN_WINDOW.replace(minute=0))


def test_unique_across_partitions(qdb: Any) -> None:
    spec = {"type": "unique", "table": "core.documents", "columns": ["source", "external_id"]}
    doc(qdb, "same", IN_WINDOW, NOW)
    assert check(qdb, **spec).status == "pass"
    doc(qdb, "same", IN_WINDOW - timedelta(days=40), NOW)  # the same id under another creation time
    r = check(qdb, **spec)
    assert (r.status, r.observed) == ("fail", 1.0) and "same" in r.detail


def test_ranges(qdb: Any) -> None:
    qdb.execute(
        "INSERT INTO core.market_bars (source, symbol, market, asset_class, interval, ts, close, content_sha256,"
        " raw_response_id, dag_run_id) VALUES ('qtest', 'X', 'USD', 'stock', '1d', %s, 10, 'h', 1, 'r')",
        (IN_WINDOW,),
    )
    spec = {"type": "range", "table": "core.market_bars", "column": "close", "min_exclusive": 0}
    assert check(qdb, **spec).status == "pass"
    qdb.execute("UPDATE core.market_bars SET close = 0 WHERE source = 'qtest'")
    assert check(qdb, **spec).status == "fail"
    # The same bad row in another window is not this window's problem.
    later = (NOW.replace(minute=0), NOW.replace(minute=0) + timedelta(hours=1))
    assert run_check(qdb, {"name": "t", "source": "qtest", **spec}, NOW, window=later).status == "pass"
    spec = {"type": "range", "table": "core.market_bars", "column": "close", "min": -1, "max": 1}
    assert check(qdb, **spec).status == "pass"


def test_weather_forecasts_are_judged_when_issued(qdb: Any) -> None:
    """A forecast for tomorrow belongs to the hour it was issued in, not to the hour it comes true."""
    qdb.execute(
        "INSERT INTO core.weather_observations (source, city, kind, valid_at, issued_at, temp_c, content_sha256,"
        " raw_response_id, dag_run_id) VALUES ('qtest', 'Oslo', 'forecast', %s, %s, 99, 'h', 1, 'r')",
        (IN_WINDOW + timedelta(days=1), IN_WINDOW),
    )
    spec = {"type": "range", "table": "core.weather_observations", "column": "temp_c", "min": -90, "max": 60}
    r = check(qdb, **spec)
    assert (r.status, r.observed) == ("fail", 1.0)


def test_schema_drift_in_raw_payloads(qdb: Any) -> None:
    def page(items: list[dict[str, Any]], fetched: datetime) -> None:
        qdb.execute(
            "INSERT INTO raw.api_responses (source, stream, endpoint, page_no, status_code, body, body_sha256,"
            " is_valid, fetched_at) VALUES ('qtest', 's', '/e', 0, 200, %s, 'h', true, %s)",
            (json.dumps({"data": {"children": [{"data": i} for i in items]}}), fetched),
        )

    spec = {"type": "schema_drift", "items_path": "$.data.children[*].data"}
    page([{"id": 1, "title": "a", "score": 3}], NOW - timedelta(days=3))
    page([{"id": 2, "title": "b", "score": 4}], NOW - timedelta(hours=2))
    assert check(qdb, **spec).status == "pass"
    page([{"id": 3, "headline": "c", "score": 5}], NOW - timedelta(hours=1))  # title renamed to headline
    r = check(qdb, **spec)
    assert r.status == "fail" and "headline" in r.detail and r.observed == 1.0


def test_a_broken_check_is_an_error_not_a_crash(qdb: Any) -> None:
    r = check(qdb, type="freshness", table="core.no_such_table", column="loaded_at", max_age_minutes=5)
    assert r.status == "error" and "no_such_table" in r.detail


def test_the_checks_file_is_valid() -> None:
    checks = load_checks()
    assert {c["type"] for c in checks} == {
        "freshness",
        "volume_anomaly",
        "null_rate",
        "unique",
        "range",
        "schema_drift",
    }


def test_quality_dag_records_results_and_alerts(
    dagbag: Any, airflow_db: None, warehouse: Any, slack: Any, qdb: Any
) -> None:
    dag = dagbag.dags["quality"]
    slack.clear()
    dr = dag_test(dag)
    # An empty warehouse: freshness checks of critical sources fail, so the run fails and Slack hears about it.
    assert dr.state == "failed"
    rows = qdb.execute("SELECT check_name, status FROM quality.check_results").fetchall()
    # Nothing was ingested, so no window is ready to audit: only the run checks ran.
    assert len(rows) == len([c for c in load_checks() if not is_window_check(c)])
    assert ("fresh_reddit", "fail") in rows
    texts = slack.texts("quality")
    assert any(
        "data quality check(s) failed" in t and "fresh_reddit" in t and "<= 180 min" in t for t in texts
    )
    score = qdb.execute(
        "SELECT checks, passed FROM analytics.quality_daily WHERE source = 'reddit'"
    ).fetchone()
    assert score is not None and score[0] > score[1]
