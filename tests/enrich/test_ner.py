"""The entity recogniser: gazetteer linking, crypto / products, the trained candidate classifier, its data files."""

from __future__ import annotations

import json

import pytest

from pulse.enrich import entities, ner
from tests.enrich.test_enrichers import _ents


def test_linking_to_one_canonical_name() -> None:
    got = _ents("Alphabet said Google will grow; GOOGL and $GOOG rose.")
    assert [(t, n) for t, _w, n in got] == [
        ("organisation", "Alphabet"),
        ("organisation", "Alphabet"),
        ("ticker", "Alphabet"),
        ("ticker", "Alphabet"),
    ]
    assert [m.symbol for m in entities.find("GOOGL and $GOOG rose")] == ["GOOGL", "GOOG"]


def test_crypto_by_name_symbol_and_cashtag() -> None:
    got = _ents("Bitcoin hit a record, BTC up 5%, $ETH lags and bitcoin fans cheer")
    assert got == [
        ("crypto", "Bitcoin", "Bitcoin"),
        ("crypto", "BTC", "Bitcoin"),
        ("crypto", "$ETH", "Ethereum"),
        ("crypto", "bitcoin", "Bitcoin"),
    ]
    # symbols that are words only count as cashtags
    assert _ents("I will LINK it and DOT the i") == []
    assert _ents("$LINK and $SOL pumped") == [("crypto", "$LINK", "Chainlink"), ("crypto", "$SOL", "Solana")]


def test_products_and_possessives() -> None:
    got = _ents("India's new iPhone ships with iOS; Windows 10 users wait.")
    assert got == [
        ("place", "India", "India"),
        ("product", "iPhone", "iPhone"),
        ("product", "iOS", "iOS"),
        ("product", "Windows 10", "Windows"),
    ]


def test_ordinary_word_opening_a_sentence_is_not_a_name() -> None:
    assert ("product", "Outlook", "Outlook") not in _ents("Outlook for the year: rain.")
    assert ("product", "Outlook", "Outlook") in _ents("We read mail in Outlook every day.")


def test_classifier_finds_names_the_gazetteer_does_not_know() -> None:
    got = _ents("Yesterday I met Priya Raghunathan at the airport.")
    assert ("person", "Priya Raghunathan", "Priya Raghunathan") in got
    assert entities.find("Yesterday I met Priya Raghunathan at the airport.", model=False) == []
    # the case traps hold with the classifier on
    assert _ents("who cares, I ate apple pie on a nice day") == []


def test_candidates_runs_connectors_and_headlines() -> None:
    from pulse.enrich.text import tokens

    def cands(text: str) -> list[str]:
        toks = tokens(text)
        return [text[c.start : c.end] for c in ner.candidates(text, toks, [False] * len(toks))]

    assert cands("the Bank of America and Google's lab") == ["Bank of America", "Google"]
    assert cands("Windows 10 and @jack_dorsey") == ["Windows 10", "@jack_dorsey"]
    # a title-case headline is split at ordinary words instead of being one long "name"
    headline = cands("Watch Tom Cruise Fall Into A Bunch Of Movies")
    assert all(len(c.split()) <= 3 for c in headline) and "Tom" in " ".join(headline)
    assert not any(w in " ".join(headline).split() for w in ("Into", "Of", "A"))
    assert cands("no capitals here at all") == []
    # an ordinary word opening a sentence is not scored at all; an unknown one is
    assert cands("The cat sat. However, Priya Raghunathan! Zyxq said") == ["Priya Raghunathan", "Zyxq"]


def test_score_is_a_distribution() -> None:
    from pulse.enrich.text import tokens

    m = ner.model()
    text = "Yesterday I met Priya Raghunathan at the airport."
    toks = tokens(text)
    (cand,) = [c for c in ner.candidates(text, toks, [False] * len(toks)) if "Priya" in text[c.start : c.end]]
    probs = ner.score(m, ner.features(text, toks, cand, ner.vocab()))
    assert len(probs) == len(ner.CLASSES)
    assert abs(sum(probs) - 1.0) < 1e-9
    assert probs[ner.CLASSES.index("person")] > probs[ner.CLASSES.index("place")]


def test_model_files_are_small_and_describe_their_training() -> None:
    npz, js = ner.model_paths()
    assert npz.stat().st_size < 2_000_000
    meta = json.loads(js.read_text())
    assert meta["version"] == ner.MODEL_VERSION
    assert meta["classes"] == list(ner.CLASSES)
    assert meta["training"]["wnut16_dev_texts"] > 0
    assert 0.0 < meta["threshold"] < 1.0
    assert ner.vocab()["the"] == "L"
    assert entities.COMPANIES_FILE.exists()


def test_training_refuses_test_items() -> None:
    from pulse.enrich import evalset

    test_id = next(f"wnut16:{i}" for i in range(100) if evalset.split_of(f"wnut16:{i}") == "test")
    with pytest.raises(evalset.LabelError):
        evalset.dev_items([test_id])


def test_abbreviation_dot_and_reddit_names() -> None:
    assert _ents("Prices in the U.S. rose") == [("place", "U.S.", "United States")]
    assert _ents("Thanks /u/bsimpson, see /r/lego and r/funny") == [
        ("person", "/u/bsimpson", "/u/bsimpson"),
        ("organisation", "/r/lego", "/r/lego"),
        ("organisation", "r/funny", "r/funny"),
    ]
