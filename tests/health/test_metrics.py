"""Pipeline metrics (issue 17 item 1): ``GET /pulse/metrics`` of the plugin ``plugins/pulse_health_plugin.py``
with the collector of ``pulse.metrics``, through FastAPI's TestClient on the test warehouse.

A few rows are seeded (ingest runs, quarantine, breakers, publication, budget, coverage, checks, exports,
archives, spikes); the exposition is parsed with ``prometheus_client``'s parser and each seeded value is
asserted exactly. Then the token rule, a warehouse on a closed port (200, ``pulse_warehouse_up 0``, scrape
errors, fast), a failing group that does not hide the others, and no secret or id in any label value.
Times are on the pipeline clock (``PULSE_NOW``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from pulse import metrics
from pulse.windows import utcnow
from tests.conftest import truncate_warehouse

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def client(plugin: Any, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    """The plugin's app, nothing overridden: /metrics has no Airflow auth; no token unless a test sets one."""
    monkeypatch.delenv(metrics.TOKEN_ENV, raising=False)
    plugin.pulse_app.app.dependency_overrides.clear()
    return TestClient(plugin.pulse_app)


@pytest.fixture
def seeded(db: Any) -> Iterator[Any]:
    truncate_warehouse(db)
    now = utcnow()
    ingest = [
        # dag_run_id, source, pages, loaded, changed, extracted_at, loaded_at
        ("r1", "reddit", 3, 10, 4, now - timedelta(hours=2, seconds=40), now - timedelta(hours=2)),
        ("r2", "reddit", 2, 5, 1, now - timedelta(minutes=20, seconds=12), now - timedelta(minutes=20)),
        ("r3", "reddit", 1, 0, 0, now - timedelta(minutes=5), None),
        ("n1", "newsapi", 4, 7, 7, now - timedelta(hours=1, seconds=3), now - timedelta(hours=1)),
    ]
    for run_id, source, pages, loaded, changed, extracted_at, loaded_at in ingest:
        db.execute(
            "INSERT INTO ops.ingest_runs (dag_id, dag_run_id, source, window_start, window_end, pages, items,"
            " loaded, changed, extracted_at, loaded_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                f"ingest_{source}",
                run_id,
                source,
                now - timedelta(hours=1),
                now,
                pages,
                loaded,
                loaded,
                changed,
                extracted_at,
                loaded_at,
            ),
        )
    for key, reason, resolved in [
        ("doc-1001", "bad_json", None),
        ("doc-1002", "bad_json", now),
        ("doc-1003", "missing_field", None),
    ]:
        db.execute(
            "INSERT INTO quality.quarantine (source, item_key, raw_response_id, item_index, reason_code,"
            " dag_run_id, resolved_at) VALUES ('reddit', %s, 1, 0, %s, 'manual__secret-run', %s)",
            (key, reason, resolved),
        )
    db.execute(
        "INSERT INTO quality.source_health (source, state, consecutive_failures, opened_at, last_failure,"
        " last_success_at) VALUES ('x', 'open', 3, %s, 'password=hunter2 refused', %s),"
        " ('reddit', 'closed', 0, NULL, NULL, %s), ('github', 'half_open', 2, NULL, NULL, NULL)",
        (now - timedelta(minutes=5), now - timedelta(hours=3), now - timedelta(minutes=10)),
    )
    db.execute(
        "INSERT INTO quality.publish_state (source, published_until, dag_run_id)"
        " VALUES ('reddit', %s, 'tests'), ('newsapi', 'infinity', 'tests')",
        (now - timedelta(minutes=30),),
    )
    db.execute("INSERT INTO ops.api_budget_limits (source, period_s, calls) VALUES ('reddit', 86400, 1000)")
    db.execute(
        "INSERT INTO ops.api_budget (source, period_s, bucket_start, used) VALUES ('reddit', 86400,"
        " to_timestamp(floor(extract(epoch FROM now()) / 86400) * 86400), 250)"
    )
    db.execute(
        "INSERT INTO ops.coverage (source, stream, window_start, window_end, status, reason, dag_run_id)"
        " VALUES ('reddit', 'new:python', %s, %s, 'gap', 'budget_exhausted', 'r1'),"
        " ('reddit', 'new:rust', %s, %s, 'gap', 'budget_exhausted', 'r1'),"
        " ('reddit', 'new:python', %s, %s, 'ingested', NULL, 'r2')",
        (now - timedelta(hours=2), now - timedelta(hours=1)) * 3,
    )
    db.execute(
        "INSERT INTO quality.check_results (check_name, check_type, target, severity, status, dag_run_id)"
        " VALUES ('documents_fresh', 'freshness', 'core.documents', 'error', 'pass', 'q1'),"
        " ('documents_fresh', 'freshness', 'core.documents', 'error', 'fail', 'q2'),"
        " ('documents_fresh', 'freshness', 'core.documents', 'error', 'pass', 'q3')"
    )
    db.execute(
        "INSERT INTO ops.exports (mart, day, directory, manifest_path, rows, files, schema_version, dag_run_id)"
        " VALUES ('analytics.daily_volume', '2026-11-27', 'file:///x', 'file:///x/m.json', 120, '{}', 'v', 'e1'),"
        " ('analytics.daily_volume', '2026-11-26', 'file:///x', 'file:///x/m.json', 80, '{}', 'v', 'e1')"
    )
    db.execute(
        "INSERT INTO analytics.trend_spikes (source, dimension, key, metric, direction, episode_start,"
        " episode_end, peak_hour, peak_value, documents, baseline_basis, dag_run_id)"
        " VALUES ('reddit', 'term', 'bitcoin', 'volume', 'up', %s, %s, %s, 10, 5, 'hourly', 't1')",
        (now - timedelta(hours=2), now - timedelta(hours=1), now - timedelta(hours=2)),
    )
    yield db
    truncate_warehouse(db)


