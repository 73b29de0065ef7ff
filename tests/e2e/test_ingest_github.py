"""ingest_github end to end: simulator over HTTP -> raw -> core/quarantine in the real PostgreSQL.

The scenarios every source shares (every served item loaded or quarantined, the same window twice, throttling,
rejected credentials, malformed pages, ...) run for this source in test_ingest_scenarios.py; here are the tests
only this source has.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.conftest import WINDOW, truncate_warehouse
from tests.e2e.test_ingest_scenarios import SOURCES, Ingest, counts, start_ingest

pytestmark = pytest.mark.e2e

SOURCE = SOURCES["github"]


@pytest.fixture
def ingest(request: pytest.FixtureRequest) -> Ingest:
    return start_ingest("github", request)


def _counts(db: Any) -> tuple[int, ...]:
    """(documents, repository snapshots, quarantined)"""
    got = counts(db, SOURCE)
    return (*got.loaded, got.quarantined)


REPO = "apache/airflow"  # tests/data/sources.yaml: repositories [apache/airflow], search_max_items 20


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
