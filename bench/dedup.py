"""Near-duplicate benchmark: ours (:func:`pulse.enrich.dedup.find_clusters`) against a plain datasketch
MinHashLSH, side by side in one run on the same documents, with difflib's all-pairs time extrapolated.

Corpus (``--docs`` N, default 50,000, seed fixed): 95 % mutually dissimilar base texts of 60-400 characters
(mean about 190) built from English words (the NRC lexicon's 6,468 words, Zipf-weighted, mixed with function
words) with the usual social-media extras (hashtags, @mentions, URLs, emoji, "!!"); 5 % planted
near-duplicates, each a small edit of a distinct base text: 30 % ``norm`` (case, whitespace or trailing
punctuation), 40 % ``char`` (1-4 random character inserts, deletes or substitutions), 30 % ``token`` (an
appended emoji or hashtag, or one deleted word). Ground truth is the set of planted pairs; every other pair a
method reports counts as a false positive. Every document has its own URL (as a post would).

Methods, interleaved (rep 1: ours, datasketch; rep 2: datasketch, ours; ...):

* ``ours``: ``find_clusters`` on ``DedupInput`` objects, the whole thing (normalising, exact keys, canonical
  URLs, signatures, LSH, exact-Jaccard verification, union-find); reported pairs are all pairs within a cluster.
* ``datasketch``: lowercased, whitespace-collapsed text; set of character 5-shingles; ``MinHash.bulk``
  (``num_perm=128``); ``MinHashLSH(threshold=0.6, num_perm=128)`` insert then query every document; a
  candidate is kept when its estimated Jaccard is >= 0.6.
* ``difflib``: ``SequenceMatcher(None, a, b).ratio()`` timed on random pairs, multiplied by n(n-1)/2.

Usage: ``python -m bench.dedup [--docs 50000] [--reps 3] [--difflib-pairs 2000]``.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import itertools
import json
import random
import statistics
import string
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pulse.enrich import dedup

#: Function words, repeated by rough frequency.
FUNCTION_WORDS = [
    *["the"] * 4,
    *["a", "to"] * 3,
    *["of", "and", "in", "is", "it", "for", "on", "you", "i"] * 2,
    *[
        "that",
        "this",
        "with",
        "we",
        "they",
        "are",
        "was",
        "be",
        "at",
        "as",
        "by",
        "not",
        "but",
        "or",
        "so",
        "just",
        "my",
        "your",
        "our",
        "from",
        "have",
        "has",
        "will",
    ],
    *[
        "can",
        "about",
        "up",
        "out",
        "more",
        "no",
        "all",
        "what",
        "new",
        "now",
        "today",
        "after",
        "over",
        "how",
        "why",
        "when",
        "if",
        "there",
        "their",
        "than",
    ],
    *["been", "were", "its", "into", "very"],
]
EMOJI = ["🔥", "😂", "🚀", "📉", "📈", "❤️", "👀", "🙄", "👍", "💯", "😱", "🎉", "⚡", "🌧️", "😡"]
SOURCES = ("newsapi", "reddit", "x", "github")
EDIT_KINDS = ("norm", "char", "token")
EDIT_WEIGHTS = (0.3, 0.4, 0.3)


def _vocabulary() -> list[str]:
    spec = importlib.util.find_spec("nrclex")
    assert spec is not None and spec.submodule_search_locations
    path = Path(spec.submodule_search_locations[0]) / "data" / "nrc_en.json"
    words = sorted(w for w in json.loads(path.read_text()) if w.isalpha())
    random.Random(11).shuffle(words)
    return words


def _base_text(rng: random.Random, vocab: list[str], cum: list[float]) -> str:
    target = int(rng.triangular(60, 400, 60))  # mean 173, plus the last word and the extras: about 190
    words: list[str] = []
    length = 0
    while length < target:
        w = rng.choice(FUNCTION_WORDS) if rng.random() < 0.42 else rng.choices(vocab, cum_weights=cum)[0]
        if rng.random() < 0.04:
            w = w.capitalize()
        words.append(w)
        length += len(w) + 1
        if rng.random() < 0.06:
            words[-1] += rng.choice([".", ".", ",", "!", "?", "!!", ":"])
    extras = []
    if rng.random() < 0.25:
        extras.append("#" + rng.choices(vocab, cum_weights=cum)[0])
    if rng.random() < 0.2:
        words.insert(rng.randrange(len(words) + 1), "@" + rng.choice(vocab) + str(rng.randrange(100)))
    if rng.random() < 0.15:
        slug = "-".join(rng.choices(vocab, k=3))
        extras.append(f"https://news{rng.randrange(50)}.example.com/{slug}-{rng.getrandbits(40):x}")
    if rng.random() < 0.2:
        extras.append(rng.choice(EMOJI))
    words[0] = words[0].capitalize()
    text = " ".join(words + extras)
    if len(text) > 400:
        text = text[:400].rsplit(" ", 1)[0]
    return text


def _edit(rng: random.Random, text: str, kind: str) -> str:
    if kind == "norm":
        choice = rng.randrange(3)
        if choice == 0:
            return text.upper() if rng.random() < 0.5 else text.lower()
        if choice == 1:
            words = text.split(" ")
            return "".join(w + rng.choice(["  ", " ", "\n", " \t "]) for w in words).strip()
        return text.rstrip(".!?") + rng.choice(["!!!", ".", "?!", " ..."])
    if kind == "char":
        chars = list(text)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(3)
            pos = rng.randrange(len(chars))
            c = rng.choice(string.ascii_lowercase)
            if op == 0:
                chars.insert(pos, c)
            elif op == 1 and len(chars) > 1:
                del chars[pos]
            else:
                chars[pos] = c
        return "".join(chars)
    choice = rng.randrange(3)
    if choice == 0:
        return text + " " + rng.choice(EMOJI)
    if choice == 1:
        return text + " #" + rng.choice(["breaking", "news", "wow", "fyi", "thread", "update"])
    words = text.split(" ")
    del words[rng.randrange(len(words))]
    return " ".join(words)


def make_corpus(n: int, seed: int = 20261128) -> tuple[list[str], list[tuple[int, int, str]]]:
    """``n`` texts and the planted pairs ``(base index, duplicate index, edit kind)``, shuffled positions."""
    rng = random.Random(seed)
    vocab = _vocabulary()
    cum = list(itertools.accumulate(1.0 / (rank + 20) for rank in range(len(vocab))))
    n_dups = n // 20
    seen: set[str] = set()
    bases: list[str] = []
    while len(bases) < n - n_dups:
        t = _base_text(rng, vocab, cum)
        norm = dedup.normalize_text(t)
        if norm not in seen:
            seen.add(norm)
            bases.append(t)
    texts = list(bases)
    planted: list[tuple[int, int, str]] = []
    for base in rng.sample(range(len(bases)), n_dups):
        kind = rng.choices(EDIT_KINDS, EDIT_WEIGHTS)[0]
        texts.append(_edit(rng, bases[base], kind))
        planted.append((base, len(texts) - 1, kind))
    order = list(range(n))
    rng.shuffle(order)
    position = {old: new for new, old in enumerate(order)}
    shuffled = [texts[old] for old in order]
    return shuffled, [(position[a], position[b], k) for a, b, k in planted]


def make_inputs(texts: list[str], seed: int = 5) -> list[dedup.DedupInput]:
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    items = []
    for i, text in enumerate(texts):
        source = SOURCES[i % len(SOURCES)]
        items.append(
            dedup.DedupInput(
                key=(source, f"{source}_{i:07d}", start + timedelta(seconds=rng.randrange(30 * 86400))),
                source=source,
                text=text,
                url=f"https://www.example-{source}.com/p/{i}-{rng.getrandbits(32):x}?utm_source=feed",
            )
        )
    return items


# ------------------------------------------------------------------------------------------------ methods

Pairs = set[tuple[int, int]]


def run_ours(items: list[dedup.DedupInput], stats: dict) -> Pairs:
    index = {it.key: i for i, it in enumerate(items)}
    clusters = dedup.find_clusters(items, stats=stats)
    pairs: Pairs = set()
    for c in clusters:
        idx = sorted(index[k] for k, _ in c.members)
        pairs.update((a, b) for x, a in enumerate(idx) for b in idx[x + 1 :])
    return pairs


def run_datasketch(texts: list[str], stats: dict) -> Pairs:
    from datasketch import MinHash, MinHashLSH

    t0 = time.perf_counter()
    shingle_sets = []
    for t in texts:
        s = " ".join(t.lower().split())
        shingle_sets.append([x.encode() for x in {s[i : i + 5] for i in range(max(len(s) - 4, 1))}])
    t1 = time.perf_counter()
    minhashes = MinHash.bulk(shingle_sets, num_perm=128)
    t2 = time.perf_counter()
    lsh = MinHashLSH(threshold=0.6, num_perm=128)
    with lsh.insertion_session() as session:
        for i, m in enumerate(minhashes):
            session.insert(i, m)
    pairs: Pairs = set()
    candidates = 0
    for i, m in enumerate(minhashes):
        for j in lsh.query(m):
            if j > i:
                candidates += 1
                if m.jaccard(minhashes[j]) >= 0.6:
                    pairs.add((i, j))
    t3 = time.perf_counter()
    stats.update(shingle_s=t1 - t0, minhash_s=t2 - t1, lsh_s=t3 - t2, candidates=candidates, bands=lsh.b)
    return pairs


def difflib_seconds_per_pair(texts: list[str], pairs: int, seed: int = 3) -> float:
    rng = random.Random(seed)
    norms = [" ".join(t.lower().split()) for t in texts]
    sample = [(rng.randrange(len(norms)), rng.randrange(len(norms))) for _ in range(pairs)]
    t0 = time.perf_counter()
    for a, b in sample:
        difflib.SequenceMatcher(None, norms[a], norms[b]).ratio()
    return (time.perf_counter() - t0) / pairs


def score(pairs: Pairs, planted: list[tuple[int, int, str]]) -> tuple[float, float, dict[str, float]]:
    truth = {(min(a, b), max(a, b)): k for a, b, k in planted}
    hit = {p for p in truth if p in pairs}
    recall = len(hit) / len(truth) if truth else 1.0
    precision = len(hit) / len(pairs) if pairs else 1.0
    by_kind = {
        k: sum(1 for p in hit if truth[p] == k) / max(1, sum(1 for v in truth.values() if v == k))
        for k in EDIT_KINDS
    }
    return recall, precision, by_kind


def _fmt_duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:,.0f} h"
    return f"{seconds:,.0f} s"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=50_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--difflib-pairs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=20261128)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    texts, planted = make_corpus(args.docs, args.seed)
    items = make_inputs(texts)
    lengths = [len(t) for t in texts]
    print(
        f"corpus: {len(texts):,} docs, {len(planted):,} planted near-duplicates, text length "
        f"min {min(lengths)} / mean {statistics.mean(lengths):.0f} / max {max(lengths)} chars "
        f"(built in {time.perf_counter() - t0:.1f} s)"
    )
    methods: dict[str, Callable[[dict], Pairs]] = {
        "ours": lambda st: run_ours(items, st),
        "datasketch": lambda st: run_datasketch(texts, st),
    }
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    results: dict[str, tuple[Pairs, dict]] = {}
    for rep in range(args.reps):
        names = list(methods) if rep % 2 == 0 else list(reversed(methods))
        for name in names:
            st: dict = {}
            t = time.perf_counter()
            pairs = methods[name](st)
            seconds[name].append(time.perf_counter() - t)
            results[name] = (pairs, st)
            print(f"  rep {rep + 1} {name:<10} {seconds[name][-1]:7.2f} s")

    per_pair = difflib_seconds_per_pair(texts, args.difflib_pairs)
    n = len(texts)
    difflib_total = per_pair * n * (n - 1) / 2

    print()
    print(f"Near-duplicates, {n:,} documents, {args.reps} interleaved reps")
    print(
        "| method | s median | s min | s max | recall | precision | recall by edit (norm/char/token) | pairs | notes |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in methods:
        pairs, st = results[name]
        recall, precision, by_kind = score(pairs, planted)
        s = seconds[name]
        kinds = "/".join(f"{by_kind[k]:.3f}" for k in EDIT_KINDS)
        notes = ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in st.items())
        print(
            f"| {name} | {statistics.median(s):.2f} | {min(s):.2f} | {max(s):.2f} | {recall:.4f} | {precision:.4f} "
            f"| {kinds} | {len(pairs):,} | {notes} |"
        )
    print(
        f"| difflib pairwise (extrapolated) | {difflib_total:,.0f} ({_fmt_duration(difflib_total)}) | | | | | | | "
        f"{per_pair * 1e6:.0f} us/pair over {args.difflib_pairs:,} random pairs x n(n-1)/2 |"
    )
    ratios = [o / d for o, d in zip(seconds["ours"], seconds["datasketch"], strict=True)]
    ratio = statistics.median(seconds["ours"]) / statistics.median(seconds["datasketch"])
    recall, precision, _ = score(results["ours"][0], planted)
    print()
    print(
        f"ours / datasketch: {ratio:.3f} (ratio of medians; paired median {statistics.median(ratios):.3f}), "
        f"datasketch / ours: {1 / ratio:.1f}x"
    )
    checks = {
        "ours <= 0.5 x datasketch time": ratio <= 0.5,
        "recall >= 0.98": recall >= 0.98,
        "precision >= 0.99": precision >= 0.99,
    }
    for what, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {what}")


if __name__ == "__main__":
    main()
