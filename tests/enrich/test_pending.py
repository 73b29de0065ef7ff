"""The pending queues of enrichment and duplicate detection (migration 0013, ``pulse.warehouse.enriched``).

Triggers on ``core.documents`` queue inserted rows and rows whose digest changed; a new enrichment version queues
its backlog once; a batch deletes a queue row only for the digest it handled; and the pending query reads the
queue and probes ``core.documents`` by primary key instead of scanning it (checked on the plan).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import truncate_warehouse

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
VERSION = "test-pending"


@pytest.fixture
def conn(warehouse: dict[str, Any]) -> Iterator[Any]:
    import psycopg

    with psycopg.connect(**warehouse, autocommit=True) as c:
        truncate_warehouse(c)
        c.execute(
            "TRUNCATE enriched.pending_features, enriched.pending_fingerprints, enriched.pending_versions"
        )
        yield c
        c.execute(
            "TRUNCATE enriched.pending_features, enriched.pending_fingerprints, enriched.pending_versions"
        )


def _insert(conn: Any, external_id: str, minutes: int, body: str) -> None:
    conn.execute(
        "INSERT INTO core.documents (source, external_id, kind, created_at, body, score, content_sha256,"
        " raw_response_id, dag_run_id) VALUES ('reddit', %s, 'post', %s, %s, 1, 'v1', 1, 't')",
        (external_id, T0 + timedelta(minutes=minutes), body),
    )


def _rewrite(conn: Any, external_id: str, *, body: str | None = None, score: int | None = None) -> None:
    conn.execute(
        "UPDATE core.documents SET body = coalesce(%s, body), score = coalesce(%s, score),"
        " content_sha256 = content_sha256 || '+' WHERE external_id = %s",
        (body, score, external_id),
    )


def _queued(conn: Any, queue: str = "enriched.pending_features") -> dict[str, str]:
    return dict(conn.execute(f"SELECT external_id, content_sha256 FROM {queue}").fetchall())


def _enrich(conn: Any, version: str = VERSION) -> Any:
    from pulse.enrich import pipeline
    from pulse.warehouse.enriched import confirm_features, pending_batch, write_enrichment

    batch = pending_batch(conn, version, 1000)
    confirm_features(conn, version, batch.same_text)
    if batch.enrich:
        write_enrichment(conn, version, {"test": "1"}, batch.enrich, pipeline.enrich_documents(batch.enrich))
    return batch


def test_the_loader_s_writes_queue_new_and_changed_documents_only(conn: Any) -> None:
    from pulse.warehouse.enriched import queue_version

    assert queue_version(conn, VERSION) == 0  # an empty warehouse: nothing to queue
    _insert(conn, "a", 0, "Central bank raises rates")
    _insert(conn, "b", 1, "Storm knocks out power")
    assert _queued(conn) == {"a": "v1", "b": "v1"}
    assert _queued(conn, "enriched.pending_fingerprints") == {"a": "v1", "b": "v1"}
    first = _enrich(conn)
    assert [d.key[1] for d in first.enrich] == ["a", "b"]
    assert _queued(conn) == {}  # enriched: left the queue
    # An update that does not change the digest queues nothing; one that does queues the row again.
    conn.execute("UPDATE core.documents SET loaded_at = now() WHERE external_id = 'a'")
    assert _queued(conn) == {}
    _rewrite(conn, "a", body="Central bank cuts rates")
    _rewrite(conn, "b", score=99)
    assert _queued(conn) == {"a": "v1+", "b": "v1+"}
    second = _enrich(conn)
    assert [d.key[1] for d in second.enrich] == ["a"] and {k[1] for k in second.edited} == {"a"}
    assert [(k[1], h) for k, _, h in second.same_text] == [("b", "v1+")]  # same text: confirmed only
    assert _queued(conn) == {}
    assert len(_enrich(conn)) == 0


def test_a_new_version_queues_its_backlog_once(conn: Any) -> None:
    from pulse.warehouse.enriched import queue_version

    for i in range(3):
        _insert(conn, f"d{i}", i, f"Text number {i} about the weather")
    assert len(_enrich(conn).enrich) == 3
    assert _queued(conn) == {}
    # A version bump: every document is pending again (a bounded backlog), queued once.
    assert queue_version(conn, "test-pending-2") == 3
    assert queue_version(conn, "test-pending-2") is None
    bumped = _enrich(conn, "test-pending-2")
    assert [d.key[1] for d in bumped.enrich] == ["d0", "d1", "d2"] and bumped.edited == set()
    assert _queued(conn) == {}
    assert conn.execute(
        "SELECT count(*) FROM enriched.document_features WHERE enrichment_version = 'test-pending-2'"
    ).fetchone() == (3,)
    # Features written by another version (an older worker during a deploy) queue the document again.
    conn.execute("UPDATE enriched.document_features SET enrichment_version = 'old' WHERE external_id = 'd1'")
    assert _queued(conn) == {"d1": "v1"}
    assert [d.key[1] for d in _enrich(conn, "test-pending-2").enrich] == ["d1"]


def test_a_row_queued_again_while_its_batch_ran_stays_queued(conn: Any) -> None:
    """The loader rewrites a document after the batch read it: the batch's write must not dequeue it."""
    from pulse.enrich import pipeline
    from pulse.warehouse.enriched import pending_batch, write_enrichment

    _insert(conn, "raced", 0, "Apple opens a store in Paris")
    batch = pending_batch(conn, VERSION, 10)
    assert [d.key[1] for d in batch.enrich] == ["raced"]
    _rewrite(conn, "raced", body="Storm floods Tokyo")  # committed while the batch is computed
    write_enrichment(conn, VERSION, {"test": "1"}, batch.enrich, pipeline.enrich_documents(batch.enrich))
    assert _queued(conn) == {"raced": "v1+"}
    again = pending_batch(conn, VERSION, 10)
    assert [d.key[1] for d in again.enrich] == ["raced"] and {k[1] for k in again.edited} == {"raced"}
    assert again.enrich[0].body == "Storm floods Tokyo"


