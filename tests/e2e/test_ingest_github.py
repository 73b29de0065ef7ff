"""ingest_github end to end: simulator over HTTP -> raw -> core/quarantine in the real PostgreSQL."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.conftest import WINDOW, dag_test, truncate_warehouse

pytestmark = pytest.mark.e2e

REPO = "apache/airflow"  # tests/data/sources.yaml: repositories [apache/airflow], search_max_items 20
VOLUME = {
    "events_per_hour": 150,  # two pages of 100 to reach back past the window start
    "issues_per_hour": 3,
    "events_cap": 300,
    "search_total": 57,
    "missing_repos": [],
}
REASONS = {
    "missing_id",
    "bad_timestamp",
    "future_timestamp",
    "text_nul_byte",
    "text_too_large",
    "missing_text",
    "bad_field",
}


@pytest.fixture
def ingest(dagbag: Any, airflow_db: None, warehouse: Any, sim: Any, slack: Any) -> Any:
    dag = dagbag.dags.get("ingest_github")
    assert dag is not None, dagbag.import_errors
    sim.configure({"github": VOLUME})

    def run(window: tuple[str, str] | None = WINDOW) -> Any:
        conf = {"window_start": window[0], "window_end": window[1]} if window else {}
        return dag_test(dag, run_conf=conf)

    return run


def _counts(db: Any) -> tuple[int, int, int]:
    docs = db.execute("SELECT count(*) FROM core.documents WHERE source = 'github'").fetchone()[0]
    facts = db.execute("SELECT count(*) FROM core.github_repo_snapshots WHERE source = 'github'").fetchone()[
        0
    ]
    quar = db.execute("SELECT count(*) FROM quality.quarantine WHERE source = 'github'").fetchone()[0]
    return docs, facts, quar


def _snapshot(db: Any) -> dict[str, str]:
    docs = db.execute("SELECT external_id, content_sha256 FROM core.documents WHERE source = 'github'")
    facts = db.execute(
        "SELECT repo || '@' || snapshot_at::text, content_sha256 FROM core.github_repo_snapshots"
    )
    return dict(docs.fetchall()) | dict(facts.fetchall())


def test_every_served_item_is_loaded_or_quarantined(ingest: Any, db: Any, sim: Any) -> None:
    truncate_warehouse(db)
    sim.configure({"github": {"bad_items_ratio": 0.2}})
    dr = ingest()
    assert dr.state == "success"

    docs, facts, quar = _counts(db)
    served = sim.stats()["github"]
    assert served["served_count"] > 150
    assert docs + facts + quar == served["served_count"]
    assert docs > 0 and facts > 0 and quar > 0
    bad_served = {ident: v["bad"] for ident, v in served["served"].items() if v["bad"]}
    assert quar == len(bad_served)
    reasons = {r for (r,) in db.execute("SELECT DISTINCT reason_code FROM quality.quarantine").fetchall()}
    assert reasons <= REASONS and len(reasons) >= 5, reasons
    good = {ident for ident, v in served["served"].items() if not v["bad"]}
    in_core = {r[0] for r in db.execute("SELECT external_id FROM core.documents WHERE source = 'github'")}
    in_core |= {f"repo:{r[0]}" for r in db.execute("SELECT repo FROM core.github_repo_snapshots")}
    assert in_core == good
    kinds = dict(db.execute("SELECT kind, count(*) FROM core.documents GROUP BY kind").fetchall())
    assert set(kinds) == {"github_event", "issue", "pull_request"}
    pages = dict(db.execute("SELECT stream, count(*) FROM raw.api_responses GROUP BY stream").fetchall())
    assert pages[f"events:{REPO}"] == 2 and pages[f"repo:{REPO}@{WINDOW[1]}"] == 1
    run = db.execute("SELECT loaded, quarantined, window_start, window_end FROM ops.ingest_runs").fetchone()
    assert run[:2] == (docs + facts, quar)
    assert (run[2].isoformat(), run[3].isoformat()) == WINDOW


def test_snapshots_are_keyed_by_the_window_end(
    ingest: Any, db: Any, sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    truncate_warehouse(db)
    assert ingest().state == "success"
    rows = db.execute(
        "SELECT repo, snapshot_at, stars, watchers FROM core.github_repo_snapshots ORDER BY stars DESC"
    ).fetchall()
    assert len(rows) == 21  # the repository and 20 search hits
    assert {r[1].isoformat() for r in rows} == {WINDOW[1]}
    own = next(r for r in rows if r[0] == REPO)
    stars = json.loads(
        db.execute(f"SELECT body FROM raw.api_responses WHERE stream = 'repo:{REPO}@{WINDOW[1]}'").fetchone()[
            0
        ]
    )
    assert (own[2], own[3]) == (stars["stargazers_count"], stars["subscribers_count"])
    assert all(r[3] is None for r in rows if r[0] != REPO), "search hits carry no watcher count"
    # the next hour: a second snapshot per repository, the first one kept
    sim.set_now("2026-11-28T13:00:00+00:00")
    monkeypatch.setenv("PULSE_NOW", "2026-11-28T13:05:00+00:00")  # the pipeline's clock (tests/conftest.py)
    assert ingest(("2026-11-28T12:00:00+00:00", "2026-11-28T13:00:00+00:00")).state == "success"
    history = db.execute(
        "SELECT snapshot_at, stars FROM core.github_repo_snapshots WHERE repo = %s ORDER BY 1", (REPO,)
    ).fetchall()
    assert [h[0].isoformat() for h in history] == [WINDOW[1], "2026-11-28T13:00:00+00:00"]
    assert history[1][1] >= history[0][1]


def test_same_window_again_adds_no_rows(ingest: Any, db: Any, sim: Any) -> None:
    truncate_warehouse(db)
    sim.configure({"github": {"bad_items_ratio": 0.2}})
    assert ingest().state == "success"
    counts, before = _counts(db), _snapshot(db)
    assert ingest().state == "success"
    assert _counts(db) == counts
    assert _snapshot(db) == before
    changed = db.execute("SELECT changed FROM ops.ingest_runs ORDER BY loaded_at DESC LIMIT 1").fetchone()[0]
    assert changed == 0


@pytest.mark.parametrize("kind", ["primary", "secondary"])
def test_rate_limits_and_5xx_burst_end_with_the_same_rows(ingest: Any, db: Any, sim: Any, kind: str) -> None:
    truncate_warehouse(db)
    assert ingest().state == "success"
    clean = _snapshot(db)
    truncate_warehouse(db)
    sim.reset()
    # 502, 502, then the limit, then 200: three failures within one page's four attempts (no task retry)
    sim.configure(
        {
            "github": {
                "rate_limit": {"count": 1, "retry_after": 1, "kind": kind},
                "server_errors": {"count": 2},
            }
        }
    )
    dr = ingest()
    assert dr.state == "success"
    assert next(t for t in dr.get_task_instances() if t.task_id == "extract").try_number == 1
    by_status = sim.stats()["github"]["by_status"]
    assert by_status.get("403") == 1 and by_status.get("502") == 2
    assert _snapshot(db) == clean


def test_rejected_token_fails_fast_and_alerts_slack(
    ingest: Any, db: Any, slack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    truncate_warehouse(db)
    conn = json.loads(os.environ["AIRFLOW_CONN_GITHUB_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_GITHUB_DEFAULT", json.dumps({**conn, "password": "wrong-token"}))
    slack.clear()
    dr = ingest()
    assert dr.state == "failed"
    ti = next(t for t in dr.get_task_instances() if t.task_id == "extract")
    assert ti.state == "failed"
    assert ti.try_number == 1, "a 401 must not be retried"
    texts = [t for t in slack.texts("failures") if "Task failed" in t]
    assert len(texts) == 1, slack.texts()
    assert [t for t in slack.texts("failures") if "DAG run failed" in t], slack.texts()
    assert "ingest_github.extract" in texts[0]
    assert "github_default" in texts[0] and "401" in texts[0] and "Bad credentials" in texts[0]


def test_logins_names_and_emails_stay_in_raw(ingest: Any, db: Any) -> None:
    truncate_warehouse(db)
    assert ingest().state == "success"
    people: set[str] = set()
    for stream, body in db.execute("SELECT stream, body FROM raw.api_responses").fetchall():
        if stream.startswith(("events:", "issues:")):
            for item in json.loads(body):
                people.add((item.get("actor") or item.get("user"))["login"])
                for commit in item.get("payload", {}).get("commits", []):
                    people |= {commit["author"]["email"], commit["author"]["name"]}
    assert len(people) > 20
    rows = db.execute(
        "SELECT title, body, url, author_pseudonym, payload::text, metrics::text FROM core.documents"
    ).fetchall()
    text = json.dumps(rows, default=str)
    leaked = {p for p in people if p in text}
    assert not leaked, leaked
    assert all(r[3] and len(r[3]) == 32 for r in rows)


def test_a_window_beyond_reach_is_recorded_as_gaps(ingest: Any, db: Any) -> None:
    truncate_warehouse(db)
    old = ("2026-06-01T00:00:00+00:00", "2026-06-01T01:00:00+00:00")  # 180 days before the simulator's now
    assert ingest(old).state == "success"
    coverage = dict(db.execute("SELECT stream, coalesce(reason, status) FROM ops.coverage").fetchall())
    assert coverage == {
        f"search:topic:data-engineering@{old[1]}": "beyond_reach",
        f"repo:{REPO}@{old[1]}": "beyond_reach",
        f"events:{REPO}": "beyond_reach",
        f"issues:{REPO}": "ingested",
    }
    assert db.execute("SELECT count(*) FROM core.github_repo_snapshots").fetchone()[0] == 0
    kinds = {k for (k,) in db.execute("SELECT DISTINCT kind FROM core.documents").fetchall()}
    assert kinds == {"issue", "pull_request"}  # issues reach any window through `since`


def test_a_busy_repository_beyond_the_300_event_cap_is_a_gap(ingest: Any, db: Any, sim: Any) -> None:
    truncate_warehouse(db)
    sim.configure({"github": {"events_per_hour": 500}})  # 300 events cover the last 36 minutes only
    assert ingest().state == "success"
    gap = db.execute(
        "SELECT reason, window_start, window_end FROM ops.coverage WHERE status = 'gap'"
    ).fetchall()
    assert len(gap) == 1 and gap[0][0] == "listing_cap"
    assert gap[0][1].isoformat() == WINDOW[0]
    assert timedelta(minutes=20) < datetime.fromisoformat(WINDOW[1]) - gap[0][2] < timedelta(minutes=45)
    events = db.execute("SELECT count(*) FROM core.documents WHERE kind = 'github_event'").fetchone()[0]
    assert events == 300


def test_duplicates_across_pages_load_once(ingest: Any, db: Any, sim: Any) -> None:
    truncate_warehouse(db)
    sim.configure({"github": {"duplicate_across_pages": True}})
    assert ingest().state == "success"
    first, second = (
        json.loads(b)
        for (b,) in db.execute(
            "SELECT body FROM raw.api_responses WHERE stream LIKE 'events:%%' ORDER BY page_no"
        ).fetchall()
    )
    assert first[-1]["id"] == second[0]["id"], "the second page repeats the first page's last event"
    docs, facts, quar = _counts(db)
    assert docs + facts + quar == sim.stats()["github"]["served_count"]


def test_schema_drift_quarantines_what_lost_a_required_field(ingest: Any, db: Any, sim: Any) -> None:
    truncate_warehouse(db)
    sim.configure({"github": {"drift": {"drop": ["stargazers_count"]}}})
    assert ingest().state == "success"
    docs, facts, quar = _counts(db)
    assert facts == 0 and quar == 21  # the repository and the 20 search hits
    reasons = dict(db.execute("SELECT reason_code, count(*) FROM quality.quarantine GROUP BY 1").fetchall())
    assert reasons == {"bad_field": 21}
    assert docs > 0, "events and issues do not need the dropped field"


def test_two_bad_snapshots_of_a_repository_keep_two_quarantine_rows(
    ingest: Any, db: Any, sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repository snapshot is the repository at a window's end: a bad one in each of two windows is two
    items, two quarantine rows (the item key carries the snapshot time). Its fractional star count (1.5) is
    refused, never truncated to 1."""
    truncate_warehouse(db)
    bad = {"tamper": [{"where": {"full_name": REPO}, "set": {"stargazers_count": 1.5}}]}
    sim.configure({"github": {"hostile": bad}})
    assert ingest().state == "success"
    sim.set_now("2026-11-28T13:00:00+00:00")
    monkeypatch.setenv("PULSE_NOW", "2026-11-28T13:05:00+00:00")  # the pipeline's clock (tests/conftest.py)
    sim.configure({"github": {"hostile": bad}})
    assert ingest(("2026-11-28T12:00:00+00:00", "2026-11-28T13:00:00+00:00")).state == "success"
    rows = db.execute(
        "SELECT item_key, reason_code, reason_detail FROM quality.quarantine WHERE item_key LIKE %s ORDER BY 1",
        (f"repo:{REPO}@%",),
    ).fetchall()
    assert [r[0] for r in rows] == [f"repo:{REPO}@{WINDOW[1]}", f"repo:{REPO}@2026-11-28T13:00:00+00:00"]
    assert all(r[1] == "bad_field" and "1.5" in r[2] for r in rows)
    assert (
        db.execute("SELECT count(*) FROM core.github_repo_snapshots WHERE repo = %s", (REPO,)).fetchone()[0]
        == 0
    )
