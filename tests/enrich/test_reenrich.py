"""Edited documents are enriched and clustered again (issue 12 item 6), at the level of the warehouse functions.

The DAG-level journey (ingest, enrich, re-deliver an edited document through the loader, enrich again) is in
tests/e2e/test_enrich.py; here each rule of ``pulse.warehouse.enriched`` is checked on a real PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import truncate_warehouse

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
VERSION = "test-reenrich"
STORY = "Central bank raises interest rates by half a point to fight stubborn inflation"
OTHER = "Massive storm knocks out power for thousands of homes across northern California overnight"


@pytest.fixture
def conn(warehouse: dict[str, Any]) -> Iterator[Any]:
    """A connection like the operators' (transactions opened by the functions under test)."""
    import psycopg

    with psycopg.connect(**warehouse, autocommit=True) as c:
        truncate_warehouse(c)
        yield c


def _insert(conn: Any, external_id: str, minutes: int, body: str, source: str = "reddit") -> None:
    conn.execute(
        "INSERT INTO core.documents (source, external_id, kind, created_at, title, body, url, score,"
        " content_sha256, raw_response_id, dag_run_id) VALUES (%s, %s, 'post', %s, NULL, %s, NULL, 1, 'v1', 1, 't')",
        (source, external_id, T0 + timedelta(minutes=minutes), body),
    )


def _rewrite(conn: Any, external_id: str, *, body: str | None = None, score: int | None = None) -> None:
    """What the loader does when a re-delivered document's content changed: new values, new digest."""
    conn.execute(
        "UPDATE core.documents SET body = coalesce(%s, body), score = coalesce(%s, score),"
        " content_sha256 = content_sha256 || '+', loaded_at = now() WHERE external_id = %s",
        (body, score, external_id),
    )


def _enrich_all(conn: Any, version: str = VERSION) -> Any:
    """One pass of the enrich operator's loop body over everything pending."""
    from pulse.enrich import pipeline
    from pulse.warehouse.enriched import confirm_features, pending_batch, write_enrichment

    batch = pending_batch(conn, version, 1000)
    confirm_features(conn, version, batch.same_text)
    if batch.enrich:
        write_enrichment(conn, version, {"test": "1"}, batch.enrich, pipeline.enrich_documents(batch.enrich))
    return batch


def _dedup_all(conn: Any) -> dict[str, int]:
    from pulse.warehouse.enriched import unfingerprinted, write_duplicates

    return write_duplicates(conn, unfingerprinted(conn, 1000))


def _clusters(conn: Any) -> dict[str, list[str]]:
    rows = conn.execute(
        "SELECT cluster_id, array_agg(external_id ORDER BY external_id) FROM enriched.duplicate_clusters GROUP BY 1"
    ).fetchall()
    return dict(rows)


# ------------------------------------------------------------------------------------------------ features


def test_the_pending_set_holds_new_other_version_and_edited_documents_only(conn: Any) -> None:
    for i, name in enumerate(["same", "edited", "score", "old_version"]):
        _insert(conn, name, i, f"I love this phone, the camera in {name} is great")
    first = _enrich_all(conn)
    assert sorted(d.key[1] for d in first.enrich) == ["edited", "old_version", "same", "score"]
    assert first.edited == set() and first.same_text == []
    conn.execute(
        "UPDATE enriched.document_features SET enrichment_version = 'older' WHERE external_id = 'old_version'"
    )
    _insert(conn, "new", 9, "Brand new post about the weather in Paris")
    _rewrite(conn, "edited", body="Terrible service, I want my money back")
    _rewrite(conn, "score", score=99)

    from pulse.warehouse.enriched import pending_batch

    batch = pending_batch(conn, VERSION, 1000)
    # Never-enriched (for this version) first, then the edited one.
    assert [d.key[1] for d in batch.enrich] == ["old_version", "new", "edited"]
    assert {k[1] for k in batch.edited} == {"edited"}
    # The score change rewrote the row but not the text: confirmed, not enriched.
    assert [(k[1], h) for k, _, h in batch.same_text] == [("score", "v1+")]
    assert len(batch) == 4
    # The edited document carries the digest of the row it was read from.
    assert next(d for d in batch.enrich if d.key[1] == "edited").content_sha256 == "v1+"