def test_settled_and_vanished_rows_leave_the_queue_on_the_way(conn: Any) -> None:
    from pulse.warehouse.enriched import pending_batch, unfingerprinted

    for i in range(5):
        _insert(conn, f"gone{i}", i, "x")
    _insert(conn, "live", 9, "A real post about the markets")
    conn.execute("DELETE FROM core.documents WHERE external_id LIKE 'gone%'")  # e.g. a dropped month
    # A batch of 2 meets only vanished rows at first: it goes on until it finds work.
    assert [d.key[1] for d in pending_batch(conn, VERSION, 2).enrich] == ["live"]
    assert _queued(conn) == {"live": "v1"}
    assert [d.key[1] for d in unfingerprinted(conn, 2)] == ["live"]
    assert _queued(conn, "enriched.pending_fingerprints") == {"live": "v1"}


def test_fingerprints_leave_the_queue_and_edited_documents_come_back(conn: Any) -> None:
    from pulse.warehouse.enriched import unfingerprinted, write_duplicates

    _insert(conn, "a", 0, "Massive storm knocks out power for thousands of homes across California")
    _insert(conn, "b", 1, "Massive storm knocks out power for thousands of homes across California")
    docs = unfingerprinted(conn, 100)
    assert [(d.key[1], d.fingerprinted) for d in docs] == [("a", False), ("b", False)]
    write_duplicates(conn, docs)
    assert _queued(conn, "enriched.pending_fingerprints") == {}
    assert unfingerprinted(conn, 100) == []
    _rewrite(conn, "b", body="Central bank raises interest rates by half a point to fight inflation")
    again = unfingerprinted(conn, 100)
    assert [(d.key[1], d.fingerprinted, d.content_sha256) for d in again] == [("b", True, "v1+")]
    assert write_duplicates(conn, again)["refingerprinted"] == 1
    assert unfingerprinted(conn, 100) == []


# ------------------------------------------------------------------------------------------------ plans


