"""Late, backfilled and edited rows go through write-audit-publish; analysts read published data only.

A row is published when its hour is before the source's horizon and it was written at or before its hour's
last passing audit (``quality.hour_audits``). Rows loaded into an hour after its audit stay out of every
relation the ``analyst`` role can read until the ``quality`` DAG, run without params, finds the hour and
audits it again. Real ingest runs (simulator -> raw -> core), the real quality DAG, assertions as the analyst.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import WINDOW, dag_test, truncate_warehouse

pytestmark = pytest.mark.e2e

T09, T10, T11 = (datetime(2026, 11, 28, h, tzinfo=UTC) for h in (9, 10, 11))
T12, T13 = T11 + timedelta(hours=1), T11 + timedelta(hours=2)


@pytest.fixture
def stack(dagbag: Any, airflow_db: None, warehouse: Any, sim: Any, slack: Any, db: Any) -> Any:
    truncate_warehouse(db)
    slack.clear()
    yield dagbag
    truncate_warehouse(db)


@pytest.fixture
def analyst(warehouse: dict[str, Any]) -> Iterator[Any]:
    """A connection as the read-only analyst role: what analysts can see is what these tests assert."""
    with psycopg.connect(**warehouse, autocommit=True, options="-c role=analyst") as conn:
        yield conn


def quality(dagbag: Any, monkeypatch: pytest.MonkeyPatch, now: datetime, **conf: Any) -> Any:
    """One quality run at ``now``. Its state is not asserted: the critical freshness checks of the sources a
    test leaves empty fail it after it audited and published (as in production)."""
    monkeypatch.setenv("PULSE_NOW", now.isoformat())
    return dag_test(dagbag.dags["quality"], run_conf=conf)


def published_ids(analyst: Any, source: str) -> set[str]:
    rows = analyst.execute(
        "SELECT external_id FROM published.documents WHERE source = %s", (source,)
    ).fetchall()
    return {r[0] for r in rows}


def volume(analyst: Any, source: str) -> int:
    row = analyst.execute(
        "SELECT coalesce(sum(items), 0) FROM analytics.daily_volume WHERE source = %s AND dataset = 'core.documents'",
        (source,),
    ).fetchone()
    return int(row[0])


def core_ids(db: Any, source: str, where: str = "true") -> set[str]:
    return {
        r[0]
        for r in db.execute(
            f"SELECT external_id FROM core.documents WHERE source = %s AND {where}", (source,)
        ).fetchall()
    }


def horizon(db: Any, source: str) -> datetime | None:
    row = db.execute(
        "SELECT published_until FROM quality.publish_state WHERE source = %s", (source,)
    ).fetchone()
    return row[0] if row else None


def add_hour(db: Any, start: datetime, authors: list[str | None], tag: str = "a") -> list[str]:
    """Reddit documents in the hour from ``start`` and its coverage record, as an ingest leaves them."""
    ids = []
    for i, author in enumerate(authors):
        ext = f"t3_{tag}_{start:%H}_{i}"
        db.execute(
            "INSERT INTO core.documents (source, external_id, kind, created_at, author_pseudonym, body,"
            " content_sha256, raw_response_id, dag_run_id) VALUES ('reddit', %s, 'post', %s, %s, 'text', 'h', 1,"
            " 'r')",
            (ext, start + timedelta(minutes=5 + i), author),
        )
        ids.append(ext)
    db.execute(
        "INSERT INTO ops.coverage (source, stream, window_start, window_end, status, dag_run_id)"
        " VALUES ('reddit', 'new:python', %s, %s, 'ingested', 'r') ON CONFLICT DO NOTHING",
        (start, start + timedelta(hours=1)),
    )
    return ids


def test_rows_loaded_into_an_audited_hour_wait_until_the_dag_audits_it_again(
    stack: Any, db: Any, analyst: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = Path(os.environ["PULSE_SOURCES_FILE"])
    ingest = stack.dags["ingest_reddit"]
    # First run: only r/python is configured.
    narrow = tmp_path / "sources.yaml"
    text = sources.read_text()
    assert "subreddits: [python, dataengineering]" in text
    narrow.write_text(text.replace("subreddits: [python, dataengineering]", "subreddits: [python]"))
    monkeypatch.setenv("PULSE_SOURCES_FILE", str(narrow))
    conf = {"window_start": WINDOW[0], "window_end": WINDOW[1]}
    assert dag_test(ingest, run_conf=conf).state == "success"
    first = core_ids(db, "reddit")
    assert first and core_ids(db, "reddit", "channel <> 'python'") == set()

    quality(stack, monkeypatch, T12 + timedelta(minutes=10))
    assert horizon(db, "reddit") == T12
    assert published_ids(analyst, "reddit") == first and volume(analyst, "reddit") == len(first)

    # A second manual run over the same, already audited window, with r/dataengineering configured too: its
    # items are late rows of audited hours (the window's hour and the hours of older posts its comments
    # answer, which the first audit covered as one backlog window).
    monkeypatch.setenv("PULSE_SOURCES_FILE", str(sources))
    assert dag_test(ingest, run_conf=conf).state == "success"
    late = core_ids(db, "reddit", "channel = 'dataengineering'")
    assert late and core_ids(db, "reddit") == first | late
    late_hours = {
        r[0]
        for r in db.execute(
            "SELECT DISTINCT date_bin('1 hour', created_at, timestamptz '2000-01-01 00:00+00')"
            " FROM core.documents WHERE channel = 'dataengineering'"
        ).fetchall()
    }
    assert T11 in late_hours and max(late_hours) < T12
    # Not audited since they were loaded: analysts see exactly what they saw before, in every relation.
    assert published_ids(analyst, "reddit") == first and volume(analyst, "reddit") == len(first)
    assert analyst.execute(
        "SELECT count(*) FROM published.documents WHERE channel = 'dataengineering'"
    ).fetchone() == (0,)

    # The hourly run, no params: it finds the late hours by itself, audits each again, and publishes them.
    dr = quality(stack, monkeypatch, T12 + timedelta(minutes=20))
    reaudited = {
        r[0]
        for r in db.execute(
            "SELECT window_start FROM quality.window_audits WHERE source = 'reddit' AND dag_run_id = %s"
            " AND status = 'passed' AND window_end = window_start + interval '1 hour'",
            (dr.run_id,),
        ).fetchall()
    }
    assert reaudited == late_hours
    assert published_ids(analyst, "reddit") == first | late
    assert volume(analyst, "reddit") == len(first | late)
    assert horizon(db, "reddit") == T12

    # Nothing written since: the next run finds no late hour and audits nothing again.
    dr = quality(stack, monkeypatch, T12 + timedelta(minutes=30))
    assert db.execute(
        "SELECT count(*) FROM quality.window_audits WHERE dag_run_id = %s", (dr.run_id,)
    ).fetchone() == (0,)


def test_a_backfill_older_than_the_first_audit_waits_for_its_own_audit(
    stack: Any, db: Any, analyst: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: backfilled X rows appeared in analytics.daily_sentiment without any audit of their
    hours, because their hours were before the horizon."""
    ingest = stack.dags["ingest_x"]
    assert dag_test(ingest, run_conf={"window_start": WINDOW[0], "window_end": WINDOW[1]}).state == "success"
    quality(stack, monkeypatch, T12 + timedelta(minutes=10))
    assert horizon(db, "x") == T12
    first = core_ids(db, "x")
    assert first and published_ids(analyst, "x") == first

    # Backfill 09:00-10:00: every row is before the horizon, none was ever audited.
    backfill = {"window_start": T09.isoformat(), "window_end": T10.isoformat()}
    assert dag_test(ingest, run_conf=backfill).state == "success"
    old = core_ids(db, "x", f"created_at < '{T10.isoformat()}'")
    assert old and not old & first
    # Enrichment of the backfilled rows, written after every audit so far, waits too.
    db.execute(
        "INSERT INTO enriched.document_features (source, external_id, created_at, enrichment_version,"
        " sentiment_vader, sentiment_label)"
        " SELECT source, external_id, created_at, 'v1', 0.5, 'positive' FROM core.documents WHERE source = 'x'"
    )
    assert published_ids(analyst, "x") == first
    sentiment = "SELECT coalesce(sum(documents), 0) FROM analytics.daily_sentiment WHERE source = 'x'"
    assert analyst.execute(sentiment).fetchone() == (0,)

    dr = quality(stack, monkeypatch, T12 + timedelta(minutes=20))
    audited = db.execute(
        "SELECT window_start, window_end, status FROM quality.window_audits WHERE source = 'x' AND dag_run_id = %s"
        " ORDER BY 1",
        (dr.run_id,),
    ).fetchall()
    assert (T09, T10, "passed") in audited
    assert published_ids(analyst, "x") == first | old
    assert analyst.execute(sentiment).fetchone() == (len(first | old),)


