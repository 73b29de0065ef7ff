"""ingest_alphavantage end to end: simulator over HTTP -> raw -> core.market_bars/quarantine in PostgreSQL.

The scenarios every source shares (every served item loaded or quarantined, the same window twice, throttling,
rejected credentials, malformed pages, ...) run for this source in test_ingest_scenarios.py; here are the tests
only this source has.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import truncate_warehouse
from tests.e2e.test_ingest_scenarios import Ingest, start_ingest

pytestmark = pytest.mark.e2e


@pytest.fixture
def ingest(request: pytest.FixtureRequest) -> Ingest:
    return start_ingest("alphavantage", request)


KEY = "sim-alphavantage-key"


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
