"""Ingest to enriched rows through the real DAGs, version bumps, and cross-source duplicate clusters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import WINDOW, dag_test, publish_everything, truncate_warehouse

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
HEADLINE = "Central bank raises interest rates by half a point to fight stubborn inflation"


@pytest.fixture
def enrich(dagbag: Any, airflow_db: None, warehouse: Any, slack: Any) -> Any:
    dag = dagbag.dags.get("enrich")
    assert dag is not None, dagbag.import_errors
    return lambda: dag_test(dag)


@pytest.fixture
def ingest_reddit(dagbag: Any, airflow_db: None, warehouse: Any, sim: Any, slack: Any) -> Any:
    dag = dagbag.dags["ingest_reddit"]
    return lambda: dag_test(dag, run_conf={"window_start": WINDOW[0], "window_end": WINDOW[1]})


def _insert(
    db: Any,
    source: str,
    external_id: str,
    minutes: int,
    title: str | None,
    body: str,
    url: str | None,
    kind: str = "post",
) -> None:
    db.execute(
        """
        INSERT INTO core.documents (source, external_id, kind, created_at, title, body, url, content_sha256,
                                    raw_response_id, dag_run_id)
        VALUES (%s, %s, %s, %s, %s, %s, %s, 'h', 1, 'test')
        """,
        (source, external_id, kind, T0 + timedelta(minutes=minutes), title, body, url),
    )


def test_ingested_documents_are_enriched_with_every_feature(ingest_reddit: Any, enrich: Any, db: Any) -> None:
    truncate_warehouse(db)
    assert ingest_reddit().state == "success"
    docs = db.execute("SELECT count(*) FROM core.documents").fetchone()[0]
    assert docs > 20
    assert enrich().state == "success"
    from pulse.enrich.pipeline import ENRICHMENT_VERSION

    row = db.execute(
        "SELECT count(*), count(DISTINCT enrichment_version), min(enrichment_version), count(language),"
        " count(sentiment_label), count(sentiment_vader) FROM enriched.document_features"
    ).fetchone()
    assert row[:3] == (docs, 1, ENRICHMENT_VERSION)
    assert row[3] > docs * 0.9 and row[4] == docs and row[5] == docs
    components = dict(db.execute("SELECT component, version FROM enriched.component_versions").fetchall())
    assert len(components) >= 5 and all(components.values())
    # Nothing is in the analyst view until the quality DAG published the windows.
    assert db.execute("SELECT sum(documents) FROM analytics.daily_sentiment").fetchone()[0] is None
    publish_everything(db)
    assert db.execute("SELECT sum(documents) FROM analytics.daily_sentiment").fetchone()[0] == docs
    # Every document was compared for duplicates too.
    assert db.execute("SELECT count(*) FROM enriched.document_fingerprints").fetchone()[0] == docs
    # A second run finds nothing to do.
    assert enrich().state == "success"
    assert db.execute("SELECT count(*) FROM enriched.document_features").fetchone()[0] == docs


def test_a_version_bump_re_enriches(enrich: Any, db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    truncate_warehouse(db)
    for i in range(5):
        _insert(db, "reddit", f"t3_v{i}", i, f"Post {i}", "I love this new phone, the camera is great", None)
    assert enrich().state == "success"
    monkeypatch.setattr("pulse.enrich.pipeline.ENRICHMENT_VERSION", "test-bump")
    assert enrich().state == "success"
    versions = db.execute(
        "SELECT enrichment_version, count(*) FROM enriched.document_features GROUP BY 1"
    ).fetchall()
    assert versions == [("test-bump", 5)]
    assert (
        db.execute(
            "SELECT count(*) FROM enriched.component_versions WHERE enrichment_version = 'test-bump'"
        ).fetchone()[0]
        > 0
    )


def test_the_same_story_from_three_sources_is_one_cluster(enrich: Any, db: Any) -> None:
    truncate_warehouse(db)
    url = "https://www.example-news.com/economy/central-bank-raises-rates"
    _insert(db, "newsapi", "news_1", 0, HEADLINE, "The bank said inflation remained too high.", url)
    _insert(db, "reddit", "t3_story", 5, HEADLINE, "", url + "?utm_source=reddit&utm_medium=social")
    _insert(db, "x", "tw_story", 9, None, HEADLINE.lower() + " 📉 #economy https://t.co/abc123", None)
    _insert(db, "reddit", "t3_other", 7, "My cat learned to open the fridge", "Any tips to stop her?", None)
    _insert(
        db, "x", "tw_other", 8, None, "Match day! Our team plays tonight at the stadium, come along", None
    )
    assert enrich().state == "success"
    clusters = db.execute(
        "SELECT cluster_id, array_agg(source || ':' || external_id ORDER BY source) FROM enriched.duplicate_clusters"
        " GROUP BY 1"
    ).fetchall()
    assert [sorted(members) for _, members in clusters] == [
        ["newsapi:news_1", "reddit:t3_story", "x:tw_story"]
    ]
    publish_everything(db)
    per_source = dict(
        db.execute("SELECT source, in_clusters FROM analytics.duplicates_per_source").fetchall()
    )
    assert per_source == {"newsapi": 1, "reddit": 1, "x": 1}
    # A later copy of the story joins the same cluster; the cluster id stays.
    _insert(
        db,
        "reddit",
        "t3_late",
        60,
        HEADLINE + "!",
        "",
        "http://example-news.com/economy/central-bank-raises-rates/",
    )
    assert enrich().state == "success"
    later = db.execute(
        "SELECT cluster_id FROM enriched.duplicate_clusters WHERE external_id = 't3_late'"
    ).fetchone()
    assert later == (clusters[0][0],)


def test_a_document_that_breaks_one_enricher_gets_an_error_row_and_the_rest(
    enrich: Any, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    truncate_warehouse(db)
    _insert(
        db,
        "reddit",
        "t3_ok",
        0,
        "Apple shares rally",
        "Investors loved the new iPhone launch in Paris.",
        None,
    )
    _insert(db, "reddit", "t3_bad", 1, "BOOM keywords", "This text makes the keyword extractor fail.", None)
    from pulse.enrich import keywords

    real = keywords.keywords

    def flaky(text: str) -> list[str]:
        if "BOOM" in text:
            raise ValueError("keyword extractor exploded")
        return real(text)

    monkeypatch.setattr(keywords, "keywords", flaky)
    assert enrich().state == "success"
    errors = db.execute("SELECT external_id, enricher, error FROM enriched.enrichment_errors").fetchall()
    assert errors == [("t3_bad", "keywords", "ValueError: keyword extractor exploded")]
    rows = {
        r[0]: r[1:]
        for r in db.execute(
            "SELECT external_id, keywords, sentiment_label, language, topic FROM enriched.document_features"
        ).fetchall()
    }
    assert rows["t3_bad"][0] == [] and all(v is not None for v in rows["t3_bad"][1:3])
    assert rows["t3_ok"][0] and rows["t3_ok"][1] is not None
    entities = {
        r[0]
        for r in db.execute(
            "SELECT normalized FROM enriched.entity_mentions WHERE external_id = 't3_ok'"
        ).fetchall()
    }
    assert "Paris" in entities


def test_comments_citing_the_same_page_are_not_one_story(enrich: Any, db: Any) -> None:
    truncate_warehouse(db)
    cite = "https://en.wikipedia.org/wiki/Octopus"
    _insert(
        db, "reddit", "t1_a", 0, None, f"Octopuses have three hearts, source: {cite}", None, kind="comment"
    )
    _insert(
        db,
        "reddit",
        "t1_b",
        1,
        None,
        f"My aquarium is too small for one anyway. See {cite}",
        None,
        kind="comment",
    )
    _insert(db, "reddit", "t3_link", 2, "Octopus facts", f"Fun read {cite}", None, kind="post")
    _insert(
        db,
        "x",
        "tw_link",
        3,
        None,
        f"Did you know octopuses can taste with their arms? {cite}",
        None,
        kind="tweet",
    )
    assert enrich().state == "success"
    members = db.execute("SELECT external_id FROM enriched.duplicate_clusters ORDER BY 1").fetchall()
    assert members == [
        ("t3_link",),
        ("tw_link",),
    ]  # the two shares of the page; the citing comments stay apart


# ------------------------------------------------------------------------------------------------
# edited documents (issue 12 item 6)
# ------------------------------------------------------------------------------------------------

EDITED_TITLE = "Apple shares crash in Paris"
EDITED_BODY = "Tim Cook resigned today and investors in Tokyo are furious. This is a terrible, awful disaster for $AAPL."
_DOC_COLUMNS = "source, external_id, kind, created_at, channel, title, body, url, author_pseudonym, score, metrics, payload"


def _enrich_summary(dr: Any, task_id: str) -> dict[str, Any]:
    """The return value (XCom) of ``task_id`` in enrich run ``dr``."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=dr.run_id, dag_ids="enrich", task_ids=task_id, key="return_value")
        ).first()
        assert row is not None, f"{task_id} returned nothing"
        return dict(XComModel.deserialize_value(row))


