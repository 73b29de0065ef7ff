"""Emotions: counts of NRC Emotion Lexicon categories (the lexicon file shipped in the nrclex wheel).

``nrclex.NRCLex.load_raw_text`` needs NLTK corpora through TextBlob and fails offline, so the lexicon JSON is
read directly and looked up with our own tokens. A word not in the lexicon is retried without a plural or
verb suffix (-s, -es, -ed, -ing, -ly), a cheap stand-in for lemmatisation.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from functools import cache

from pulse.enrich.text import words_lower

EMOTIONS = ("anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust")
LEXICON_FILE = "nrc_en.json"
_SUFFIXES = ("s", "es", "ed", "d", "ing", "ly")


def lexicon_path() -> str:
    spec = importlib.util.find_spec("nrclex")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nrclex is not installed")
    return os.path.join(spec.submodule_search_locations[0], "data", LEXICON_FILE)


@cache
def lexicon() -> dict[str, tuple[str, ...]]:
    with open(lexicon_path(), encoding="utf-8") as f:
        raw = json.load(f)
    keep = set(EMOTIONS)
    return {w: cats for w, v in raw.items() if (cats := tuple(c for c in v if c in keep))}


@cache
def lexicon_sha256() -> str:
    with open(lexicon_path(), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _lookup(lex: dict[str, tuple[str, ...]], word: str) -> tuple[str, ...] | None:
    cats = lex.get(word)
    if cats is None and len(word) > 4:
        for suf in _SUFFIXES:
            if word.endswith(suf) and (cats := lex.get(word[: -len(suf)])) is not None:
                break
    return cats


def emotions(text: str, words: list[str] | None = None) -> dict[str, int]:
    """NRC category -> number of words carrying it (every category present, zero included)."""
    lex = lexicon()
    counts = dict.fromkeys(EMOTIONS, 0)
    for w in words if words is not None else words_lower(text):
        cats = _lookup(lex, w)
        if cats:
            for c in cats:
                counts[c] += 1
    return counts
