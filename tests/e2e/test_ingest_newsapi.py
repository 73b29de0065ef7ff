"""ingest_newsapi end to end: simulator over HTTP -> raw -> core/quarantine in the real PostgreSQL.

The scenarios every source shares (every served item loaded or quarantined, the same window twice, throttling,
rejected credentials, malformed pages, ...) run for this source in test_ingest_scenarios.py; here are the tests
only this source has.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.conftest import WINDOW, truncate_warehouse
from tests.e2e.test_ingest_scenarios import SOURCES, Ingest, counts, snapshot, start_ingest

pytestmark = pytest.mark.e2e

SOURCE = SOURCES["newsapi"]


@pytest.fixture
def ingest(request: pytest.FixtureRequest) -> Ingest:
    return start_ingest("newsapi", request)


def _counts(db: Any) -> tuple[int, ...]:
    got = counts(db, SOURCE)
    return (*got.loaded, got.quarantined, got.raw)


def _snapshot(db: Any) -> dict[Any, str]:
    return snapshot(db, SOURCE)


def test_a_plan_that_reaches_less_far_ends_the_stream_on_its_400(ingest: Any, db: Any, sim: Any) -> None:
    truncate_warehouse(db)
    sim.configure({"newsapi": {"plan_horizon_days": 5}})  # the account's plan: shorter than configured
    old = tuple((datetime.fromisoformat(w) - timedelta(days=10)).isoformat() for w in WINDOW)
    assert ingest(old).state == "success"
    rows = db.execute(
        "SELECT stream, status_code, is_valid, item_count, next_cursor, error FROM raw.api_responses"
    ).fetchall()
    assert len(rows) == 1, "top headlines are not asked for a past window"
    stream, status, valid, items, cursor, error = rows[0]
    assert (stream, status, valid, items, cursor) == ("everything:bitcoin", 400, True, 0, None)
    assert error.startswith("beyond reach") and "too far in the past" in error
    assert _counts(db)[:2] == (0, 0)


def test_plan_cap_keeps_what_the_plan_serves(ingest: Any, db: Any, sim: Any) -> None:
    truncate_warehouse(db)
    sim.configure({"newsapi": {"articles_per_hour": 150}})
    assert ingest().state == "success"
    everything = db.execute(
        "SELECT count(*) FROM core.documents WHERE payload->>'query' = 'bitcoin'"
    ).fetchone()[0]
    assert everything == 100
    pages = db.execute(
        "SELECT page_no, status_code, item_count, next_cursor FROM raw.api_responses "
        "WHERE stream = 'everything:bitcoin' ORDER BY page_no"
    ).fetchall()
    assert len(pages) == 11 and pages[-1] == (10, 426, 0, None)
    assert _counts(db)[0] == 100 + 38


def test_configured_result_cap_stops_early_and_records_the_rest_as_a_gap(
    ingest: Any, db: Any, sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_NEWSAPI_DEFAULT"])
    conn["extra"] = {**conn["extra"], "max_results": 50}
    monkeypatch.setenv("AIRFLOW_CONN_NEWSAPI_DEFAULT", json.dumps(conn))
    truncate_warehouse(db)
    sim.configure({"newsapi": {"articles_per_hour": 150}})
    assert ingest().state == "success"
    assert sim.stats()["newsapi"]["by_status"] == {"200": 5 + 4}, "no call wasted on a 426"
    oldest = db.execute(
        "SELECT min(created_at) FROM core.documents WHERE payload->>'query' = 'bitcoin'"
    ).fetchone()[0]
    gap = db.execute(
        "SELECT window_start, window_end FROM ops.coverage WHERE stream = 'everything:bitcoin' "
        "AND reason = 'listing_cap'"
    ).fetchone()
    assert gap is not None and gap[0].isoformat() == WINDOW[0] and gap[1] == oldest


def test_an_article_redelivered_with_a_later_published_at_stays_one_row(
    ingest: Any, db: Any, sim: Any
) -> None:
    """NewsAPI re-indexes an article and serves it again in a later window with a later ``publishedAt``: it is
    the same item, so it stays one row of ``core.documents`` (which is partitioned by creation time and keyed
    with it). The row keeps the creation time seen first, takes the re-delivery's other fields, and the moved
    time is recorded in ``quality.created_at_changes``; the analyst views count the article once."""
    from tests.conftest import publish_everything

    truncate_warehouse(db)
    earlier = ("2026-11-28T10:00:00+00:00", "2026-11-28T11:00:00+00:00")
    assert ingest(earlier).state == "success"
    url, created = db.execute(
        "SELECT external_id, created_at FROM core.documents WHERE payload->>'query' = 'bitcoin'"
        " ORDER BY external_id LIMIT 1"
    ).fetchone()
    article = next(
        a
        for (body,) in db.execute("SELECT body FROM raw.api_responses WHERE endpoint = '/v2/everything'")
        for a in json.loads(body)["articles"]
        if a["url"].split("#")[0] == url
    )
    moved = created + timedelta(minutes=75)  # inside the next window
    again = {
        **article,
        "publishedAt": moved.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "title": "Updated: " + article["title"],
    }
    sim.configure(
        {
            "newsapi": {
                "hostile": {"plant": [{"into": "articles", "item": again, "endpoint": "/v2/everything"}]}
            }
        }
    )
    assert ingest(WINDOW).state == "success"

    rows = db.execute(
        "SELECT created_at, title FROM core.documents WHERE external_id = %s", (url,)
    ).fetchall()
    assert rows == [(created, again["title"])], "one row: first-seen creation time, the re-delivery's title"
    changes = db.execute(
        "SELECT kept_created_at, reported_created_at FROM quality.created_at_changes WHERE external_id = %s",
        (url,),
    ).fetchall()
    assert changes == [(created, moved)]
    dup = db.execute(
        "SELECT count(*) FROM (SELECT 1 FROM core.documents GROUP BY source, external_id HAVING count(*) > 1) d"
    ).fetchone()[0]
    assert dup == 0
    publish_everything(db)
    viewed = db.execute(
        "SELECT sum(items) FROM analytics.daily_volume WHERE source = 'newsapi' AND dataset = 'core.documents'"
    ).fetchone()[0]
    assert viewed == db.execute("SELECT count(*) FROM core.documents WHERE source = 'newsapi'").fetchone()[0]
    # Loading the later window again changes nothing.
    sim.configure(
        {
            "newsapi": {
                "hostile": {"plant": [{"into": "articles", "item": again, "endpoint": "/v2/everything"}]}
            }
        }
    )
    before = _snapshot(db)
    assert ingest(WINDOW).state == "success"
    assert _snapshot(db) == before
    assert db.execute("SELECT count(*) FROM quality.created_at_changes").fetchone()[0] == 1
