"""Write-audit-publish: analyst views advance only across audited windows that passed.

Real ingest (simulator -> raw -> core) for the test window, the real quality DAG, the real views.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pulse.quality.publish import advance, hours, plan
from tests.conftest import WINDOW, dag_test, truncate_warehouse

pytestmark = pytest.mark.e2e

T11 = datetime(2026, 11, 28, 11, tzinfo=UTC)
T12, T13, T14 = (T11 + timedelta(hours=h) for h in (1, 2, 3))


@pytest.fixture
def stack(dagbag: Any, airflow_db: None, warehouse: Any, sim: Any, slack: Any, db: Any) -> Any:
    truncate_warehouse(db)
    slack.clear()
    yield dagbag
    truncate_warehouse(db)


def quality(dagbag: Any, monkeypatch: pytest.MonkeyPatch, now: datetime, **conf: Any) -> Any:
    monkeypatch.setenv("PULSE_NOW", now.isoformat())
    return dag_test(dagbag.dags["quality"], run_conf=conf)


def published(db: Any, source: str = "reddit") -> int:
    row = db.execute(
        "SELECT coalesce(sum(items), 0) FROM analytics.daily_volume WHERE source = %s AND dataset = 'core.documents'",
        (source,),
    ).fetchone()
    return int(row[0])


def horizon(db: Any, source: str = "reddit") -> datetime | None:
    row = db.execute(
        "SELECT published_until FROM analytics.publication WHERE source = %s", (source,)
    ).fetchone()
    return row[0] if row else None


def later_hour(db: Any, start: datetime, authors: list[str | None]) -> None:
    """Documents and a coverage record for one more reddit hour, as a later ingest would leave them."""
    for i, author in enumerate(authors):
        db.execute(
            "INSERT INTO core.documents (source, external_id, kind, created_at, author_pseudonym, content_sha256,"
            " raw_response_id, dag_run_id) VALUES ('reddit', %s, 'post', %s, %s, 'h', 1, 'r')",
            (f"t3_later_{start:%H}_{i}", start + timedelta(minutes=5 + i), author),
        )
    db.execute(
        "INSERT INTO ops.coverage (source, stream, window_start, window_end, status, dag_run_id)"
        " VALUES ('reddit', 'new:python', %s, %s, 'ingested', 'r')",
        (start, start + timedelta(hours=1)),
    )


def test_views_advance_only_past_windows_whose_checks_passed(
    stack: Any, db: Any, slack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest = stack.dags["ingest_reddit"]
    assert dag_test(ingest, run_conf={"window_start": WINDOW[0], "window_end": WINDOW[1]}).state == "success"
    loaded = db.execute("SELECT count(*) FROM core.documents WHERE source = 'reddit'").fetchone()[0]
    assert loaded > 0
    # Written but not audited: the analyst view shows nothing yet.
    assert published(db) == 0 and horizon(db) is None

    quality(stack, monkeypatch, T12 + timedelta(minutes=10))
    audit = db.execute(
        "SELECT window_start, window_end, status FROM quality.window_audits WHERE source = 'reddit'"
    ).fetchall()
    # The first audit takes the backlog (items created before the window, e.g. posts of new comments) as one
    # window, then the last ready hour.
    assert audit[-1] == (T11, T12, "passed") and {a[2] for a in audit} == {"passed"}
    assert horizon(db) == T12 and published(db) == loaded
    # The window checks' verdicts are recorded with their window.
    assert (
        db.execute(
            "SELECT count(*) FROM quality.check_results WHERE scope = 'window' AND source = 'reddit'"
            " AND window_start = %s AND status = 'pass'",
            (T11,),
        ).fetchone()[0]
        >= 3
    )

    # 12:00-13:00 arrives with most authors missing: the null-rate check fails, the window is held.
    later_hour(db, T12, ["p1", None, None, None])
    slack.clear()
    quality(stack, monkeypatch, T13 + timedelta(minutes=10))
    assert db.execute(
        "SELECT status, failed_checks FROM quality.window_audits WHERE source = 'reddit' AND window_start = %s",
        (T12,),
    ).fetchone() == ("held", ["nulls_reddit_author"])
    assert horizon(db) == T12 and published(db) == loaded  # the bad hour stays out of the views
    flagged = db.execute(
        "SELECT audit_status, failed_checks FROM analytics.coverage_windows"
        " WHERE source = 'reddit' AND window_start = %s",
        (T12,),
    ).fetchone()
    assert flagged == ("held", ["nulls_reddit_author"])
    held = db.execute(
        "SELECT held_ranges::text FROM analytics.coverage_daily WHERE source = 'reddit' AND day = '2026-11-28'"
    ).fetchone()[0]
    assert "2026-11-28 12:00:00+00" in held
    alerts = [t for t in slack.texts("quality") if "nulls_reddit_author" in t]
    assert alerts and "observed 0.75 vs <= 0.1" in alerts[0] and "Held back" in alerts[0]
    assert "/dags/quality/runs/" in alerts[0]

    # The data is fixed; the next run audits the held hour again and publishes it.
    db.execute("UPDATE core.documents SET author_pseudonym = 'fixed' WHERE external_id LIKE 't3_later_12_%'")
    quality(stack, monkeypatch, T13 + timedelta(minutes=20))
    assert horizon(db) == T13 and published(db) == loaded + 4


def test_on_call_can_release_a_held_window(stack: Any, db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    later_hour(db, T11, ["p"])
    quality(stack, monkeypatch, T12 + timedelta(minutes=10))
    assert horizon(db) == T12
    later_hour(db, T12, [None, None])
    later_hour(db, T13, ["p"])
    quality(stack, monkeypatch, T14 + timedelta(minutes=10))
    # Held at 12:00; 13:00 passed but cannot publish past the held hour.
    assert horizon(db) == T12
    statuses = dict(
        db.execute(
            "SELECT window_start, status FROM quality.window_audits WHERE source = 'reddit'"
        ).fetchall()
    )
    assert statuses[T12] == "held" and statuses[T13] == "passed"
    # Releasing needs a name and a reason.
    bad = quality(
        stack,
        monkeypatch,
        T14 + timedelta(minutes=20),
        source="reddit",
        window_start=T12.isoformat(),
        window_end=T13.isoformat(),
        release=True,
    )
    assert bad.state == "failed" and horizon(db) == T12
    quality(
        stack,
        monkeypatch,
        T14 + timedelta(minutes=30),
        source="reddit",
        window_start=T12.isoformat(),
        window_end=T13.isoformat(),
        release=True,
        released_by="on-call",
        reason="authors removed upstream",
    )
    assert db.execute(
        "SELECT status, released_by FROM quality.window_audits WHERE source = 'reddit' AND window_start = %s",
        (T12,),
    ).fetchone() == ("released", "on-call")
    assert horizon(db) == T14 and published(db) == 4


def test_plan_waits_for_ingestion_and_catches_up(db: Any, warehouse: Any) -> None:
    truncate_warehouse(db)
    try:
        assert plan(db, "reddit", T14) == []  # nothing ingested: nothing to audit
        later_hour(db, T11, ["p"])
        # The first audit takes the backlog; the horizon does not exist yet.
        assert plan(db, "reddit", T14) == [(T11, T12)]
        db.execute(
            "INSERT INTO quality.window_audits (source, window_start, window_end, status, checks, failed, dag_run_id)"
            " VALUES ('reddit', %s, %s, 'passed', 1, 0, 'r')",
            (T11, T12),
        )
        assert advance(db, "reddit", "r") == T12
        # Coverage reaches 14:00: two closed hours to audit, but not the one still open at 14:30.
        db.execute(
            "INSERT INTO ops.coverage (source, stream, window_start, window_end, status, dag_run_id)"
            " VALUES ('reddit', 'new:python', %s, %s, 'ingested', 'r')",
            (T12, T14 + timedelta(hours=1)),
        )
        assert plan(db, "reddit", T14 + timedelta(minutes=30)) == hours(T12, T14)
    finally:
        truncate_warehouse(db)