def test_a_late_hour_that_fails_is_held_and_what_was_published_stays(
    stack: Any, db: Any, analyst: Any, slack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = set(add_hour(db, T11, ["p1", "p2", "p3"]))
    quality(stack, monkeypatch, T12 + timedelta(minutes=10))
    assert published_ids(analyst, "reddit") == published

    # Late rows into 11:00, most without an author: the hour's re-audit fails its null-rate check.
    late = set(add_hour(db, T11, [None, None, None, "p4"], tag="late"))
    slack.clear()
    quality(stack, monkeypatch, T12 + timedelta(minutes=20))
    assert db.execute(
        "SELECT status, failed_checks FROM quality.window_audits WHERE source = 'reddit' AND window_start = %s",
        (T11,),
    ).fetchone() == ("held", ["nulls_reddit_author"])
    # What was published stays published; the late rows wait; the horizon does not move back.
    assert published_ids(analyst, "reddit") == published and volume(analyst, "reddit") == 3
    assert horizon(db, "reddit") == T12
    alerts = [t for t in slack.texts("quality") if "nulls_reddit_author" in t]
    assert alerts and "Held back" in alerts[0] and "2026-11-28 11:00" in alerts[0]
    # Analysts see why.
    held = analyst.execute(
        "SELECT held_windows, held_window_checks FROM analytics.source_health WHERE source = 'reddit'"
    ).fetchone()
    assert held[0] == 1 and held[1][0]["failed_checks"] == ["nulls_reddit_author"]
    assert analyst.execute(
        "SELECT held_windows FROM analytics.publication WHERE source = 'reddit'"
    ).fetchone() == (1,)

    # Nothing new written: later runs do not audit the held hour behind the horizon again.
    dr = quality(stack, monkeypatch, T12 + timedelta(minutes=30))
    assert db.execute(
        "SELECT count(*) FROM quality.window_audits WHERE dag_run_id = %s", (dr.run_id,)
    ).fetchone() == (0,)
    assert published_ids(analyst, "reddit") == published

    # On-call accepts the hour as it is: every row written to it so far is published.
    quality(
        stack,
        monkeypatch,
        T12 + timedelta(minutes=40),
        source="reddit",
        window_start=T11.isoformat(),
        window_end=T12.isoformat(),
        release=True,
        released_by="on-call",
        reason="authors deleted upstream",
    )
    assert published_ids(analyst, "reddit") == published | late
    row = db.execute(
        "SELECT status, released_by, released_at IS NOT NULL FROM quality.window_audits"
        " WHERE source = 'reddit' AND window_start = %s",
        (T11,),
    ).fetchone()
    assert row == ("released", "on-call", True)


def test_an_edited_row_shows_its_new_content_only_after_its_hour_is_audited_again(
    stack: Any, db: Any, warehouse: dict[str, Any], analyst: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pulse.sources.base import Document
    from pulse.warehouse.loader import upsert_documents

    ids = add_hour(db, T11, ["p1", "p2"])
    quality(stack, monkeypatch, T12 + timedelta(minutes=10))
    assert published_ids(analyst, "reddit") == set(ids)

    # The loader rewrites a row whose content changed (a re-delivery with a new text): loaded_at moves.
    source, ext, kind, created, author = db.execute(
        "SELECT source, external_id, kind, created_at, author_pseudonym FROM core.documents WHERE external_id = %s",
        (ids[0],),
    ).fetchone()
    edited = Document(source, ext, kind, created, author_pseudonym=author, body="edited text")
    with psycopg.connect(**warehouse) as conn:
        assert upsert_documents(conn, [(edited, 1)], "edit-run").changed == 1
    assert db.execute(
        "SELECT body, loaded_at > first_loaded_at FROM core.documents WHERE external_id = %s", (ext,)
    ).fetchone() == ("edited text", True)

    # Its new content was never audited: it is not shown (neither the new text nor the old one, which is gone).
    assert published_ids(analyst, "reddit") == {ids[1]}
    assert analyst.execute(
        "SELECT count(*) FROM published.documents WHERE body = 'edited text'"
    ).fetchone() == (0,)

    quality(stack, monkeypatch, T12 + timedelta(minutes=20))
    assert published_ids(analyst, "reddit") == set(ids)
    assert analyst.execute(
        "SELECT body FROM published.documents WHERE external_id = %s", (ext,)
    ).fetchone() == ("edited text",)


def test_enrichment_written_after_the_audit_waits_for_the_next_one(
    stack: Any, db: Any, analyst: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = add_hour(db, T11, ["p1", "p2"])

    def enrich(ext: str) -> None:
        db.execute(
            "INSERT INTO enriched.document_features (source, external_id, created_at, enrichment_version,"
            " sentiment_vader, sentiment_label, topic)"
            " SELECT source, external_id, created_at, 'v1', 0.5, 'positive', 'tech' FROM core.documents"
            " WHERE external_id = %s",
            (ext,),
        )
        db.execute(
            "INSERT INTO enriched.entity_mentions (source, external_id, created_at, enrichment_version,"
            " entity_type, text, normalized, start_offset, end_offset)"
            " SELECT source, external_id, created_at, 'v1', 'organisation', 'ACME', 'ACME', 0, 4"
            " FROM core.documents WHERE external_id = %s",
            (ext,),
        )

    enrich(ids[0])
    quality(stack, monkeypatch, T12 + timedelta(minutes=10))
    sentiment = "SELECT coalesce(sum(documents), 0) FROM analytics.daily_sentiment WHERE source = 'reddit'"
    mentions = "SELECT count(*) FROM published.entity_mentions WHERE source = 'reddit'"
    assert analyst.execute(sentiment).fetchone() == (1,)
    assert analyst.execute(mentions).fetchone() == (1,)

    enrich(ids[1])  # the enrich DAG finishing after the audit
    assert analyst.execute(sentiment).fetchone() == (1,)
    assert analyst.execute(mentions).fetchone() == (1,)
    assert analyst.execute(
        "SELECT coalesce(sum(mentions), 0) FROM analytics.entity_mentions_daily WHERE source = 'reddit'"
    ).fetchone() == (1,)

    quality(stack, monkeypatch, T12 + timedelta(minutes=20))
    assert analyst.execute(sentiment).fetchone() == (2,)
    assert analyst.execute(mentions).fetchone() == (2,)


def test_the_late_scan_reads_only_rows_written_since_the_last_look(stack: Any, db: Any) -> None:
    """How far the planner looked is recorded, so the hourly look reads only new rows (BRIN on loaded_at)."""
    from pulse.quality.publish import late_hours, plan

    add_hour(db, T11, ["p"])
    db.execute(
        "INSERT INTO quality.publish_state (source, published_until, dag_run_id) VALUES ('reddit', %s, 'r')",
        (T12,),
    )
    db.execute(
        "INSERT INTO quality.hour_audits (source, hour, audited_at, published_at, dag_run_id)"
        " VALUES ('reddit', %s, now(), now(), 'r')",
        (T11,),
    )
    assert late_hours(db, "reddit", T12)[0] == []
    late = add_hour(db, T10, ["p"], tag="late")  # never audited, before the horizon
    assert late_hours(db, "reddit", T12)[0] == [(T10, T11)]
    # At most `limit` hours per run; the look resumes at the oldest row of the hours left over.
    add_hour(db, T09, ["p"], tag="later")
    taken, until = late_hours(db, "reddit", T12, limit=1)
    first_left = db.execute(
        "SELECT loaded_at FROM core.documents WHERE external_id = %s", (late[0],)
    ).fetchone()
    assert taken == [(T09, T10)] and until == first_left[0]
    # plan() records the look; a look after it reads from there on.
    windows = plan(db, "reddit", T12 + timedelta(minutes=5))
    assert (T09, T10) in windows and (T10, T11) in windows
    recorded = db.execute(
        "SELECT late_checked_until FROM quality.publish_state WHERE source = 'reddit'"
    ).fetchone()[0]
    assert recorded is not None and recorded > first_left[0]
    assert late_hours(db, "reddit", T12)[0] == []  # those rows were written before the recorded look


def test_an_audit_never_claims_rows_of_a_transaction_still_open(warehouse: dict[str, Any], db: Any) -> None:
    """A loader batch that began before an audit and commits after its checks has loaded_at before the
    audit's start: the audit's clock goes back before that transaction, so the rows wait for the next audit."""
    from pulse.quality.publish import audit_clock

    with psycopg.connect(**warehouse) as loader:
        began = loader.execute("SELECT now()").fetchone()[0]  # a transaction is open from here on
        clock = audit_clock(db)
        assert clock < began
        loader.rollback()
    assert audit_clock(db) > began
