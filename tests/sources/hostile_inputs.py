"""Hypothesis strategies of hostile source pages, shared by the parser and loader property tests.

Every source gets realistic item templates; a drawn item is a template with a few of its values replaced by
hostile ones (NaN, infinities, 1e20, fractions, huge integers, lone surrogates, NUL, absurd and malformed
dates, wrong types, deep nesting) or removed, or sometimes any JSON at all. Pages hold a few such items and,
often, the same item twice. Envelopes stay valid (so the items are parsed), except in a separate strategy of
arbitrary bodies.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from pulse.sources.base import StoredPage

NOW = datetime(2026, 11, 28, 12, 5, tzinfo=UTC)
END = "2026-11-28T12:00:00+00:00"
EPOCH = 1_764_327_600  # 2026-11-28T11:00:00Z

# ------------------------------------------------------------------------------------------------ values

#: Marks a field to remove.
_DELETE = DELETE = object()

SPECIAL_NUMBERS = [
    float("nan"),
    float("inf"),
    float("-inf"),
    1e20,
    -1e20,
    1e308,
    2**31,
    -(2**31) - 1,
    2**63,
    2**80,
    -(10**30),
    -1,
    0,
    1.5,
    12.5,
    12.0,
    -0.0,
    5e-324,
    EPOCH + 0.25,
    EPOCH + 10**9,
]
SPECIAL_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "t3_\ud800",
    "\ud83d\ude00",  # a pair, but as two code points (no JSON decoder makes this)
    "NaN",
    "inf",
    "1e999",
    "0.1000000000000000055511151231257827",
    "-",
    "12.5",
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-05:00",
    "1969-12-31T23:59:59Z",
    "2026-11-28T11:30:00Z",
    "2026-11-28T11:30:00",
    "2026-11-28T11:45:00Z",
    "2026-10-31T23:30:00-01:00",  # November in UTC
    "2099-01-01T00:00:00Z",
    "not-a-date",
    "2026-02-30",
    "http://[::1",
    "https://x.com/alice/status/123",
    "https://example.com/a#frag",
    "[Removed]",
    "[deleted]",
    "America",
    "é" * 30_000,  # 60 kB of UTF-8, under the limit
    "x" * 100_001,  # over the 100 kB text limit
    "k" * 1_500,  # over the key limit
]

#: Any character, surrogates and NUL included.
any_char = st.characters(codec=None, exclude_categories=())
texts = st.one_of(st.text(any_char, max_size=12), st.sampled_from(SPECIAL_TEXT))
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(SPECIAL_NUMBERS),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)


def _deep(depth: int) -> Any:
    node: Any = "bottom"
    for _ in range(depth):
        node = [node]
    return node


json_values = st.one_of(
    st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=3), st.dictionaries(texts, children, max_size=3)
        ),
        max_leaves=8,
    ),
    # Built afresh for every draw: a mutation must never change a value another example draws.
    st.sampled_from([120, 300]).map(lambda depth: _deep(depth) if depth < 200 else {"a": _deep(depth)}),
)


#: Every hostile value the grid test puts in every field (``DELETE``: the field is removed).
def grid_values() -> list[Any]:
    """Fresh copies of every special value, a few structures, and the removal marker."""
    return [
        *SPECIAL_NUMBERS,
        *SPECIAL_TEXT,
        None,
        True,
        False,
        {},
        [],
        {"x": 1},
        [1, "a"],
        _deep(120),
        DELETE,
    ]


#: One of :func:`grid_values`, built afresh (twice as likely as any other kind of value in :func:`mutated`).
specials = st.integers(0, len(grid_values()) - 1).map(lambda i: grid_values()[i])


def leaf_paths(node: Any) -> list[tuple[Any, ...]]:
    """Every path to a value of ``node`` (leaves and containers alike)."""
    return _paths(node)


def with_value(template: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of ``template`` with ``value`` at ``path`` (or the field removed for :data:`DELETE`)."""
    item = copy.deepcopy(template)
    _set(item, path, copy.deepcopy(value) if value is not DELETE else value)
    return item


