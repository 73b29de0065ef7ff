"""The simulator's hostile-item switch (dev/simulator/hostile.py): tamper with served items, plant items."""

from __future__ import annotations

import json
import math

import pytest

from dev.simulator import hostile

LISTING = {
    "kind": "Listing",
    "data": {"children": [{"kind": "t3", "data": {"name": "t3_a", "created_utc": 1.0}}] * 2},
}


def _apply(rules: dict, body: dict, path: str = "/r/python/new") -> dict:
    return json.loads(hostile.apply(json.dumps(body).encode(), path, rules))


def test_tamper_sets_values_a_real_api_could_send_and_counts_its_limit() -> None:
    rules = hostile.check(
        {
            "tamper": [
                {
                    "where": {"kind": "t3"},
                    "set": {"data.created_utc": float("nan"), "data.name": "t3_\ud800"},
                    "limit": 1,
                }
            ]
        },
        "reddit.hostile",
    )
    raw = hostile.apply(json.dumps(LISTING).encode(), "/r/python/new", rules)
    assert b"NaN" in raw and b"\\ud800" in raw  # bare NaN token, the surrogate as its JSON escape
    first, second = json.loads(raw)["data"]["children"]
    assert math.isnan(first["data"]["created_utc"]) and first["data"]["name"] == "t3_\ud800"
    assert second["data"] == {"name": "t3_a", "created_utc": 1.0}
    assert _apply(rules, LISTING) == LISTING  # the limit is spent


def test_tamper_per_response_damages_the_same_item_of_every_page() -> None:
    rules = hostile.check(
        {
            "tamper": [
                {
                    "where": {"kind": "t3"},
                    "set": {"data.created_utc": -1e20},
                    "limit": 1,
                    "per_response": True,
                }
            ]
        },
        "reddit.hostile",
    )
    for _ in range(3):
        children = _apply(rules, LISTING)["data"]["children"]
        assert [c["data"]["created_utc"] for c in children] == [-1e20, 1.0]


def test_plant_inserts_an_item_into_the_next_matching_responses() -> None:
    rules = hostile.check(
        {"plant": [{"into": "articles", "item": {"url": "u"}, "endpoint": "/v2/everything", "limit": 1}]},
        "newsapi",
    )
    page = {"status": "ok", "articles": [{"url": "a"}]}
    assert _apply(rules, page, "/v2/top-headlines") == page
    assert _apply(rules, page, "/v2/everything")["articles"] == [{"url": "u"}, {"url": "a"}]
    assert _apply(rules, page, "/v2/everything") == page


@pytest.mark.parametrize(
    "bad",
    [
        {"tamper": [{"set": 1}]},
        {"tamper": [{"set": {}, "limit": 0}]},
        {"plant": [{"into": "x"}]},
        {"other": []},
        [],
    ],
)
def test_bad_rules_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match=r"reddit\.hostile"):
        hostile.check(bad, "reddit.hostile")


def test_the_server_applies_and_resets_the_rules() -> None:
    from dev.simulator import SimulatorServer

    sim = SimulatorServer(seed=1, now="2026-11-28T12:00:00+00:00", sources=["reddit"])
    sim.configure(
        {"reddit": {"hostile": {"tamper": [{"where": {"kind": "t3"}, "set": {"data.score": 12.5}}]}}}
    )
    assert sim._hostile["reddit"]["tamper"]
    sim.reset()
    assert sim._hostile == {}
    with pytest.raises(ValueError, match=r"reddit\.hostile"):
        sim.configure({"reddit": {"hostile": {"tamper": "no"}}})