def test_re_enrichment_replaces_features_mentions_and_places(conn: Any) -> None:
    _insert(conn, "doc", 0, "Apple opens a new store in Paris and fans love it")
    _insert(conn, "keep", 1, "Tim Cook visited Berlin today")
    _enrich_all(conn)
    before_keep = conn.execute(
        "SELECT enriched_at FROM enriched.document_features WHERE external_id = 'keep'"
    ).fetchone()
    _rewrite(conn, "doc", body="I am so angry and sad: storm floods Tokyo, the worst disaster for Toyota")
    second = _enrich_all(conn)
    assert [d.key[1] for d in second.enrich] == ["doc"] and {k[1] for k in second.edited} == {"doc"}
    mentions = conn.execute(
        "SELECT normalized FROM enriched.entity_mentions WHERE external_id = 'doc' ORDER BY start_offset"
    ).fetchall()
    assert [m[0] for m in mentions] == ["Tokyo", "Toyota"]
    places = conn.execute("SELECT name FROM enriched.places WHERE external_id = 'doc'").fetchall()
    assert places == [("Tokyo",)]
    row = conn.execute(
        "SELECT sentiment_label, content_sha256, text_sha256, keywords FROM enriched.document_features"
        " WHERE external_id = 'doc'"
    ).fetchone()
    from pulse.enrich.pipeline import EnrichInput, text_sha256

    assert row[0] == "negative" and row[1] == "v1+"
    assert row[2] == text_sha256(
        EnrichInput(
            ("reddit", "doc", T0),
            "reddit",
            "post",
            None,
            "I am so angry and sad: storm floods Tokyo, the worst disaster for Toyota",
            None,
        )
    )
    assert "apple" not in " ".join(row[3])
    # The other document was not touched.
    assert (
        conn.execute(
            "SELECT enriched_at FROM enriched.document_features WHERE external_id = 'keep'"
        ).fetchone()
        == before_keep
    )
    assert conn.execute("SELECT count(*) FROM enriched.places WHERE external_id = 'keep'").fetchone()[0] == 1
    # And nothing is pending any more.
    assert len(_enrich_all(conn)) == 0


def test_a_text_that_changed_again_is_not_confirmed(conn: Any) -> None:
    """``confirm_features`` records a new digest only while the features describe the text it was given."""
    from pulse.warehouse.enriched import confirm_features, pending_batch

    _insert(conn, "doc", 0, "Quiet day at the office, nothing to report here")
    _enrich_all(conn)
    _rewrite(conn, "doc", score=5)
    batch = pending_batch(conn, VERSION, 10)
    assert len(batch.same_text) == 1
    key, _, digest = batch.same_text[0]
    assert confirm_features(conn, VERSION, [(key, "0" * 64, digest)]) == 0  # features of another text
    assert confirm_features(conn, VERSION, batch.same_text) == 1
    assert len(pending_batch(conn, VERSION, 10)) == 0


# ------------------------------------------------------------------------------------------------ duplicates


def test_a_rewrite_with_the_same_fingerprint_only_records_the_digest(conn: Any) -> None:
    _insert(conn, "a", 0, STORY)
    _insert(conn, "b", 1, STORY + "!", source="x")
    _dedup_all(conn)
    before = conn.execute(
        "SELECT cluster_id, joined_at FROM enriched.duplicate_clusters ORDER BY 1, 2"
    ).fetchall()
    _rewrite(conn, "a", score=50)
    stats = _dedup_all(conn)
    assert (stats["documents"], stats["same_text"], stats["refingerprinted"]) == (0, 1, 0)
    assert (
        conn.execute("SELECT cluster_id, joined_at FROM enriched.duplicate_clusters ORDER BY 1, 2").fetchall()
        == before
    )
    assert conn.execute(
        "SELECT content_sha256 FROM enriched.document_fingerprints WHERE external_id = 'a'"
    ).fetchone() == ("v1+",)
    assert _dedup_all(conn)["same_text"] == 0  # nothing pending


def test_the_first_member_leaving_does_not_take_the_cluster_id_along(conn: Any) -> None:
    """A cluster's id derives from its earliest member. When that member is edited away, the rest keeps the id;
    if the member then starts a cluster of its own, that one needs another id, or the two would be one."""
    _insert(conn, "a_first", 0, STORY)
    _insert(conn, "b", 1, STORY + "!!")
    _insert(conn, "c", 2, STORY.upper())
    _insert(conn, "z_other", 3, OTHER)
    _dedup_all(conn)
    (old_id,) = _clusters(conn)
    from pulse.warehouse.enriched import cluster_id_for

    assert old_id == cluster_id_for([("reddit", "a_first", T0)])
    _rewrite(conn, "a_first", body=OTHER + " again")
    stats = _dedup_all(conn)
    assert stats["refingerprinted"] == 1
    clusters = _clusters(conn)
    assert clusters[old_id] == ["b", "c"]
    (new_id,) = set(clusters) - {old_id}
    assert clusters[new_id] == ["a_first", "z_other"]


def test_a_member_that_stays_similar_stays_in_its_cluster(conn: Any) -> None:
    _insert(conn, "a", 0, STORY)
    _insert(conn, "b", 1, STORY + " today")
    _dedup_all(conn)
    (cid,) = _clusters(conn)
    _rewrite(conn, "b", body=STORY + " today, says the governor")
    stats = _dedup_all(conn)
    assert stats["refingerprinted"] == 1
    assert _clusters(conn) == {cid: ["a", "b"]}
    bands = conn.execute("SELECT count(*) FROM enriched.minhash_bands WHERE external_id = 'b'").fetchone()[0]
    assert bands == 32
