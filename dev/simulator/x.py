"""X (Twitter) API v2 source of the simulator: ``GET /2/tweets/search/recent``.

Content is a pure function of ``(seed, query, hour)``: every query has ``tweets_per_hour`` tweets in every
UTC hour, their times spread inside the hour by ``random.Random(sha256(seed:query:hour))``; everything else
about a tweet (author, text, entities, metrics) comes from its own seeded generator, so a tweet has the same
bytes whatever page shows it. Distinct queries have distinct tweets (the simulator does not search text).

Ids are snowflakes like X's: ``(ms since 2010-11-04T01:42:54.657Z) << 22 | worker << 12 | index``, with
the worker derived from the query, so they sort by time and ``created_at`` can be read back from an id.
About ``reply_ratio`` of the tweets answer an earlier tweet of the same query and hour (``conversation_id``,
``in_reply_to_user_id``, ``referenced_tweets`` and a leading ``@mention``). Authors come from a pool of 5,000
users shared by every query.

Like the real endpoint it honours ``tweet.fields``, ``user.fields`` and ``expansions`` (``author_id``,
``in_reply_to_user_id``, ``entities.mentions.username``, ``referenced_tweets.id`` and
``referenced_tweets.id.author_id`` fill ``includes``), pages newest first with ``max_results`` (10..100) and
an opaque 45-character ``next_token``, and validates ``start_time``/``end_time`` against its clock: a start
older than 7 days, or a start or end less than 10 s before now, gives the real 400 "Invalid Request" body.
A missing ``start_time`` means now - 7 days, a missing ``end_time`` now - 30 s.

Faults: the generic switches of the core (``rate_limit``, ``server_errors``, ``latency_ms``, ``malformed``,
``drift``, playback), ``reject_auth`` (401), ``forbidden`` (403 client-forbidden), ``retry_after_header``
(add ``Retry-After`` to 429s; X itself only sends ``x-rate-limit-reset``), ``duplicate_across_pages`` (each
page after the first repeats the previous page's last tweet) and ``bad_items_ratio`` (tweets served broken:
no id, an unparseable or future ``created_at``, a NUL byte in the text, a text over 100 kB, no text).

Every response carries ``x-rate-limit-limit/remaining/reset`` (reset as epoch seconds of the simulated
clock) and a ``Date`` of the simulated clock, so clients can compute waits the way they must with the real
API: ``x-rate-limit-reset`` minus the server's ``Date``.
"""

from __future__ import annotations

import email.utils
import random
import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from dev.simulator import text as _text
from dev.simulator.core import (
    Request,
    Response,
    Route,
    ServedItem,
    Source,
    Window,
    json_response,
    register_source,
    stable_fraction,
    stable_hash,
    to_base36,
)

ENDPOINT = "/2/tweets/search/recent"
CONTENT_TYPE = "application/json; charset=utf-8"
HOUR_MS = 3_600_000
SNOWFLAKE_EPOCH_MS = 1288834974657
MAX_PER_HOUR = 4096  # the 12-bit sequence part of a snowflake
USERS = 5000
REACH_SECONDS = 7 * 86400
MIN_LAG_SECONDS = 10
DEFAULT_END_LAG_SECONDS = 30
FUTURE_SECONDS = 10 * 86400
HUGE_TEXT_CHARS = 110_000
TOKEN_POS_CHARS = 13
TOKEN_CHARS = 45
BAD_KINDS: tuple[str, ...] = (
    "missing_id",
    "bad_timestamp",
    "future_timestamp",
    "nul_byte",
    "huge_text",
    "missing_text",
)