DATES = [t for t in SPECIAL_TEXT if t[:1].isdigit()] + [EPOCH, float("nan"), 1e20, "", None]
_ISO = re.compile(r"^\d{4}-\d\d-\d\d")


def _kin(value: Any) -> list[Any]:
    """Hostile values of the same kind as ``value``."""
    if isinstance(value, bool):
        return [True, False, None, "true", 1, DELETE]
    if isinstance(value, int | float):
        return [*SPECIAL_NUMBERS, str(value), None, True, DELETE]
    if isinstance(value, str) and _ISO.match(value):
        return [*DATES, DELETE]
    if isinstance(value, str):
        return [*SPECIAL_TEXT, 42, None, DELETE]
    return [None, {}, [], "text", 3, _deep(120), DELETE]


def _fresh(value: Any) -> Any:
    return value if value is DELETE else copy.deepcopy(value)


def _get_path(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _set(node: Any, path: tuple[Any, ...], value: Any) -> None:
    for part in path[:-1]:
        node = node[part]
    if value is _DELETE:
        if isinstance(node, dict):
            node.pop(path[-1], None)
        else:
            del node[path[-1]]
    else:
        node[path[-1]] = value


@st.composite
def mutated(draw: Any, template: Any) -> Any:
    """``template`` with up to three values replaced by hostile ones or removed (or any JSON at all)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    item = copy.deepcopy(template)
    for _ in range(draw(st.integers(0, 3))):
        paths = _paths(item)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        kin = _kin(_get_path(item, path))
        # Mostly a hostile value of the field's own kind (a date for a date...), else anything.
        value = draw(
            st.one_of(
                st.integers(0, len(kin) - 1).map(lambda i, kin=kin: _fresh(kin[i])),
                st.integers(0, len(kin) - 1).map(lambda i, kin=kin: _fresh(kin[i])),
                specials,
                scalars,
                json_values,
            )
        )
        try:
            _set(item, path, value)
        except (KeyError, IndexError, TypeError):
            continue
    return item


# ------------------------------------------------------------------------------------------------ templates


def _reddit_post() -> dict[str, Any]:
    return {
        "kind": "t3",
        "data": {
            "id": "abc",
            "name": "t3_abc",
            "title": "Hello",
            "selftext": "body",
            "author": "alice",
            "subreddit": "python",
            "created_utc": EPOCH + 600.0,
            "permalink": "/r/python/comments/abc/hello/",
            "score": 5,
            "num_comments": 2,
            "upvote_ratio": 0.9,
            "url": "https://example.com",
            "domain": "example.com",
        },
    }


def _reddit_comment() -> dict[str, Any]:
    return {
        "kind": "t1",
        "data": {
            "id": "c1",
            "name": "t1_c1",
            "body": "a comment",
            "author": "bob",
            "subreddit": "python",
            "created_utc": EPOCH + 900,
            "permalink": "/r/python/comments/abc/hello/c1/",
            "score": 1,
            "link_id": "t3_abc",
            "parent_id": "t3_abc",
        },
    }


def _tweet() -> dict[str, Any]:
    return {
        "id": "1862100000000000000",
        "text": "hello #python",
        "author_id": "12",
        "created_at": "2026-11-28T11:30:00.000Z",
        "lang": "en",
        "conversation_id": "1862100000000000000",
        "public_metrics": {"like_count": 3, "retweet_count": 1, "reply_count": 0},
        "entities": {
            "hashtags": [{"tag": "python"}],
            "urls": [{"expanded_url": "https://example.com/x"}],
            "mentions": [{"id": "99", "username": "bob"}],
        },
        "referenced_tweets": [{"type": "replied_to", "id": "5"}],
    }


def _article() -> dict[str, Any]:
    return {
        "source": {"id": "reuters", "name": "Reuters"},
        "author": "Jane Roe",
        "title": "Markets",
        "description": "Stocks rose.",
        "url": "https://example.com/markets",
        "urlToImage": "https://example.com/m.png",
        "publishedAt": "2026-11-28T11:30:00Z",
        "content": "Stocks rose on Friday.",
    }


def _bar() -> dict[str, Any]:
    return {"1. open": "10.0", "2. high": "12.0", "3. low": "9.5", "4. close": "11.0", "5. volume": "1000"}


def _weather(dt: int) -> dict[str, Any]:
    return {
        "dt": dt,
        "main": {"temp": 7.5, "feels_like": 5.0, "pressure": 1012, "humidity": 80},
        "wind": {"speed": 4.2, "deg": 220},
        "clouds": {"all": 75},
        "rain": {"1h": 0.3},
        "weather": [{"main": "Clouds", "description": "broken clouds"}],
    }


def _event() -> dict[str, Any]:
    return {
        "id": "501",
        "type": "PushEvent",
        "actor": {"id": 5, "login": "janedoe"},
        "repo": {"id": 1, "name": "o/r"},
        "payload": {
            "ref": "refs/heads/main",
            "size": 1,
            "commits": [{"message": "Fix it\n\nSigned-off-by: Jane <jane@example.com>"}],
        },
        "created_at": "2026-11-28T11:15:00Z",
    }


def _issue() -> dict[str, Any]:
    return {
        "id": 11,
        "number": 7,
        "title": "Crash on empty page",
        "body": "Steps: run it.",
        "user": {"login": "janedoe"},
        "labels": [{"name": "bug"}, "triage"],
        "state": "open",
        "comments": 3,
        "reactions": {"total_count": 4},
        "created_at": "2026-11-27T10:00:00Z",
        "updated_at": "2026-11-28T11:30:00Z",
        "closed_at": None,
        "html_url": "https://github.com/o/r/issues/7",
        "repository_url": "https://api.github.com/repos/o/r",
    }


def _repo() -> dict[str, Any]:
    return {
        "id": 1,
        "full_name": "o/r",
        "stargazers_count": 10,
        "subscribers_count": 2,
        "forks_count": 3,
        "open_issues_count": 4,
        "size": 50,
        "language": "Python",
        "pushed_at": "2026-11-28T10:00:00Z",
    }


# ------------------------------------------------------------------------------------------------ pages


@dataclass(frozen=True)
class Shape:
    """How a source's page is built around its items."""

    source: str
    stream: str
    endpoint: str
    templates: tuple[Callable[[], Any], ...]
    envelope: Callable[[list[Any]], Any]
    #: Items are (key, value) pairs of an object rather than list elements (Alpha Vantage bars).
    keyed: bool = False


def _av_envelope(bars: list[Any]) -> Any:
    return {
        "Meta Data": {"1. Information": "Daily", "2. Symbol": "IBM", "5. Time Zone": "US/Eastern"},
        "Time Series (Daily)": dict(bars),
    }


SHAPES: dict[str, list[Shape]] = {
    "reddit": [
        Shape(
            "reddit",
            "new:python",
            "/r/python/new",
            (_reddit_post, _reddit_comment),
            lambda items: {"kind": "Listing", "data": {"after": None, "children": items}},
        )
    ],
    "x": [
        Shape(
            "x",
            "search:python",
            "/2/tweets/search/recent",
            (_tweet,),
            lambda items: {
                "data": items,
                "includes": {"users": [{"id": "12", "username": "alice", "name": "Alice"}]},
                "meta": {"result_count": len(items)},
            },
        )
    ],
    "newsapi": [
        Shape(
            "newsapi",
            "everything:bitcoin",
            "/v2/everything",
            (_article,),
            lambda items: {"status": "ok", "totalResults": len(items), "articles": items},
        )
    ],
    "alphavantage": [
        Shape(
            "alphavantage",
            "daily:IBM",
            "/query",
            (lambda: ["2026-11-26", _bar()], lambda: ["2026-11-25", _bar()]),
            _av_envelope,
            keyed=True,
        )
    ],
    "openweathermap": [
        Shape(
            "openweathermap",
            "current:London",
            "/data/2.5/weather",
            (lambda: _weather(EPOCH + 1800),),
            lambda items: {
                "cod": 200,
                "coord": {"lat": 51.5, "lon": -0.1},
                "sys": {"country": "GB"},
                **(items[0] if items and isinstance(items[0], dict) else {}),
            },
        ),
        Shape(
            "openweathermap",
            "forecast:London",
            "/data/2.5/forecast",
            (lambda: _weather(EPOCH + 3 * 3600), lambda: _weather(EPOCH + 6 * 3600)),
            lambda items: {"cod": "200", "list": items, "city": {"coord": {"lat": 51.5, "lon": -0.1}}},
        ),
    ],
    "github": [
        Shape("github", "events:o/r", "/repos/o/r/events", (_event,), lambda items: items),
        Shape("github", "issues:o/r", "/repos/o/r/issues", (_issue,), lambda items: items),
        Shape(
            "github",
            f"repo:o/r@{END}",
            "/repos/o/r",
            (_repo,),
            lambda items: items[0] if items else _repo(),
        ),
        Shape(
            "github",
            f"search:stars@{END}",
            "/search/repositories",
            (_repo,),
            lambda items: {"total_count": len(items), "items": items},
        ),
    ],
}

SOURCES = tuple(SHAPES)


@st.composite
def items_of(draw: Any, shape: Shape, max_items: int = 4) -> list[Any]:
    """A few hostile items of ``shape``, often with one of them twice (the same item delivered again)."""
    single = shape.stream.startswith(("repo:", "current:"))
    count = 1 if single else draw(st.integers(0, max_items))
    items = [draw(mutated(draw(st.sampled_from(shape.templates))())) for _ in range(count)]
    if shape.keyed:  # [key, value] pairs of one JSON object: keys are text
        pairs = [
            item if isinstance(item, list) and len(item) == 2 else ["2026-11-20", item] for item in items
        ]
        items = [[k if isinstance(k, str) else str(k), v] for k, v in pairs]
    if items and not single and draw(st.booleans()):
        items.append(copy.deepcopy(items[draw(st.integers(0, len(items) - 1))]))
    return items


def body_text(doc: Any) -> str:
    """JSON text as a hostile API sends it: NaN as a bare token, surrogates as ``\\udXXX`` escapes."""
    return json.dumps(doc, allow_nan=True)


@st.composite
def pages(draw: Any, source: str, page_id: int = 1) -> tuple[StoredPage, int]:
    """A stored page of ``source`` with hostile items, and how many items the page holds."""
    shape = draw(st.sampled_from(SHAPES[source]))
    items = draw(items_of(shape))
    doc = shape.envelope(items)
    if shape.keyed:
        count = len(doc["Time Series (Daily)"])
    elif shape.stream.startswith(("repo:", "current:")):
        count = 1
    else:
        count = len(items)
    page = StoredPage(
        id=page_id, source=source, stream=shape.stream, endpoint=shape.endpoint, body=body_text(doc)
    )
    return page, count


def shifted(body: str, seconds: int = 1800) -> str:
    """The page re-delivered with every creation time moved by ``seconds`` (as NewsAPI moves ``publishedAt``):
    ISO 8601 strings and epoch seconds near :data:`EPOCH` are shifted, everything else is kept."""

    def shift(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: shift(v) for k, v in node.items()}
        if isinstance(node, list):
            return [shift(v) for v in node]
        if isinstance(node, str) and _ISO.match(node) and len(node) > 10:
            try:
                ts = datetime.fromisoformat(node.replace("Z", "+00:00"))
                return (ts + timedelta(seconds=seconds)).isoformat()
            except (ValueError, OverflowError):
                return node
        if isinstance(node, int | float) and not isinstance(node, bool) and abs(node - EPOCH) < 10**7:
            return node + seconds
        return node

    try:
        return body_text(shift(json.loads(body)))
    except (ValueError, RecursionError):
        return body


#: Bodies that are not pages: garbage, HTML, cut JSON, JSON of another shape, nesting beyond any decoder.
raw_bodies = st.one_of(
    st.text(any_char, max_size=40),
    st.sampled_from(
        [
            "",
            "<html><body>502</body></html>",
            '{"kind": "Listing", "data": {"children": [',
            "[" * 100_000 + "]" * 100_000,
            '{"a": ' * 50_000 + "1" + "}" * 50_000,
            "NaN",
            "1" * 5_000,
            '{"status": "ok", "totalResults": 1e999, "articles": []}',
        ]
    ),
    json_values.map(body_text),
)
