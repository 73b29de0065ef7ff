"""Duplicates across sources: normalisation, canonical URLs, MinHash/LSH and the clusters."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from pulse.enrich import dedup
from pulse.enrich.dedup import DedupInput, canonical_url, exact_key, find_clusters, normalize_text

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)

BASES = [
    "Federal Reserve raises interest rates by a quarter point as inflation stays above target",
    "Massive storm knocks out power for thousands of homes across northern California overnight",
    "Apple shares fall after the company warns of weaker iPhone demand in China this quarter",
    "New Python release brings faster startup times and a simpler packaging story for everyone",
    "City council approves plan to build two thousand affordable homes near the old rail yard",
    "Bitcoin climbs back above sixty thousand dollars as traders shrug off regulatory worries",
    "Airflow 3 ships with a new task SDK, asset-aware scheduling and a rebuilt user interface",
    "Heatwave warning issued for Madrid and Seville as temperatures are expected to hit 44 degrees",
    "Local bakery wins national award for its sourdough after forty years in the same small shop",
    "Researchers find that short daily walks cut the risk of heart disease by a surprising margin",
]

# Different stories that share vocabulary, names and structure with the bases: must stay apart.
NEIGHBOURS = [
    "Federal Reserve holds interest rates steady as officials wait for more data on jobs",
    "Bank of England raises interest rates by half a point as inflation surprises again",
    "Storm warning for southern California as forecasters expect heavy rain this weekend",
    "Apple shares rise after the company reports record services revenue this quarter",
    "Bitcoin drops below fifty thousand dollars after a large exchange halts withdrawals",
    "New Rust release brings faster compile times and better error messages for everyone",
]


def _item(i: int, text: str, url: str | None = None, source: str = "x") -> DedupInput:
    return DedupInput(
        key=(source, f"{source}-{i}", T0 + timedelta(minutes=i)), source=source, text=text, url=url
    )


def _char_edits(text: str, edits: int, rng: random.Random) -> str:
    """``edits`` random character inserts, deletes or substitutions (the result differs from ``text``)."""
    edited = text
    while edited == text:
        edited = _char_edits_once(text, edits, rng)
    return edited


def _char_edits_once(text: str, edits: int, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(edits):
        pos = rng.randrange(len(chars))
        op = rng.randrange(3)
        if op == 0:
            chars.insert(pos, rng.choice("abcdefghijklmnopqrstuvwxyz"))
        elif op == 1:
            del chars[pos]
        else:
            chars[pos] = rng.choice("abcdefghijklmnopqrstuvwxyz")
    return "".join(chars)


def _pairs(clusters: list[dedup.Cluster]) -> set[frozenset[str]]:
    out = set()
    for c in clusters:
        ids = [k[1] for k, _ in c.members]
        out.update(frozenset((a, b)) for i, a in enumerate(ids) for b in ids[i + 1 :])
    return out


# ------------------------------------------------------------------------------------------- normalising


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello,   WORLD!!", "hello world"),
        ("RT @someone: Big news 🚀🚀 #Fed https://t.co/abc123 www.example.com/x", "rt big news fed"),
        ("\uff26\uff55\uff4c\uff4c-width\ttext\n\nhere...", "full width text here"),  # fullwidth letters
        ("snake_case and don't", "snake case and don t"),
        ("Café déjà vu", "café déjà vu"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalize_text(text: str | None, expected: str) -> None:
    assert normalize_text(text) == expected


def test_exact_key_ignores_case_punctuation_emoji_urls_and_mentions() -> None:
    base = "Federal Reserve raises interest rates by a quarter point"
    key = exact_key(base)
    assert key == hashlib.sha256(normalize_text(base).encode()).hexdigest()
    for variant in (
        base.upper(),
        "  " + base.replace(" ", "   ") + "!!! 📉",
        "@reuters " + base + " https://t.co/xyz",
        base.replace("quarter", "quarter,"),
    ):
        assert exact_key(variant) == key, variant
    assert exact_key(base.replace("quarter", "half")) != key


@pytest.mark.parametrize(
    "text", ["", "lol", "so true 😂😂", "one two three four", "https://example.com/a/b/c/d/e"]
)
def test_exact_key_is_none_for_short_texts(text: str) -> None:
    assert exact_key(text) is None


# -------------------------------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://www.Example.com/a/b/?utm_source=x&b=2&a=1#frag", "https://example.com/a/b?a=1&b=2"),
        ("HTTP://EXAMPLE.COM/Path/", "https://example.com/Path"),
        (
            "https://example.com/story?fbclid=abc&gclid=def&ref=hn&utm_medium=social",
            "https://example.com/story",
        ),
        ("http://m.example.com:80/story/amp/", "https://example.com/story"),
        ("https://example.com:443/story", "https://example.com/story"),
        ("https://example.com:8080/story", "https://example.com:8080/story"),
        ("https://amp.theguardian.com/world/2026/nov/28/x", "https://theguardian.com/world/2026/nov/28/x"),
        ("https://www.example.com/amp/news/x", "https://example.com/news/x"),
        ("https://www.bbc.co.uk/news/world-123.amp", "https://bbc.co.uk/news/world-123"),
        ("https://example.com/news/x.amp.html", "https://example.com/news/x.html"),
        ("https://example.com//a//b", "https://example.com/a/b"),
        ("https://mobile.twitter.com/user/status/123?s=20&t=abc", "https://x.com/user/status/123"),
        ("https://youtu.be/dQw4w9WgXcQ?si=share", "https://youtube.com/watch?v=dQw4w9WgXcQ"),
        (
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ&feature=share",
            "https://youtube.com/watch?v=dQw4w9WgXcQ",
        ),
        (
            "https://old.reddit.com/r/python/comments/abc/title/",
            "https://reddit.com/r/python/comments/abc/title",
        ),
        ("www.example.com/a", "https://example.com/a"),
        ("https://example.com", "https://example.com"),
        ("https://example.com/search?q=a+b&page=2", "https://example.com/search?page=2&q=a+b"),
        ("ftp://example.com/file", None),
        ("mailto:someone@example.com", None),
        ("not a url", None),
        ("https://[broken", None),
        ("", None),
        (None, None),
    ],
)
def test_canonical_url(url: str | None, expected: str | None) -> None:
    assert canonical_url(url) == expected


def test_urls_in_text() -> None:
    text = "Read this (https://example.com/a?x=1). And www.example.org/b, then https://t.co/xyz!"
    assert dedup.urls_in_text(text) == ["https://example.com/a?x=1", "www.example.org/b", "https://t.co/xyz"]
    assert dedup.urls_in_text("no links here") == []


# ------------------------------------------------------------------------------------- MinHash and LSH


def test_signatures_shapes_and_similarity() -> None:
    texts = [BASES[0], BASES[0].upper() + " !!", BASES[1], "", "abc"]
    sigs = dedup.signatures(texts)
    assert sigs.shape == (5, dedup.NUM_PERM)
    assert sigs.dtype == np.uint32
    assert dedup.similarity(sigs[0], sigs[1]) == 1.0
    assert dedup.similarity(sigs[0], sigs[2]) < 0.2
    assert dedup.similarity(sigs[3], sigs[3]) == 0.0  # no shingles: never similar, not even to itself
    assert dedup.similarity(sigs[3], sigs[4]) == 0.0
    keys = dedup.band_keys(sigs)
    assert keys.shape == (5, dedup.BANDS)
    assert keys.dtype == np.int64
    assert (keys[0] == keys[1]).all()
    assert not (keys[0] == keys[2]).any()
    assert len(set(keys[0].tolist())) == dedup.BANDS  # bands hash apart, so one index column can hold them


def test_signatures_are_stable_across_runs_and_batches() -> None:
    """Persisted signatures stay comparable: the same text gives the same signature whatever the batch,
    and the values are pinned (change DEDUP_VERSION when this has to change)."""
    alone = dedup.signatures([BASES[3]])
    batch = dedup.signatures([*BASES, *NEIGHBOURS])
    assert (alone[0] == batch[3]).all()
    digest = hashlib.sha256(alone.tobytes()).hexdigest()[:16]
    assert dedup.DEDUP_VERSION == "dedup-1"
    assert digest == PINNED_SIGNATURE_DIGEST


PINNED_SIGNATURE_DIGEST = "59038a1d750ac86d"


def test_similarity_estimates_jaccard() -> None:
    rng = random.Random(1)
    texts, pairs = [], []
    for i, base in enumerate(BASES * 4):
        texts += [base, _char_edits(base, 1 + i % 6, rng)]
        pairs.append((2 * i, 2 * i + 1))
    norms = [normalize_text(t) for t in texts]
    sigs = dedup.signatures(norms, normalized=True)
    errors = [dedup.similarity(sigs[a], sigs[b]) - dedup.jaccard(norms[a], norms[b]) for a, b in pairs]
    assert abs(float(np.mean(errors))) < 0.03
    assert max(abs(e) for e in errors) < 0.2


def test_candidate_pairs_from_shared_band_keys() -> None:
    keys = np.array([[1, 2], [3, 2], [5, 6], [1, 7], [8, 9]], dtype=np.int64)
    assert dedup.candidate_pairs(keys).tolist() == [[0, 1], [0, 3]]


def test_candidate_pairs_large_bucket_is_linear() -> None:
    n = 500
    keys = np.zeros((n, 2), dtype=np.int64)
    keys[:, 1] = np.arange(n) + 1000
    pairs = dedup.candidate_pairs(keys)
    assert len(pairs) <= 2 * n  # a chain plus a star, not n(n-1)/2
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for a, b in pairs.tolist():
        parent[find(a)] = find(b)
    assert len({find(i) for i in range(n)}) == 1


# ------------------------------------------------------------------------------------------------ clusters


def test_planted_near_duplicates_are_found_and_distinct_texts_kept_apart() -> None:
    rng = random.Random(7)
    items: list[DedupInput] = []
    expected: set[frozenset[str]] = set()
    variants = {
        "case_whitespace": lambda t: "  " + t.upper().replace(" ", "  \n") + " ",
        "one_char": lambda t: _char_edits(t, 1, rng),
        "two_chars": lambda t: _char_edits(t, 2, rng),
        "four_chars": lambda t: _char_edits(t, 4, rng),
        "emoji": lambda t: t + " 🔥🔥",
        "hashtag": lambda t: t + " #breaking",
        "word_deleted": lambda t: " ".join(w for j, w in enumerate(t.split()) if j != 3),
    }
    for b, base in enumerate(BASES):
        base_item = _item(len(items), base)
        items.append(base_item)
        for name, make in variants.items():
            item = _item(len(items), make(base))
            items.append(item)
            expected.add(frozenset((base_item.key[1], item.key[1])))
            assert item.text != base, (b, name)
    for text in NEIGHBOURS:
        items.append(_item(len(items), text))

    clusters = find_clusters(items)

    assert len(clusters) == len(BASES)
    for c in clusters:
        assert len(c.members) == 1 + len(variants)
    found = _pairs(clusters)
    assert expected <= found
    neighbour_ids = {it.key[1] for it in items[-len(NEIGHBOURS) :]}
    assert not any(neighbour_ids & set(p) for p in found)


def test_methods_recorded_per_member() -> None:
    base = BASES[0]
    items = [
        _item(0, base),
        _item(1, base.upper() + "!!"),  # same normalised text
        _item(2, _char_edits(base, 2, random.Random(3))),  # near duplicate of 0/1
        _item(3, "My take on this, totally different words", url="https://example.com/fed?utm_source=x"),
        _item(4, "Another take entirely, nothing in common", url="https://www.example.com/fed/"),
    ]
    clusters = find_clusters(items)
    by_id = {tuple(k[1] for k, _ in c.members): c for c in clusters}
    text_cluster = by_id[("x-0", "x-1", "x-2")]
    assert [m for _, m in text_cluster.members] == ["exact_text", "exact_text", "near_duplicate"]
    url_cluster = by_id[("x-3", "x-4")]
    assert [m for _, m in url_cluster.members] == ["canonical_url", "canonical_url"]


def test_same_story_from_newsapi_reddit_and_tweets_is_one_cluster() -> None:
    headline = "Federal Reserve raises interest rates by a quarter point to fight stubborn inflation"
    article = "https://www.reuters.com/markets/us/fed-raises-rates-quarter-point-2026-11-28/"
    items = [
        DedupInput(
            key=("newsapi", "reuters-fed-1128", T0),
            source="newsapi",
            text=headline
            + "\nThe Fed lifted its benchmark rate for the tenth time in a row and signalled more increases.",
            url=article + "?utm_source=newsapi&utm_medium=api",
        ),
        DedupInput(  # a link post: title only, the article URL with other tracking and no trailing slash
            key=("reddit", "t3_1abcde", T0 + timedelta(minutes=20)),
            source="reddit",
            text=headline,
            url="https://reuters.com/markets/us/fed-raises-rates-quarter-point-2026-11-28?utm_campaign=r&fbclid=Z",
        ),
        DedupInput(  # quotes the headline, links through a shortener: only the text can match
            key=("x", "1862000000000000001", T0 + timedelta(minutes=35)),
            source="x",
            text=f"{headline} 📉📉 https://t.co/Ab12Cd34 #Fed #rates",
            url="https://x.com/marketwatcher/status/1862000000000000001",
        ),
        DedupInput(  # own words, the long (mobile AMP) article link in the text: only the URL can match
            key=("x", "1862000000000000002", T0 + timedelta(minutes=50)),
            source="x",
            text="Here we go again, mortgages about to get pricier https://m.reuters.com/markets/us/"
            "fed-raises-rates-quarter-point-2026-11-28/amp/?ref=twitter",
            url="https://x.com/someoneelse/status/1862000000000000002",
        ),
        # Same site, different stories; and home-page links, which must not join anything.
        DedupInput(
            key=("newsapi", "reuters-ecb-1128", T0),
            source="newsapi",
            text="European Central Bank holds rates steady as eurozone growth slows to a crawl",
            url="https://www.reuters.com/markets/europe/ecb-holds-rates-2026-11-28/",
        ),
        DedupInput(
            key=("x", "1862000000000000003", T0),
            source="x",
            text="Best source for markets news imo https://www.reuters.com/",
            url="https://x.com/a/status/1862000000000000003",
        ),
        DedupInput(
            key=("reddit", "t3_zzzzz", T0),
            source="reddit",
            text="Daily discussion thread for markets, post your questions here https://reuters.com",
            url="https://www.reddit.com/r/stocks/comments/zzzzz/daily_discussion/",
        ),
    ]
    clusters = find_clusters(items)
    assert len(clusters) == 1
    (cluster,) = clusters
    assert {k for k, _ in cluster.members} == {it.key for it in items[:4]}
    methods = {k[1]: m for k, m in cluster.members}
    assert methods == {
        "reuters-fed-1128": "canonical_url",
        "t3_1abcde": "canonical_url",
        "1862000000000000001": "near_duplicate",
        "1862000000000000002": "canonical_url",
    }
    assert (
        cluster.cluster_id
        == hashlib.sha256(b"newsapi\x1freuters-fed-1128\x1f2026-11-28T09:00:00+00:00").hexdigest()
    )


def test_cluster_ids_are_deterministic_and_independent_of_input_order() -> None:
    rng = random.Random(11)
    items = []
    for i, base in enumerate(BASES):
        items.append(_item(2 * i, base, source="reddit"))
        items.append(_item(2 * i + 1, _char_edits(base, 2, rng), source="x"))
    first = find_clusters(items)
    shuffled = items[:]
    random.Random(5).shuffle(shuffled)
    second = find_clusters(shuffled)
    assert [(c.cluster_id, c.members) for c in first] == [(c.cluster_id, c.members) for c in second]
    assert first == sorted(first, key=lambda c: c.cluster_id)
    for c in first:
        smallest = min(c.members, key=lambda m: dedup._key_str(m[0]))[0]
        assert c.cluster_id == hashlib.sha256(dedup._key_str(smallest).encode()).hexdigest()
        assert [m[0] for m in c.members] == sorted((m[0] for m in c.members), key=dedup._key_str)


def test_only_multi_member_clusters_and_empty_input() -> None:
    assert find_clusters([]) == []
    assert find_clusters([_item(0, BASES[0])]) == []
    assert find_clusters([_item(i, t) for i, t in enumerate(BASES + NEIGHBOURS)]) == []
    # Short texts take no part in text links, even when identical.
    assert find_clusters([_item(0, "so true 😂"), _item(1, "so true 😂")]) == []


def test_bot_template_flood_is_one_cluster_with_linear_work() -> None:
    items = [
        _item(i, f"Win a brand new iPhone today, just click the link in our bio! Ticket {i:04d}")
        for i in range(600)
    ]
    stats: dict = {}
    clusters = find_clusters(items, stats=stats)
    assert len(clusters) == 1
    assert len(clusters[0].members) == 600
    assert stats["candidates"] < 40 * len(items)


def test_generated_corpus_recall_and_precision() -> None:
    """The benchmark's corpus at a small size: planted near-duplicates found, nothing else merged."""
    from bench.dedup import make_corpus, make_inputs, run_ours, score

    texts, planted = make_corpus(3000, seed=99)
    pairs = run_ours(make_inputs(texts), {})
    recall, precision, _ = score(pairs, planted)
    assert recall >= 0.98
    assert precision == 1.0
