"""The enrichment evaluation set: hand labels on real texts, public labels, and the frozen test split.

Hand labels live in ``include/eval/hand/<domain>.yaml`` (one entry per text, written by a person following
``docs/labelling.md``). They name texts by corpus id and by the sha256 of the text (``pulse.enrich.corpora``);
the texts themselves are read from the fetched artefacts, never stored in the repository.

**The split.** Every item of every set, hand-labelled or public, is in ``test`` or ``dev`` by its id alone:
``sha256("pulse-eval/" + id)`` even -> test. The test half is frozen: nothing trains, tunes thresholds or
writes rules on it. :func:`dev_items` is the only door for training and tuning code and refuses test ids,
and ``tests/enrich/test_evalset.py`` pins the sha256 of the test labels, so a change to them shows in review.

Entity mentions are given as surface strings; each string marks every whole-word, case-sensitive occurrence
in the text unless ``occurrences`` lists which ones (1-based). :func:`load` turns them into character spans.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pulse.enrich import corpora

HAND = corpora.ROOT / "include" / "eval" / "hand"
DOMAINS = ("tweet", "reddit", "news", "github")
SENTIMENTS = ("negative", "neutral", "positive")
ENTITY_TYPES = ("PERSON", "ORG", "PLACE", "TICKER", "CRYPTO", "PRODUCT")
TOPICS = (
    "politics",
    "business_markets",
    "technology",
    "science",
    "health",
    "sports",
    "weather_climate",
    "entertainment",
    "crypto",
    "other",
)
ACTS = ("question", "announcement", "statement", "opinion", "request", "other")
EMOTIONS = ("anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust", "none")


def split_of(item_id: str) -> str:
    """``test`` or ``dev``, from the id alone (so the same text is on the same side in every set)."""
    return "test" if int(hashlib.sha256(f"pulse-eval/{item_id}".encode()).hexdigest(), 16) % 2 == 0 else "dev"


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    type: str
    text: str
    sentiment: str | None = None


@dataclass(frozen=True)
class Labelled:
    id: str
    domain: str
    split: str
    text: str
    language: str | None
    sentiment: str | None
    act: str | None
    topic: str | None
    emotion: str | None
    sarcasm: bool | None
    entities: tuple[Span, ...] = field(default_factory=tuple)
    note: str = ""


def _occurrences(text: str, surface: str) -> list[tuple[int, int]]:
    pat = re.compile(r"(?<!\w)" + re.escape(surface) + r"(?!\w)")
    return [(m.start(), m.end()) for m in pat.finditer(text)]


class LabelError(ValueError):
    pass


def _entry(raw: dict[str, Any], items: dict[str, corpora.Item], domain: str) -> Labelled:
    item_id = raw["id"]
    item = items.get(item_id)
    if item is None:
        raise LabelError(f"{item_id}: not in the corpora (or reserved)")
    text = item.text
    sha = str(raw.get("sha", ""))
    if not sha or not corpora.text_sha256(text).startswith(sha):
        raise LabelError(f"{item_id}: text sha256 does not start with {sha!r}: the text changed")
    for key, vocab in (("sentiment", SENTIMENTS), ("topic", TOPICS), ("act", ACTS), ("emotion", EMOTIONS)):
        if raw.get(key) is not None and raw[key] not in vocab:
            raise LabelError(f"{item_id}: {key} {raw[key]!r} not in {vocab}")
    spans: list[Span] = []
    for ent in raw.get("entities") or []:
        etype, surface = ent[0], ent[1]
        extra = ent[2] if len(ent) > 2 else None
        occ = None
        sentiment = None
        if isinstance(extra, dict):
            occ, sentiment = extra.get("occurrences"), extra.get("sentiment")
        elif isinstance(extra, str):
            sentiment = extra
        if etype not in ENTITY_TYPES:
            raise LabelError(f"{item_id}: entity type {etype!r} not in {ENTITY_TYPES}")
        if sentiment is not None and sentiment not in SENTIMENTS:
            raise LabelError(f"{item_id}: entity sentiment {sentiment!r}")
        found = _occurrences(text, surface)
        if not found:
            raise LabelError(f"{item_id}: entity {surface!r} not found as a whole word in the text")
        picked = found if occ is None else [found[i - 1] for i in occ]
        spans.extend(Span(s, e, etype, surface, sentiment) for s, e in picked)
    spans.sort(key=lambda s: (s.start, s.end))
    for a, b in itertools.pairwise(spans):
        if b.start < a.end:
            raise LabelError(f"{item_id}: entities {a.text!r} and {b.text!r} overlap")
    return Labelled(
        id=item_id,
        domain=domain,
        split=split_of(item_id),
        text=text,
        language=raw.get("language"),
        sentiment=raw.get("sentiment"),
        act=raw.get("act"),
        topic=raw.get("topic"),
        emotion=raw.get("emotion"),
        sarcasm=raw.get("sarcasm"),
        entities=tuple(spans),
        note=str(raw.get("note") or ""),
    )


def hand_file(domain: str) -> Path:
    return HAND / f"{domain}.yaml"


@cache
def load(domain: str) -> tuple[Labelled, ...]:
    """The hand labels of one domain, checked against the texts (raises :class:`LabelError`)."""
    import yaml

    path = hand_file(domain)
    if not path.exists():
        return ()
    raw = yaml.safe_load(path.read_text()) or []
    items = corpora.by_id()
    out, seen = [], set()
    for entry in raw:
        if entry["id"] in seen:
            raise LabelError(f"{entry['id']}: labelled twice")
        seen.add(entry["id"])
        out.append(_entry(entry, items, domain))
    return tuple(out)


def hand(split: str | None = None) -> list[Labelled]:
    return [x for d in DOMAINS for x in load(d) if split is None or x.split == split]


def dev_items(items: list[Any]) -> list[Any]:
    """The only way training and tuning code may take items: drops nothing silently, refuses test ids."""
    bad = [getattr(it, "id", it) for it in items if split_of(getattr(it, "id", it)) == "test"]
    if bad:
        raise LabelError(f"{len(bad)} frozen test items offered for training/tuning, e.g. {bad[:3]}")
    return items


def test_labels_sha256() -> str:
    """sha256 over the test-split entries of every hand file, as parsed (pinned by a test)."""
    h = hashlib.sha256()
    for d in DOMAINS:
        for x in load(d):
            if x.split == "test":
                h.update(repr((x.id, x.sentiment, x.topic, x.language, x.act, x.entities)).encode())
    return h.hexdigest()


# -- sampling texts for labelling ------------------------------------------------------------------------------

_POOLS = {
    "tweet": lambda: corpora.health_tweets() + corpora.wnut16(),
    "reddit": corpora.reddit,
    "news": corpora.news,
    "github": corpora.github,
}


def sample(domain: str, n: int, seed: int = 15, max_chars: int = 1200) -> list[corpora.Item]:
    """A seeded sample of real texts to label: short enough to read, at most 12% from any one community (30% on GitHub)."""
    pool = [it for it in _POOLS[domain]() if 0 < len(it.text) <= max_chars]
    rng = random.Random(f"{seed}/{domain}")
    rng.shuffle(pool)
    if domain == "tweet":  # half news-account tweets, half conversational (WNUT-16)
        news_acc = [it for it in pool if it.id.startswith("tweet:")][: n // 2]
        conv = [it for it in pool if it.id.startswith("wnut16:")][: n - len(news_acc)]
        return news_acc + conv
    group_key = {"reddit": "subreddit", "github": "repo", "news": "outlet"}[domain]
    # GitHub's texts come from a handful of repositories (PyGithub's own tests): a looser cap there.
    cap = max(1, int(n * (0.3 if domain == "github" else 0.12)))
    counts: dict[str, int] = {}
    out: list[corpora.Item] = []
    for it in pool:
        g = str(it.meta.get(group_key, "")).lower()
        if counts.get(g, 0) >= cap:
            continue
        counts[g] = counts.get(g, 0) + 1
        out.append(it)
        if len(out) == n:
            break
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) >= 2 and args[0] == "sample":
        n = int(args[2]) if len(args) > 2 else 110
        for it in sample(args[1], n):
            print(
                f"=== id: {it.id}\nsha: {corpora.text_sha256(it.text)[:12]}\nmeta: {it.meta.get('subreddit') or it.meta.get('repo') or it.meta.get('outlet') or it.meta.get('account') or ''} {it.kind}\n{it.text}\n"
            )
        return 0
    if args and args[0] == "check":
        domains = args[1:] or list(DOMAINS)
        for d in domains:
            rows = load(d)
            ents = sum(len(r.entities) for r in rows)
            test = sum(r.split == "test" for r in rows)
            print(
                f"{d:7} {len(rows):4} labelled ({test} test / {len(rows) - test} dev), {ents} entity mentions"
            )
        return 0
    print("usage: python -m pulse.enrich.evalset sample DOMAIN [N] | check [DOMAIN...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
