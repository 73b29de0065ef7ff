"""Contract: the simulator's Reddit answers have the shape of real recorded Reddit responses.

The recorded responses are third-party data kept outside the repo, in ``<shared>/payloads/reddit``
(``PULSE_SHARED_DIR`` or ``<repo>/../shared``); they are read from there at test time, never copied.

For each recorded body the simulator's answer to the same call must carry every key the real body carries
(in the envelope and in every item's ``data``), with a compatible JSON type: null on either side is
compatible, int and float are compatible, bool is not a number. List elements are compared by their
``kind`` (a simulated ``t1`` is checked against the real ``t1`` items, not against ``more`` stubs).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from dev.simulator import SimulatorServer
from tests.contract.replay import header_rows, load_json, recordings
from tests.contract.shapes import Rules, Shape
from tests.contract.shapes import conformance_problems as _conformance
from tests.contract.shapes import shape_of as _shape_of

REDDIT = recordings("reddit", "Reddit")

CREDS = ("sim-client-id", "sim-client-secret")

# Reddit documents these keys as unions: ``edited`` is false or an edit timestamp, ``replies`` is "" or a
# Listing. A recorded body shows one branch only, so the other branch is accepted too.
KNOWN_UNIONS = {"edited": frozenset({"bool", "number"}), "replies": frozenset({"string", "object"})}


def thing_kind(value: Any) -> str | None:
    """The kind of a Reddit "thing" (``{"kind": "t3" | "t1" | "Listing" | "more" ..., "data": {...}}``), else None."""
    if isinstance(value, dict) and isinstance(value.get("kind"), str) and "data" in value:
        return value["kind"]
    return None


def keyed(path: str) -> bool:
    """Objects are compared key by key when they are the body (or around things), a thing or a thing's ``data``;
    other nested objects (``gildings``, ``media_embed``...) hold values rather than fields: type only."""
    return ">" not in path or path.rpartition(">")[2] in ("", ".data")


#: Things are compared by kind wherever they sit (a simulated reply ``t1`` is checked against the real ``t1``
#: comments even though the recorded reply listing only holds a ``more`` stub). A key is required when every
#: real instance at that place carries it.
REDDIT_RULES = Rules(unions=KNOWN_UNIONS, kind_of=thing_kind, keyed=keyed)


def shape_of(value: Any) -> Shape:
    return _shape_of(value, rules=REDDIT_RULES)


def conformance_problems(real: Shape, value: Any) -> list[str]:
    """Missing keys and incompatible types of ``value`` against the recording (sorted, de-duplicated)."""
    return _conformance(real, value, rules=REDDIT_RULES)


def load(name: str) -> Any:
    return load_json(REDDIT, name)


def header_names(section: str) -> set[str]:
    """The header names listed in HEADERS.md for one recorded file."""
    return {name.lower() for name in header_rows(REDDIT, section)}


# ------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token(http: requests.Session, server: SimulatorServer) -> str:
    resp = http.post(
        f"{server.url}/api/v1/access_token", auth=CREDS, data={"grant_type": "client_credentials"}
    )
    assert resp.status_code == 200
    return resp.json()["access_token"]


def get(http: requests.Session, server: SimulatorServer, token: str | None, path: str, **params: Any) -> Any:
    headers = {"Authorization": f"bearer {token}"} if token else {}
    return http.get(f"{server.url}{path}", params={"raw_json": 1, **params}, headers=headers)


# ------------------------------------------------------------------------------------------------
# the checker itself must be able to fail
# ------------------------------------------------------------------------------------------------


def test_checker_reports_missing_and_mistyped_keys() -> None:
    real = shape_of(
        {
            "data": {
                "children": [{"kind": "t3", "data": {"id": "a", "score": 1, "over_18": False, "g": {"x": 1}}}]
            }
        }
    )
    good = {
        "data": {"children": [{"kind": "t3", "data": {"id": "b", "score": 2.0, "over_18": True, "g": {}}}]}
    }
    assert conformance_problems(real, good) == []
    bad = {
        "data": {
            "children": [
                {"kind": "t3", "data": {"score": True, "over_18": None, "g": []}},
                {"kind": "t9", "data": {}},
            ]
        }
    }
    assert conformance_problems(real, bad) == [
        "$.data.children[*]: kind 't9' not in real data ['t3']",
        "$.data.children[*]<t3>.data.g: type array, real data has ['object']",
        "$.data.children[*]<t3>.data.id: missing",
        "$.data.children[*]<t3>.data.score: type bool, real data has ['number']",
    ]
    assert conformance_problems(shape_of({"edited": 1.5}), {"edited": False}) == []
    assert conformance_problems(shape_of({"stickied": True}), {"stickied": 0}) != []
    assert conformance_problems(shape_of({"a": {"b": 1}}), {"a": {}}) == ["$.a.b: missing"]


# ------------------------------------------------------------------------------------------------
# the contract
# ------------------------------------------------------------------------------------------------


def test_access_token_matches_recording(http: requests.Session, server: SimulatorServer) -> None:
    resp = http.post(
        f"{server.url}/api/v1/access_token", auth=CREDS, data={"grant_type": "client_credentials"}
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json; charset=UTF-8"
    problems = conformance_problems(shape_of(load("oauth_access_token.json")), resp.json())
    assert not problems, "simulator token response differs from oauth_access_token.json:\n" + "\n".join(
        problems
    )


@pytest.mark.parametrize(
    ("recording", "path"),
    [
        ("subreddit_new_askreddit.json", "/r/askreddit/new"),
        ("subreddit_comments_stream.json", "/r/askreddit/comments"),
    ],
)
def test_listing_matches_recording(
    http: requests.Session, server: SimulatorServer, token: str, recording: str, path: str
) -> None:
    resp = get(http, server, token, path, limit=100)
    assert resp.status_code == 200
    body = resp.json()
    assert len(body["data"]["children"]) == 100
    problems = conformance_problems(shape_of(load(recording)), body)
    assert not problems, f"simulator {path} differs from {recording}:\n" + "\n".join(problems)


def test_submission_page_matches_recording(
    http: requests.Session, server: SimulatorServer, token: str
) -> None:
    posts = get(http, server, token, "/r/askreddit/new", limit=100).json()["data"]["children"]
    busiest = max(posts[10:], key=lambda c: c["data"]["num_comments"])["data"]
    resp = get(http, server, token, f"/comments/{busiest['id']}/", limit=500, sort="confidence")
    assert resp.status_code == 200
    body = resp.json()
    assert isinstance(body, list)
    assert len(body) == 2
    assert body[1]["data"]["children"], "pick a post with comments so the comment shape is checked too"
    problems = conformance_problems(shape_of(load("submission_with_comments.json")), body)
    assert not problems, "simulator /comments/{id} differs from submission_with_comments.json:\n" + "\n".join(
        problems
    )


@pytest.mark.parametrize(
    ("recording", "setup", "path"),
    [
        ("error_401_invalid_token.json", {}, "/api/v1/me"),
        ("error_403_quarantined.json", {"forbidden": True}, "/r/askreddit/new"),
    ],
)
def test_error_bodies_match_recording(
    http: requests.Session,
    server: SimulatorServer,
    token: str,
    recording: str,
    setup: dict[str, Any],
    path: str,
) -> None:
    server.configure({"reddit": setup})
    try:
        resp = get(http, server, None if recording.startswith("error_401") else token, path)
    finally:
        server.reset()
    assert resp.json() == load(recording)
    if resp.status_code == 401:
        headers = header_names("error_401_invalid_token.json")
        assert "www-authenticate" in headers
        assert resp.headers["www-authenticate"] == 'Bearer realm="reddit", error="invalid_token"'


def test_listing_headers_match_recording(http: requests.Session, server: SimulatorServer, token: str) -> None:
    recorded = header_names("subreddit_comments_stream.json")
    ratelimit = {h for h in recorded if h.startswith("x-ratelimit-")}
    assert ratelimit == {"x-ratelimit-used", "x-ratelimit-remaining", "x-ratelimit-reset"}
    for path in ("/r/askreddit/comments", "/r/askreddit/new"):
        resp = get(http, server, token, path, limit=5)
        missing = {h for h in recorded if h not in {k.lower() for k in resp.headers}}
        assert not missing, f"{path} lacks recorded headers {sorted(missing)}"
        assert resp.headers["content-type"] == "application/json; charset=UTF-8"
        assert re.fullmatch(r"\d+\.\d", resp.headers["x-ratelimit-remaining"])  # float string like "997.0"
        assert re.fullmatch(r"\d+", resp.headers["x-ratelimit-used"])
        assert (
            0 < int(resp.headers["x-ratelimit-reset"]) <= 600
        )  # seconds until the window ends, not an epoch
