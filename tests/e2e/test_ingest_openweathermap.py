"""ingest_openweathermap end to end: simulator over HTTP -> raw -> core.weather_observations/quarantine.

The scenarios every source shares (every served item loaded or quarantined, the same window twice, throttling,
rejected credentials, malformed pages, ...) run for this source in test_ingest_scenarios.py; here are the tests
only this source has.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.conftest import SIM_NOW, truncate_warehouse
from tests.e2e.test_ingest_scenarios import Ingest, start_ingest

pytestmark = pytest.mark.e2e


@pytest.fixture
def ingest(request: pytest.FixtureRequest) -> Ingest:
    return start_ingest("openweathermap", request)


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