def _seq_scanned(conn: Any, sql: str, params: Any) -> set[str]:
    """Relations the plan of ``sql`` reads with a sequential scan."""
    plan = conn.execute("EXPLAIN (VERBOSE, FORMAT JSON) " + sql, params).fetchone()[0]
    plan = plan if isinstance(plan, list) else json.loads(plan)
    found: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        if node.get("Node Type") == "Seq Scan":
            found.add(f"{node.get('Schema')}.{node['Relation Name']}")
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return found


#: The pending query before the queues: an anti-join over all of core.documents (kept to prove the check bites).
ANTI_JOIN = """
SELECT d.source, d.external_id, d.created_at
  FROM core.documents d
  LEFT JOIN enriched.document_features f
    ON f.source = d.source AND f.external_id = d.external_id AND f.created_at = d.created_at
   AND f.enrichment_version = %(version)s
 WHERE f.content_sha256 IS DISTINCT FROM d.content_sha256
 ORDER BY f.source IS NOT NULL, d.created_at, d.source, d.external_id
 LIMIT %(limit)s
"""


def test_the_pending_queries_do_not_scan_core_documents(conn: Any) -> None:
    """With 60k enriched documents and a batch of 2,000 new ones, the pending queries probe documents by key (an
    anti-join over the documents, as before, or a plain join of the queue, are planned as sequential scans of
    their partitions)."""
    from pulse.warehouse.enriched import _PENDING, _UNFINGERPRINTED

    for month in ("2026-09-01", "2026-10-01", "2026-11-01"):
        for table in ("core.documents", "enriched.document_features"):
            conn.execute("SELECT ops.ensure_month_partitions(%s::regclass, %s, %s)", (table, month, month))
    conn.execute(
        "INSERT INTO core.documents (source, external_id, kind, created_at, body, content_sha256,"
        " raw_response_id, dag_run_id) SELECT 'reddit', 'old' || g, 'post',"
        " timestamptz '2026-09-01 00:00+00' + g * interval '2 minutes', 'body ' || g, md5(g::text), 1, 't'"
        " FROM generate_series(1, 60000) g"
    )
    conn.execute(
        "INSERT INTO enriched.document_features (source, external_id, created_at, enrichment_version,"
        " content_sha256, emotions, keywords) SELECT source, external_id, created_at, %s, content_sha256,"
        " '{}', '{}' FROM core.documents",
        (VERSION,),
    )
    conn.execute(
        "INSERT INTO enriched.document_fingerprints (source, external_id, created_at, dedup_version,"
        " content_sha256) SELECT source, external_id, created_at, 'd', content_sha256 FROM core.documents"
    )
    conn.execute("TRUNCATE enriched.pending_features, enriched.pending_fingerprints")  # all enriched
    conn.execute(  # one batch of new documents (what an hour brings), queued by the trigger
        "INSERT INTO core.documents (source, external_id, kind, created_at, body, content_sha256,"
        " raw_response_id, dag_run_id) SELECT 'reddit', 'new' || g, 'post',"
        " timestamptz '2026-11-28 00:00+00' + g * interval '1 second', 'fresh ' || g, md5(g::text), 1, 't'"
        " FROM generate_series(1, 2000) g"
    )
    for table in ("core.documents", "enriched.document_features", "enriched.document_fingerprints"):
        conn.execute(f"ANALYZE {table}")
    conn.execute("ANALYZE enriched.pending_features")
    conn.execute("ANALYZE enriched.pending_fingerprints")
    params = {"version": VERSION, "limit": 2000}
    # The partitions that hold the documents (a sequential scan of an empty one costs nothing).
    documents = {
        r[0]
        for r in conn.execute(
            "SELECT tableoid::regclass::text FROM core.documents GROUP BY 1 HAVING count(*) > 1000"
        ).fetchall()
    }
    assert len(documents) == 3
    # The check bites: the old anti-join reads the documents' partitions sequentially.
    assert _seq_scanned(conn, ANTI_JOIN, params) & documents
    assert not _seq_scanned(conn, _PENDING, params) & documents
    assert not _seq_scanned(conn, _UNFINGERPRINTED, (2000,)) & documents
    from pulse.warehouse.enriched import pending_batch, unfingerprinted

    assert len(pending_batch(conn, VERSION, 2000).enrich) == 2000
    assert len(unfingerprinted(conn, 2000)) == 2000
