"""The Reddit parser on real recorded payloads (from ../shared) and on constructed bad items."""

from __future__ import annotations

import copy
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pulse.privacy import make_pseudonymizer
from pulse.sources.base import Document, MalformedPageError, Reason, Rejected, StoredPage
from pulse.sources.reddit import listing_info, parse_page

SHARED = Path(os.environ.get("PULSE_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
PAYLOADS = SHARED / "payloads" / "reddit"
NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
PSEUDO = make_pseudonymizer("reddit", key=b"k")


def _page(body: Any) -> StoredPage:
    return StoredPage(id=1, source="reddit", stream="new:x", endpoint="/r/x/new", body=json.dumps(body))


def _post(**over: Any) -> dict[str, Any]:
    data = {
        "id": "abc",
        "name": "t3_abc",
        "title": "Hello",
        "selftext": "body",
        "author": "alice",
        "subreddit": "python",
        "created_utc": 1764320000.0,
        "permalink": "/r/python/comments/abc/hello/",
        "score": 5,
        "num_comments": 2,
        "url": "https://example.com",
    }
    data.update(over)
    return {"kind": "t3", "data": {k: v for k, v in data.items() if v is not ...}}


def _listing(*children: Any) -> dict[str, Any]:
    return {"kind": "Listing", "data": {"after": None, "children": list(children)}}


@pytest.mark.skipif(not PAYLOADS.exists(), reason="../shared/payloads/reddit is not present")
@pytest.mark.parametrize(
    "name", ["subreddit_new_askreddit.json", "subreddit_hot_popular.json", "subreddit_comments_stream.json"]
)
def test_real_listings_parse_completely(name: str) -> None:
    body = json.loads((PAYLOADS / name).read_text())
    out = [o for _, o in parse_page(_page(body), PSEUDO, datetime(2026, 12, 1, tzinfo=UTC))]
    assert len(out) == len(body["data"]["children"])
    docs = [o for o in out if isinstance(o, Document)]
    assert len(docs) == len(out), [o for o in out if isinstance(o, Rejected)]
    first = body["data"]["children"][0]["data"]
    assert docs[0].external_id == first["name"]
    assert docs[0].channel == first["subreddit"]
    assert docs[0].author_pseudonym == PSEUDO(first["author"])
    assert "author" not in docs[0].payload


def test_post_fields() -> None:
    [(_, doc)] = list(parse_page(_page(_listing(_post())), PSEUDO, NOW))
    assert isinstance(doc, Document)
    assert (doc.external_id, doc.kind, doc.title, doc.body, doc.score) == (
        "t3_abc",
        "post",
        "Hello",
        "body",
        5,
    )
    assert doc.url == "https://www.reddit.com/r/python/comments/abc/hello/"
    assert doc.author_pseudonym == PSEUDO("alice") != "alice"
    assert doc.metrics == {"num_comments": 2}


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"id": ..., "name": ...}, Reason.MISSING_ID),
        ({"created_utc": "not-a-date"}, Reason.BAD_TIMESTAMP),
        ({"created_utc": NOW.timestamp() + 86400}, Reason.FUTURE_TIMESTAMP),
        ({"selftext": "a\x00b"}, Reason.TEXT_NUL_BYTE),
        ({"selftext": "x" * 100_001}, Reason.TEXT_TOO_LARGE),
        ({"title": ...}, Reason.MISSING_TEXT),
        ({"score": "lots"}, Reason.BAD_FIELD),
    ],
)
def test_bad_items_are_rejected_with_a_reason(override: dict[str, Any], reason: Reason) -> None:
    out = list(
        parse_page(
            _page(_listing(_post(), _post(**{"id": "zzz", "name": "t3_zzz", **override}))), PSEUDO, NOW
        )
    )
    assert isinstance(out[0][1], Document)
    rej = out[1][1]
    assert isinstance(rej, Rejected) and rej.reason == reason
    if reason != Reason.MISSING_ID:
        assert rej.item_key == "t3_zzz"
    else:
        assert rej.item_key.startswith("sha256:")
    assert rej.item["data"].get("author") == PSEUDO("alice"), "quarantine keeps no handle in clear"


def test_non_object_child_is_rejected_not_crashing() -> None:
    out = list(parse_page(_page(_listing("oops", _post())), PSEUDO, NOW))
    assert isinstance(out[0][1], Rejected) and out[0][1].reason == Reason.NOT_AN_OBJECT
    assert isinstance(out[1][1], Document)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502</html>",
        b'{"kind": "Listing", "data": {"chil',
        b'{"error": 500}',
        b'{"kind": "Listing", "data": {"children": {}}}',
    ],
)
def test_malformed_pages_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedPageError):
        listing_info(body)


def test_listing_info_reports_cursor_and_oldest() -> None:
    a, b = _post(created_utc=100.0), copy.deepcopy(_post(created_utc=50.0))
    b["data"]["name"] = "t3_b"
    body = {"kind": "Listing", "data": {"after": "t3_b", "children": [a, b, _post(created_utc="bad")]}}
    info = listing_info(json.dumps(body))
    assert (info.after, info.oldest_created, len(info.children)) == ("t3_b", 50.0, 3)
