"""Duplicate clusters on realistic simulator text (issue 15 item 5), against the duplicates it plants.

The simulator serves real texts (``dev/simulator/text.py``) and plants retweets on X, cross-posts on Reddit
and the same story under other outlets on NewsAPI; every served document carries its *origin* (the corpus text
it was made from). 16 hours of the default streams give about 3,300 documents, clustered with the in-batch
path of :mod:`pulse.enrich.dedup` exactly as the ``enrich`` DAG prepares them (URLs written in the text count
only for kinds that share links: ``LINK_SHARING_KINDS``).

* pairwise precision: linked pairs whose documents have the same origin / linked pairs (two documents with
  the same origin are copies: planted, or the same pool text drawn twice, an exact copy);
* pairwise recall: linked pairs / pairs inside the planted groups (:func:`dev.simulator.text.planted_groups`);
* no cluster chains unrelated texts: every cluster's documents share one origin or are exact copies.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime

import pytest

from dev.simulator import SimulatorServer
from dev.simulator import text as sim_text
from pulse.enrich import dedup

pytest.importorskip("vaderSentiment")

NOW = "2026-11-28T12:00:00Z"
HOURS = 16
LINK_SHARING_KINDS = {"post", "tweet", "article", "link"}  # plugins/pulse/warehouse/enriched.py


def _documents(seed: int = 42) -> list[sim_text.Document]:
    sim = SimulatorServer(seed=seed, now=NOW)
    start = int(sim.now() // 3600) - HOURS - 1
    return sim_text.served_documents(sim, start, HOURS)


def _clusters(docs: list[sim_text.Document]) -> list[list[int]]:
    items = []
    for d in docs:
        text = d.text if d.kind in LINK_SHARING_KINDS else dedup._URL_RE.sub(" ", d.text)
        key = (d.source, d.external_id, datetime.fromtimestamp(d.created, UTC))
        items.append(dedup.DedupInput(key=key, source=d.source, text=text, url=d.url))
    index = {(d.source, d.external_id): i for i, d in enumerate(docs)}
    return [[index[(k[0], k[1])] for k, _ in c.members] for c in dedup.find_clusters(items)]


def _pairs(groups: list[list[int]]) -> set[tuple[int, int]]:
    return {(a, b) if a < b else (b, a) for g in groups for a, b in itertools.combinations(g, 2)}


def test_dedup_precision_and_recall_on_planted_duplicates() -> None:
    docs = _documents()
    assert len(docs) >= 3000
    by_source = Counter(d.source for d in docs)
    assert {"x", "reddit", "newsapi"} <= set(by_source)
    clusters = _clusters(docs)
    linked = _pairs(clusters)
    index = {id(d): i for i, d in enumerate(docs)}
    planted = _pairs([[index[id(d)] for d in g] for g in sim_text.planted_groups(docs).values()])
    same_origin = {(a, b) for a, b in linked if docs[a].origin == docs[b].origin}
    precision = len(same_origin) / len(linked) if linked else 1.0
    recall = len(planted & linked) / len(planted) if planted else 0.0
    kinds = Counter("x" if docs[a].source == "x" else f"{docs[a].source}/{docs[a].kind}" for a, _ in planted)
    sizes = Counter(len(c) for c in clusters)
    print(
        f"\n[dedup realistic] documents {len(docs)} {dict(by_source)}; planted pairs {len(planted)} "
        f"{dict(kinds)}; linked pairs {len(linked)}; precision {precision:.4f}; recall {recall:.4f}; "
        f"clusters {len(clusters)} sizes {dict(sorted(sizes.items()))}"
    )
    for a, b in sorted(planted - linked):
        print(f"  missed: {docs[a].text[:90]!r} || {docs[b].text[:90]!r}")
    for a, b in sorted(linked - same_origin):
        print(f"  false link: {docs[a].text[:90]!r} || {docs[b].text[:90]!r}")
    assert len(planted) >= 100  # enough planted pairs for the figures to mean something
    assert precision >= 0.99
    assert recall >= 0.95


def test_no_cluster_chains_unrelated_texts() -> None:
    docs = _documents(seed=7)
    for members in _clusters(docs):
        origins = {docs[i].origin for i in members}
        exact = {dedup.normalize_text(docs[i].text) for i in members}
        assert len(origins) == 1 or len(exact) == 1, [docs[i].text[:80] for i in members]
