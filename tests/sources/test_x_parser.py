"""The X parser on real recorded payloads (from ../shared) and on constructed bad items and pages."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pulse.config import ConfigError
from pulse.privacy import make_pseudonymizer
from pulse.sources.base import Document, MalformedPageError, Reason, Rejected, StoredPage
from pulse.sources.x import (
    SEARCH_RECENT,
    XConfig,
    channel_of,
    parse_config,
    parse_page,
    plan_streams,
    reach,
    search_info,
    snowflake_time,
)

SHARED = Path(os.environ.get("PULSE_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
PAYLOADS = SHARED / "payloads" / "twitter"
NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
PSEUDO = make_pseudonymizer("x", key=b"k")
needs_payloads = pytest.mark.skipif(not PAYLOADS.exists(), reason="../shared/payloads/twitter is not present")


def _page(body: Any, stream: str = "search:python lang:en") -> StoredPage:
    text = body if isinstance(body, str) else json.dumps(body)
    return StoredPage(id=1, source="x", stream=stream, endpoint=SEARCH_RECENT, body=text)


def _tweet(**over: Any) -> dict[str, Any]:
    tweet = {
        "id": "2126646392173133829",
        "text": "@someone hello #python https://t.co/abc",
        "author_id": "111",
        "conversation_id": "2126646000000000000",
        "created_at": "2026-11-28T11:56:25.730Z",
        "lang": "en",
        "in_reply_to_user_id": "222",
        "public_metrics": {"retweet_count": 1, "reply_count": 2, "like_count": 7, "quote_count": 0},
        "entities": {
            "mentions": [{"start": 0, "end": 8, "username": "someone", "id": "222"}],
            "hashtags": [{"start": 15, "end": 22, "tag": "python"}],
            "urls": [
                {"start": 23, "end": 39, "url": "https://t.co/abc", "expanded_url": "https://example.com/a"}
            ],
        },
    }
    tweet.update(over)
    return {k: v for k, v in tweet.items() if v is not ...}


def _search(*tweets: Any, users: list[dict[str, Any]] | None = None, **meta: Any) -> dict[str, Any]:
    users = users if users is not None else [{"id": "111", "name": "Alice Doe", "username": "alice"}]
    return {
        "data": list(tweets),
        "includes": {"users": users},
        "meta": {"result_count": len(tweets), **meta},
    }


def _load(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------------
# real recorded payloads
# ------------------------------------------------------------------------------------------------


@needs_payloads
def test_real_search_with_expansions_parses_completely() -> None:
    body = _load("search_recent_with_expansions.json")
    out = [o for _, o in parse_page(_page(body), PSEUDO, NOW)]
    assert len(out) == len(body["data"]) == 4
    docs = [o for o in out if isinstance(o, Document)]
    assert len(docs) == 4, [o for o in out if isinstance(o, Rejected)]
    first = docs[0]
    assert first.external_id == "1276035977375477760"
    assert first.created_at == datetime(2020, 6, 25, 6, 14, 19, tzinfo=UTC)
    assert first.channel == "python lang:en" and first.kind == "tweet" and first.title is None
    assert first.body == body["data"][0]["text"]
    assert first.url == "https://x.com/i/web/status/1276035977375477760"
    assert first.author_pseudonym == PSEUDO("happycamper")  # author 63046977 via includes.users
    assert first.payload == {
        "lang": "en",
        "conversation_id": None,  # not requested in that recording
        "reply": True,  # referenced_tweets: replied_to
        "hashtags": [],
        "mentions": 1,
        # the media link names the author (twitter.com/<handle>/status/...): kept without the handle
        "urls": ["https://x.com/i/web/status/1276035977375477760"],
        "in_reply_to": True,
    }
    assert first.score is None and first.metrics == {}  # no public_metrics in that recording
    assert docs[2].payload["lang"] == "und" and docs[2].payload["mentions"] == 2
    assert [d.author_pseudonym for d in docs[1:]] == [
        PSEUDO("snowman"),
        PSEUDO("jellybeanjones"),
        PSEUDO("snowman"),
    ]
    blob = json.dumps([[d.author_pseudonym, d.payload, d.metrics] for d in docs])
    for user in body["includes"]["users"]:
        assert user["username"] not in blob and user["id"] not in blob and user["name"] not in blob


@needs_payloads
def test_real_default_fields_search_takes_the_time_from_the_snowflake_id() -> None:
    body = _load("search_recent.json")
    out = [o for _, o in parse_page(_page(body, stream="search:Tweepy"), PSEUDO, NOW)]
    assert len(out) == body["meta"]["result_count"] == 10
    assert all(isinstance(o, Document) for o in out), out
    # Each recorded text is the client's clock when it posted; the id's timestamp is the server's, just after.
    for doc in out:
        assert isinstance(doc, Document)
        posted = datetime.fromisoformat(doc.body.removesuffix(" tweepy") + "+00:00")  # type: ignore[union-attr]
        assert 0 <= (doc.created_at - posted).total_seconds() < 1
        assert doc.channel == "Tweepy" and doc.author_pseudonym is None
    info = search_info(json.dumps(body))
    assert info.next_token == "b26v89c19zqg8o3fpzbn1e0ffhxjiofzw6po136rvbnul"


@needs_payloads
@pytest.mark.parametrize(
    "name",
    ["error_401_unauthorized.json", "error_429_too_many_requests.json", "error_403_client_forbidden.json"],
)
def test_real_error_bodies_are_not_pages(name: str) -> None:
    with pytest.raises(MalformedPageError, match="no meta"):
        search_info((PAYLOADS / name).read_bytes())


# ------------------------------------------------------------------------------------------------
# constructed items
# ------------------------------------------------------------------------------------------------


def test_tweet_fields() -> None:
    [(_, doc)] = list(parse_page(_page(_search(_tweet())), PSEUDO, NOW))
    assert isinstance(doc, Document)
    assert (doc.source, doc.external_id, doc.kind, doc.channel, doc.score) == (
        "x",
        "2126646392173133829",
        "tweet",
        "python lang:en",
        7,
    )
    assert doc.created_at == datetime(2026, 11, 28, 11, 56, 25, 730000, tzinfo=UTC)
    assert doc.author_pseudonym == PSEUDO("alice") != "alice"
    assert doc.metrics == {"retweet_count": 1, "reply_count": 2, "like_count": 7, "quote_count": 0}
    assert doc.payload == {
        "lang": "en",
        "conversation_id": "2126646000000000000",
        "reply": True,  # conversation_id is another tweet's
        "hashtags": ["python"],
        "mentions": 1,
        "urls": ["https://example.com/a"],
        "in_reply_to": True,
    }


def test_author_falls_back_to_the_author_id_without_the_user_expansion() -> None:
    [(_, doc)] = list(parse_page(_page(_search(_tweet(), users=[])), PSEUDO, NOW))
    assert isinstance(doc, Document) and doc.author_pseudonym == PSEUDO("111")


def test_a_root_tweet_is_not_a_reply() -> None:
    tweet = _tweet(conversation_id="2126646392173133829", in_reply_to_user_id=..., entities=...)
    [(_, doc)] = list(parse_page(_page(_search(tweet)), PSEUDO, NOW))
    assert isinstance(doc, Document)
    assert (doc.payload["reply"], doc.payload["in_reply_to"], doc.payload["mentions"]) == (False, False, 0)
    assert doc.payload["hashtags"] == [] and doc.payload["urls"] == []


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"id": ...}, Reason.MISSING_ID),
        ({"id": 123}, Reason.BAD_FIELD),
        ({"created_at": "Sat Nov 28 11:59:59 +0000 2026"}, Reason.BAD_TIMESTAMP),
        ({"created_at": None}, Reason.BAD_TIMESTAMP),
        ({"created_at": "2026-12-08T12:00:00.000Z"}, Reason.FUTURE_TIMESTAMP),
        ({"text": "a\x00b"}, Reason.TEXT_NUL_BYTE),
        ({"text": "x" * 100_001}, Reason.TEXT_TOO_LARGE),
        ({"text": ...}, Reason.MISSING_TEXT),
        ({"public_metrics": {"like_count": "lots"}}, Reason.BAD_FIELD),
        ({"public_metrics": [1, 2]}, Reason.BAD_FIELD),
        ({"author_id": 111}, Reason.BAD_FIELD),
        ({"entities": {"urls": "https://example.com"}}, Reason.BAD_FIELD),
    ],
)
def test_bad_items_are_rejected_with_a_reason(override: dict[str, Any], reason: Reason) -> None:
    good = _tweet(id="2126646392173133000")
    bad = _tweet(**override)
    out = list(parse_page(_page(_search(good, bad)), PSEUDO, NOW))
    assert isinstance(out[0][1], Document), "the rest of the page still loads"
    rej = out[1][1]
    assert isinstance(rej, Rejected) and rej.reason == reason, rej
    assert rej.item_index == 1
    if "id" in override:
        assert rej.item_key.startswith("sha256:") and rej.external_id is None
    else:
        assert rej.item_key == rej.external_id == "2126646392173133829"
    # The quarantine copy keeps no user id, username or name in clear.
    if isinstance(rej.item.get("author_id"), str):
        assert rej.item["author_id"] == PSEUDO("111")
    assert rej.item["in_reply_to_user_id"] == PSEUDO("222")
    mention = rej.item["entities"]["mentions"][0] if "mentions" in rej.item.get("entities", {}) else None
    if mention is not None:
        assert mention == {"start": 0, "end": 8, "username": PSEUDO("someone"), "id": PSEUDO("222")}


def test_future_snowflake_without_created_at_is_rejected() -> None:
    future_ms = int(datetime(2026, 12, 30, tzinfo=UTC).timestamp() * 1000) - 1288834974657
    tweet = _tweet(id=str(future_ms << 22), created_at=...)
    [(_, rej)] = list(parse_page(_page(_search(tweet)), PSEUDO, NOW))
    assert isinstance(rej, Rejected) and rej.reason == Reason.FUTURE_TIMESTAMP


def test_pre_snowflake_id_without_created_at_is_a_bad_timestamp() -> None:
    [(_, rej)] = list(parse_page(_page(_search(_tweet(id="20", created_at=...))), PSEUDO, NOW))
    assert isinstance(rej, Rejected) and rej.reason == Reason.BAD_TIMESTAMP
    assert snowflake_time("1578516068309794817") == datetime(2022, 10, 7, 22, 42, 12, 752000, tzinfo=UTC)


def test_non_object_tweet_is_rejected_not_crashing() -> None:
    out = list(parse_page(_page(_search("oops", _tweet())), PSEUDO, NOW))
    assert isinstance(out[0][1], Rejected) and out[0][1].reason == Reason.NOT_AN_OBJECT
    assert isinstance(out[1][1], Document)


def test_empty_page_is_valid() -> None:
    info = search_info(json.dumps({"meta": {"result_count": 0}}))
    assert (info.tweets, info.next_token, info.result_count) == ([], None, 0)
    assert list(parse_page(_page({"meta": {"result_count": 0}}), PSEUDO, NOW)) == []


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"<html><body><h1>503 Service Unavailable</h1></body></html>", "not JSON"),
        (b'{"data": [{"id": "1", "te', "not JSON"),
        (b"[]", "expected an object"),
        (b'{"data": []}', "no meta"),
        (b'{"title": "Unauthorized", "status": 401}', "no meta"),
        (b'{"meta": {"result_count": "3"}}', "result_count"),
        (b'{"meta": {"result_count": 2}}', "no data"),
        (b'{"data": {"id": "1"}, "meta": {"result_count": 1}}', "list of tweets"),
        (b'{"data": [], "meta": {"result_count": 0, "next_token": 7}}', "next_token"),
        (b'{"data": [], "includes": {"users": {}}, "meta": {"result_count": 0}}', "includes.users"),
    ],
)
def test_malformed_pages_are_refused(body: bytes, match: str) -> None:
    with pytest.raises(MalformedPageError, match=match):
        search_info(body)
    with pytest.raises(MalformedPageError):
        list(parse_page(_page(body.decode()), PSEUDO, NOW))


def test_search_info_reports_cursor_and_users() -> None:
    body = _search(_tweet(), next_token="abc", users=[{"id": "111", "username": "alice"}, "junk"])
    info = search_info(json.dumps(body))
    assert info.next_token == "abc" and list(info.users) == ["111"] and len(info.tweets) == 1


# ------------------------------------------------------------------------------------------------
# config and plan
# ------------------------------------------------------------------------------------------------


def test_config_and_streams() -> None:
    config = parse_config(
        {"conn_id": "x_default", "queries": ["python lang:en", "airflow"], "max_results": 10}, "x"
    )
    assert config == XConfig(conn_id="x_default", queries=("python lang:en", "airflow"), max_results=10)
    streams = plan_streams(config, None)
    assert [s.key for s in streams] == ["search:python lang:en", "search:airflow"]
    assert streams[0].endpoint == SEARCH_RECENT
    assert streams[0].params == {
        "query": "python lang:en",
        "max_results": 10,
        "expansions": "author_id",
        "tweet.fields": "created_at,public_metrics,lang,conversation_id,author_id,entities,in_reply_to_user_id",
        "user.fields": "username,name,verified,public_metrics",
    }
    assert channel_of(streams[0].key) == "python lang:en"
    assert reach(streams[0]) == timedelta(days=7) - timedelta(minutes=2)
    assert parse_config({"queries": ["a"]}, "x").max_results == 100


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ([], r"^x: expected a mapping"),
        ({"queries": ["a"], "since": 1}, r"^x: unknown keys \['since'\]"),
        ({"max_results": 10}, r"^x\.queries: expected a non-empty list"),
        ({"queries": "python"}, r"^x\.queries: expected a non-empty list"),
        ({"queries": ["ok", 3]}, r"^x\.queries\[1\]: 3 is not text"),
        ({"queries": ["ok", "  "]}, r"^x\.queries\[1\]: the query is empty"),
        ({"queries": ["ok", "a" * 513]}, r"^x\.queries\[1\]: 513 characters"),
        ({"queries": ["ok", "a\nb"]}, r"^x\.queries\[1\]: .* control characters"),
        ({"queries": ["ok", "x", "ok"]}, r"^x\.queries\[2\]: 'ok' repeats x\.queries\[0\]"),
        ({"queries": ["ok"], "max_results": 5}, r"^x\.max_results: 5 must be an integer from 10 to 100"),
        ({"queries": ["ok"], "max_results": 101}, r"^x\.max_results: 101 must be"),
        ({"queries": ["ok"], "conn_id": ""}, r"^x\.conn_id: '' must be a connection id"),
    ],
)
def test_config_errors_name_the_entry(entry: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(entry, "x")


def test_repo_sources_files_parse() -> None:
    from pulse.config import load_source_config

    root = Path(__file__).resolve().parents[2]
    for path in (root / "include" / "sources.yaml", root / "tests" / "data" / "sources.yaml"):
        config = load_source_config("x", path)
        assert config.conn_id == "x_default" and config.queries and 10 <= config.max_results <= 100


def test_links_to_x_accounts_keep_no_handle() -> None:
    urls = [
        {"url": "https://t.co/1", "expanded_url": "https://twitter.com/alice/status/123/photo/1"},
        {"url": "https://t.co/2", "expanded_url": "https://mobile.x.com/alice"},
        {"url": "https://t.co/3", "expanded_url": "https://www.x.com/i/web/status/456"},
        {"url": "https://t.co/4", "expanded_url": "https://example.com/alice/status/1"},
        {"url": "https://t.co/5"},
    ]
    [(_, doc)] = list(parse_page(_page(_search(_tweet(entities={"urls": urls}))), PSEUDO, NOW))
    assert isinstance(doc, Document)
    assert doc.payload["urls"] == [
        "https://x.com/i/web/status/123",
        "https://x.com/i/web/status/456",
        "https://example.com/alice/status/1",
        "https://t.co/5",
    ]
