"""X (Twitter) API v2: which searches to page through, and how a recent-search page becomes documents.

Pure functions, no I/O. One stream per configured query (``GET /2/tweets/search/recent`` with the run's
window as ``start_time``/``end_time``, author expansions and public metrics); each tweet of a page becomes a
:class:`~pulse.sources.base.Document` of kind ``tweet`` whose channel is the query.

Reach: recent search serves the last :data:`REACH` (7 days) only, and ``end_time`` must be at least
:data:`END_LAG` (10 s) before the request. :func:`reach` tells the extract operator, which records older
windows as ``beyond_reach`` gaps and clips the rest; the hook still follows what X's own clock says (see
:mod:`pulse.hooks.x`).

Privacy: usernames, display names and user ids (``author_id``, ``in_reply_to_user_id``, mention ids) never
leave ``raw`` in clear. The author is stored as ``pseudonymize(username)`` (falling back to the author id
when the page carries no user expansion); quarantined items are redacted the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pulse.config import ConfigError, int_in, mapping, str_list
from pulse.sources.base import (
    FUTURE_TOLERANCE,
    Document,
    ItemError,
    MalformedPageError,
    ParseOutput,
    Reason,
    StoredPage,
    Stream,
    check_int,
    check_iso,
    check_key,
    check_text,
    checked_pseudonymizer,
    rejected,
)
from pulse.warehouse.pgtypes import sane_epoch, show, storable_text

SOURCE = "x"
SEARCH_RECENT = "/2/tweets/search/recent"
STREAM_PREFIX = "search:"

#: How far back recent search reaches, and how close to "now" a window may end (X API v2 rules).
REACH = timedelta(days=7)
END_LAG = timedelta(seconds=10)

#: What the hook asks for on every search page.
EXPANSIONS = ("author_id",)
TWEET_FIELDS = (
    "created_at",
    "public_metrics",
    "lang",
    "conversation_id",
    "author_id",
    "entities",
    "in_reply_to_user_id",
)
USER_FIELDS = ("username", "name", "verified", "public_metrics")

#: Recent search accepts queries up to 512 characters (Basic and Pro access).
MAX_QUERY_CHARS = 512

#: Keys whose values identify a person: pseudonymised in quarantined items (see :func:`rejected`).
PII_KEYS = frozenset({"author_id", "in_reply_to_user_id", "username", "name"})

# Links to X itself carry account handles (x.com/<handle>/status/<id>): they are rewritten or dropped.
_X_HOSTS = frozenset({"x.com", "twitter.com"})
_STATUS_PATH = re.compile(r"^/(?:[A-Za-z0-9_]+|i/web)/status(?:es)?/(\d+)")

# Tweet ids are snowflakes: milliseconds since this epoch, shifted left by 22 bits.
_SNOWFLAKE_EPOCH_MS = 1288834974657
# Ids below this (older than a day after the snowflake epoch) are pre-2010 sequential ids: no time inside.
_SNOWFLAKE_MIN_ID = 86_400_000 << 22


@dataclass(frozen=True)
class XConfig:
    """The ``x`` entry of ``include/sources.yaml``."""

    conn_id: str
    queries: tuple[str, ...]
    max_results: int


def parse_config(entry: Any, where: str) -> XConfig:
    """Validate the ``x`` entry: ``{conn_id, queries: [...], max_results: 10..100}``.

    :raises ConfigError: naming the bad entry, e.g. ``x.queries[1]: ...``.
    """
    entry = mapping(entry, where, {"conn_id", "queries", "max_results"})
    conn_id = entry.get("conn_id", "x_default")
    if not isinstance(conn_id, str) or not conn_id.strip():
        raise ConfigError(f"{where}.conn_id: {conn_id!r} must be a connection id")
    queries = str_list(entry, "queries", where, pattern=None)
    seen: dict[str, int] = {}
    for i, query in enumerate(queries):
        at = f"{where}.queries[{i}]"
        if not query.strip():
            raise ConfigError(f"{at}: the query is empty")
        if len(query) > MAX_QUERY_CHARS:
            raise ConfigError(
                f"{at}: {len(query)} characters, recent search accepts at most {MAX_QUERY_CHARS}"
            )
        if any(ord(ch) < 32 for ch in query):
            raise ConfigError(f"{at}: {query!r} contains control characters")
        if query in seen:
            raise ConfigError(f"{at}: {query!r} repeats {where}.queries[{seen[query]}]")
        seen[query] = i
    return XConfig(
        conn_id=conn_id,
        queries=queries,
        max_results=int_in(entry, "max_results", where, 10, 100, 100),
    )


def stream_key(query: str) -> str:
    """The stream key of a query (``raw.api_responses.stream``), e.g. ``search:python lang:en``."""
    return f"{STREAM_PREFIX}{query}"


def plan_streams(config: XConfig, window: Any) -> list[Stream]:
    """One recent-search stream per configured query (the window is added by the hook)."""
    return [
        Stream(
            key=stream_key(query),
            endpoint=SEARCH_RECENT,
            params={
                "query": query,
                "max_results": config.max_results,
                "expansions": ",".join(EXPANSIONS),
                "tweet.fields": ",".join(TWEET_FIELDS),
                "user.fields": ",".join(USER_FIELDS),
            },
        )
        for query in config.queries
    ]


#: Slack left at the 7-day edge: X quotes its oldest allowed start to the minute, and the request reaches X a
#: moment after the pipeline's clock was read.
REACH_MARGIN = timedelta(minutes=2)


def reach(stream: Stream) -> timedelta:
    """How far back a stream can be fetched (used by the extract operator to record older windows as gaps):
    recent search serves 7 days, minus :data:`REACH_MARGIN` so that a window clipped to it is accepted."""
    return REACH - REACH_MARGIN


# ------------------------------------------------------------------------------------------------
# page shape
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchInfo:
    """What a recent-search page holds: tweets, the expanded users by id, and the cursor."""

    tweets: list[Any]
    users: dict[str, dict[str, Any]]
    next_token: str | None
    result_count: int


def search_info(body: bytes | str) -> SearchInfo:
    """Check that ``body`` is a recent-search page and return its tweets, users and ``meta.next_token``.

    A page without ``data`` is valid when ``meta.result_count`` is 0 (an empty window).

    :raises MalformedPageError: bad JSON, an HTML page, an error body, or a page of the wrong shape.
    """
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        snippet = (body[:80] if isinstance(body, str) else body[:80].decode("utf-8", "replace")).strip()
        raise MalformedPageError(f"body is not JSON ({exc}); starts with {snippet!r}") from None
    if not isinstance(doc, dict):
        raise MalformedPageError(f"body is JSON {type(doc).__name__}, expected an object with meta")
    meta = doc.get("meta")
    if not isinstance(meta, dict):
        problem = doc.get("title") or doc.get("errors")
        raise MalformedPageError(f"body has no meta object (not a search page; {problem!r})")
    count = meta.get("result_count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise MalformedPageError(f"meta.result_count is {count!r}, expected a count")
    data = doc.get("data")
    if data is None:
        if count != 0:
            raise MalformedPageError(f"page has no data but meta.result_count is {count}")
        data = []
    elif not isinstance(data, list):
        raise MalformedPageError(f"data is {type(data).__name__}, expected a list of tweets")
    token = meta.get("next_token")
    if token is not None and (not isinstance(token, str) or not token):
        raise MalformedPageError(f"meta.next_token is {show(token)}, expected a non-empty string")
    if token is not None:
        try:
            check_key("meta.next_token", token)  # stored as the page's cursor
        except ItemError as exc:
            raise MalformedPageError(f"meta.next_token cannot be stored as a cursor: {exc}") from None
    includes = doc.get("includes", {})
    if not isinstance(includes, dict):
        raise MalformedPageError(f"includes is {type(includes).__name__}, expected an object")
    users = includes.get("users", [])
    if not isinstance(users, list):
        raise MalformedPageError(f"includes.users is {type(users).__name__}, expected a list")
    by_id = {u["id"]: u for u in users if isinstance(u, dict) and isinstance(u.get("id"), str)}
    return SearchInfo(tweets=data, users=by_id, next_token=token, result_count=count)


# ------------------------------------------------------------------------------------------------
# items
# ------------------------------------------------------------------------------------------------


def _tweet_id(tweet: dict[str, Any]) -> str:
    value = tweet.get("id")
    if value is None or value == "":
        raise ItemError(Reason.MISSING_ID, "id is missing")
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        raise ItemError(Reason.BAD_FIELD, f"id is {value!r}, expected a string of digits")
    return value


def snowflake_time(tweet_id: str) -> datetime | None:
    """The creation time encoded in a snowflake tweet id (every id since November 2010), else None."""
    if len(tweet_id) > 25:  # far beyond any snowflake (ids have 19 digits); int() of a huge one would fail
        return None
    number = int(tweet_id)
    if number < _SNOWFLAKE_MIN_ID:
        return None
    seconds = ((number >> 22) + _SNOWFLAKE_EPOCH_MS) / 1000
    if sane_epoch(seconds) is None:
        return None
    return datetime.fromtimestamp(seconds, tz=UTC)


def _created_at(tweet: dict[str, Any], tweet_id: str, now: datetime) -> datetime:
    """``created_at`` when the page has it (it must be valid), else the time inside the snowflake id."""
    if "created_at" in tweet:
        created = check_iso("created_at", tweet["created_at"], now)
        assert created is not None  # required=True
        return created
    created = snowflake_time(tweet_id)
    if created is None:
        raise ItemError(Reason.BAD_TIMESTAMP, "created_at is missing and the id carries no time")
    if created > now + FUTURE_TOLERANCE:
        raise ItemError(Reason.FUTURE_TIMESTAMP, f"id time {created.isoformat()} is after {now.isoformat()}")
    return created


def _optional_str(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ItemError(Reason.BAD_FIELD, f"{name} is {value!r}, expected text")
    return value


def _object(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ItemError(Reason.BAD_FIELD, f"{name} is {type(value).__name__}, expected an object")
    return value


def _entity_list(entities: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = entities.get(key) or []
    if not isinstance(value, list):
        raise ItemError(Reason.BAD_FIELD, f"entities.{key} is {type(value).__name__}, expected a list")
    return [e for e in value if isinstance(e, dict)]


def _handle_free(url: str | None) -> str | None:
    """``url`` unless it names an X account: status links become ``https://x.com/i/web/status/<id>``,
    other x.com / twitter.com links (profiles...) are dropped (None)."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:  # not a URL (an unclosed IPv6 host...): names no X account, kept as text
        return url
    if host.removeprefix("www.").removeprefix("mobile.") not in _X_HOSTS:
        return url
    status = _STATUS_PATH.match(parts.path)
    return f"https://x.com/i/web/status/{status.group(1)}" if status else None


