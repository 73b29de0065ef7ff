"""The source simulator, exercised over real HTTP (requests and praw) against a server on a free port."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import praw
import prawcore
import pytest
import requests

from dev.simulator import SimulatorServer

ROOT = Path(__file__).resolve().parents[2]
NOW = "2026-11-28T12:00:00Z"
NOW_TS = datetime(2026, 11, 28, 12, tzinfo=UTC).timestamp()
CREDS = ("sim-client-id", "sim-client-secret")
BAD_KINDS = {"missing_id", "bad_timestamp", "future_timestamp", "nul_byte", "huge_text", "missing_text"}
DEFAULT_SETTINGS = {
    "posts_per_hour": 12,
    "comments_per_hour": 20,
    "listing_cap": 1000,
    "ratelimit_budget": 100000,
    "credentials": {"client_id": CREDS[0], "client_secret": CREDS[1]},
}


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    sim = SimulatorServer(host="127.0.0.1", port=0, seed=42, now=NOW)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture(autouse=True)
def _clean(server: SimulatorServer) -> Iterator[None]:
    server.reset()
    server.configure({"seed": 42, "now": NOW, "reddit": DEFAULT_SETTINGS})
    yield
    server.reset()


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False
        yield session


def get_token(http: requests.Session, sim: SimulatorServer, creds: tuple[str, str] = CREDS) -> str:
    resp = http.post(f"{sim.url}/api/v1/access_token", auth=creds, data={"grant_type": "client_credentials"})
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


@pytest.fixture
def token(http: requests.Session, server: SimulatorServer) -> str:
    return get_token(http, server)


def api(http: requests.Session, sim: SimulatorServer, token: str | None, path: str, **params: Any) -> Any:
    headers = {"Authorization": f"bearer {token}"} if token else {}
    return http.get(f"{sim.url}{path}", params={"raw_json": 1, **params}, headers=headers)


def children(resp: requests.Response) -> list[dict[str, Any]]:
    assert resp.status_code == 200, resp.text[:200]
    return [c["data"] for c in resp.json()["data"]["children"]]


def walk_all(http: requests.Session, sim: SimulatorServer, token: str, path: str, limit: int) -> list[Any]:
    """Follow ``after`` until it is null; returns the list of pages (each a list of item data)."""
    pages: list[list[dict[str, Any]]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after"] = after
        resp = api(http, sim, token, path, **params)
        pages.append(children(resp))
        after = resp.json()["data"]["after"]
        if after is None:
            return pages
        assert after == pages[-1][-1].get("name", after)  # a broken last item has no name
        assert len(pages) < 100, "paging does not end"


def reddit_client(sim: SimulatorServer, secret: str = CREDS[1]) -> praw.Reddit:
    return praw.Reddit(
        client_id=CREDS[0],
        client_secret=secret,
        user_agent="pulse-tests/0.1",
        oauth_url=sim.url,
        reddit_url=sim.url,
        check_for_updates=False,
    )


# ------------------------------------------------------------------------------------------------
# admin API
# ------------------------------------------------------------------------------------------------


def test_health_and_config_roundtrip(http: requests.Session, server: SimulatorServer) -> None:
    health = http.get(f"{server.url}/_sim/health").json()
    assert health["ok"] is True
    assert "reddit" in health["sources"]

    resp = http.post(
        f"{server.url}/_sim/config",
        json={"reddit": {"posts_per_hour": 5, "rate_limit": {"count": 2}}, "now": 1795000000, "seed": 7},
    )
    assert resp.status_code == 200
    config = http.get(f"{server.url}/_sim/config").json()
    assert config["seed"] == 7
    assert server.seed == 7
    assert config["now"] == "2026-11-18T11:06:40Z"
    assert config["reddit"]["posts_per_hour"] == 5
    assert config["reddit"]["rate_limit"] == {"count": 2, "retry_after": 1}  # deep merge keeps retry_after
    assert config["reddit"]["comments_per_hour"] == 20

    for bad in (
        {"reddit": {"posts_per_hour": "many"}},
        {"reddit": {"no_such_switch": True}},
        {"reddit": {"rate_limit": {"cuont": 1}}},
        {"reddit": {"bad_items_ratio": 1.5}},
        {"reddit": {"forbidden": 1}},
        {"nosuchsource": {}},
    ):
        resp = http.post(f"{server.url}/_sim/config", json=bad)
        assert resp.status_code == 400, bad
        assert resp.json()["ok"] is False
    assert server.get_config()["reddit"]["posts_per_hour"] == 5, "a rejected update must change nothing"
    assert http.post(f"{server.url}/_sim/config", data="{not json").status_code == 400


def test_refuses_non_loopback_host_unless_allowed() -> None:
    with pytest.raises(ValueError, match="non-loopback"):
        SimulatorServer(host="0.0.0.0", port=0)
    assert SimulatorServer(host="0.0.0.0", port=0, allow_remote=True).host == "0.0.0.0"


def test_reset_clears_faults_and_stats_but_keeps_seed_clock_volume(
    http: requests.Session, server: SimulatorServer, token: str
) -> None:
    server.configure(
        {
            "seed": 7,
            "reddit": {"posts_per_hour": 3, "forbidden": True, "rate_limit": {"count": 5}, "latency_ms": 5},
        }
    )
    server.set_now("2026-11-20T08:30:00+00:00")
    api(http, server, token, "/r/python/new")
    assert server.stats()["reddit"]["requests"] == 1

    server.reset()
    config = server.get_config()
    assert config["seed"] == 7
    assert config["now"] == "2026-11-20T08:30:00Z"
    assert config["reddit"]["posts_per_hour"] == 3
    assert config["reddit"]["forbidden"] is False
    assert config["reddit"]["rate_limit"]["count"] == 0
    assert config["reddit"]["latency_ms"] == 0
    assert server.stats()["reddit"] == {
        "requests": 0,
        "by_status": {},
        "token_requests": 0,
        "token_by_status": {},
        "served": {},
        "served_count": 0,
    }
    assert api(http, server, token, "/r/python/new").status_code == 200, "issued tokens survive a reset"


# ------------------------------------------------------------------------------------------------
# OAuth
# ------------------------------------------------------------------------------------------------


def test_token_call_checks_credentials(http: requests.Session, server: SimulatorServer) -> None:
    url = f"{server.url}/api/v1/access_token"
    ok = http.post(url, auth=CREDS, data={"grant_type": "client_credentials"})
    assert ok.status_code == 200
    assert ok.headers["Content-Type"] == "application/json; charset=UTF-8"
    body = ok.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 86400
    assert body["scope"] == "*"
    assert isinstance(body["access_token"], str)
    assert len(body["access_token"]) > 10
    second = http.post(url, auth=CREDS, data={"grant_type": "password", "username": "u", "password": "p"})
    assert second.json()["access_token"] != body["access_token"]

    wrong = http.post(url, auth=(CREDS[0], "nope"), data={"grant_type": "client_credentials"})
    assert wrong.status_code == 401
    assert wrong.json() == {"message": "Unauthorized", "error": 401}
    assert http.post(url, data={"grant_type": "client_credentials"}).status_code == 401

    server.configure({"reddit": {"credentials": {"client_id": "other", "client_secret": "s3cret"}}})
    assert http.post(url, auth=CREDS, data={"grant_type": "client_credentials"}).status_code == 401
    assert (
        http.post(url, auth=("other", "s3cret"), data={"grant_type": "client_credentials"}).status_code == 200
    )

    server.configure({"reddit": {"reject_auth": True}})
    assert (
        http.post(url, auth=("other", "s3cret"), data={"grant_type": "client_credentials"}).status_code == 401
    )
    stats = server.stats()["reddit"]
    assert stats["token_requests"] == 7
    assert stats["token_by_status"] == {"200": 3, "401": 4}
    assert stats["requests"] == 0, "token calls are not API requests"


def test_api_needs_an_issued_bearer_token(
    http: requests.Session, server: SimulatorServer, token: str
) -> None:
    for auth in (None, "made-up-token"):
        resp = api(http, server, auth, "/r/python/new")
        assert resp.status_code == 401
        assert resp.headers["www-authenticate"] == 'Bearer realm="reddit", error="invalid_token"'
        assert resp.json() == {"message": "Unauthorized", "error": 401}
    assert api(http, server, token, "/r/python/new").status_code == 200
    assert api(http, server, token, "/api/v1/me").json()["name"] == "sim_user"
    assert api(http, server, token, "/r/python/hot").json() == {"message": "Not Found", "error": 404}


# ------------------------------------------------------------------------------------------------
# content
# ------------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_differs(
    http: requests.Session, server: SimulatorServer, token: str
) -> None:
    twin = SimulatorServer(port=0, seed=42, now=NOW).start()
    other = SimulatorServer(port=0, seed=43, now=NOW).start()
    try:
        twin_token, other_token = get_token(http, twin), get_token(http, other)
        for path in ("/r/python/new", "/r/python/comments", "/r/AskReddit/new"):
            mine = api(http, server, token, path, limit=100)
            theirs = api(http, twin, twin_token, path, limit=100)
            assert mine.content == theirs.content
            after = mine.json()["data"]["after"]
            page2 = api(http, server, token, path, limit=100, after=after)
            assert page2.content == api(http, twin, twin_token, path, limit=100, after=after).content
            different = api(http, other, other_token, path, limit=100)
            assert different.status_code == 200
            assert different.content != mine.content
            assert not {c["name"] for c in children(mine)} & {c["name"] for c in children(different)}
    finally:
        twin.stop()
        other.stop()


def test_paging_newest_first_until_after_is_null_at_listing_cap(
    http: requests.Session, server: SimulatorServer, token: str
) -> None:
    last_names = {}
    for path, kind in (("/r/python/new", "t3"), ("/r/python/comments", "t1")):
        pages = walk_all(http, server, token, path, limit=100)
        items = [item for page in pages for item in page]
        assert len(pages) == 10
        assert len(items) == 1000
        names = [i["name"] for i in items]
        assert len(set(names)) == 1000
        assert all(
            n == f"{kind}_{i['id']}" and re.fullmatch(r"[0-9a-z]+", i["id"])
            for n, i in zip(names, items, strict=True)
        )
        stamps = [i["created_utc"] for i in items]
        assert stamps == sorted(stamps, reverse=True)
        assert stamps[0] <= NOW_TS
        assert all(isinstance(s, float) for s in stamps)
        last_names[path] = names[-1]

    # past the cap Reddit has nothing more: asking for what follows the 1000th item gives an empty page
    for path, last in last_names.items():
        resp = api(http, server, token, path, limit=100, after=last)
        assert children(resp) == []
        assert resp.json()["data"]["after"] is None

    server.configure({"reddit": {"listing_cap": 130}})
    pages = walk_all(http, server, token, "/r/python/new", limit=50)
    assert [len(p) for p in pages] == [50, 50, 30]
    last = pages[-1][-1]["name"]
    assert children(api(http, server, token, "/r/python/new", after=last)) == []


def test_limit_trailing_slash_json_suffix_and_before(
    http: requests.Session, server: SimulatorServer, token: str
) -> None:
    assert len(children(api(http, server, token, "/r/python/new"))) == 25
    assert len(children(api(http, server, token, "/r/python/new", limit=500))) == 100
    plain = api(http, server, token, "/r/python/new", limit=30)
    assert api(http, server, token, "/r/python/new/", limit=30).content == plain.content
    assert api(http, server, token, "/r/python/new.json", limit=30).content == plain.content
    assert api(http, server, token, "/r/Python/new", limit=30).content == plain.content
    assert api(http, server, token, "/reddit/r/python/new", limit=30).content == plain.content, "prefix mount"
    names = [c["name"] for c in children(plain)]
    newer = children(api(http, server, token, "/r/python/new", limit=5, before=names[10]))
    assert [c["name"] for c in newer] == names[5:10]


def test_item_fields_are_realistic(http: requests.Session, server: SimulatorServer, token: str) -> None:
    posts = children(api(http, server, token, "/r/python/new", limit=100))
    for post in posts:
        assert post["subreddit"] == "python"
        assert post["subreddit_name_prefixed"] == "r/python"
        assert post["subreddit_id"].startswith("t5_")
        assert post["author_fullname"].startswith("t2_")
        assert re.fullmatch(r"user_\d+", post["author"])
        assert post["permalink"].startswith(f"/r/python/comments/{post['id']}/")
        assert post["created"] == post["created_utc"]
        assert isinstance(post["score"], int)
        assert 0.5 <= post["upvote_ratio"] <= 1.0
        assert post["title"]
        assert isinstance(post["over_18"], bool)
        assert post["is_self"] == post["url"].startswith("https://www.reddit.com/r/python/comments/")
    text = " ".join(p["title"] + " " + p["selftext"] for p in posts)
    assert "https://" in text
    assert "#" in text
    # Real Reddit text (dev/simulator/text.py): emoji sit in about 1 % of posts, so look at the whole listing.
    listing = [p for page in walk_all(http, server, token, "/r/python/new", 100) for p in page]
    assert len(listing) >= 500
    assert any(ord(ch) > 0x1F000 for p in listing for ch in p["title"] + p["selftext"])

    comments = children(api(http, server, token, "/r/python/comments", limit=100))
    post_names = {p["name"] for p in posts}
    for comment in comments:
        assert comment["link_id"].startswith("t3_")
        assert comment["parent_id"][:3] in ("t3_", "t1_")
        assert comment["body"]
        assert comment["body_html"].startswith('<div class="md">')
        assert comment["created_utc"] <= NOW_TS
    assert {c["link_id"] for c in comments} & post_names, "comments belong to listed posts"
    assert any(c["parent_id"].startswith("t1_") for c in comments), "some comments are replies"


def test_submission_page_holds_the_post_and_its_comment_tree(
    http: requests.Session, server: SimulatorServer, token: str
) -> None:
    posts = children(api(http, server, token, "/r/python/new", limit=100))
    post = max(posts[20:], key=lambda p: p["num_comments"])
    assert post["num_comments"] > 1
    resp = api(http, server, token, f"/comments/{post['id']}/")
    assert resp.status_code == 200
    post_listing, comment_listing = resp.json()
    assert post_listing["kind"] == comment_listing["kind"] == "Listing"
    [post_child] = post_listing["data"]["children"]
    assert post_child["kind"] == "t3"
    assert post_child["data"] == post

    found: list[dict[str, Any]] = []

    def flatten(listing: dict[str, Any], depth: int, parent: str) -> None:
        for child in listing["data"]["children"]:
            data = child["data"]
            assert child["kind"] == "t1"
            assert data["depth"] == depth
            assert data["parent_id"] == parent
            found.append(data)
            if data["replies"]:
                flatten(data["replies"], depth + 1, data["name"])

    flatten(comment_listing, 0, post["name"])
    assert len(found) == post["num_comments"]
    assert {c["link_id"] for c in found} == {post["name"]}

    same = api(http, server, token, f"/r/python/comments/{post['id']}/some_slug/")
    assert same.content == resp.content
    assert api(http, server, token, "/comments/zzzzzzzzzz").status_code == 404


def test_volume_and_clock_drive_what_is_listed(
    http: requests.Session, server: SimulatorServer, token: str
) -> None:
    server.configure({"reddit": {"posts_per_hour": 3, "comments_per_hour": 5}})
    posts = children(api(http, server, token, "/r/news/new", limit=30))
    last_hour = [p for p in posts if NOW_TS - 3600 <= p["created_utc"] < NOW_TS]
    assert len(last_hour) == 3
    comments = children(api(http, server, token, "/r/news/comments", limit=30))
    assert len([c for c in comments if NOW_TS - 3600 <= c["created_utc"] < NOW_TS]) == 5

    server.set_now(datetime.fromtimestamp(NOW_TS + 3600, UTC))
    later = children(api(http, server, token, "/r/news/new", limit=30))
    assert len([p for p in later if p["created_utc"] >= NOW_TS]) == 3
    assert all(p["created_utc"] <= NOW_TS + 3600 for p in later)
    assert later[3]["name"] == posts[0]["name"], "older items keep their place below the new hour"


def test_multi_subreddit_listing_merges_newest_first(
    http: requests.Session, server: SimulatorServer, token: str
) -> None:
    merged = children(api(http, server, token, "/r/python+rust/new", limit=100))
    assert {p["subreddit"] for p in merged} == {"python", "rust"}
    stamps = [p["created_utc"] for p in merged]
    assert stamps == sorted(stamps, reverse=True)


# ------------------------------------------------------------------------------------------------
# fault switches
# ------------------------------------------------------------------------------------------------


def test_rate_limit_fault(http: requests.Session, server: SimulatorServer, token: str) -> None:
    server.configure({"reddit": {"rate_limit": {"count": 2, "retry_after": 3}}})
    for _ in range(2):
        resp = api(http, server, token, "/r/python/new")
        assert resp.status_code == 429
        assert resp.headers["Retry-After"] == "3"
        assert resp.headers["x-ratelimit-remaining"] == "0.0"
        assert resp.json() == {"message": "Too Many Requests", "error": 429}
    assert api(http, server, token, "/r/python/new").status_code == 200
    assert server.get_config()["reddit"]["rate_limit"]["count"] == 0


def test_server_error_burst_then_recovery(
    http: requests.Session, server: SimulatorServer, token: str
) -> None:
    server.configure({"reddit": {"server_errors": {"count": 3, "status": 502}}})
    for _ in range(3):
        resp = api(http, server, token, "/r/python/comments")
        assert resp.status_code == 502
        assert resp.headers["Content-Type"].startswith("text/html")
        assert resp.text == "<html><body><h1>502 Bad Gateway</h1></body></html>"
    assert api(http, server, token, "/r/python/comments").status_code == 200
    server.configure({"reddit": {"server_errors": {"count": 1}}})
    assert api(http, server, token, "/r/python/new").status_code == 502, "status is kept by the deep merge"
    server.reset()
    server.configure({"reddit": {"server_errors": {"count": 1}}})
    assert api(http, server, token, "/r/python/new").status_code == 503, "reset restores the default status"
    assert server.stats()["reddit"]["by_status"] == {"503": 1}


def test_malformed_count_then_always(http: requests.Session, server: SimulatorServer, token: str) -> None:
    good = api(http, server, token, "/r/python/new", limit=10)
    server.configure({"reddit": {"malformed": {"count": 2}}})
    assert api(http, server, token, "/api/v1/me").json()["name"] == "sim_user", "only listings are damaged"
    for _ in range(2):
        resp = api(http, server, token, "/r/python/new", limit=10)
        assert resp.status_code == 200
        assert resp.content == good.content[: len(good.content) // 2]
        with pytest.raises(json.JSONDecodeError):
            json.loads(resp.content.decode("utf-8", "replace"))
    assert api(http, server, token, "/r/python/new", limit=10).content == good.content

    server.configure({"reddit": {"malformed": {"always": True}}})
    for _ in range(3):
        with pytest.raises(json.JSONDecodeError):
            json.loads(api(http, server, token, "/r/python/new", limit=10).text)


def test_latency(http: requests.Session, server: SimulatorServer, token: str) -> None:
    server.configure({"reddit": {"latency_ms": 300}})
    started = time.monotonic()
    assert api(http, server, token, "/r/python/new", limit=5).status_code == 200
    assert time.monotonic() - started >= 0.3


def _classify(item: dict[str, Any], kind: str) -> str | None:
    text_key = "selftext" if kind == "t3" else "body"
    if "id" not in item:
        assert "name" not in item
        return "missing_id"
    if item["created_utc"] == "not-a-date":
        return "bad_timestamp"
    if item["created_utc"] >= NOW_TS + 9 * 86400:
        return "future_timestamp"
    if ("title" if kind == "t3" else "body") not in item:
        return "missing_text"
    if "\u0000" in item[text_key]:
        return "nul_byte"
    if len(item[text_key].encode()) > 100_000:
        return "huge_text"
    return None


def test_bad_items_ratio_serves_every_kind_and_stats_agree(
    http: requests.Session, server: SimulatorServer, token: str
) -> None:
    server.configure({"reddit": {"bad_items_ratio": 1.0}})
    for path, kind in (("/r/python/new", "t3"), ("/r/python/comments", "t1")):
        resp = api(http, server, token, path, limit=100)
        seen = Counter(_classify(item, kind) for item in children(resp))
        assert set(seen) == BAD_KINDS, seen
        stats = server.stats()["reddit"]["served"]
        recorded = Counter(v["bad"] for k, v in stats.items() if k.startswith(kind))
        assert recorded == seen

    server.reset()
    server.configure({"reddit": {"bad_items_ratio": 0.25}})
    first = [item for page in walk_all(http, server, token, "/r/python/new", 100) for item in page]
    bad = [_classify(item, "t3") for item in first]
    ratio = sum(b is not None for b in bad) / len(bad)
    assert 0.18 < ratio < 0.32, ratio
    again = [item for page in walk_all(http, server, token, "/r/python/new", 100) for item in page]
    assert again == first, "the same items are broken the same way every time"
    served = server.stats()["reddit"]["served"]
    assert sum(v["bad"] is not None for v in served.values()) == sum(b is not None for b in bad)


def test_forbidden(http: requests.Session, server: SimulatorServer, token: str) -> None:
    server.configure({"reddit": {"forbidden": True}})
    for path in ("/r/python/new", "/r/python/comments"):
        resp = api(http, server, token, path)
        assert resp.status_code == 403
        assert resp.json() == {"message": "Forbidden", "error": 403}
    assert api(http, server, token, "/api/v1/me").status_code == 200


def test_ratelimit_headers_count_per_window(
    http: requests.Session, server: SimulatorServer, token: str
) -> None:
    server.set_now(NOW_TS + 15)
    for used in (1, 2, 3):
        resp = api(http, server, token, "/r/python/new", limit=1)
        assert resp.headers["x-ratelimit-used"] == str(used)
        assert resp.headers["x-ratelimit-remaining"] == f"{100000 - used}.0"
        assert resp.headers["x-ratelimit-reset"] == "585"
        assert resp.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert api(http, server, None, "/r/python/new").headers["x-ratelimit-used"] == "4", "401s count too"

    server.set_now(NOW_TS + 600 + 599)  # next window, one second before its end
    resp = api(http, server, token, "/r/python/new", limit=1)
    assert (resp.headers["x-ratelimit-used"], resp.headers["x-ratelimit-reset"]) == ("1", "1")

    server.configure({"reddit": {"ratelimit_budget": 2}})
    remaining = [
        api(http, server, token, "/r/python/new", limit=1).headers["x-ratelimit-remaining"] for _ in "ab"
    ]
    assert remaining == ["0.0", "0.0"]


def test_stats_count_distinct_items_of_clean_200s_only(
    http: requests.Session, server: SimulatorServer, token: str
) -> None:
    page1 = api(http, server, token, "/r/python/new", limit=100)
    api(http, server, token, "/r/python/new", limit=100)  # same items again: counted once
    page2 = api(http, server, token, "/r/python/new", limit=50, after=page1.json()["data"]["after"])
    server.configure({"reddit": {"malformed": {"count": 1}, "rate_limit": {"count": 1}}})
    assert api(http, server, token, "/r/rust/comments").status_code == 429
    assert api(http, server, token, "/r/rust/comments").status_code == 200  # malformed: not counted
    api(http, server, None, "/r/rust/new")  # 401: not counted

    stats = server.stats()["reddit"]
    expected = {c["name"] for c in children(page1)} | {c["name"] for c in children(page2)}
    assert stats["served_count"] == len(stats["served"]) == len(expected) == 150
    assert set(stats["served"]) == expected
    assert stats["served"][next(iter(expected))] == {"endpoint": "/r/python/new", "bad": None}
    assert stats["requests"] == 6
    assert stats["by_status"] == {"200": 4, "429": 1, "401": 1}
    assert http.get(f"{server.url}/_sim/stats").json()["reddit"] == stats

    server.configure({"reddit": {"bad_items_ratio": 1.0}})
    resp = api(http, server, token, "/r/go/new", limit=20)
    missing = [c for c in children(resp) if "id" not in c]
    assert missing
    go_items = {k: v for k, v in server.stats()["reddit"]["served"].items() if v["endpoint"] == "/r/go/new"}
    assert len(go_items) == 20, "items without id are still recorded under their true fullname"
    assert sum(v["bad"] == "missing_id" for v in go_items.values()) == len(missing)

    assert http.post(f"{server.url}/_sim/reset").json() == {"ok": True}
    assert server.stats()["reddit"]["served_count"] == 0


# ------------------------------------------------------------------------------------------------
# praw, unchanged
# ------------------------------------------------------------------------------------------------


def test_praw_lists_through_the_simulator(server: SimulatorServer) -> None:
    reddit = reddit_client(server)
    started = time.monotonic()
    posts = list(reddit.subreddit("python").new(limit=150))
    assert len(posts) == 150
    assert len({p.id for p in posts}) == 150
    stamps = [p.created_utc for p in posts]
    assert stamps == sorted(stamps, reverse=True)
    comments = list(reddit.subreddit("python").comments(limit=30))
    assert len(comments) == 30
    assert all(c.link_id.startswith("t3_") for c in comments)
    assert time.monotonic() - started < 5, "praw must not sleep on the rate-limit headers"
    assert reddit.auth.limits["remaining"] is not None
    assert reddit.auth.limits["remaining"] > 90000

    submission = reddit.submission(max(posts, key=lambda p: p.num_comments).id)
    submission.comments.replace_more(limit=0)
    assert len(submission.comments.list()) == submission.num_comments > 0

    stats = server.stats()["reddit"]
    assert stats["by_status"] == {"200": stats["requests"]}
    assert stats["served_count"] >= 180


def test_praw_sees_the_errors(server: SimulatorServer) -> None:
    server.configure({"reddit": {"forbidden": True}})
    with pytest.raises(prawcore.exceptions.Forbidden):
        list(reddit_client(server).subreddit("python").new(limit=5))
    server.configure({"reddit": {"forbidden": False, "rate_limit": {"count": 1}}})
    with pytest.raises(prawcore.exceptions.TooManyRequests):
        list(reddit_client(server).subreddit("python").new(limit=5))
    with pytest.raises(prawcore.exceptions.ResponseException) as excinfo:
        list(reddit_client(server, secret="wrong").subreddit("python").new(limit=5))
    assert excinfo.value.response.status_code == 401


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def test_cli_serves_until_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "dev.simulator", "--port", "0", "--seed", "3", "--now", NOW]
    cmd += ["--config", json.dumps({"reddit": {"posts_per_hour": 2}})]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        match = re.fullmatch(r"simulator listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        config = requests.get(f"{match[1]}/_sim/config", timeout=5).json()
        assert (config["seed"], config["now"], config["reddit"]["posts_per_hour"]) == (3, NOW, 2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    refused = subprocess.run(
        [sys.executable, "-m", "dev.simulator", "--host", "0.0.0.0", "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 2
    assert "--allow-remote" in refused.stderr
