"""Topic: one label from the fixed taxonomy in ``include/enrich/topics.yaml`` by weighted seed matching.

The taxonomy lists, per topic, seed words and phrases; a document's score for a topic is the sum of the
weights of the seeds it contains (each distinct seed once per occurrence, single words also with a plural
-s/-es). Tickers found by the entity enricher add 1 to ``business_markets`` (or 2 to ``crypto`` for a
crypto symbol). The best topic wins if its score reaches ``min_score``; otherwise ``other``.

Confidence is a heuristic, not a calibrated probability: the winner's share of all topic scores, damped for
weak evidence (``share * score / (score + 1)``). On the hand-labelled set in tests/enrich it scores the
accuracy printed by the tests (see docs/enrichment.md). A zero-shot embedding model would do better (NLP.md
section 7: 0.92) but needs a 100+ MB runtime and runs at ~8,000 texts/s; this one runs at ~50,000.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pulse.enrich.text import words_lower

TAXONOMY_FILE = Path(__file__).resolve().parents[3] / "include" / "enrich" / "topics.yaml"
CRYPTO_TICKERS = frozenset({"BTC", "ETH", "SOL", "XRP", "DOGE", "USDT", "USDC", "ADA", "BNB"})
MAX_WORDS = 800


@dataclass(frozen=True)
class Taxonomy:
    topics: tuple[str, ...]
    unigrams: dict[str, tuple[tuple[str, float], ...]]
    phrases: dict[str, tuple[tuple[str, float], ...]]  # keyed by space-joined words (2 or 3 words)
    min_score: float
    sha256: str


@cache
def taxonomy() -> Taxonomy:
    import yaml

    raw_bytes = TAXONOMY_FILE.read_bytes()
    raw = yaml.safe_load(raw_bytes)
    uni: dict[str, list[tuple[str, float]]] = {}
    phr: dict[str, list[tuple[str, float]]] = {}
    for topic, spec in raw["topics"].items():
        for seed in spec.get("seeds") or []:
            if ":" in str(seed):
                text, w = str(seed).rsplit(":", 1)
                weight = float(w)
            else:
                text, weight = str(seed), None
            words = words_lower(text)
            if not words:
                continue
            key = " ".join(words)
            if len(words) == 1:
                uni.setdefault(key, []).append((topic, weight or 1.0))
                for suffix in ("s", "es"):
                    uni.setdefault(key + suffix, []).append((topic, weight or 1.0))
            else:
                phr.setdefault(key, []).append((topic, weight or 2.0))
    # A plural form added above never overrides a seed listed explicitly for another topic: dedupe per topic.
    uni_t = {k: tuple(dict(v).items()) for k, v in uni.items()}
    phr_t = {k: tuple(dict(v).items()) for k, v in phr.items()}
    return Taxonomy(
        topics=tuple(raw["topics"]),
        unigrams=uni_t,
        phrases=phr_t,
        min_score=float(raw.get("min_score", 1.0)),
        sha256=hashlib.sha256(raw_bytes).hexdigest(),
    )


def classify(text: str, words: list[str] | None = None, tickers: list[str] = ()) -> tuple[str, float]:
    """(topic, confidence in [0, 1])."""
    tx = taxonomy()
    ws = (words if words is not None else words_lower(text))[:MAX_WORDS]
    scores: dict[str, float] = {}
    uni, phr = tx.unigrams, tx.phrases
    for i, w in enumerate(ws):
        hits = uni.get(w)
        if hits:
            for t, wt in hits:
                scores[t] = scores.get(t, 0.0) + wt
        if phr and i + 1 < len(ws):
            two = w + " " + ws[i + 1]
            hits = phr.get(two)
            if hits:
                for t, wt in hits:
                    scores[t] = scores.get(t, 0.0) + wt
            if i + 2 < len(ws):
                hits = phr.get(two + " " + ws[i + 2])
                if hits:
                    for t, wt in hits:
                        scores[t] = scores.get(t, 0.0) + wt
    for sym in tickers:
        t, wt = ("crypto", 2.0) if sym in CRYPTO_TICKERS else ("business_markets", 1.0)
        scores[t] = scores.get(t, 0.0) + wt
    if not scores:
        return "other", 0.0
    best = max(scores, key=lambda t: (scores[t], -tx.topics.index(t)))
    top = scores[best]
    if top < tx.min_score:
        return "other", 0.0
    share = top / sum(scores.values())
    return best, round(share * top / (top + 1.0), 4)
