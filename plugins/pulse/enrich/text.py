"""Shared text helpers for the enrichers: tokens with offsets, sentence spans, stop words.

Everything here is pure Python and regex based (no NLTK data, which is not on PyPI). Offsets are character
offsets into the enrichment text, so entity mentions and sentences can be mapped onto each other.

The word lists are data, not code: ``include/enrich/lexicon/<name>.txt`` (one entry per line, ``#`` starts a
comment line) and ``<name>.yaml``, each read once per process on first use (:func:`word_list`,
:func:`lexicon_data`). The module attributes :data:`STOPWORDS_EN`, :data:`STOPWORDS_OTHER`, :data:`STOPWORDS`
and :data:`ABBREVIATIONS` are those lists as frozensets, loaded when first read.
"""

from __future__ import annotations

import bisect
import re
from functools import cache
from pathlib import Path
from typing import Any

#: The word lists and other lexical data the enrichers read.
LEXICON_DIR = Path(__file__).resolve().parents[3] / "include" / "enrich" / "lexicon"

# A word: letters/digits with inner apostrophes, hyphens, dots or ampersands (U.S., AT&T, don't, e-mail).
# Cashtags, hashtags and @mentions keep their sigil so the enrichers can tell them apart.
TOKEN_RE = re.compile(r"[$#@]?\w+(?:['\u2019.&-]\w+)*", re.UNICODE)
URL_RE = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
# Sentence ends: . ! ? … (possibly repeated, possibly followed by closing quotes/brackets) then whitespace,
# or a line break. Abbreviations like "U.S." or "Dr." make extra splits; that only narrows the context used
# for per-entity sentiment, which is acceptable.
SENTENCE_END_RE = re.compile(r"(?:[.!?…]+['\")\]]*\s+)|\n+")


class LexiconMissingError(FileNotFoundError):
    """A word list or lexicon file of ``include/enrich/lexicon`` is not there."""


def _lexicon_file(name: str) -> str:
    path = LEXICON_DIR / name
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise LexiconMissingError(
            f"lexicon file {path} is missing: the enrichers read their word lists from include/enrich/lexicon "
            "(deploy include/ with plugins/)"
        ) from exc


@cache
def word_list(name: str) -> frozenset[str]:
    """The entries of ``include/enrich/lexicon/<name>.txt``: one per line, stripped; blank lines and lines
    starting with ``#`` are skipped. Read once per process; :class:`LexiconMissingError` if the file is missing.
    """
    lines = (line.strip() for line in _lexicon_file(f"{name}.txt").splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


@cache
def lexicon_data(name: str) -> Any:
    """The parsed ``include/enrich/lexicon/<name>.yaml`` (read once per process: treat it as read-only)."""
    import yaml

    return yaml.safe_load(_lexicon_file(f"{name}.yaml"))


#: Every file of include/enrich/lexicon the enrichers read.
LEXICON_FILES = (
    "stopwords_en.txt",
    "stopwords_other.txt",
    "abbreviations.txt",
    "ambiguous_city_names.txt",
    "place_aliases.yaml",
)


def load_lexicons() -> None:
    """Read every file of :data:`LEXICON_FILES` now (once per process): a missing one raises here."""
    for name in LEXICON_FILES:
        stem, ext = name.rsplit(".", 1)
        (word_list if ext == "txt" else lexicon_data)(stem)


#: Module attributes kept for the enrichers that import them, and the word lists each one joins.
_WORD_LIST_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    # English stop words; short lists for the other common languages of the feed (es, de, fr, pt, it), so
    # keywords of a Spanish post are not "de la".
    "STOPWORDS_EN": ("stopwords_en",),
    "STOPWORDS_OTHER": ("stopwords_other",),
    "STOPWORDS": ("stopwords_en", "stopwords_other"),
    # A period after one of these does not end a sentence (see sentence_spans).
    "ABBREVIATIONS": ("abbreviations",),
}


@cache
def _joined(attribute: str) -> frozenset[str]:
    return frozenset().union(*(word_list(name) for name in _WORD_LIST_ATTRIBUTES[attribute]))


def __getattr__(name: str) -> frozenset[str]:
    """``STOPWORDS`` and the other word lists (PEP 562): loaded on first access, not at import."""
    if name in _WORD_LIST_ATTRIBUTES:
        return _joined(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# A token is (text, start, end): plain tuples, because building ~40 objects per document shows in the budget.
Token = tuple[str, int, int]


def tokens(text: str) -> list[Token]:
    """Word tokens (text, start, end); tokens inside URLs are skipped."""
    out = [(m.group(), m.start(), m.end()) for m in TOKEN_RE.finditer(text)]
    if "http" in text or "www." in text:
        spans = [m.span() for m in URL_RE.finditer(text)]
        if spans:
            out = [t for t in out if not any(a <= t[1] < b for a, b in spans)]
    return out


def words_lower(text: str) -> list[str]:
    """Lower-cased plain words (no URLs, @mentions or sigils); the cheap path for lexicon lookups."""
    if "http" in text or "www." in text:
        text = URL_RE.sub(" ", text)
    return [w.lstrip("#$").lower() for w in TOKEN_RE.findall(text) if w[0] != "@"]


_LAST_WORD_RE = re.compile(r"([\w.]+)$")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence; whitespace-only pieces are dropped.

    A period after a known abbreviation ("Dr.", "U.S.", "Inc.") or a single letter ("J.") does not end a
    sentence.
    """
    abbreviations = word_list("abbreviations")
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in SENTENCE_END_RE.finditer(text):
        if m.group()[0] == ".":
            w = _LAST_WORD_RE.search(text, max(0, m.start() - 12), m.start())
            if w and (len(w.group(1)) == 1 or w.group(1).lower().rstrip(".") in abbreviations):
                continue
        end = m.start() + len(m.group().rstrip())
        if text[pos:end].strip():
            spans.append((pos, end))
        pos = m.end()
    if text[pos:].strip():
        spans.append((pos, len(text)))
    return spans


def sentence_index(spans: list[tuple[int, int]], offset: int) -> int:
    """Index of the sentence that contains ``offset`` (the nearest preceding one between sentences)."""
    starts = [s for s, _ in spans]
    return max(0, bisect.bisect_right(starts, offset) - 1)