UNAUTHORIZED = {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
TOO_MANY = {"title": "Too Many Requests", "type": "about:blank", "status": 429, "detail": "Too Many Requests"}
NOT_FOUND = {"title": "Not Found Error", "type": "about:blank", "status": 404, "detail": "Not Found"}
FORBIDDEN = {
    "client_id": "27182818",
    "required_enrollment": "Appropriate Level of API Access",
    "registration_url": "https://developer.x.com/en/portal/product",
    "title": "Client Forbidden",
    "detail": "This request must be made using an approved developer account that is enrolled in the "
    "requested endpoint. Learn more by visiting our documentation.",
    "reason": "client-not-enrolled",
    "type": "https://api.twitter.com/2/problems/client-forbidden",
}
CACHE_CONTROL = "no-cache, no-store, max-age=0"

# What the real endpoint accepts (values outside these lists get a 400).
QUERY_PARAMS = (
    "query",
    "start_time",
    "end_time",
    "since_id",
    "until_id",
    "max_results",
    "next_token",
    "pagination_token",
    "sort_order",
    "expansions",
    "tweet.fields",
    "user.fields",
    "media.fields",
    "place.fields",
    "poll.fields",
)
TWEET_FIELDS = (
    "article",
    "attachments",
    "author_id",
    "card_uri",
    "context_annotations",
    "conversation_id",
    "created_at",
    "display_text_range",
    "edit_controls",
    "edit_history_tweet_ids",
    "entities",
    "geo",
    "id",
    "in_reply_to_user_id",
    "lang",
    "non_public_metrics",
    "note_tweet",
    "organic_metrics",
    "possibly_sensitive",
    "promoted_metrics",
    "public_metrics",
    "referenced_tweets",
    "reply_settings",
    "scopes",
    "source",
    "text",
    "withheld",
)
USER_FIELDS = (
    "affiliation",
    "connection_status",
    "created_at",
    "description",
    "entities",
    "id",
    "location",
    "most_recent_tweet_id",
    "name",
    "pinned_tweet_id",
    "profile_banner_url",
    "profile_image_url",
    "protected",
    "public_metrics",
    "receives_your_dm",
    "subscription_type",
    "url",
    "username",
    "verified",
    "verified_type",
    "withheld",
)
EXPANSIONS = (
    "attachments.media_keys",
    "attachments.poll_ids",
    "author_id",
    "edit_history_tweet_ids",
    "entities.mentions.username",
    "geo.place_id",
    "in_reply_to_user_id",
    "referenced_tweets.id",
    "referenced_tweets.id.author_id",
)
DEFAULT_TWEET_FIELDS = ("id", "text", "edit_history_tweet_ids")
_HASHTAG_RE = re.compile(r"(?<![\w&])#(\w+)")
DEFAULT_USER_FIELDS = ("id", "name", "username")

# --------------------------------------------------------------------------------------------------
# vocabulary
# --------------------------------------------------------------------------------------------------

SENTENCES: tuple[str, ...] = (
    "Just shipped a new release, changelog below 🚀",
    "Hot take: most dashboards nobody looks at should be deleted.",
    "Spent the whole afternoon chasing a timezone bug. It was UTC all along.",
    "Reading the docs before asking saved me an hour today 📚",
    "Anyone else seeing slow builds this week?",
    "Small wins: the nightly job finished in half the time ⏱️",
    "Thread on what we learned migrating our pipelines 🧵",
    "This is the clearest explanation I've seen so far.",
    "Conference talk slides are up, feedback welcome!",
    "Pro tip: pin your dependencies. Future you will thank you.",
    "We are hiring! Remote friendly, DMs open.",
    "Benchmarks look great on paper, let's see production 📈",
    "Coffee first, then code ☕",
    "Finally understood why the retries kept piling up.",
    "Weekend project: a tiny CLI that tracks my reading list.",
    "The new version fixed the memory leak we reported 🎉",
    "Not sure this scales past a few thousand rows, thoughts?",
    "Great community call today, recording coming soon.",
    "Rewrote it three times and the first version was fine 😅",
    "If your tests are flaky, your tests are telling you something.",
)
HASHTAGS: tuple[str, ...] = (
    "DataEngineering",
    "OpenSource",
    "100DaysOfCode",
    "DevOps",
    "MachineLearning",
    "BuildInPublic",
    "TechTwitter",
    "Analytics",
)
LINKS: tuple[str, ...] = (
    "https://github.com/example/project/releases/tag/v2.4.0",
    "https://blog.example.dev/posts/pipelines-at-scale",
    "https://docs.example.org/guide/getting-started",
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
    "https://news.example.com/2026/11/tech-roundup",
)
SOURCES_APPS: tuple[str, ...] = ("Twitter Web App", "Twitter for iPhone", "Twitter for Android", "TweetDeck")
LANGS: tuple[tuple[str, float], ...] = (("en", 0.7), ("es", 0.08), ("de", 0.06), ("fr", 0.06), ("und", 0.1))
FIRST_NAMES: tuple[str, ...] = (
    "Ada",
    "Grace",
    "Linus",
    "Margaret",
    "Ken",
    "Barbara",
    "Dennis",
    "Frances",
    "Alan",
    "Katherine",
    "Guido",
    "Radia",
)
LAST_NAMES: tuple[str, ...] = (
    "Lovelace",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Thompson",
    "Liskov",
    "Ritchie",
    "Allen",
    "Turing",
    "Johnson",
    "Rossum",
    "Perlman",
)
HANDLE_WORDS: tuple[str, ...] = (
    "data",
    "code",
    "byte",
    "cloud",
    "dev",
    "pixel",
    "stack",
    "query",
    "null",
    "lambda",
)


def _iso_ms(epoch_ms: int) -> str:
    """``2026-11-28T11:59:30.123Z`` like X's ``created_at``."""
    dt = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def _minute(epoch: float) -> str:
    """``2026-11-21T12:00Z``: how X quotes times in its 400 messages."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%MZ")


def _parse_rfc3339(value: str) -> float | None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})", value):
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.timestamp()


def _keyword(query: str) -> str:
    """The free-text words of a query (operators such as ``lang:en`` or ``-is:retweet`` dropped)."""
    words = [w.strip('"()') for w in query.split() if ":" not in w and not w.startswith("-")]
    words = [w for w in words if w and w.upper() not in ("OR", "AND")]
    return " ".join(words) or "news"


def _lang_of(query: str) -> str | None:
    match = re.search(r"(?:^|\s)lang:([a-z]{2,3})\b", query)
    return match.group(1) if match else None


def _huge_text(seed_text: str) -> str:
    filler = " ".join(SENTENCES)
    return f"{seed_text} {' '.join([filler] * (HUGE_TEXT_CHARS // len(filler) + 1))}"


# --------------------------------------------------------------------------------------------------
# tweet skeletons
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """Where a tweet lives: its query and hour bucket, index, time, id, author and thread."""

    query: str
    hour: int
    idx: int
    created_ms: int
    tweet_id: int
    author: int
    parent: int | None  # index of the answered tweet in the same bucket
    conversation_id: int
    retweet_of: int | None = None  # index of the retweeted tweet in the same bucket
    spike: bool = False  # one of the extra tweets of a configured spike


class _LRU:
    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        value = self.data.get(key)
        if value is not None:
            self.data.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        self.data[key] = value
        self.data.move_to_end(key)
        while len(self.data) > self.size:
            self.data.popitem(last=False)


class _Invalid(Exception):
    """A request the real API answers with 400 Invalid Request; carries X's error items."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors = errors


def _param_error(name: str, value: str | None, message: str) -> dict[str, Any]:
    return {"parameters": {name: [value] if value is not None else []}, "message": message}


def _invalid_request(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "errors": errors,
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }


@dataclass(frozen=True)
class _Search:
    """A validated search request."""

    query: str
    start_ms: int
    end_ms: int
    max_results: int
    after_id: int | None
    tweet_fields: frozenset[str]
    user_fields: frozenset[str]
    expansions: frozenset[str]


# --------------------------------------------------------------------------------------------------
# the source
# --------------------------------------------------------------------------------------------------


@register_source
class XSource(Source):
    """Simulated X API v2 recent search (what tweepy 4.17 ``Client.search_recent_tweets`` calls)."""

    name: ClassVar[str] = "x"
    defaults: ClassVar[dict[str, Any]] = {
        "credentials": {"bearer_token": "sim-x-bearer-token"},
        "tweets_per_hour": 30,
        "reply_ratio": 0.3,
        # Planted near-duplicates: this share of a query's tweets are "RT @user: ..." copies of an earlier
        # tweet of the same query and hour (none for queries with -is:retweet). See dev/simulator/text.py.
        "retweet_ratio": 0.15,
        "ratelimit_budget": 450,
        "ratelimit_window": 900,
        "reject_auth": False,
        "forbidden": False,
        "retry_after_header": False,
        "rate_limit": {"count": 0, "retry_after": 1},
        "server_errors": {"count": 0, "status": 503},
        "latency_ms": 0,
        "malformed": {"count": 0, "always": False, "skip": 0},
        "bad_items_ratio": 0.0,
        # Like results shifting while they are paged: each page after the first repeats the last tweet of
        # the page before it.
        "duplicate_across_pages": False,
    }
    fault_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "reject_auth",
            "forbidden",
            "retry_after_header",
            "rate_limit",
            "server_errors",
            "latency_ms",
            "malformed",
            "bad_items_ratio",
            "duplicate_across_pages",
        }
    )

    def __init__(self, sim: Any) -> None:
        super().__init__(sim)
        self._buckets = _LRU(4096)
        self._tweets = _LRU(8192)

    # -- framework hooks -----------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        """Recent search, and X's 404 for any other ``/2/`` path."""
        return [
            Route("GET", ENDPOINT, self.search_recent),
            Route("*", r"/2(?:/.*)?", self.not_found),
        ]

    def check_config(self, config: Any) -> None:
        """Range checks on top of the core's type checks."""
        if not 0 <= config["tweets_per_hour"] < MAX_PER_HOUR:
            raise ValueError(f"x.tweets_per_hour must be in [0, {MAX_PER_HOUR})")
        for key in ("bad_items_ratio", "reply_ratio", "retweet_ratio"):
            if not 0.0 <= config[key] <= 1.0:
                raise ValueError(f"x.{key} must be in [0, 1]")
        if not 400 <= config["server_errors"]["status"] <= 599:
            raise ValueError("x.server_errors.status must be a 4xx/5xx code")
        if config["ratelimit_window"] < 1:
            raise ValueError("x.ratelimit_window must be >= 1")

    def authorize(self, request: Request) -> Response | None:
        """App-only auth: ``Authorization: Bearer <the configured bearer token>``."""
        scheme, _, token = request.header("Authorization").strip().partition(" ")
        expected = self.config["credentials"]["bearer_token"]
        if self.config["reject_auth"] or scheme.lower() != "bearer" or token.strip() != expected:
            return json_response(401, UNAUTHORIZED, content_type=CONTENT_TYPE)
        if self.config["forbidden"]:
            return json_response(403, FORBIDDEN, content_type=CONTENT_TYPE)
        return None

    def rate_limited(self, retry_after: int) -> Response:
        """429 as X sends it (the ``x-rate-limit-*`` headers come from :meth:`api_headers`)."""
        headers = {"Retry-After": str(retry_after)} if self.config["retry_after_header"] else {}
        return json_response(429, TOO_MANY, headers, content_type=CONTENT_TYPE)

    def not_found(self, request: Request, match: Any = None) -> Response:
        """X's problem-JSON 404."""
        return json_response(404, NOT_FOUND, content_type=CONTENT_TYPE)

    def api_headers(self, window: Window, throttled: bool) -> dict[str, str]:
        """``x-rate-limit-*`` (reset = epoch seconds), ``Date`` of the simulated clock, X's fixed headers."""
        now = self.sim.now()
        wait = int(self.config["rate_limit"].get("retry_after", 1)) if throttled else window.reset
        return {
            "api-version": "2.52",
            "cache-control": CACHE_CONTROL,
            "x-access-level": "read",
            "x-rate-limit-limit": str(window.budget),
            "x-rate-limit-remaining": str(0 if throttled else window.remaining),
            "x-rate-limit-reset": str(int(now) + wait),
            # The core's HTTP handler also writes a Date of the real clock, first; clients reading the
            # server clock take the last Date value.
            "Date": email.utils.formatdate(now, usegmt=True),
        }

    # -- the endpoint --------------------------------------------------------------------------------
    def search_recent(self, request: Request, match: Any) -> Response:
        """``GET /2/tweets/search/recent``: tweets of the query in ``[start_time, end_time)``, newest first."""
        try:
            search = self._parse(request)
        except _Invalid as exc:
            return json_response(400, _invalid_request(exc.errors), content_type=CONTENT_TYPE)
        slots = self._matching(search)
        if self.config["duplicate_across_pages"] and search.after_id is not None and slots:
            repeated = self._slot_by_id(search.query, search.after_id)
            if repeated is not None:
                slots = [repeated, *slots]
        page = slots[: search.max_results]
        more = len(slots) > search.max_results
        now = request.now
        data: list[dict[str, Any]] = []
        served: list[ServedItem] = []
        for slot in page:
            tweet = self._filtered_tweet(slot, search.tweet_fields)
            bad = self._bad_kinds(slot.query, slot.hour).get(slot.idx)
            if bad is not None:
                _break(tweet, bad, now)
            data.append(tweet)
            served.append(ServedItem(str(slot.tweet_id), ENDPOINT, bad))
        if not page:
            return json_response(
                200, {"meta": {"result_count": 0}}, content_type=CONTENT_TYPE, malformable=True
            )
        body: dict[str, Any] = {"data": data}
        includes = self._includes(page, search)
        if includes:
            body["includes"] = includes
        meta: dict[str, Any] = {
            "newest_id": str(page[0].tweet_id),
            "oldest_id": str(page[-1].tweet_id),
            "result_count": len(page),
        }
        if more:
            meta["next_token"] = self._token(search.query, page[-1].tweet_id)
        body["meta"] = meta
        return json_response(200, body, content_type=CONTENT_TYPE, served=served, malformable=True)

    def _parse(self, request: Request) -> _Search:
        """Validate the query string the way the real endpoint does; raise :class:`_Invalid`."""
        q = request.query
        errors: list[dict[str, Any]] = []
        for name in q:
            if name not in QUERY_PARAMS:
                errors.append(
                    _param_error(
                        name,
                        q[name],
                        f"The query parameter [{name}] is not one of [{','.join(QUERY_PARAMS)}]",
                    )
                )
        query = q.get("query", "")
        if not query.strip():
            errors.append(_param_error("query", None, "The `query` query parameter can not be empty"))
        elif len(query) > 512:
            errors.append(
                _param_error(
                    "query", query, f"The `query` query parameter value is {len(query)} characters long"
                )
            )
        raw_max = q.get("max_results", "10")
        max_results = int(raw_max) if raw_max.isdigit() else -1
        if not 10 <= max_results <= 100:
            errors.append(
                _param_error(
                    "max_results",
                    raw_max,
                    f"The `max_results` query parameter value [{raw_max}] is not between 10 and 100",
                )
            )
        fields: dict[str, frozenset[str]] = {}
        for name, allowed in (
            ("tweet.fields", TWEET_FIELDS),
            ("user.fields", USER_FIELDS),
            ("expansions", EXPANSIONS),
        ):
            values = [v for v in q.get(name, "").split(",") if v]
            for value in values:
                if value not in allowed:
                    errors.append(
                        _param_error(
                            name,
                            value,
                            f"The `{name}` query parameter value [{value}] is not one of [{','.join(allowed)}]",
                        )
                    )
            fields[name] = frozenset(values)
        now = request.now
        start, end = self._times(q, now, errors)
        after_id: int | None = None
        token = q.get("next_token") or q.get("pagination_token")
        if token:
            after_id = self._decode_token(query, token)
            if after_id is None:
                name = "next_token" if q.get("next_token") else "pagination_token"
                errors.append(
                    _param_error(
                        name,
                        token,
                        f"The `{name}` query parameter value [{token}] is not valid for this request",
                    )
                )
        if errors:
            raise _Invalid(errors)
        return _Search(
            query=query,
            start_ms=int(start * 1000),
            end_ms=int(end * 1000),
            max_results=max_results,
            after_id=after_id,
            tweet_fields=frozenset(DEFAULT_TWEET_FIELDS) | fields["tweet.fields"],
            user_fields=frozenset(DEFAULT_USER_FIELDS) | fields["user.fields"],
            expansions=fields["expansions"],
        )

    def _times(self, q: dict[str, str], now: float, errors: list[dict[str, Any]]) -> tuple[float, float]:
        """``start_time``/``end_time`` with X's defaults and rules (errors appended, never raised)."""
        bounds: dict[str, float] = {}
        for name in ("start_time", "end_time"):
            raw = q.get(name)
            if raw is None:
                continue
            parsed = _parse_rfc3339(raw)
            if parsed is None:
                errors.append(
                    _param_error(
                        name,
                        raw,
                        f"Invalid '{name}':'{raw}'. '{name}' must be a valid RFC3339 date-time "
                        "(YYYY-MM-DDTHH:mm:ssZ)",
                    )
                )
                continue
            bounds[name] = parsed
        start = bounds.get("start_time", now - REACH_SECONDS)
        end = bounds.get("end_time", now - DEFAULT_END_LAG_SECONDS)
        oldest = now - REACH_SECONDS
        if "start_time" in bounds:
            shown = _minute(start)
            if start < oldest:
                errors.append(
                    _param_error(
                        "start_time",
                        shown,
                        f"Invalid 'start_time':'{shown}'. 'start_time' must be on or after {_minute(oldest)}",
                    )
                )
            elif start > now - MIN_LAG_SECONDS:
                errors.append(
                    _param_error(
                        "start_time",
                        shown,
                        f"Invalid 'start_time':'{shown}'. 'start_time' must be a minimum of 10 seconds prior "
                        "to the request time.",
                    )
                )
        if "end_time" in bounds:
            shown = _minute(end)
            if end > now - MIN_LAG_SECONDS:
                errors.append(
                    _param_error(
                        "end_time",
                        shown,
                        f"Invalid 'end_time':'{shown}'. 'end_time' must be a minimum of 10 seconds prior to "
                        "the request time.",
                    )
                )
            elif end <= start and "start_time" in bounds:
                errors.append(
                    _param_error(
                        "end_time",
                        shown,
                        f"Invalid 'end_time':'{shown}'. 'end_time' must be after 'start_time'.",
                    )
                )
        return start, end

    # -- paging --------------------------------------------------------------------------------------
    def _token(self, query: str, last_id: int) -> str:
        """An opaque cursor: the last served id (base36) and a checksum over seed and query."""
        pos = to_base36(last_id).rjust(TOKEN_POS_CHARS, "0")
        check = to_base36(stable_hash(self.sim.seed, "next_token", query, last_id)).rjust(40, "0")
        return (pos + check)[:TOKEN_CHARS]

    def _decode_token(self, query: str, token: str) -> int | None:
        if len(token) != TOKEN_CHARS or not re.fullmatch(r"[0-9a-z]+", token):
            return None
        last_id = int(token[:TOKEN_POS_CHARS], 36)
        return last_id if self._token(query, last_id) == token else None

    def _matching(self, search: _Search) -> list[Slot]:
        """Every tweet of the query in ``[start, end)`` after the cursor, newest first."""
        if self.config["tweets_per_hour"] <= 0 or search.end_ms <= search.start_ms:
            return []
        out: list[Slot] = []
        for hour in range(search.start_ms // HOUR_MS, (search.end_ms - 1) // HOUR_MS + 1):
            out.extend(
                s
                for s in self._bucket(search.query, hour)
                if search.start_ms <= s.created_ms < search.end_ms
                and (search.after_id is None or s.tweet_id < search.after_id)
            )
        out.sort(key=lambda s: s.tweet_id, reverse=True)
        return out

    def _slot_by_id(self, query: str, tweet_id: int) -> Slot | None:
        """The tweet of ``query`` with this id (its hour is read from the snowflake)."""
        hour = ((tweet_id >> 22) + SNOWFLAKE_EPOCH_MS) // HOUR_MS
        return next((s for s in self._bucket(query, hour) if s.tweet_id == tweet_id), None)

    # -- content -------------------------------------------------------------------------------------
    def _worker(self, query: str) -> int:
        return stable_hash(self.sim.seed, "worker", query) % 1024

    def _bucket(self, query: str, hour: int) -> list[Slot]:
        base = self.config["tweets_per_hour"]
        ratio = self.config["reply_ratio"]
        rt_ratio = 0.0 if "-is:retweet" in query.lower() else self.config["retweet_ratio"]
        seed = self.sim.seed
        spike = self.sim.spike
        extra = spike.extra("x", hour * HOUR_MS / 1000, HOUR_MS / 1000, base) if spike else 0
        count = min(base + extra, MAX_PER_HOUR - 1)
        key = (seed, query, hour, count, ratio, rt_ratio, spike)
        cached = self._buckets.get(key)
        if cached is not None:
            return cached
        rng = random.Random(stable_hash(seed, "x", query, hour))
        times = [hour * HOUR_MS + rng.randrange(HOUR_MS) for _ in range(count)]
        worker = self._worker(query)
        slots: list[Slot] = []
        for idx in sorted(range(count), key=lambda i: (times[i], i)):
            created = times[idx]
            tweet_id = ((created - SNOWFLAKE_EPOCH_MS) << 22) | (worker << 12) | idx
            trng = random.Random(stable_hash(seed, "thread", query, hour, idx))
            author = trng.randrange(USERS)
            parent: Slot | None = None
            retweet_of: int | None = None
            originals = [s for s in slots if s.retweet_of is None]
            rt_rng = random.Random(stable_hash(seed, "retweet", query, hour, idx))
            if originals and idx < base and rt_rng.random() < rt_ratio:
                retweet_of = rt_rng.choice(originals).idx
            elif slots and trng.random() < ratio:
                parent = trng.choice(slots)
            slots.append(
                Slot(
                    query=query,
                    hour=hour,
                    idx=idx,
                    created_ms=created,
                    tweet_id=tweet_id,
                    author=author,
                    parent=parent.idx if parent else None,
                    conversation_id=parent.conversation_id if parent else tweet_id,
                    retweet_of=retweet_of,
                    spike=idx >= base,
                )
            )
        slots.sort(key=lambda s: s.idx)
        self._buckets.put(key, slots)
        return slots

    def _user(self, index: int) -> dict[str, Any]:
        """Every field of pool user ``index`` (filtered by ``user.fields`` when served)."""
        key = (self.sim.seed, "user", index)
        cached = self._tweets.get(key)
        if cached is not None:
            return cached
        rng = random.Random(stable_hash(self.sim.seed, "x-user", index))
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        username = f"{rng.choice(HANDLE_WORDS)}_{first.lower()}{index}"
        followers = min(int(rng.paretovariate(0.9) * 20), 5_000_000)
        created_ms = SNOWFLAKE_EPOCH_MS + rng.randrange(15 * 365 * 86400) * 1000
        user = {
            "created_at": _iso_ms(created_ms - created_ms % 1000),
            "description": f"{rng.choice(SENTENCES)} Opinions my own.",
            "id": str(10_000_000 + stable_hash(self.sim.seed, "x-user-id", index) % 10**18),
            "location": rng.choice(("Berlin", "London", "Remote", "Lisbon", "Toronto", "")),
            "name": f"{first} {last}",
            "profile_image_url": f"https://pbs.twimg.com/profile_images/{index}/avatar_normal.jpg",
            "protected": False,
            "public_metrics": {
                "followers_count": followers,
                "following_count": rng.randrange(2000),
                "tweet_count": rng.randrange(50_000),
                "listed_count": rng.randrange(200),
                "like_count": rng.randrange(100_000),
                "media_count": rng.randrange(3000),
            },
            "url": "",
            "username": username,
            "verified": rng.random() < 0.05,
            "verified_type": "none",
        }
        self._tweets.put(key, user)
        return user

    def _tweet(self, slot: Slot) -> dict[str, Any]:
        """Every field of the tweet in ``slot`` (the served copy is filtered and maybe broken)."""
        return self._tweet_and_mentions(slot)[0]

    def _tweet_and_mentions(self, slot: Slot) -> tuple[dict[str, Any], tuple[int, ...]]:
        """The tweet in ``slot`` and the pool indices of the users it mentions."""
        key = (self.sim.seed, slot)
        cached = self._tweets.get(key)
        if cached is not None:
            return cached
        rng = random.Random(stable_hash(self.sim.seed, "tweet", slot.query, slot.hour, slot.idx))
        author = self._user(slot.author)
        parent = self._bucket(slot.query, slot.hour)[slot.parent] if slot.parent is not None else None
        parent_user = self._user(parent.author) if parent else None
        text = ""
        hashtags: list[dict[str, Any]] = []
        mentions: list[dict[str, Any]] = []
        mentioned: list[int] = []
        urls: list[dict[str, Any]] = []

        def mention(index: int) -> None:
            nonlocal text
            user = self._user(index)
            mentioned.append(index)
            start = len(text)
            text += f"@{user['username']}"
            mentions.append(
                {"start": start, "end": len(text), "username": user["username"], "id": user["id"]}
            )

        retweeted = (
            self._bucket(slot.query, slot.hour)[slot.retweet_of] if slot.retweet_of is not None else None
        )
        if retweeted is not None:
            # A planted near-duplicate: the API's retweet text, "RT @author: <original text>".
            original = self._tweet(retweeted)["text"]
            mention(retweeted.author)
            text = _text.retweet_text(self._user(retweeted.author)["username"], original)
        else:
            if parent is not None:
                mention(parent.author)
                text += " "
            text += self._real_text(slot, rng)
            hashtags.extend(
                {"start": m.start(), "end": m.end(), "tag": m.group(1)} for m in _HASHTAG_RE.finditer(text)
            )
        if retweeted is None and rng.random() < 0.2:
            text += " cc "
            mention(rng.randrange(USERS))
        if retweeted is None and rng.random() < 0.35:
            link = rng.choice(LINKS)
            short = "https://t.co/" + to_base36(stable_hash("tco", link, slot.created_ms))[:10]
            text += " "
            start = len(text)
            text += short
            display = link.split("://", 1)[1]
            urls.append(
                {
                    "start": start,
                    "end": len(text),
                    "url": short,
                    "expanded_url": link,
                    "display_url": display if len(display) <= 27 else display[:26] + "…",
                }
            )
        lang = _lang_of(slot.query) or _weighted(rng, LANGS)
        likes = min(int(rng.paretovariate(1.2)) - 1, 1_000_000)
        tweet: dict[str, Any] = {
            "author_id": author["id"],
            "conversation_id": str(slot.conversation_id),
            "created_at": _iso_ms(slot.created_ms),
            "edit_history_tweet_ids": [str(slot.tweet_id)],
            "id": str(slot.tweet_id),
            "lang": lang,
            "possibly_sensitive": rng.random() < 0.02,
            "public_metrics": {
                "retweet_count": likes // 4,
                "reply_count": rng.randrange(likes // 5 + 1),
                "like_count": likes,
                "quote_count": likes // 20,
                "bookmark_count": likes // 10,
                "impression_count": likes * 40 + rng.randrange(500),
            },
            "reply_settings": "everyone",
            "source": rng.choice(SOURCES_APPS),
            "text": text,
        }
        entities = {k: v for k, v in (("hashtags", hashtags), ("mentions", mentions), ("urls", urls)) if v}
        if entities:
            tweet["entities"] = entities
        if parent is not None and parent_user is not None:
            tweet["in_reply_to_user_id"] = parent_user["id"]
            tweet["referenced_tweets"] = [{"type": "replied_to", "id": str(parent.tweet_id)}]
        if retweeted is not None:
            tweet["referenced_tweets"] = [{"type": "retweeted", "id": str(retweeted.tweet_id)}]
        self._tweets.put(key, (tweet, tuple(mentioned)))
        return tweet, tuple(mentioned)

    def origin(self, slot: Slot) -> str:
        """The corpus id of the tweet's text (a retweet has its original's): equal origins = copies."""
        if slot.retweet_of is not None:
            return self.origin(self._bucket(slot.query, slot.hour)[slot.retweet_of])
        return self._text_entry(slot)[0].id

    def _text_entry(self, slot: Slot) -> tuple[_text.Entry, list[str]]:
        """The pool entry of a tweet and the words to append to it (the keyword, a spike's term)."""
        seed = self.sim.seed
        keyword = _keyword(slot.query)
        spike = self.sim.spike
        n = slot.hour * max(self.config["tweets_per_hour"], 1) + slot.idx
        if slot.spike and spike is not None:
            name = (
                "tweet"
                if _text.fraction(seed, "x-pool", slot.query, slot.hour, slot.idx) < 0.7
                else "tweet_news"
            )
            entry, add_term = _text.spike_entry(spike, name, seed, slot.query, n)
            return entry, [spike.term] * add_term
        matches = _text.matching("tweet", keyword) + _text.matching("tweet_news", keyword)
        if len(matches) >= _text.MIN_KEYWORD_TEXTS:
            return _text.pick(matches, seed, f"x:{slot.query}", n), []
        # The corpora hold too few tweets with this keyword: any tweet (the keyword is not added: appended to
        # short tweets it made unrelated ones look alike). News accounts are 30 %, people the rest.
        name = (
            "tweet" if _text.fraction(seed, "x-pool", slot.query, slot.hour, slot.idx) < 0.7 else "tweet_news"
        )
        return _text.pick(_text.pool(name), seed, f"x:{name}:{slot.query}", n), []

    def _real_text(self, slot: Slot, rng: random.Random) -> str:
        """A real tweet for the slot, maybe with a cashtag (and a spike's term and keyword when it lacks them)."""
        entry, words = self._text_entry(slot)
        text = _text.cashtag(entry.text, rng)
        for word in words:
            text = _text.with_term(text, word)
        return text

    def _filtered_tweet(self, slot: Slot, fields: frozenset[str]) -> dict[str, Any]:
        tweet = self._tweet(slot)
        return {k: tweet[k] for k in sorted(tweet) if k in fields}

    def _includes(self, page: list[Slot], search: _Search) -> dict[str, Any]:
        """``includes.users`` / ``includes.tweets`` for the requested expansions."""
        exp = search.expansions
        user_ids: list[str] = []
        users: dict[str, dict[str, Any]] = {}

        def add_user(index: int) -> None:
            user = self._user(index)
            if user["id"] not in users:
                user_ids.append(user["id"])
                users[user["id"]] = {k: v for k, v in user.items() if k in search.user_fields}

        referenced: list[Slot] = []
        for slot in page:
            if "author_id" in exp:
                add_user(slot.author)
            parent = self._bucket(slot.query, slot.hour)[slot.parent] if slot.parent is not None else None
            if parent is not None:
                if "in_reply_to_user_id" in exp:
                    add_user(parent.author)
                if "referenced_tweets.id" in exp and parent not in referenced:
                    referenced.append(parent)
                if "referenced_tweets.id.author_id" in exp:
                    add_user(parent.author)
            if "entities.mentions.username" in exp:
                for index in self._tweet_and_mentions(slot)[1]:
                    add_user(index)
        out: dict[str, Any] = {}
        if user_ids:
            out["users"] = [users[i] for i in user_ids]
        if referenced:
            out["tweets"] = [self._filtered_tweet(p, search.tweet_fields) for p in referenced]
        return out

    def _bad_kinds(self, query: str, hour: int) -> dict[int, str]:
        """Which tweets of a bucket are served broken, and how (cycling through BAD_KINDS)."""
        ratio = self.config["bad_items_ratio"]
        if ratio <= 0:
            return {}
        seed = self.sim.seed
        offset = stable_hash(seed, query, hour, "bad-offset") % len(BAD_KINDS)
        out: dict[int, str] = {}
        for slot in sorted(self._bucket(query, hour), key=lambda s: s.created_ms):
            if stable_fraction(seed, "bad", slot.tweet_id) < ratio:
                out[slot.idx] = BAD_KINDS[(offset + len(out)) % len(BAD_KINDS)]
        return out


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def _weighted(rng: random.Random, choices: tuple[tuple[str, float], ...]) -> str:
    roll = rng.random()
    for value, weight in choices:
        roll -= weight
        if roll < 0:
            return value
    return choices[-1][0]


def _break(tweet: dict[str, Any], bad: str, now: float) -> None:
    """Damage a served tweet in place the way ``bad`` says."""
    if bad == "missing_id":
        tweet.pop("id", None)
        tweet.pop("edit_history_tweet_ids", None)
    elif bad == "bad_timestamp":
        tweet["created_at"] = "Sat Nov 28 11:59:59 +0000 2026"  # the v1.1 format: not RFC 3339
    elif bad == "future_timestamp":
        tweet["created_at"] = _iso_ms(int(now + FUTURE_SECONDS) * 1000)
    elif bad == "nul_byte":
        text = tweet.get("text") or "nothing to see here"
        half = len(text) // 2
        tweet["text"] = f"{text[:half]}\u0000{text[half:]}"
    elif bad == "huge_text":
        tweet["text"] = _huge_text(tweet.get("text") or "")
    elif bad == "missing_text":
        tweet.pop("text", None)
