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