def _document(db: Any, external_id: str) -> tuple[Any, int]:
    """The stored row of a reddit document as the parser's ``Document``, with its raw page id."""
    from pulse.sources.base import Document

    row = db.execute(
        f"SELECT {_DOC_COLUMNS}, raw_response_id FROM core.documents WHERE source = 'reddit' AND external_id = %s",
        (external_id,),
    ).fetchone()
    names = [c.strip() for c in _DOC_COLUMNS.split(",")]
    return Document(**dict(zip(names, row[:-1], strict=True))), row[-1]


def _redeliver(docs: list[tuple[Any, int]]) -> Any:
    """Load documents through the loader's upsert, as the ``load`` task does."""
    from pulse.warehouse.db import connect
    from pulse.warehouse.loader import upsert_documents

    with connect() as conn:
        return upsert_documents(conn, docs, "test-redelivery")


def _features(db: Any) -> dict[tuple[str, str], tuple[Any, ...]]:
    return {
        (r[0], r[1]): r[2:]
        for r in db.execute(
            "SELECT source, external_id, enriched_at, language, sentiment_vader, sentiment_label, keywords, topic,"
            " emotions, content_sha256, text_sha256, sentiment_basis FROM enriched.document_features"
        ).fetchall()
    }


def test_an_edited_document_is_enriched_again_and_nothing_else(
    ingest_reddit: Any, enrich: Any, db: Any
) -> None:
    import dataclasses

    import numpy as np

    from pulse.enrich import dedup
    from pulse.enrich.pipeline import EnrichInput, enrich_documents

    truncate_warehouse(db)
    assert ingest_reddit().state == "success"
    assert enrich().state == "success"
    n_docs = db.execute("SELECT count(*) FROM core.documents").fetchone()[0]
    posts = [
        r[0]
        for r in db.execute(
            "SELECT external_id FROM core.documents WHERE kind = 'post' ORDER BY created_at, external_id LIMIT 2"
        ).fetchall()
    ]
    edited_id, bumped_id = posts
    before = _features(db)
    mentions_before = db.execute("SELECT count(*) FROM enriched.entity_mentions").fetchone()[0]
    old_mentions = db.execute(
        "SELECT count(*) FROM enriched.entity_mentions WHERE external_id = %s", (edited_id,)
    ).fetchone()[0]
    old_places = db.execute(
        "SELECT count(*) FROM enriched.places WHERE external_id = %s", (edited_id,)
    ).fetchone()[0]
    places_before = db.execute("SELECT count(*) FROM enriched.places").fetchone()[0]
    fingerprints_before = dict(
        db.execute(
            "SELECT external_id, (text_key, url_keys, content_sha256) FROM enriched.document_fingerprints"
        ).fetchall()
    )

    # Everything re-delivered identical (the same window again): no row is rewritten.
    assert ingest_reddit().state == "success"
    assert (
        db.execute("SELECT count(*) FROM core.documents WHERE loaded_at > first_loaded_at").fetchone()[0] == 0
    )
    # One post edited, one whose score changed (its row is rewritten, its text is the same).
    doc, raw_id = _document(db, edited_id)
    other, other_raw = _document(db, bumped_id)
    edited = dataclasses.replace(doc, title=EDITED_TITLE, body=EDITED_BODY)
    bumped = dataclasses.replace(other, score=(other.score or 0) + 100)
    assert _redeliver([(edited, raw_id), (bumped, other_raw)]).changed == 2

    run = enrich()
    assert run.state == "success"
    summary = _enrich_summary(run, "enrich")
    assert (summary["documents"], summary["edited"], summary["same_text"]) == (1, 1, 1)
    dedup_summary = _enrich_summary(run, "deduplicate")
    assert (dedup_summary["documents"], dedup_summary["refingerprinted"], dedup_summary["same_text"]) == (
        1,
        1,
        1,
    )

    # The edited post's features, mentions and places are those of its new text, and only those.
    new_input = EnrichInput(
        ("reddit", edited_id, doc.created_at), "reddit", "post", EDITED_TITLE, EDITED_BODY, doc.url
    )
    expected = enrich_documents([new_input])
    after = _features(db)
    feats = after[("reddit", edited_id)]
    want = expected.features[0]
    assert feats[0] > before[("reddit", edited_id)][0]  # enriched_at moved on
    assert feats[1] == want.language == "en"
    assert feats[2] == pytest.approx(want.sentiment_vader, abs=1e-4) and feats[2] < -0.3
    assert feats[3] == want.sentiment_label == "negative"
    assert feats[9] == want.sentiment_basis == "ensemble"  # how the label was made is stored with it
    assert feats[4] == want.keywords and "awful disaster" in feats[4]
    assert feats[5] == want.topic == "business_markets"
    assert feats[6] == want.emotions
    assert feats[4] != before[("reddit", edited_id)][4]
    stored_sha = db.execute(
        "SELECT content_sha256 FROM core.documents WHERE external_id = %s", (edited_id,)
    ).fetchone()[0]
    assert feats[7] == stored_sha != before[("reddit", edited_id)][7]
    mentions = db.execute(
        "SELECT entity_type, normalized, start_offset, end_offset FROM enriched.entity_mentions"
        " WHERE external_id = %s ORDER BY start_offset, entity_type",
        (edited_id,),
    ).fetchall()
    assert mentions == sorted(
        ((m.entity_type, m.normalized, m.start, m.end) for m in expected.entities), key=lambda m: (m[2], m[0])
    )
    assert {m[1] for m in mentions} == {
        "Apple Inc.",
        "Paris",
        "Tim Cook",
        "Tokyo",
    }  # $AAPL links to Apple Inc.
    places = db.execute(
        "SELECT name, country FROM enriched.places WHERE external_id = %s ORDER BY name", (edited_id,)
    ).fetchall()
    assert places == [("Paris", "FR"), ("Tokyo", "JP")]
    # No duplicate rows anywhere: the old mentions and places went, the new ones came once.
    assert db.execute("SELECT count(*) FROM enriched.document_features").fetchone()[0] == n_docs
    assert db.execute("SELECT count(*) FROM enriched.entity_mentions").fetchone()[
        0
    ] == mentions_before - old_mentions + len(mentions)
    assert db.execute("SELECT count(*) FROM enriched.places").fetchone()[0] == places_before - old_places + 2

    # Its duplicate fingerprint, signature and bands are those of the new text; the old bands are gone.
    text = EDITED_TITLE + "\n" + EDITED_BODY
    sig = dedup.signatures([text])
    fp = db.execute(
        "SELECT f.text_key, f.content_sha256, s.signature FROM enriched.document_fingerprints f"
        " JOIN enriched.minhash_signatures s USING (source, external_id, created_at) WHERE f.external_id = %s",
        (edited_id,),
    ).fetchone()
    assert fp[0] == dedup.exact_key(text) != fingerprints_before[edited_id][0]
    assert fp[1] == stored_sha
    assert np.array_equal(np.frombuffer(fp[2], dtype="<u4"), sig[0])
    bands = db.execute(
        "SELECT band, band_hash FROM enriched.minhash_bands WHERE external_id = %s ORDER BY band",
        (edited_id,),
    ).fetchall()
    assert bands == [(b, int(h)) for b, h in enumerate(dedup.band_keys(sig)[0])]

    # The post whose score changed keeps its features (same enriched_at); only its digest was recorded.
    bumped_sha = db.execute(
        "SELECT content_sha256 FROM core.documents WHERE external_id = %s", (bumped_id,)
    ).fetchone()[0]
    assert after[("reddit", bumped_id)][:7] == before[("reddit", bumped_id)][:7]
    assert after[("reddit", bumped_id)][7] == bumped_sha != before[("reddit", bumped_id)][7]
    # Every other document was left alone.
    untouched = {k for k in before if k[1] not in (edited_id, bumped_id)}
    assert len(untouched) == n_docs - 2
    assert all(after[k] == before[k] for k in untouched)
    fingerprints_after = dict(
        db.execute(
            "SELECT external_id, (text_key, url_keys, content_sha256) FROM enriched.document_fingerprints"
        ).fetchall()
    )
    assert all(fingerprints_after[k[1]] == fingerprints_before[k[1]] for k in untouched)

    # Edited once more: the mentions and places of the first edit go (the simulator's texts name no entity, so
    # this is where leftovers would show).
    mentions_now = db.execute("SELECT count(*) FROM enriched.entity_mentions").fetchone()[0]
    again = dataclasses.replace(
        edited, title="Snow day", body="Heavy snow closes every school in Berlin today."
    )
    assert _redeliver([(again, raw_id)]).changed == 1
    run = enrich()
    assert (
        _enrich_summary(run, "enrich")["edited"],
        _enrich_summary(run, "deduplicate")["refingerprinted"],
    ) == (
        1,
        1,
    )
    assert db.execute(
        "SELECT entity_type, normalized FROM enriched.entity_mentions WHERE external_id = %s", (edited_id,)
    ).fetchall() == [("place", "Berlin")]
    assert db.execute("SELECT name FROM enriched.places WHERE external_id = %s", (edited_id,)).fetchall() == [
        ("Berlin",)
    ]
    assert db.execute("SELECT count(*) FROM enriched.entity_mentions").fetchone()[0] == mentions_now - 5 + 1
    assert db.execute("SELECT count(*) FROM enriched.places").fetchone()[0] == places_before - old_places + 1

    # A further run finds nothing to do.
    run = enrich()
    summary = _enrich_summary(run, "enrich")
    assert (summary["documents"], summary["same_text"]) == (0, 0)
    assert _enrich_summary(run, "deduplicate")["documents"] == 0


