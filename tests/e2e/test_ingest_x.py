"""ingest_x end to end: simulator over HTTP -> raw -> core/quarantine in the real PostgreSQL.

The scenarios every source shares (every served item loaded or quarantined, the same window twice, throttling,
rejected credentials, malformed pages, ...) run for this source in test_ingest_scenarios.py; here are the tests
only this source has.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.conftest import truncate_warehouse
from tests.e2e.test_ingest_scenarios import SOURCES, Ingest, counts, start_ingest

pytestmark = pytest.mark.e2e

SOURCE = SOURCES["x"]


@pytest.fixture
def ingest(request: pytest.FixtureRequest) -> Ingest:
    return start_ingest("x", request)


def _counts(db: Any) -> tuple[int, ...]:
    got = counts(db, SOURCE)
    return (*got.loaded, got.quarantined, got.raw)


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
