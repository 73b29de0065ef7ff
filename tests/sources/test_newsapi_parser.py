"""The NewsAPI parser on real recorded payloads (from ../shared) and on constructed bad items and configs."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pulse.config import ConfigError, load_source_config
from pulse.privacy import make_pseudonymizer
from pulse.sources.base import Document, MalformedPageError, Reason, Rejected, StoredPage
from pulse.sources.newsapi import (
    PageInfo,
    end_of_stream,
    next_page,
    oldest_published,
    out_of_reach,
    page_info,
    parse_config,
    parse_page,
    plan_streams,
    reach,
    request_params,
)
from pulse.windows import Window

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("PULSE_SHARED_DIR") or REPO.parent / "shared")
PAYLOADS = SHARED / "payloads" / "newsapi"
NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
PSEUDO = make_pseudonymizer("newsapi", key=b"k")
needs_payloads = pytest.mark.skipif(not PAYLOADS.is_dir(), reason=f"{PAYLOADS} is not present")


def _page(body: Any, stream: str = "everything:bitcoin") -> StoredPage:
    text = body if isinstance(body, str) else json.dumps(body)
    return StoredPage(id=1, source="newsapi", stream=stream, endpoint="/v2/everything", body=text)


def _article(**over: Any) -> dict[str, Any]:
    article = {
        "source": {"id": "reuters", "name": "Reuters"},
        "author": "Alice Example",
        "title": "Hello",
        "description": "Short summary.",
        "url": "https://www.reuters.com/a/hello",
        "urlToImage": "https://img.example/hello.jpg",
        "publishedAt": "2026-11-28T11:30:00Z",
        "content": "The full text… [+120 chars]",
    }
    article.update(over)
    return {k: v for k, v in article.items() if v is not ...}


def _envelope(*articles: Any, total: int | None = None) -> dict[str, Any]:
    return {
        "status": "ok",
        "totalResults": len(articles) if total is None else total,
        "articles": list(articles),
    }


def _load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------------
# real recorded payloads
# ------------------------------------------------------------------------------------------------


@needs_payloads
def test_real_everything_page_parses_completely() -> None:
    body = _load("everything_crypto.json")
    out = [o for _, o in parse_page(_page(body), PSEUDO, NOW)]
    assert len(out) == 20
    docs = [o for o in out if isinstance(o, Document)]
    assert len(docs) == 20, [o for o in out if isinstance(o, Rejected)]
    first = docs[0]
    assert first.external_id == "https://cdr.cz/clanek/mlade-nezajima-zlato-investuji-radeji-do-bitcoinu"
    assert first.url == first.external_id
    assert (first.source, first.kind, first.channel) == ("newsapi", "article", "Cdr.cz")
    assert first.created_at == datetime(2020, 8, 9, 7, tzinfo=UTC)
    assert first.title == "Mladé nezajímá zlato, investují raději do Bitcoinu"
    assert first.body is not None and first.body.startswith("Odpradávna se lidstvo uchylovalo")
    assert first.body.endswith("[+1916 chars]") and "\n\n" in first.body
    assert first.author_pseudonym == PSEUDO("Jáchym Flídr") != "Jáchym Flídr"
    assert (first.score, first.metrics) == (None, {})
    assert first.payload == {
        "source_id": None,
        "source_name": "Cdr.cz",
        "url_to_image": "https://cdr.cz/sites/default/files/bitcoin_index.jpg",
        "query": "bitcoin",
    }
    # a byline with the outlet's name is still a handle
    assert docs[1].author_pseudonym == PSEUDO("Cointelegraph By Andrey Shevchenko")
    # content null: the body is the description alone
    liveleak = next(d for d in docs if d.channel == "Liveleak.com")
    assert liveleak.body == body["articles"][5]["description"]
    assert all("author" not in json.dumps(d.payload) for d in docs)


@needs_payloads
def test_real_top_headlines_page_parses_completely() -> None:
    body = _load("top_headlines_us_technology.json")
    out = [o for _, o in parse_page(_page(body, "top-headlines:us/technology"), PSEUDO, NOW)]
    assert len(out) == 6 and all(isinstance(o, Document) for o in out)
    google = out[3]
    assert isinstance(google, Document)
    assert google.channel == "Google News" and google.author_pseudonym is None
    assert google.body is None  # description and content are both null
    assert google.payload == {
        "source_id": "google-news",
        "source_name": "Google News",
        "url_to_image": None,
        "headlines": "us/technology",
    }
    assert google.created_at == datetime(2021, 1, 10, 2, 37, 33, tzinfo=UTC)
    assert "\r\n" in (out[0].body or "")  # text kept as NewsAPI sent it


@needs_payloads
def test_real_empty_page_is_valid_and_empty() -> None:
    body = _load("everything_empty.json")
    info = page_info(json.dumps(body))
    assert (info.status, info.total_results, info.articles) == ("ok", 0, [])
    assert list(parse_page(_page(body), PSEUDO, NOW)) == []
    assert next_page({"page": 1, "pageSize": 100}, info) is None


@needs_payloads
@pytest.mark.parametrize(
    ("name", "status", "code", "ends"),
    [
        ("error_426_maximum_results_reached.json", 426, "maximumResultsReached", "plan cap reached"),
        ("error_400_parameter_invalid_too_old.json", 400, "parameterInvalid", "beyond reach"),
        ("error_401_api_key_invalid.json", 401, "apiKeyInvalid", None),
        ("error_429_rate_limited.json", 429, "rateLimited", None),
    ],
)
def test_real_error_bodies(name: str, status: int, code: str, ends: str | None) -> None:
    body = _load(name)
    info = page_info(json.dumps(body))
    assert (info.status, info.code, info.message) == ("error", code, body["message"])
    reason = end_of_stream(status, info)
    if ends is None:
        assert reason is None
        with pytest.raises(MalformedPageError, match=code):
            list(parse_page(_page(body), PSEUDO, NOW))
    else:
        assert reason is not None and reason.startswith(ends) and body["message"] in reason
        assert list(parse_page(_page(body), PSEUDO, NOW)) == [], "a stream-ending answer holds no items"


def test_other_parameter_invalid_does_not_end_the_stream() -> None:
    info = PageInfo("error", [], 0, "parameterInvalid", "The sortBy parameter is invalid.")
    assert end_of_stream(400, info) is None
    assert end_of_stream(426, PageInfo("error", [], 0, "rateLimited", "")) is None


# ------------------------------------------------------------------------------------------------
# items
# ------------------------------------------------------------------------------------------------


def test_article_fields() -> None:
    [(_, doc)] = list(parse_page(_page(_envelope(_article())), PSEUDO, NOW))
    assert isinstance(doc, Document)
    assert (doc.external_id, doc.kind, doc.channel, doc.title) == (
        "https://www.reuters.com/a/hello",
        "article",
        "Reuters",
        "Hello",
    )
    assert doc.body == "Short summary.\n\nThe full text… [+120 chars]"
    assert doc.created_at == datetime(2026, 11, 28, 11, 30, tzinfo=UTC)
    assert doc.author_pseudonym == PSEUDO("Alice Example")
    assert doc.payload == {
        "source_id": "reuters",
        "source_name": "Reuters",
        "url_to_image": "https://img.example/hello.jpg",
        "query": "bitcoin",
    }


def test_url_fragment_is_not_part_of_the_id() -> None:
    article = _article(url="https://example.com/story?id=7#comments")
    [(_, doc)] = list(parse_page(_page(_envelope(article)), PSEUDO, NOW))
    assert isinstance(doc, Document)
    assert doc.external_id == "https://example.com/story?id=7"
    assert doc.url == "https://example.com/story?id=7#comments"


REMOVED = {
    "source": {"id": None, "name": "[Removed]"},
    "author": None,
    "title": "[Removed]",
    "description": "[Removed]",
    "url": "https://removed.com",
    "urlToImage": None,
    "publishedAt": "1970-01-01T00:00:00Z",
    "content": "[Removed]",
}


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"url": None}, Reason.MISSING_ID),
        ({"url": ...}, Reason.MISSING_ID),
        ({"url": "  "}, Reason.MISSING_ID),
        ({"url": "ftp://example.com/x"}, Reason.BAD_FIELD),
        ({"url": 42}, Reason.BAD_FIELD),
        ({"publishedAt": "Sat, 28 Nov 2026 11:30:00 GMT"}, Reason.BAD_TIMESTAMP),
        ({"publishedAt": None}, Reason.BAD_TIMESTAMP),
        ({"publishedAt": (NOW + timedelta(days=10)).isoformat()}, Reason.FUTURE_TIMESTAMP),
        ({"description": "a\x00b"}, Reason.TEXT_NUL_BYTE),
        ({"content": "x" * 100_001}, Reason.TEXT_TOO_LARGE),
        ({"title": None}, Reason.MISSING_TEXT),
        ({"title": ""}, Reason.MISSING_TEXT),
        ({"source": "Reuters"}, Reason.BAD_FIELD),
        ({"author": ["Alice"]}, Reason.BAD_FIELD),
        ({"content": 3}, Reason.BAD_FIELD),
    ],
)
def test_bad_items_are_rejected_with_a_reason(override: dict[str, Any], reason: Reason) -> None:
    bad = _article(**{"url": "https://example.com/bad", **override})
    out = list(parse_page(_page(_envelope(_article(), bad, _article(url="https://x.org/3"))), PSEUDO, NOW))
    assert [type(o).__name__ for _, o in out] == ["Document", "Rejected", "Document"]
    rej = out[1][1]
    assert isinstance(rej, Rejected) and rej.reason == reason and rej.item_index == 1
    if reason in (Reason.MISSING_ID, Reason.BAD_FIELD) and "url" in override:
        assert rej.item_key.startswith("sha256:") and rej.external_id is None
    else:
        assert rej.item_key == "https://example.com/bad"
    if isinstance(bad.get("author"), str):
        assert rej.item["author"] == PSEUDO("Alice Example"), "quarantine keeps no byline in clear"


def test_removed_articles_are_bad_field_and_keyed_by_content() -> None:
    out = list(parse_page(_page(_envelope(REMOVED, _article())), PSEUDO, NOW))
    rej = out[0][1]
    assert isinstance(rej, Rejected) and rej.reason == Reason.BAD_FIELD and "[Removed]" in rej.detail
    assert rej.external_id is None and rej.item_key.startswith("sha256:")
    assert isinstance(out[1][1], Document)


def test_non_object_article_is_rejected_not_crashing() -> None:
    out = list(parse_page(_page(_envelope("oops", None, _article())), PSEUDO, NOW))
    assert [o.reason for _, o in out[:2] if isinstance(o, Rejected)] == [Reason.NOT_AN_OBJECT] * 2
    assert isinstance(out[2][1], Document)


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        b"<!DOCTYPE html>\n<html><head><title>Service Temporarily Unavailable</title>",
        b'{"status": "ok", "totalResults": 3, "articles": [{"sou',
        b'[{"status": "ok"}]',
        b'{"status": "ok", "totalResults": 3}',
        b'{"status": "ok", "totalResults": 3, "articles": {}}',
        b'{"status": "ok", "totalResults": "3", "articles": []}',
        b'{"status": "ok", "totalResults": true, "articles": []}',
        b'{"articles": []}',
        b'{"status": "error", "message": "no code"}',
    ],
)
def test_malformed_pages_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedPageError):
        page_info(body)
    with pytest.raises(MalformedPageError):
        list(parse_page(_page(body.decode()), PSEUDO, NOW))


@pytest.mark.parametrize(
    ("page", "size", "total", "items", "expected"),
    [
        (1, 20, 7724, 20, "2"),
        (4, 10, 38, 8, None),
        (3, 10, 30, 10, None),
        (2, 10, 31, 10, "3"),
        (1, 10, 50, 0, None),  # an empty page ends the stream whatever totalResults says
    ],
)
def test_next_page(page: int, size: int, total: int, items: int, expected: str | None) -> None:
    info = PageInfo("ok", [{}] * items, total)
    assert next_page({"page": page, "pageSize": size}, info) == expected


def test_oldest_published_skips_what_it_cannot_read() -> None:
    articles = [
        _article(publishedAt="2026-11-28T11:30:00Z"),
        _article(publishedAt="not a date"),
        _article(publishedAt="2026-11-28T11:05:00"),
        "oops",
        _article(publishedAt=None),
    ]
    assert oldest_published(articles) == datetime(2026, 11, 28, 11, 5, tzinfo=UTC).timestamp()
    assert oldest_published([]) is None


# ------------------------------------------------------------------------------------------------
# config and streams
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", [REPO / "include" / "sources.yaml", REPO / "tests" / "data" / "sources.yaml"]
)
def test_the_shipped_configs_parse(path: Path) -> None:
    config = load_source_config("newsapi", path)
    assert config.conn_id == "newsapi_default" and config.language == "en"
    assert config.queries and config.top_headlines[0].key == "us/technology"
    assert config.plan_horizon_days == 30


def test_plan_streams_one_per_query_and_headline_list() -> None:
    config = parse_config(
        {
            "queries": ["bitcoin", "artificial intelligence"],
            "top_headlines": [{"country": "us", "category": "technology"}, {"category": "science"}],
            "page_size": 50,
            "plan_horizon_days": 365,
        },
        "newsapi",
    )
    window = Window(datetime(2026, 11, 28, 11, tzinfo=UTC), datetime(2026, 11, 28, 12, tzinfo=UTC))
    streams = plan_streams(config, window)
    assert [s.key for s in streams] == [
        "everything:bitcoin",
        "everything:artificial intelligence",
        "top-headlines:us/technology",
        "top-headlines:all/science",
    ]
    assert request_params(streams[1]) == {
        "q": "artificial intelligence",
        "from": "2026-11-28T11:00:00",
        "to": "2026-11-28T12:00:00",
        "sortBy": "publishedAt",
        "language": "en",
        "pageSize": 50,
    }
    assert streams[1].params["horizon_days"] == 365, "for reach(), never sent"
    assert streams[3].endpoint == "/v2/top-headlines"
    assert streams[3].params == request_params(streams[3]) == {"category": "science", "pageSize": 50}
    # how far back each stream reaches: the plan's horizon, or current only
    assert [reach(s) for s in streams] == [timedelta(days=365)] * 2 + [timedelta(hours=3)] * 2
    default = plan_streams(parse_config({"queries": ["a"]}, "newsapi"), window)
    assert reach(default[0]) == timedelta(days=30)
    assert out_of_reach(streams[2], window, NOW + timedelta(hours=2, minutes=59)) is None
    reason = out_of_reach(streams[2], window, NOW + timedelta(hours=3))
    assert reason is not None and reason.startswith("beyond reach")
    assert out_of_reach(streams[0], window, NOW + timedelta(days=300)) is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"queries": ["ok", " "]}, r"newsapi\.queries\[1\]: the query is empty"),
        ({"queries": ["a", "a"]}, r"newsapi\.queries\[1\]: 'a' is listed twice"),
        ({"queries": ["x" * 501]}, r"newsapi\.queries\[0\]: longer than"),
        ({"queries": ["a\nb"]}, r"newsapi\.queries\[0\]: .*control characters"),
        ({"queries": [3]}, r"newsapi\.queries\[0\]: 3 is not text"),
        ({"queries": []}, r"newsapi\.queries: expected a non-empty list"),
        ({}, r"newsapi: give at least one of queries and top_headlines"),
        ({"queries": ["a"], "pagesize": 10}, r"newsapi: unknown keys \['pagesize'\]"),
        ({"queries": ["a"], "page_size": 101}, r"newsapi\.page_size: 101 must be an integer from 1 to 100"),
        ({"queries": ["a"], "language": "english"}, r"newsapi\.language: 'english'"),
        ({"queries": ["a"], "plan_horizon_days": 0}, r"newsapi\.plan_horizon_days: 0 must be an integer"),
        ({"top_headlines": [{"country": "USA"}]}, r"newsapi\.top_headlines\[0\]\.country: 'USA'"),
        (
            {"top_headlines": [{"country": "us"}, {"country": "us", "category": "tech"}]},
            r"newsapi\.top_headlines\[1\]\.category: 'tech' is not one of business",
        ),
        ({"top_headlines": [{}]}, r"newsapi\.top_headlines\[0\]: give a country, a category or both"),
        ({"top_headlines": [{"country": "us", "city": "x"}]}, r"newsapi\.top_headlines\[0\]: unknown keys"),
        ({"top_headlines": ["us"]}, r"newsapi\.top_headlines\[0\]: expected a mapping"),
        (
            {"top_headlines": [{"country": "us"}, {"country": "us"}]},
            r"top_headlines\[1\]: us/all is listed twice",
        ),
        ("bitcoin", r"newsapi: expected a mapping"),
    ],
)
def test_config_errors_name_the_bad_entry(entry: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(entry, "newsapi")
