"""ingest_newsapi end to end: simulator over HTTP -> raw -> core/quarantine in the real PostgreSQL."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import SIM_NOW, WINDOW, dag_test, truncate_warehouse

pytestmark = pytest.mark.e2e

#: The simulator's volume settings these tests rely on (volume survives ``sim.reset()``, so set it).
VOLUME = {
    "api_key": "sim-newsapi-key",
    "articles_per_hour": 24,
    "headlines_per_hour": 4,
    "headlines_total": 38,
    "max_results": 100,
    "plan_horizon_days": 30,
}
SERVED_CLEAN = 24 + 38  # tests/data/sources.yaml: everything "bitcoin" for the hour, one headline list
FIXED_NOW = datetime.fromisoformat(SIM_NOW)


class _SimClock(datetime):
    """``datetime`` whose ``now()`` is the simulator's clock."""

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return FIXED_NOW.astimezone(tz) if tz else FIXED_NOW.replace(tzinfo=None)


@pytest.fixture
def news(sim: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # How far back a stream reaches is judged against the clock (top headlines: 3 hours), by the extract
    # operator and by the hook: both are pinned to the simulator's clock, which the test window ends at.
    monkeypatch.setattr("pulse.hooks.newsapi._utcnow", lambda: FIXED_NOW)
    monkeypatch.setattr("pulse.operators.extract.datetime", _SimClock)
    sim.configure({"newsapi": VOLUME})
    yield sim
    sim.configure({"newsapi": VOLUME})


@pytest.fixture
def ingest(dagbag: Any, airflow_db: None, warehouse: Any, news: Any, slack: Any) -> Any:
    dag = dagbag.dags.get("ingest_newsapi")
    assert dag is not None, dagbag.import_errors

    def run(window: tuple[str, str] = WINDOW) -> Any:
        return dag_test(dag, run_conf={"window_start": window[0], "window_end": window[1]})

    run.dag = dag
    return run


def _counts(db: Any) -> tuple[int, int, int]:
    docs = db.execute("SELECT count(*) FROM core.documents WHERE source = 'newsapi'").fetchone()[0]
    quar = db.execute("SELECT count(*) FROM quality.quarantine WHERE source = 'newsapi'").fetchone()[0]
    raw = db.execute("SELECT count(*) FROM raw.api_responses WHERE source = 'newsapi'").fetchone()[0]
    return docs, quar, raw


def _snapshot(db: Any) -> dict[str, str]:
    rows = db.execute(
        "SELECT external_id, content_sha256 FROM core.documents WHERE source = 'newsapi'"
    ).fetchall()
    return dict(rows)


def test_every_served_article_is_loaded_or_quarantined(ingest: Any, db: Any, news: Any) -> None:
    truncate_warehouse(db)
    news.configure({"newsapi": {"bad_items_ratio": 0.2}})
    dr = ingest()
    assert dr.state == "success"

    docs, quar, raw = _counts(db)
    served = news.stats()["newsapi"]
    assert served["served_count"] == SERVED_CLEAN
    assert docs + quar == served["served_count"]
    assert docs > 0 and quar > 0
    assert raw == 3 + 4  # everything: 10+10+4 articles; headlines: 10+10+10+8
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
    good = {ident for ident, v in served["served"].items() if not v["bad"]}
    in_core = {r[0] for r in db.execute("SELECT external_id FROM core.documents").fetchall()}
    assert in_core == good, "every good article is in core under its URL"

    by_stream = dict(
        db.execute(
            "SELECT coalesce(payload->>'query', 'headlines:' || (payload->>'headlines')), count(*) "
            "FROM core.documents GROUP BY 1"
        ).fetchall()
    )
    assert set(by_stream) == {"bitcoin", "headlines:us/technology"}
    run = db.execute(
        "SELECT pages, items, loaded, quarantined, window_start, window_end FROM ops.ingest_runs"
    ).fetchone()
    assert run[:4] == (7, SERVED_CLEAN, docs, quar)
    assert run[4].isoformat() == WINDOW[0] and run[5].isoformat() == WINDOW[1]
    coverage = db.execute("SELECT stream, status, reason FROM ops.coverage ORDER BY stream").fetchall()
    assert coverage == [
        ("everything:bitcoin", "ingested", None),
        ("top-headlines:us/technology", "ingested", None),
    ]


def test_bylines_are_pseudonymised_outside_raw(ingest: Any, db: Any) -> None:
    truncate_warehouse(db)
    assert ingest().state == "success"
    bylines = set()
    for (body,) in db.execute("SELECT body FROM raw.api_responses").fetchall():
        # (a byline that is the outlet's own name, like "Nintendo Life", is public as the source name)
        bylines |= {
            a["author"]
            for a in json.loads(body)["articles"]
            if a["author"] and a["author"] != a["source"]["name"]
        }
    assert len(bylines) > 10
    core_text = " ".join(
        json.dumps(r) for r in db.execute("SELECT author_pseudonym, payload FROM core.documents").fetchall()
    )
    assert not any(b in core_text for b in bylines)
    raw_text = " ".join(
        json.dumps(r) for r in db.execute("SELECT request_params, headers FROM raw.api_responses").fetchall()
    )
    assert "sim-newsapi-key" not in raw_text, "the API key never reaches raw"


def test_same_window_again_adds_no_rows(ingest: Any, db: Any, news: Any) -> None:
    truncate_warehouse(db)
    news.configure({"newsapi": {"bad_items_ratio": 0.2}})
    assert ingest().state == "success"
    docs, quar, _ = _counts(db)
    before = _snapshot(db)
    assert ingest().state == "success"
    assert _counts(db)[:2] == (docs, quar)
    assert _snapshot(db) == before
    changed = db.execute("SELECT changed FROM ops.ingest_runs ORDER BY loaded_at DESC LIMIT 1").fetchone()[0]
    assert changed == 0


def test_throttling_and_5xx_burst_end_with_the_same_rows(ingest: Any, db: Any, news: Any) -> None:
    truncate_warehouse(db)
    assert ingest().state == "success"
    clean = _snapshot(db)
    assert len(clean) == SERVED_CLEAN
    truncate_warehouse(db)
    news.reset()
    # 2 gateway errors then a 429 with Retry-After: three failures in a row, within the 4 attempts per page
    news.configure(
        {
            "newsapi": {
                "server_errors": {"count": 2, "status": 503},
                "rate_limit": {"count": 1, "retry_after": 1},
            }
        }
    )
    assert ingest().state == "success"
    by_status = news.stats()["newsapi"]["by_status"]
    assert by_status.get("503") == 2 and by_status.get("429") == 1
    assert _snapshot(db) == clean


def test_rejected_key_fails_fast_and_alerts_slack(
    ingest: Any, db: Any, slack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_NEWSAPI_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_NEWSAPI_DEFAULT", json.dumps({**conn, "password": "wrong-key"}))
    slack.clear()
    dr = ingest()
    assert dr.state == "failed"
    ti = next(t for t in dr.get_task_instances() if t.task_id == "extract")
    assert ti.state == "failed"
    assert ti.try_number == 1, "a 401 must not be retried"
    texts = [t for t in slack.texts("failures") if "Task failed" in t]
    assert len(texts) == 1, slack.texts()
    assert [t for t in slack.texts("failures") if "DAG run failed" in t], slack.texts()
    assert "ingest_newsapi.extract" in texts[0]
    assert "newsapi_default" in texts[0] and "401" in texts[0] and "apiKeyInvalid" in texts[0]


def test_backfill_beyond_reach_records_gaps_without_asking(ingest: Any, db: Any, news: Any) -> None:
    truncate_warehouse(db)
    old = tuple((datetime.fromisoformat(w) - timedelta(days=40)).isoformat() for w in WINDOW)
    assert ingest(old).state == "success"
    assert _counts(db) == (0, 0, 0)
    assert news.stats()["newsapi"]["requests"] == 0, "no call spent on a window the plan cannot serve"
    gaps = db.execute(
        "SELECT stream, status, reason, window_start, window_end FROM ops.coverage ORDER BY stream"
    ).fetchall()
    assert [g[:3] for g in gaps] == [
        ("everything:bitcoin", "gap", "beyond_reach"),
        ("top-headlines:us/technology", "gap", "beyond_reach"),
    ]
    assert all((g[3].isoformat(), g[4].isoformat()) == old for g in gaps)


def test_a_plan_that_reaches_less_far_ends_the_stream_on_its_400(ingest: Any, db: Any, news: Any) -> None:
    truncate_warehouse(db)
    news.configure({"newsapi": {"plan_horizon_days": 5}})  # the account's plan: shorter than configured
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


def test_plan_cap_keeps_what_the_plan_serves(ingest: Any, db: Any, news: Any) -> None:
    truncate_warehouse(db)
    news.configure({"newsapi": {"articles_per_hour": 150}})
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
    ingest: Any, db: Any, news: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_NEWSAPI_DEFAULT"])
    conn["extra"] = {**conn["extra"], "max_results": 50}
    monkeypatch.setenv("AIRFLOW_CONN_NEWSAPI_DEFAULT", json.dumps(conn))
    truncate_warehouse(db)
    news.configure({"newsapi": {"articles_per_hour": 150}})
    assert ingest().state == "success"
    assert news.stats()["newsapi"]["by_status"] == {"200": 5 + 4}, "no call wasted on a 426"
    oldest = db.execute(
        "SELECT min(created_at) FROM core.documents WHERE payload->>'query' = 'bitcoin'"
    ).fetchone()[0]
    gap = db.execute(
        "SELECT window_start, window_end FROM ops.coverage WHERE stream = 'everything:bitcoin' "
        "AND reason = 'listing_cap'"
    ).fetchone()
    assert gap is not None and gap[0].isoformat() == WINDOW[0] and gap[1] == oldest


def test_page_that_stays_malformed_fails_with_clear_error_and_keeps_earlier_pages(
    ingest: Any, db: Any, news: Any
) -> None:
    from airflow.sdk.exceptions import AirflowException

    truncate_warehouse(db)
    # The first page is fine, every later answer is truncated JSON.
    task = ingest.dag.get_task("extract")
    context = {
        "dag": ingest.dag,
        "run_id": "test_malformed",
        "ti": SimpleNamespace(try_number=1),
        "params": {"window_start": WINDOW[0], "window_end": WINDOW[1]},
    }
    news.configure({"newsapi": {"malformed": {"count": 100, "skip": 1}}})
    with pytest.raises(AirflowException, match=r"stayed malformed after 4 attempts") as err:
        task.execute(context)
    assert "Pages stored before it are kept" in str(err.value)
    rows = db.execute(
        "SELECT page_no, is_valid, error FROM raw.api_responses WHERE dag_run_id = 'test_malformed' ORDER BY id"
    ).fetchall()
    assert rows[0][:2] == (0, True)
    assert rows[-1][1] is False and "not JSON" in rows[-1][2]
    # A retry resumes after the stored page instead of starting over.
    news.reset()
    context["ti"] = SimpleNamespace(try_number=2)
    result = task.execute(context)
    assert result["pages"] == 7 and result["items"] == SERVED_CLEAN
    pages = db.execute(
        "SELECT stream, page_no, task_try FROM raw.api_responses WHERE dag_run_id = 'test_malformed' AND is_valid"
        " ORDER BY id"
    ).fetchall()
    assert [p for p in pages if p[0] == "everything:bitcoin"] == [
        ("everything:bitcoin", 0, 1),
        ("everything:bitcoin", 1, 2),
        ("everything:bitcoin", 2, 2),
    ]


def test_an_article_redelivered_with_a_later_published_at_stays_one_row(
    ingest: Any, db: Any, news: Any
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
    news.configure(
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
    news.configure(
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