def _author_pseudonym(
    author_id: str | None,
    users: dict[str, dict[str, Any]],
    pseudonymize: Callable[[str | None], str | None],
) -> str | None:
    if author_id is None:
        return None
    username = users.get(author_id, {}).get("username")
    return pseudonymize(username if isinstance(username, str) and username else author_id)


def parse_item(
    tweet: Any,
    users: dict[str, dict[str, Any]],
    channel: str | None,
    pseudonymize: Callable[[str | None], str | None],
    now: datetime,
) -> Document:
    """Turn one tweet of ``data`` into a document, or raise :class:`ItemError` with a reason."""
    if not isinstance(tweet, dict):
        raise ItemError(Reason.NOT_AN_OBJECT, f"tweet is {type(tweet).__name__}, expected an object")
    tweet_id = _tweet_id(tweet)
    created_at = _created_at(tweet, tweet_id, now)
    text = check_text("text", tweet.get("text"), required=True)
    author_id = _optional_str("author_id", tweet.get("author_id"))
    conversation_id = _optional_str("conversation_id", tweet.get("conversation_id"))
    lang = _optional_str("lang", tweet.get("lang"))
    in_reply_to = _optional_str("in_reply_to_user_id", tweet.get("in_reply_to_user_id")) is not None
    public_metrics = _object("public_metrics", tweet.get("public_metrics"))
    score = check_int("public_metrics.like_count", public_metrics.get("like_count"))
    metrics = {
        k: v for k, v in public_metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    entities = _object("entities", tweet.get("entities"))
    hashtags = [check_text("entities.hashtags.tag", h.get("tag")) for h in _entity_list(entities, "hashtags")]
    urls = [
        _handle_free(check_text("entities.urls.expanded_url", u.get("expanded_url") or u.get("url")))
        for u in _entity_list(entities, "urls")
    ]
    references = tweet.get("referenced_tweets") or []
    if not isinstance(references, list):
        raise ItemError(Reason.BAD_FIELD, "referenced_tweets is not a list")
    replied = any(isinstance(r, dict) and r.get("type") == "replied_to" for r in references)
    payload: dict[str, Any] = {
        "lang": lang,
        "conversation_id": conversation_id,
        "reply": replied or (conversation_id is not None and conversation_id != tweet_id),
        "hashtags": [h for h in hashtags if h],
        "mentions": len(_entity_list(entities, "mentions")),
        "urls": [u for u in urls if u],
        "in_reply_to": in_reply_to,
    }
    return Document(
        source=SOURCE,
        external_id=tweet_id,
        kind="tweet",
        created_at=created_at,
        channel=channel,
        title=None,
        body=text,
        url=f"https://x.com/i/web/status/{tweet_id}",
        author_pseudonym=_author_pseudonym(author_id, users, pseudonymize),
        score=score,
        metrics=metrics,
        payload=payload,
    )


def channel_of(stream: str) -> str | None:
    """The query a stream key stands for (``search:<query>`` -> ``<query>``)."""
    if stream.startswith(STREAM_PREFIX):
        return stream[len(STREAM_PREFIX) :]
    return stream or None


def parse_page(
    page: StoredPage, pseudonymize: Callable[[str | None], str | None], now: datetime
) -> ParseOutput:
    """Yield ``(item_index, Document | Rejected)`` for every tweet of a stored recent-search page."""
    info = search_info(page.body)
    channel = channel_of(page.stream)
    checked = checked_pseudonymizer(pseudonymize)
    for index, tweet in enumerate(info.tweets):
        try:
            yield index, parse_item(tweet, info.users, channel, checked, now)
        except ItemError as exc:
            yield (
                index,
                rejected(index, exc, _known_id(tweet), _scrub(tweet, pseudonymize), PII_KEYS, pseudonymize),
            )


def _known_id(tweet: Any) -> str | None:
    """The tweet id when it can be told, for keying its quarantine row."""
    if not isinstance(tweet, dict):
        return None
    try:
        return _tweet_id(tweet)
    except ItemError:
        return None


def _scrub(tweet: Any, pseudonymize: Callable[[str | None], str | None]) -> Any:
    """A copy of ``tweet`` whose mention ids are pseudonymised (the id key cannot be a PII key: the
    tweet's own id is one). Usernames and author ids are handled by :func:`rejected` through PII_KEYS."""
    if not isinstance(tweet, dict) or not isinstance(tweet.get("entities"), dict):
        return tweet
    mentions = tweet["entities"].get("mentions")
    if not isinstance(mentions, list):
        return tweet
    # A shallow copy down to the mentions (a deep copy of a hostile, deeply nested tweet would overflow).
    out = dict(tweet)
    out["entities"] = dict(tweet["entities"])
    out["entities"]["mentions"] = [
        {**m, "id": pseudonymize(storable_text(m["id"]))}
        if isinstance(m, dict) and isinstance(m.get("id"), str)
        else m
        for m in mentions
    ]
    return out


# ------------------------------------------------------------------------------------------------
# the declaration: everything else about this source derives from it (pulse.sources.spec,
# docs/adding-a-source.md)
# ------------------------------------------------------------------------------------------------

from datetime import timedelta  # noqa: E402

from pulse.sources.spec import Freshness, SourceSpec  # noqa: E402

SPEC = SourceSpec(
    name="x",
    title="X API v2 recent search",
    hook="pulse.hooks.x:XHook",
    schedule="15 * * * *",
    default_window=timedelta(hours=1),
    pool_slots=1,
    budgets=((900, 60),),  # recent search, app-only
    budget_note="60 requests/15 min on Basic",
    tables=("core.documents",),
    freshness=Freshness("core.documents", max_age_minutes=180, severity="critical"),
    conn_defaults={"host": "https://api.twitter.com"},
    local_conn={"password": "sim-x-bearer-token"},
)
