"""One row per source item in core.documents: migration 0011 removes the duplicates loaded before the fix, and
the loader keeps an item's first-seen creation time when a source moves it (recording the move)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from pulse.sources.base import Document
from pulse.warehouse.loader import upsert_documents
from pulse.warehouse.migrate import downgrade, upgrade

T0 = datetime(2026, 10, 31, 23, 30, tzinfo=UTC)

SEED = """
INSERT INTO core.documents (source, external_id, kind, created_at, title, content_sha256, raw_response_id,
                            dag_run_id, first_loaded_at, loaded_at)
VALUES
    -- an article NewsAPI re-delivered twice with later publishedAt (three rows: the bug), in two months
    ('newsapi', 'https://e.com/a', 'article', '2026-10-31 23:30+00', 'first', 'h1', 1, 'run_1',
     '2026-11-01 00:00+00', '2026-11-01 00:00+00'),
    ('newsapi', 'https://e.com/a', 'article', '2026-11-01 00:45+00', 'second', 'h2', 2, 'run_2',
     '2026-11-01 01:00+00', '2026-11-01 01:00+00'),
    ('newsapi', 'https://e.com/a', 'article', '2026-11-01 02:00+00', 'third', 'h3', 3, 'run_3',
     '2026-11-01 03:00+00', '2026-11-01 03:00+00'),
    -- a later time loaded first: the row loaded first stays, whatever its time
    ('x', '42', 'tweet', '2026-11-02 10:00+00', 'loaded first', 'h4', 4, 'run_4',
     '2026-11-02 10:05+00', '2026-11-02 10:05+00'),
    ('x', '42', 'tweet', '2026-11-02 09:00+00', 'loaded later', 'h5', 5, 'run_5',
     '2026-11-02 11:00+00', '2026-11-02 11:00+00'),
    -- an item without duplicates is untouched
    ('reddit', 't3_ok', 'post', '2026-11-02 10:00+00', 'alone', 'h6', 6, 'run_6',
     '2026-11-02 10:05+00', '2026-11-02 10:05+00');
INSERT INTO enriched.document_features (source, external_id, created_at, enrichment_version, topic)
SELECT source, external_id, created_at, 'v1', title FROM core.documents;
"""


def test_migration_0011_keeps_the_first_loaded_row_of_each_item_and_records_the_rest(
    fresh_db: Callable[[], str],
) -> None:
    uri = fresh_db()
    upgrade(uri, "0010")
    with psycopg.connect(uri) as conn:
        conn.execute(
            "SELECT ops.ensure_month_partitions('core.documents', '2026-10-01', '2026-11-30');"
            "SELECT ops.ensure_month_partitions('enriched.document_features', '2026-10-01', '2026-11-30')"
        )
        conn.execute(SEED)
    upgrade(uri, "0011")
    with psycopg.connect(uri) as conn:
        rows = conn.execute("SELECT source, external_id, title FROM core.documents ORDER BY 1, 2").fetchall()
        assert rows == [
            ("newsapi", "https://e.com/a", "first"),
            ("reddit", "t3_ok", "alone"),
            ("x", "42", "loaded first"),
        ]
        changes = conn.execute(
            "SELECT source, external_id, kept_created_at, reported_created_at, raw_response_id, dag_run_id"
            " FROM quality.created_at_changes ORDER BY 1, 4"
        ).fetchall()
        at = datetime.fromisoformat
        assert changes == [
            ("newsapi", "https://e.com/a", at("2026-10-31 23:30+00"), at("2026-11-01 00:45+00"), 2, "run_2"),
            ("newsapi", "https://e.com/a", at("2026-10-31 23:30+00"), at("2026-11-01 02:00+00"), 3, "run_3"),
            ("x", "42", at("2026-11-02 10:00+00"), at("2026-11-02 09:00+00"), 5, "run_5"),
        ]
        # Enrichment rows of removed rows are gone; those of kept rows stay.
        topics = sorted(r[0] for r in conn.execute("SELECT topic FROM enriched.document_features").fetchall())
        assert topics == ["alone", "first", "loaded first"]
    downgrade(uri, "0010")
    with psycopg.connect(uri) as conn:
        assert conn.execute("SELECT to_regclass('quality.created_at_changes')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM core.documents").fetchone() == (3,)
    upgrade(uri, "head")


# ------------------------------------------------------------------------------------------------
# the loader
# ------------------------------------------------------------------------------------------------


def _doc(external_id: str, created_at: datetime, **changes: Any) -> Document:
    base = Document(
        source="test_moves",
        external_id=external_id,
        kind="article",
        created_at=created_at,
        title="title",
        body="body",
        metrics={},
        payload={},
    )
    return replace(base, **changes)


@pytest.fixture
def conn(warehouse: dict[str, Any]) -> Any:
    with psycopg.connect(**warehouse, autocommit=True) as c:
        for table in ("core.documents", "quality.created_at_changes"):
            c.execute(f"DELETE FROM {table} WHERE source = 'test_moves'")
        yield c
        for table in ("core.documents", "quality.created_at_changes"):
            c.execute(f"DELETE FROM {table} WHERE source = 'test_moves'")


def _rows(conn: Any) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT external_id, created_at, title, raw_response_id FROM core.documents WHERE source = 'test_moves'"
        " ORDER BY 1"
    ).fetchall()


def _changes(conn: Any) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT external_id, kept_created_at, reported_created_at, raw_response_id FROM quality.created_at_changes"
        " WHERE source = 'test_moves' ORDER BY 1, 3"
    ).fetchall()


def test_a_moved_creation_time_updates_the_one_row_and_is_recorded(conn: Any) -> None:
    first = upsert_documents(conn, [(_doc("a", T0), 10), (_doc("b", T0), 10)], "run_1")
    assert (first.loaded, first.changed, first.time_changes) == (2, 2, 0)
    # A later window: "a" again, 75 minutes later (another month) and edited; "b" again unchanged.
    moved = T0 + timedelta(minutes=75)
    second = upsert_documents(conn, [(_doc("a", moved, title="edited"), 20), (_doc("b", T0), 20)], "run_2")
    assert (second.loaded, second.changed, second.time_changes) == (2, 1, 1)
    assert _rows(conn) == [("a", T0, "edited", 20), ("b", T0, "title", 10)]
    assert _changes(conn) == [("a", T0, moved, 20)]
    # The same again: nothing changes, nothing more is recorded.
    again = upsert_documents(conn, [(_doc("a", moved, title="edited"), 20)], "run_2")
    assert (again.changed, again.time_changes) == (0, 1)
    assert _rows(conn) == [("a", T0, "edited", 20), ("b", T0, "title", 10)]
    assert _changes(conn) == [("a", T0, moved, 20)]


def test_within_one_load_the_oldest_page_gives_the_time_and_the_newest_the_content(conn: Any) -> None:
    later, latest = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    docs = [(_doc("a", later, title="middle"), 7), (_doc("a", latest, title="newest"), 9), (_doc("a", T0), 5)]
    result = upsert_documents(conn, docs, "run")
    assert (result.loaded, result.changed, result.time_changes) == (1, 1, 1)
    assert _rows(conn) == [("a", T0, "newest", 9)]
    assert _changes(conn) == [("a", T0, later, 7), ("a", T0, latest, 9)]
