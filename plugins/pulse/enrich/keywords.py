"""Keywords: a RAKE-style extractor (Rose et al. 2010) with our stop-word lists; no corpus, no NLTK data.

Candidate phrases are runs of up to three content words between stop words and punctuation (URLs and
@mentions dropped, hashtags kept without the ``#``). A word scores degree / frequency (words that occur in
longer phrases and repeat score higher), a phrase the sum of its words' scores, plus a bonus for repeated
phrases. Output is lower case, best first, at most ``TOP_K``; a single word already inside a chosen phrase
is skipped. YAKE gives slightly nicer phrases but runs at ~500 texts/s here; this runs at ~20,000.
"""

from __future__ import annotations

import re

from pulse.enrich.text import STOPWORDS, URL_RE

TOP_K = 8
MAX_PHRASE_WORDS = 3
MAX_CHARS = 5000

# Split into "word" runs; anything that is not a word character, apostrophe, hyphen or # separates phrases.
_PIECE_RE = re.compile(r"[#@$]?\w+(?:['\u2019-]\w+)*|[^\w\s#@$'\u2019-]+")


def _is_content(w: str) -> bool:
    return len(w) > 1 and w not in STOPWORDS and not w.isdigit() and not w.startswith("@")


def keywords(text: str, top_k: int = TOP_K) -> list[str]:
    text = text[:MAX_CHARS]
    if "http" in text or "www." in text:
        text = URL_RE.sub(" . ", text)
    phrases: list[tuple[str, ...]] = []
    cur: list[str] = []
    for piece in _PIECE_RE.findall(text):
        w = piece.lower()
        if w[0] in "#$":  # a hashtag or cashtag is a phrase of its own
            if cur:
                phrases.append(tuple(cur))
                cur = []
            if _is_content(w[1:]):
                phrases.append((w[1:],))
            continue
        if w and (w[0].isalnum() or w[0] == "_") and _is_content(w) and not piece.startswith("@"):
            cur.append(w)
            if len(cur) == MAX_PHRASE_WORDS:
                phrases.append(tuple(cur))
                cur = []
        else:
            if cur:
                phrases.append(tuple(cur))
            cur = []
    if cur:
        phrases.append(tuple(cur))
    if not phrases:
        return []
    freq: dict[str, int] = {}
    degree: dict[str, int] = {}
    for p in phrases:
        d = len(p) - 1
        for w in p:
            freq[w] = freq.get(w, 0) + 1
            degree[w] = degree.get(w, 0) + d
    pcount: dict[tuple[str, ...], int] = {}
    first: dict[tuple[str, ...], int] = {}
    for i, p in enumerate(phrases):
        pcount[p] = pcount.get(p, 0) + 1
        first.setdefault(p, i)
    scored = sorted(
        pcount,
        key=lambda p: (-(sum((degree[w] + freq[w]) / freq[w] for w in p) + (pcount[p] - 1)), first[p]),
    )
    out: list[str] = []
    chosen_words: set[str] = set()
    for p in scored:
        if len(p) == 1 and p[0] in chosen_words:
            continue
        out.append(" ".join(p))
        chosen_words.update(p)
        if len(out) == top_k:
            break
    return out