def scrape(client: TestClient, **headers: str) -> tuple[int, str, Samples]:
    resp = client.get("/metrics", headers=headers)
    samples: Samples = {}
    if resp.status_code == 200:
        for family in text_string_to_metric_families(resp.text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return resp.status_code, resp.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_seeded_rows_give_exact_values(seeded: Any, client: TestClient) -> None:
    status, text, s = scrape(client)
    assert status == 200, text
    assert value(s, "pulse_warehouse_up") == 1
    for group in metrics.GROUPS:
        assert value(s, "pulse_metrics_scrape_errors", collector=group) == 0, group
    # ingest runs
    assert value(s, "pulse_ingest_runs_total", source="reddit", outcome="loaded") == 2
    assert value(s, "pulse_ingest_runs_total", source="reddit", outcome="not_loaded") == 1
    assert value(s, "pulse_ingest_runs_total", source="newsapi", outcome="loaded") == 1
    assert value(s, "pulse_ingest_run_duration_seconds", source="reddit") == 12  # the last loaded run
    assert value(s, "pulse_ingest_run_duration_seconds", source="newsapi") == 3
    assert value(s, "pulse_pages_fetched_total", source="reddit") == 6
    assert value(s, "pulse_items_loaded_total", source="reddit") == 15
    assert value(s, "pulse_items_changed_total", source="reddit") == 5
    assert value(s, "pulse_last_loaded_seconds", source="reddit") == 20 * 60
    # quarantine
    assert value(s, "pulse_items_quarantined_total", source="reddit", reason="bad_json") == 2
    assert value(s, "pulse_items_quarantined_total", source="reddit", reason="missing_field") == 1
    assert value(s, "pulse_quarantine_open", source="reddit", reason="bad_json") == 1
    # breaker, budget, held windows, freshness
    assert value(s, "pulse_breaker_open", source="x") == 1
    assert value(s, "pulse_breaker_open", source="reddit") == 0
    assert value(s, "pulse_breaker_state", source="x", state="open") == 1
    assert value(s, "pulse_breaker_state", source="x", state="closed") == 0
    assert value(s, "pulse_breaker_state", source="github", state="half_open") == 1
    assert value(s, "pulse_breaker_consecutive_failures", source="x") == 3
    assert value(s, "pulse_breaker_open", source="newsapi") == 0  # no breaker row: closed
    assert value(s, "pulse_budget_calls_limit", source="reddit") == 1000
    assert value(s, "pulse_budget_calls_left", source="reddit") == 750
    assert value(s, "pulse_freshness_seconds", source="reddit") == 600
    assert value(s, "pulse_freshness_seconds", source="x") == 3 * 3600
    assert ("pulse_freshness_seconds", (("source", "github"),)) not in s  # never succeeded: absent
    assert value(s, "pulse_held_windows", source="reddit") == 0
    # publication, coverage, checks, exports, archives, trends, warehouse
    assert value(s, "pulse_publication_lag_seconds", source="reddit") == 30 * 60
    assert value(s, "pulse_publication_lag_seconds", source="newsapi") == 0
    assert value(s, "pulse_coverage_gap_windows", source="reddit", reason="budget_exhausted") == 2
    assert value(s, "pulse_quality_check_results_total", check="documents_fresh", status="pass") == 2
    assert value(s, "pulse_quality_check_results_total", check="documents_fresh", status="fail") == 1
    assert value(s, "pulse_exports_total") == 2
    assert value(s, "pulse_export_rows_total") == 200
    assert value(s, "pulse_trend_spike_episodes_total", source="reddit", metric="volume") == 1
    assert value(s, "pulse_enriched_documents") == 0
    assert value(s, "pulse_warehouse_connections", state="active") >= 1
    assert value(s, "pulse_default_partition_rows", table="core.documents") == 0
    assert "# TYPE pulse_ingest_runs_total counter" in text, text[:3000]


def test_no_label_value_holds_a_secret_or_an_id(seeded: Any, client: TestClient) -> None:
    status, text, s = scrape(client)
    assert status == 200
    values = {v for _, labels in s for _, v in labels}
    for forbidden in ("hunter2", "doc-100", "secret-run", "r1", "r2", "q1", "e1", "t1"):
        assert not any(forbidden in v for v in values), forbidden
    assert "hunter2" not in text and "doc-100" not in text
    names = {label for _, labels in s for label, _ in labels}
    assert names <= {
        "source",
        "outcome",
        "reason",
        "state",
        "check",
        "status",
        "enricher",
        "metric",
        "table",
        "collector",
    }


def test_the_token_rule(seeded: Any, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    assert client.get("/metrics").status_code == 200  # no token set: open
    monkeypatch.setenv(metrics.TOKEN_ENV, "scrape-token-123")
    resp = client.get("/metrics")
    assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
    assert "scrape-token-123" not in resp.text
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Basic scrape-token-123"}).status_code == 401
    resp = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    assert "pulse_warehouse_up 1.0" in resp.text


def test_warehouse_down_answers_200_fast_with_up_0_and_scrape_errors(
    client: TestClient, dead_warehouse: str
) -> None:
    started = time.perf_counter()
    status, text, s = scrape(client)
    assert time.perf_counter() - started < 5
    assert status == 200, text
    assert value(s, "pulse_warehouse_up") == 0
    for group in metrics.GROUPS:
        assert value(s, "pulse_metrics_scrape_errors", collector=group) == 1
    assert dead_warehouse not in text


def test_a_failing_group_does_not_hide_the_others(seeded: Any, client: TestClient) -> None:
    seeded.execute("ALTER TABLE quality.quarantine RENAME TO quarantine_hidden")
    try:
        status, text, s = scrape(client)
    finally:
        seeded.execute("ALTER TABLE quality.quarantine_hidden RENAME TO quarantine")
    assert status == 200, text
    assert value(s, "pulse_metrics_scrape_errors", collector="quarantine") == 1
    assert value(s, "pulse_metrics_scrape_errors", collector="ingest") == 0
    assert value(s, "pulse_breaker_open", source="x") == 1
    assert not any(name.startswith("pulse_items_quarantined") for name, _ in s)


def test_a_group_that_raises_is_a_scrape_error_and_nothing_leaks(
    warehouse: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(conn: Any, now: Any) -> list[Any]:
        raise RuntimeError("postgresql://pulse:hunter2@db/warehouse password=hunter2")

    text = metrics.render({"boom": boom, "publication": metrics.publication}).decode()
    assert 'pulse_metrics_scrape_errors{collector="boom"} 1.0' in text
    assert 'pulse_metrics_scrape_errors{collector="publication"} 0.0' in text
    assert "hunter2" not in text


def test_authorized_without_and_with_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metrics.TOKEN_ENV, raising=False)
    assert metrics.authorized(None)
    monkeypatch.setenv(metrics.TOKEN_ENV, "t0k")
    assert not metrics.authorized(None)
    assert not metrics.authorized("Bearer")
    assert metrics.authorized("Bearer t0k") and metrics.authorized("bearer t0k")
