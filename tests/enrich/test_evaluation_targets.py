"""Issue 15's targets, on the frozen test split, with the enrichment exactly as the warehouse runs it.

One run of ``pulse.enrich.evaluate`` (about half a minute): the same figures ``make evaluate`` prints and
docs/enrichment.md quotes. A model, lexicon or gazetteer change that costs accuracy on real text fails here.
"""

from __future__ import annotations

from typing import Any

import pytest

from pulse.enrich import evalset, evaluate


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return evaluate.run("test")


def test_the_stored_sentiment_beats_vader_by_a_tenth_on_hand_labelled_real_text(
    report: dict[str, Any],
) -> None:
    rows = report["sentiment"]["rows"]
    hand = rows["all hand-labelled"]
    assert hand["n"] >= 200
    assert hand["diff"] >= 0.10, hand


def test_the_stored_sentiment_is_not_worse_than_vader_on_any_domain(report: dict[str, Any]) -> None:
    rows = report["sentiment"]["rows"]
    for d in evalset.DOMAINS:
        assert rows[f"domain {d}"]["diff"] >= 0.0, (d, rows[f"domain {d}"])
        assert rows[f"{d} (hand)"]["diff"] >= 0.0, (d, rows[f"{d} (hand)"])


def test_questions_announcements_and_statements_come_out_neutral(report: dict[str, Any]) -> None:
    acts = report["sentiment"]["acts"]
    for act in ("question", "announcement"):
        assert acts[act]["ours_neutral"] >= 0.8, (act, acts[act])
    # Factual statements: 0.61 neutral against the labels' 0.89 (flat bad news still reads negative, see
    # docs/enrichment.md "worst errors"); the floor keeps what is won over VADER's 0.30.
    st = acts["statement"]
    assert st["ours_neutral"] >= 0.55 and st["ours_neutral"] >= st["vader_neutral"] + 0.25, st


def test_confidences_are_calibrated(report: dict[str, Any]) -> None:
    assert report["sentiment"]["ece"] <= 0.10
    assert (
        sum(b["n"] for b in report["sentiment"]["reliability"])
        == report["sentiment"]["rows"]["overall (pooled)"]["n"]
    )


def test_entities_reach_f1_06_on_hand_labelled_real_text(report: dict[str, Any]) -> None:
    ents = report["entities_hand"]
    assert ents["all"]["gold"] >= 150
    assert ents["all"]["f1"] >= 0.60, ents["all"]


def test_topics_beat_the_majority_class(report: dict[str, Any]) -> None:
    t = report["topic"]["all"]
    assert t["accuracy"] > t["majority_class_accuracy"], t


def test_language_is_right_on_real_text(report: dict[str, Any]) -> None:
    assert report["language"]["accuracy"] >= 0.95