STORM = "Massive storm knocks out power for thousands of homes across northern California overnight"
BAKERY = "Local bakery wins national award for its sourdough after forty years in the same small shop"


def _edit(
    db: Any, source: str, external_id: str, title: str | None, body: str, url: str | None = None
) -> None:
    """What the loader does when a re-delivered document's content changed: rewrite the row, new digest."""
    updated = db.execute(
        "UPDATE core.documents SET title = %s, body = %s, url = %s, content_sha256 = content_sha256 || '+',"
        " loaded_at = now() WHERE source = %s AND external_id = %s",
        (title, body, url, source, external_id),
    ).rowcount
    assert updated == 1


def _clusters(db: Any) -> dict[str, list[str]]:
    rows = db.execute(
        "SELECT cluster_id, array_agg(external_id ORDER BY external_id) FROM enriched.duplicate_clusters GROUP BY 1"
    ).fetchall()
    return dict(rows)


def test_edited_documents_leave_and_join_duplicate_clusters(enrich: Any, db: Any) -> None:
    truncate_warehouse(db)
    # Story 1: a headline, a tweet of it and a Reddit near-copy.
    _insert(db, "newsapi", "rates_news", 0, HEADLINE, "", None, kind="article")
    _insert(db, "x", "rates_tweet", 1, None, HEADLINE.lower() + " 📉", None, kind="tweet")
    _insert(db, "reddit", "rates_post", 2, HEADLINE + " again, says the governor", "", None)
    # Story 2: the storm, twice.
    _insert(db, "newsapi", "storm_news", 3, STORM, "", None, kind="article")
    _insert(db, "x", "storm_tweet", 4, None, STORM + " #weather", None, kind="tweet")
    # Story 3: two copies of a bakery story.
    _insert(db, "newsapi", "bakery_news", 5, BAKERY, "", None, kind="article")
    _insert(db, "reddit", "bakery_post", 6, BAKERY + "!", "", None)
    # Story 4, held together by one post that shares a link with two posts and its text with two tweets.
    link = "https://example-news.com/local/bridge-reopens"
    _insert(db, "reddit", "bridge_a", 7, "Finally some good news", "about time", link)
    _insert(db, "reddit", "bridge_b", 8, "The bridge is back", "traffic will be better", link)
    bridge_text = "The old river bridge reopens to traffic after two years of repairs downtown"
    _insert(db, "reddit", "bridge_hub", 9, bridge_text, "", link)
    _insert(db, "x", "bridge_tweet1", 10, None, bridge_text + " 🎉", None, kind="tweet")
    _insert(db, "x", "bridge_tweet2", 11, None, bridge_text.upper(), None, kind="tweet")
    # A loner.
    _insert(db, "reddit", "cat_post", 12, "My cat learned to open the fridge", "Any tips to stop her?", None)
    assert enrich().state == "success"
    before = _clusters(db)
    ids = {members[0]: cid for cid, members in before.items()}
    assert sorted(before.values()) == [
        ["bakery_news", "bakery_post"],
        ["bridge_a", "bridge_b", "bridge_hub", "bridge_tweet1", "bridge_tweet2"],
        ["rates_news", "rates_post", "rates_tweet"],
        ["storm_news", "storm_tweet"],
    ]

    # The Reddit copy of story 1 is edited into the storm story, the loner into story 1, one bakery copy into
    # something else, and the bridge hub loses both its link and its text (its old bands must go).
    _edit(db, "reddit", "rates_post", "Storm update", STORM + ", the utility says")
    _edit(db, "reddit", "cat_post", HEADLINE, "")
    _edit(db, "reddit", "bakery_post", "My cat learned to open the fridge", "Any tips to stop her?")
    _edit(db, "reddit", "bridge_hub", "Weekend plans", "hiking")  # too short for text links: no bands
    run = enrich()
    assert run.state == "success"
    stats = _enrich_summary(run, "deduplicate")
    # Split or dissolved: the bridge and bakery clusters (story 1 still holds together without its copy).
    assert (stats["documents"], stats["refingerprinted"], stats["clusters_split"]) == (4, 4, 2)
    assert _enrich_summary(run, "enrich")["edited"] == 4

    after = _clusters(db)
    # Story 1 keeps its id and its two unedited members, and gains the former loner.
    assert after[ids["rates_news"]] == ["cat_post", "rates_news", "rates_tweet"]
    # The edited Reddit post now sits in the storm cluster, under the storm cluster's id.
    assert after[ids["storm_news"]] == ["rates_post", "storm_news", "storm_tweet"]
    # A cluster left with one member is no cluster.
    assert ids["bakery_news"] not in after
    # The bridge cluster splits in two parts of two: the one with the earliest post keeps the id, the other
    # gets one of its own.
    assert after[ids["bridge_a"]] == ["bridge_a", "bridge_b"]
    bridge_parts = sorted(m for m in after.values() if m[0].startswith("bridge"))
    assert bridge_parts == [["bridge_a", "bridge_b"], ["bridge_tweet1", "bridge_tweet2"]]
    assert len(after) == 4 and len(set(after)) == 4
    in_clusters = {m for members in after.values() for m in members}
    assert (
        "bakery_post" not in in_clusters
        and "bridge_hub" not in in_clusters
        and "bakery_news" not in in_clusters
    )
    # Every row of the edited documents describes the new text: one fingerprint, 32 bands or none.
    counts = db.execute(
        "SELECT external_id, (SELECT count(*) FROM enriched.document_fingerprints f WHERE f.external_id = d.external_id),"
        " (SELECT count(*) FROM enriched.minhash_bands b WHERE b.external_id = d.external_id)"
        " FROM core.documents d WHERE external_id IN ('rates_post', 'cat_post', 'bakery_post', 'bridge_hub')"
        " ORDER BY 1"
    ).fetchall()
    assert counts == [
        ("bakery_post", 1, 32),
        ("bridge_hub", 1, 0),
        ("cat_post", 1, 32),
        ("rates_post", 1, 32),
    ]
    topic = db.execute(
        "SELECT topic FROM enriched.document_features WHERE external_id = 'rates_post'"
    ).fetchone()[0]
    assert topic == "weather_climate"
