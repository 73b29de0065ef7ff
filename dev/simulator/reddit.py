"""Reddit source of the simulator: OAuth token endpoint, subreddit listings, submission pages.

Content is a pure function of ``(seed, subreddit, kind, hour)``: for every subreddit and every UTC hour there
are ``posts_per_hour`` posts (kind t3) and ``comments_per_hour`` comments (kind t1). Their timestamps are
spread inside the hour by ``random.Random(sha256(f"{seed}:{sub}:{kind}:{hour}"))``; everything else about an
item comes from its own seeded generator, so an item has the same bytes every time (for a given seed and
volume), whatever page or endpoint shows it.

Ids are lowercase base36: a 6-character tag derived from (seed, subreddit, kind) followed by
``base36(hour * 100000 + index)``, so they are unique per item, sort by time inside a subreddit like real
Reddit ids, and can be decoded back to the item (``/comments/{id}`` needs no subreddit in the path).

Each comment belongs to a post created before it, at most ``LINK_WINDOW_HOURS - 1`` hours earlier; about a
third of the comments answer an earlier comment of the same hour on the same post (so threads have depth).
Subreddit names are case-insensitive and shown in lower case.
"""

from __future__ import annotations

import base64
import functools
import html
import random
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

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

HOUR = 3600
MAX_PER_HOUR = 100_000
LINK_WINDOW_HOURS = 3
TAG_LEN = 6
FUTURE_SECONDS = 10 * 86400
HUGE_TEXT_CHARS = 110_000
BAD_KINDS: tuple[str, ...] = (
    "missing_id",
    "bad_timestamp",
    "future_timestamp",
    "nul_byte",
    "huge_text",
    "missing_text",
)
CACHE_CONTROL = "private, s-maxage=0, max-age=0, must-revalidate, no-store"
UNAUTHORIZED = {"message": "Unauthorized", "error": 401}
FORBIDDEN = {"message": "Forbidden", "error": 403}
NOT_FOUND = {"message": "Not Found", "error": 404}

# --------------------------------------------------------------------------------------------------
# built-in vocabulary
# --------------------------------------------------------------------------------------------------

TITLES: tuple[str, ...] = (
    "What's the one tool you can't live without at work?",
    "I finally shipped my side project after two years 🚀",
    "Is it just me or has the weather been really weird this month?",
    "TIL that octopuses have three hearts 🐙",
    "Anyone else getting rate limited by the new API changes?",
    "What is a small habit that changed your life?",
    "My first attempt at sourdough bread 🍞",
    "Why does my laptop fan spin up when I open a single tab?",
    "PSA: back up your files before updating",
    "What book would you recommend to someone who doesn't read much? 📚",
    "Just hit 1000 days of learning Spanish! #duolingo",
    "How do you deal with burnout as a remote worker?",
    "The sunset from my balcony tonight 🌅",
    "Unpopular opinion: pineapple belongs on pizza 🍕",
    "Looking for feedback on my resume (junior developer)",
    "What's the weirdest bug you've ever fixed?",
    "Our city just opened a new bike lane and people are furious",
    "Does anyone actually read the terms and conditions?",
    "Electric car owners: how is winter range treating you? ❄️",
    "I made a dashboard that tracks my coffee intake ☕ #dataviz",
    "What's a movie everyone loves that you just don't get?",
    "Stock market is wild today 📈 what are you watching?",
    "Best budget headphones in 2026?",
    "Found this old photo of my grandparents from 1962",
)

SENTENCES: tuple[str, ...] = (
    "I've been thinking about this for a while and wanted to hear other opinions.",
    "Honestly it surprised me more than I expected.",
    "Here's the link if anyone is curious: https://example.com/articles/2026/weekly-roundup",
    "Edit: thanks for all the replies, I read every single one! ❤️",
    "We tried three different approaches and none of them worked on the first try.",
    "The documentation is at https://docs.example.org/guide/getting-started if you want details.",
    "My partner thinks I'm overreacting, but I don't think so.",
    "It took about six weeks, a lot of coffee and way too many late nights ☕",
    "Curious whether this is a regional thing or happens everywhere.",
    "Not sure if this is the right sub for this, sorry if not.",
    "Update: it worked after a restart 😅",
    "Anyone have experience with this? #help #advice",
    "The numbers look good on paper but the reality is messier.",
    "I grew up nearby and it has changed a lot in the last ten years.",
    "This is exactly why I keep a spreadsheet of everything.",
    "Source: https://en.wikipedia.org/wiki/Special:Random",
    "lol same thing happened to me last week",
    "Can confirm, this is true 👍",
    "I disagree, the second option is clearly better for most people.",
    "Prices went up again, which is frustrating for everyone on a budget 💸",
    "Would love to see a follow-up post when you have results.",
    "That's a really good point that I hadn't considered.",
    "Saving this thread for later. #bookmarked",
    "The trick is to start small and be consistent every day.",
    "Weather forecast says rain all weekend 🌧️ so indoor projects it is.",
    "We measured it twice and got different answers both times.",
    "Happy cake day! 🎂",
    "I work in this field and can say it's more complicated than the headline suggests.",
    "Tried it on Linux, macOS and Windows; only Linux behaved.",
    "Thanks for sharing, this made my day 😊",
    "Has anyone compared this with last year's version?",
    "Link to the original study: https://journals.example.net/abs/10.1234/xyz.5678",
)

LINK_URLS: tuple[str, ...] = (
    "https://github.com/example/project",
    "https://www.bbc.co.uk/news/technology",
    "https://i.imgur.com/sample",
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
    "https://arstechnica.com/science",
    "https://www.theguardian.com/environment",
    "https://i.redd.it/sample",
    "https://blog.example.dev/posts",
)


def _slug(title: str) -> str:
    words = re.findall(r"[a-z0-9]+", title.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}_{word}" if slug else word
        if len(candidate) > 50:
            break
        slug = candidate
    return slug or "post"


def _md_html(text: str) -> str:
    paragraphs = "".join(f"<p>{html.escape(p, quote=False)}</p>\n" for p in text.split("\n\n") if p)
    return f'<div class="md">{paragraphs}</div>'


def _huge_text(seed_text: str) -> str:
    """``seed_text`` followed by vocabulary sentences until it is over 100 kB."""
    filler = " ".join(SENTENCES)
    repeats = HUGE_TEXT_CHARS // len(filler) + 1
    return f"{seed_text} {' '.join([filler] * repeats)}".lstrip()


# --------------------------------------------------------------------------------------------------
# item skeletons
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """Where an item lives: its subreddit, kind, hour bucket, index in the bucket and creation time.

    Comments also carry the (hour, index) of their post, the index of their parent comment in the same
    hour bucket (None for top-level comments) and their depth.
    """

    kind: str
    sub: str
    hour: int
    idx: int
    created: int
    item_id: str
    link: tuple[int, int] | None = None
    parent: int | None = None
    depth: int = 0

    @property
    def fullname(self) -> str:
        """``t3_<id>`` / ``t1_<id>``."""
        return f"{self.kind}_{self.item_id}"


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


def _listing(children: list[Any], after: str | None, before: str | None, dist: int | None) -> dict[str, Any]:
    return {
        "kind": "Listing",
        "data": {
            "after": after,
            "dist": dist,
            "modhash": "",
            "geo_filter": "",
            "children": children,
            "before": before,
        },
    }


# --------------------------------------------------------------------------------------------------
# the source
# --------------------------------------------------------------------------------------------------


@register_source
class RedditSource(Source):
    """Simulated Reddit API (what praw 8 / prawcore 4 use for read-only listings)."""

    name: ClassVar[str] = "reddit"
    defaults: ClassVar[dict[str, Any]] = {
        "credentials": {"client_id": "sim-client-id", "client_secret": "sim-client-secret"},
        "posts_per_hour": 12,
        "comments_per_hour": 20,
        # Planted near-duplicates: this share of the posts of a subreddit of crosspost_subs repeat the post at
        # the same hour and index of another of them (same title and text). See dev/simulator/text.py.
        "crosspost_ratio": 0.03,
        "crosspost_subs": ["python", "dataengineering", "technology", "programming", "datascience"],
        "listing_cap": 1000,
        "ratelimit_budget": 100000,
        "ratelimit_window": 600,
        "reject_auth": False,
        "forbidden": False,
        "rate_limit": {"count": 0, "retry_after": 1},
        "server_errors": {"count": 0, "status": 503},
        "latency_ms": 0,
        "malformed": {"count": 0, "always": False, "skip": 0},
        "bad_items_ratio": 0.0,
        # Like a live listing shifting while it is paged: each page after the first repeats the last item
        # of the page before it.
        "duplicate_across_pages": False,
    }
    fault_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "reject_auth",
            "forbidden",
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
        self._tokens: set[str] = set()
        self._token_serial = 0
        self._tags: dict[tuple[int, str], tuple[str, str]] = {}
        self._buckets = _LRU(4096)
        self._posts = _LRU(4096)

    # -- framework hooks -----------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        """Token call, identity, listings, submission pages, and a Reddit-style 404 for the rest."""
        sub = r"(?P<sub>[A-Za-z0-9_+]+)"
        js = r"(?:\.json)?"
        return [
            Route("POST", r"/api/v1/access_token", self.access_token, api=False),
            Route("GET", rf"/api/v1/me{js}", self.me),
            Route("GET", rf"/r/{sub}/new{js}", self.new_listing),
            Route("GET", rf"/r/{sub}/comments{js}", self.comments_listing),
            Route("GET", rf"/comments/(?P<article>[a-z0-9]+)(?:/[^/]*)?(?:/[a-z0-9]+)?{js}", self.submission),
            Route(
                "GET",
                rf"/r/{sub}/comments/(?P<article>[a-z0-9]+)(?:/[^/]*)?(?:/[a-z0-9]+)?{js}",
                self.submission,
            ),
            Route(
                "*",
                r"/(?:r|u|user|api|comments|subreddits|search|by_id|duplicates|message|prefs)(?:/.*)?",
                self.not_found,
            ),
        ]

    def check_config(self, config: Any) -> None:
        """Range checks on top of the core's type checks."""
        for key in ("posts_per_hour", "comments_per_hour"):
            if not 0 <= config[key] < MAX_PER_HOUR:
                raise ValueError(f"reddit.{key} must be in [0, {MAX_PER_HOUR})")
        if not 0.0 <= config["crosspost_ratio"] <= 1.0:
            raise ValueError("reddit.crosspost_ratio must be in [0, 1]")
        if not all(isinstance(s, str) for s in config["crosspost_subs"]):
            raise ValueError("reddit.crosspost_subs must be a list of subreddit names")
        if config["listing_cap"] < 0:
            raise ValueError("reddit.listing_cap must be >= 0")
        if not 0.0 <= config["bad_items_ratio"] <= 1.0:
            raise ValueError("reddit.bad_items_ratio must be in [0, 1]")
        if not 400 <= config["server_errors"]["status"] <= 599:
            raise ValueError("reddit.server_errors.status must be a 4xx/5xx code")
        if config["ratelimit_window"] < 1:
            raise ValueError("reddit.ratelimit_window must be >= 1")

    def authorize(self, request: Request) -> Response | None:
        """API calls need ``Authorization: bearer <token issued by this server>``."""
        scheme, _, token = request.header("Authorization").strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip() in self._tokens:
            return None
        return json_response(
            401, UNAUTHORIZED, {"www-authenticate": 'Bearer realm="reddit", error="invalid_token"'}
        )

    def rate_limited(self, retry_after: int) -> Response:
        """429 as Reddit sends it."""
        return json_response(
            429, {"message": "Too Many Requests", "error": 429}, {"Retry-After": str(retry_after)}
        )

    def not_found(self, request: Request, match: Any = None) -> Response:
        """Reddit's JSON 404."""
        return json_response(404, NOT_FOUND)

    def api_headers(self, window: Window, throttled: bool) -> dict[str, str]:
        """x-ratelimit-* like oauth.reddit.com (remaining is a float string, reset in seconds)."""
        remaining = 0 if throttled else window.remaining
        # A throttled answer says the window resets when Retry-After ends: prawcore sleeps until then.
        reset = int(self.config["rate_limit"].get("retry_after", 1)) if throttled else window.reset
        return {
            "x-ratelimit-used": str(window.used),
            "x-ratelimit-remaining": f"{float(remaining):.1f}",
            "x-ratelimit-reset": str(reset),
            "cache-control": CACHE_CONTROL,
        }

    # -- token / identity ----------------------------------------------------------------------------
    def access_token(self, request: Request, match: Any) -> Response:
        """``POST /api/v1/access_token`` with HTTP Basic client credentials."""
        creds = self.config["credentials"]
        client_id, client_secret = _basic_auth(request.header("Authorization"))
        headers = {"cache-control": CACHE_CONTROL}
        if self.config["reject_auth"] or (client_id, client_secret) != (
            creds["client_id"],
            creds["client_secret"],
        ):
            return json_response(401, UNAUTHORIZED, headers)
        grant = request.form().get("grant_type", "")
        if grant not in ("client_credentials", "password", "refresh_token", "authorization_code"):
            return json_response(200, {"error": "unsupported_grant_type"}, headers)
        serial = self._token_serial
        self._token_serial += 1
        seed = self.sim.seed
        token = f"{serial}-{to_base36(stable_hash(seed, 'access_token', serial))[:30]}"
        self._tokens.add(token)
        body = {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": 86400,
            "refresh_token": f"{serial}-{to_base36(stable_hash(seed, 'refresh_token', serial))[:30]}",
            "scope": "*",
        }
        return json_response(200, body, headers)

    def me(self, request: Request, match: Any) -> Response:
        """``GET /api/v1/me``: a small user object."""
        return json_response(
            200,
            {
                "id": "simbot",
                "name": "sim_user",
                "created": 1500000000.0,
                "created_utc": 1500000000.0,
                "link_karma": 1,
                "comment_karma": 1,
                "total_karma": 2,
                "has_verified_email": True,
                "is_suspended": False,
                "is_employee": False,
                "over_18": False,
                "icon_img": "",
            },
        )

    # -- listings ------------------------------------------------------------------------------------
    def new_listing(self, request: Request, match: Any) -> Response:
        """``GET /r/{sub}/new``: newest posts first."""
        return self._listing_response(request, match, "t3", "new")

    def comments_listing(self, request: Request, match: Any) -> Response:
        """``GET /r/{sub}/comments``: newest comments first."""
        return self._listing_response(request, match, "t1", "comments")

    def _listing_response(self, request: Request, match: Any, kind: str, leaf: str) -> Response:
        if self.config["forbidden"]:
            return json_response(403, FORBIDDEN)
        subs = list(dict.fromkeys(s.lower() for s in match["sub"].split("+") if s))
        if not subs:
            return json_response(404, NOT_FOUND)
        for sub in subs:
            self._register(sub)
        now = request.now
        limit = _int_param(request.query.get("limit"), 25, 1, 100)
        seq = self._timeline(subs, kind, now)
        after_param = request.query.get("after", "").strip()
        before_param = request.query.get("before", "").strip()
        names = [slot.fullname for slot in seq]
        page: list[Slot] = []
        after: str | None = None
        before: str | None = None
        if after_param:
            if after_param in names:
                start = names.index(after_param) + 1
                page = seq[start : start + limit]
                if self.config["duplicate_across_pages"] and page:
                    page = [seq[start - 1], *page[:-1]] if len(page) == limit else [seq[start - 1], *page]
                after = page[-1].fullname if page and start + limit < len(seq) else None
                before = page[0].fullname if page else None
        elif before_param:
            if before_param in names:
                end = names.index(before_param)
                start = max(0, end - limit)
                page = seq[start:end]
                after = page[-1].fullname if page else None
                before = page[0].fullname if page and start > 0 else None
        else:
            page = seq[:limit]
            after = page[-1].fullname if page and limit < len(seq) else None
        endpoint = f"/r/{'+'.join(subs)}/{leaf}"
        children: list[dict[str, Any]] = []
        served: list[ServedItem] = []
        for slot in page:
            child, item = self._serve(slot, endpoint, now)
            children.append(child)
            served.append(item)
        body = _listing(children, after, before, len(children))
        return json_response(200, body, served=served, malformable=True)

    def submission(self, request: Request, match: Any) -> Response:
        """``GET /comments/{article}``: ``[post listing, comment tree listing]``."""
        if self.config["forbidden"]:
            return json_response(403, FORBIDDEN)
        groups = match.groupdict()
        if groups.get("sub"):
            for sub in groups["sub"].split("+"):
                if sub:
                    self._register(sub.lower())
        article = match["article"]
        post = self._decode(article, "t3")
        now = request.now
        if post is None or post.created > now:
            return json_response(404, NOT_FOUND)
        endpoint = f"/comments/{article}"
        served: list[ServedItem] = []
        post_child, post_item = self._serve(post, endpoint, now)
        served.append(post_item)

        comments: list[Slot] = []
        for hour in range(post.hour, post.hour + LINK_WINDOW_HOURS):
            for slot in self._comment_bucket(post.sub, hour):
                if slot.link == (post.hour, post.idx) and slot.created <= now:
                    comments.append(slot)
        scores = {c: self._comment_score(c) for c in comments}
        kids: dict[tuple[int, int] | None, list[Slot]] = {}
        for c in comments:
            parent_key = None if c.parent is None else (c.hour, c.parent)
            kids.setdefault(parent_key, []).append(c)
        for group in kids.values():
            group.sort(key=lambda c: (-scores[c], c.created, c.idx))

        def build(slot: Slot) -> dict[str, Any]:
            child, item = self._serve(slot, endpoint, now)
            served.append(item)
            replies = kids.get((slot.hour, slot.idx), [])
            if replies:
                child["data"]["replies"] = _listing([build(r) for r in replies], None, None, None)
            return child

        top = [build(c) for c in kids.get(None, [])]
        post_listing = _listing([post_child], None, None, 1)
        comment_listing = _listing(top, None, None, None)
        return json_response(200, [post_listing, comment_listing], served=served, malformable=True)

    # -- ids and buckets -----------------------------------------------------------------------------
    def _tag(self, sub: str, kind: str) -> str:
        return to_base36(stable_hash(self.sim.seed, sub, kind, "tag") % 36**TAG_LEN).rjust(TAG_LEN, "0")

    def _register(self, sub: str) -> None:
        seed = self.sim.seed
        for kind in ("t3", "t1"):
            self._tags[(seed, self._tag(sub, kind))] = (sub, kind)

    def _item_id(self, sub: str, kind: str, hour: int, idx: int) -> str:
        return self._tag(sub, kind) + to_base36(hour * MAX_PER_HOUR + idx)

    def _decode(self, item_id: str, kind: str) -> Slot | None:
        """The slot of an id this server generated (its subreddit must have been seen), else None."""
        if len(item_id) <= TAG_LEN:
            return None
        known = self._tags.get((self.sim.seed, item_id[:TAG_LEN]))
        if known is None or known[1] != kind:
            return None
        try:
            hour, idx = divmod(int(item_id[TAG_LEN:], 36), MAX_PER_HOUR)
        except ValueError:
            return None
        bucket = self._post_bucket(known[0], hour) if kind == "t3" else self._comment_bucket(known[0], hour)
        if idx >= len(bucket) or bucket[idx].item_id != item_id:
            return None
        return bucket[idx]

    def _times(self, sub: str, kind: str, hour: int, count: int) -> list[int]:
        rng = random.Random(stable_hash(self.sim.seed, sub, kind, hour))
        return [hour * HOUR + rng.randrange(HOUR) for _ in range(count)]

    def _count(self, key: str, hour: int) -> int:
        """Items of a bucket: the configured volume plus a spike's extra items in its hours."""
        base = self.config[key]
        spike = self.sim.spike
        extra = spike.extra("reddit", hour * HOUR, HOUR, base) if spike else 0
        return min(base + extra, MAX_PER_HOUR - 1)

    def _post_bucket(self, sub: str, hour: int) -> list[Slot]:
        count = self._count("posts_per_hour", hour)
        key = ("t3", self.sim.seed, sub, hour, count, self.sim.spike)
        cached = self._buckets.get(key)
        if cached is not None:
            return cached
        times = self._times(sub, "t3", hour, count)
        bucket = [Slot("t3", sub, hour, i, times[i], self._item_id(sub, "t3", hour, i)) for i in range(count)]
        self._buckets.put(key, bucket)
        return bucket

    def _comment_bucket(self, sub: str, hour: int) -> list[Slot]:
        count = self._count("comments_per_hour", hour)
        posts_per_hour = self.config["posts_per_hour"]
        seed = self.sim.seed
        key = ("t1", seed, sub, hour, count, posts_per_hour, self.sim.spike)
        cached = self._buckets.get(key)
        if cached is not None:
            return cached
        times = self._times(sub, "t1", hour, count)
        candidates = [
            post for h in range(hour - LINK_WINDOW_HOURS + 1, hour + 1) for post in self._post_bucket(sub, h)
        ]
        order = sorted(range(count), key=lambda i: (times[i], i))
        slots: dict[int, Slot] = {}
        for i in order:
            created = times[i]
            rng = random.Random(stable_hash(seed, sub, "t1", hour, i, "link"))
            posts = [p for p in candidates if p.created < created]
            if posts:
                chosen = rng.choice(posts)
                link = (chosen.hour, chosen.idx)
            else:
                link = (
                    hour - 1,
                    0,
                )  # no post yet (posts_per_hour == 0): a dangling link, like a deleted post
            parent: int | None = None
            depth = 0
            earlier = [s for s in slots.values() if s.link == link and s.created < created]
            if earlier and rng.random() < 0.35:
                chosen_parent = rng.choice(sorted(earlier, key=lambda s: s.idx))
                parent = chosen_parent.idx
                depth = chosen_parent.depth + 1
            slots[i] = Slot(
                "t1", sub, hour, i, created, self._item_id(sub, "t1", hour, i), link, parent, depth
            )
        bucket = [slots[i] for i in range(count)]
        self._buckets.put(key, bucket)
        return bucket

    def _bad_kinds(self, sub: str, kind: str, hour: int) -> dict[int, str]:
        """Which items of a bucket are served broken, and how (cycling through BAD_KINDS)."""
        ratio = self.config["bad_items_ratio"]
        if ratio <= 0:
            return {}
        seed = self.sim.seed
        bucket = self._post_bucket(sub, hour) if kind == "t3" else self._comment_bucket(sub, hour)
        offset = stable_hash(seed, sub, kind, hour, "bad-offset") % len(BAD_KINDS)
        out: dict[int, str] = {}
        for slot in bucket:
            if stable_fraction(seed, "bad", slot.fullname) < ratio:
                out[slot.idx] = BAD_KINDS[(offset + len(out)) % len(BAD_KINDS)]
        return out

    def _timeline(self, subs: list[str], kind: str, now: float) -> list[Slot]:
        """The listing as Reddit would page it: newest first, created <= now, at most listing_cap items."""
        cap = self.config["listing_cap"]
        per_hour = self.config["posts_per_hour" if kind == "t3" else "comments_per_hour"]
        if cap <= 0 or per_hour <= 0:
            return []
        merged: list[Slot] = []
        for sub in subs:
            seq: list[Slot] = []
            hour = int(now // HOUR)
            while len(seq) < cap:
                bucket = self._post_bucket(sub, hour) if kind == "t3" else self._comment_bucket(sub, hour)
                visible = [s for s in bucket if s.created <= now]
                visible.sort(key=lambda s: (s.created, s.idx), reverse=True)
                seq.extend(visible)
                hour -= 1
            merged.extend(seq[:cap])
        if len(subs) > 1:
            merged.sort(key=lambda s: (s.created, s.idx, s.item_id), reverse=True)
        return merged[:cap]

    # -- item data -----------------------------------------------------------------------------------
    def _serve(self, slot: Slot, endpoint: str, now: float) -> tuple[dict[str, Any], ServedItem]:
        data = dict(self._post_data(slot) if slot.kind == "t3" else self._comment_data(slot))
        link = (slot.hour, slot.idx) if slot.kind == "t3" else slot.link
        if link is not None:  # like Reddit, the count grows as the clock reveals comments
            data["num_comments"] = self._num_comments(slot.sub, link, now)
        bad = self._bad_kinds(slot.sub, slot.kind, slot.hour).get(slot.idx)
        if bad is not None:
            _break(data, slot.kind, bad, now)
        return {"kind": slot.kind, "data": data}, ServedItem(slot.fullname, endpoint, bad)

    def _num_comments(self, sub: str, link: tuple[int, int], now: float) -> int:
        """How many comments of the post ``link`` = (hour, index) exist at ``now``."""
        return sum(
            1
            for hour in range(link[0], link[0] + LINK_WINDOW_HOURS)
            for c in self._comment_bucket(sub, hour)
            if c.link == link and c.created <= now
        )

    def _subreddit_fields(self, sub: str) -> dict[str, Any]:
        return {
            "subreddit": sub,
            "subreddit_id": "t5_" + to_base36(stable_hash("subreddit", sub) % 36**6),
            "subreddit_name_prefixed": f"r/{sub}",
            "subreddit_type": "public",
        }

    def _post_data(self, slot: Slot) -> dict[str, Any]:
        key = (self.sim.seed, slot)
        cached = self._posts.get(key)
        if cached is not None:
            return cached
        rng = random.Random(stable_hash(self.sim.seed, slot.sub, "t3", slot.hour, slot.idx))
        author = f"user_{rng.randint(1, 4999)}"
        entry, term = self._text_entry(slot)
        title = entry.title if not term else _text.with_term(entry.title, term)
        link = str(entry.meta.get("url") or "")
        is_self = not link.startswith(("http://", "https://"))
        selftext = entry.body
        slug = _slug(title)
        permalink = f"/r/{slot.sub}/comments/{slot.item_id}/{slug}/"
        if is_self:
            url = f"https://www.reddit.com{permalink}"
            domain = f"self.{slot.sub}"
            thumbnail = "self"
        else:
            url = link
            domain = urlsplit(url).netloc.removeprefix("www.")
            thumbnail = "default"
        score = min(int(rng.paretovariate(1.1)) - 1, 250_000)
        over_18 = rng.random() < 0.03
        created = float(slot.created)
        data: dict[str, Any] = {
            "all_awardings": [],
            "allow_live_comments": False,
            "approved_at_utc": None,
            "approved_by": None,
            "archived": False,
            "author": author,
            "author_flair_background_color": None,
            "author_flair_css_class": None,
            "author_flair_richtext": [],
            "author_flair_template_id": None,
            "author_flair_text": None,
            "author_flair_text_color": None,
            "author_flair_type": "text",
            "author_fullname": _author_fullname(author),
            "author_is_blocked": False,
            "author_patreon_flair": False,
            "author_premium": rng.random() < 0.1,
            "awarders": [],
            "banned_at_utc": None,
            "banned_by": None,
            "can_gild": False,
            "can_mod_post": False,
            "category": None,
            "clicked": False,
            "content_categories": None,
            "contest_mode": False,
            "created": created,
            "created_utc": created,
            "discussion_type": None,
            "distinguished": None,
            "domain": domain,
            "downs": 0,
            "edited": False,
            "from": None,
            "from_id": None,
            "from_kind": None,
            "gilded": 0,
            "gildings": {},
            "hidden": False,
            "hide_score": False,
            "id": slot.item_id,
            "is_created_from_ads_ui": False,
            "is_crosspostable": True,
            "is_meta": False,
            "is_original_content": rng.random() < 0.05,
            "is_reddit_media_domain": domain in ("i.redd.it", "v.redd.it"),
            "is_robot_indexable": True,
            "is_self": is_self,
            "is_video": False,
            "likes": None,
            "link_flair_background_color": "",
            "link_flair_css_class": None,
            "link_flair_richtext": [],
            "link_flair_text": None,
            "link_flair_text_color": "dark",
            "link_flair_type": "text",
            "locked": False,
            "media": None,
            "media_embed": {},
            "media_only": False,
            "mod_note": None,
            "mod_reason_by": None,
            "mod_reason_title": None,
            "mod_reports": [],
            "name": slot.fullname,
            "no_follow": score < 2,
            "num_comments": 0,  # set when served (depends on the clock)
            "num_crossposts": 0,
            "num_duplicates": 0,
            "num_reports": None,
            "over_18": over_18,
            "parent_whitelist_status": "all_ads",
            "permalink": permalink,
            "pinned": False,
            "pwls": 6,
            "quarantine": False,
            "removal_reason": None,
            "removed_by": None,
            "removed_by_category": None,
            "report_reasons": None,
            "saved": False,
            "score": score,
            "secure_media": None,
            "secure_media_embed": {},
            "selftext": selftext,
            "selftext_html": None,
            "send_replies": True,
            "spoiler": False,
            "steward_reports": [],
            "stickied": False,
            **self._subreddit_fields(slot.sub),
            "subreddit_subscribers": 1000 + stable_hash("subscribers", slot.sub) % 5_000_000,
            "suggested_sort": None,
            "thumbnail": thumbnail,
            "thumbnail_height": None if is_self else 140,
            "thumbnail_width": None if is_self else 140,
            "title": title,
            "top_awarded_type": None,
            "total_awards_received": 0,
            "treatment_tags": [],
            "ups": score,
            "upvote_ratio": round(rng.uniform(0.5, 1.0), 2),
            "url": url,
            "url_overridden_by_dest": url,
            "user_reports": [],
            "view_count": None,
            "visited": False,
            "whitelist_status": "all_ads",
            "wls": 6,
        }
        self._posts.put(key, data)
        return data

    # -- text ----------------------------------------------------------------------------------------
    def origin(self, slot: Slot) -> str:
        """The corpus id of the item's text (a cross-post has its original's): equal origins = copies."""
        return self._text_entry(slot)[0].id

    def _text_entry(self, slot: Slot) -> tuple[_text.Entry, str]:
        """The pool entry of a post or comment, and a spike term to append ("" for none)."""
        seed = self.sim.seed
        name = "reddit_post" if slot.kind == "t3" else "reddit_comment"
        base = self.config["posts_per_hour" if slot.kind == "t3" else "comments_per_hour"]
        n = slot.hour * max(base, 1) + slot.idx
        spike = self.sim.spike
        if spike is not None and slot.idx >= base:
            entry, add = _text.spike_entry(spike, name, seed, f"reddit:{slot.sub}:{slot.kind}", n)
            return entry, spike.term if add else ""
        sub = self.crossposted_from(slot) or slot.sub
        return _text.pick(self._pool(name, sub), seed, f"reddit:{sub}:{slot.kind}", n), ""

    def crossposted_from(self, slot: Slot, *, follow: bool = True) -> str | None:
        """The subreddit whose post (same hour and index) this post repeats, or None (see crosspost_ratio).
        A post that is itself a cross-post is never cross-posted again (its copy would have no original)."""
        if slot.kind != "t3" or slot.idx >= self.config["posts_per_hour"]:
            return None
        ring = {s.lower() for s in self.config["crosspost_subs"]}
        others = sorted(ring - {slot.sub})
        seed = self.sim.seed
        if slot.sub not in ring or not others:
            return None
        if _text.fraction(seed, "crosspost", slot.sub, slot.hour, slot.idx) >= self.config["crosspost_ratio"]:
            return None
        source = others[stable_hash(seed, "crosspost-from", slot.sub, slot.hour, slot.idx) % len(others)]
        if follow and self.crossposted_from(Slot("t3", source, slot.hour, slot.idx, 0, ""), follow=False):
            return None
        return source

    @staticmethod
    def _pool(name: str, sub: str) -> tuple[_text.Entry, ...]:
        """The subreddit's own texts when the corpus has at least 50 of them, else every subreddit's."""
        own = _subreddit_pool(name, sub)
        return own if len(own) >= 50 else _text.pool(name)

    def _comment_score(self, slot: Slot) -> int:
        rng = random.Random(stable_hash(self.sim.seed, slot.sub, "t1", slot.hour, slot.idx, "score"))
        return min(int(rng.paretovariate(1.2)), 20_000)

    def _comment_data(self, slot: Slot) -> dict[str, Any]:
        assert slot.link is not None
        rng = random.Random(stable_hash(self.sim.seed, slot.sub, "t1", slot.hour, slot.idx))
        link_hour, link_idx = slot.link
        bucket = self._post_bucket(slot.sub, link_hour)
        if link_idx < len(bucket):
            post_slot = bucket[link_idx]
        else:  # dangling link (posts_per_hour == 0): describe a post that is not listed anywhere
            link_item_id = self._item_id(slot.sub, "t3", link_hour, link_idx)
            post_slot = Slot("t3", slot.sub, link_hour, link_idx, link_hour * HOUR, link_item_id)
        post = self._post_data(post_slot)
        author = f"user_{rng.randint(1, 4999)}"
        entry, term = self._text_entry(slot)
        body = entry.body if not term else _text.with_term(entry.body, term)
        score = self._comment_score(slot)
        parent_id = (
            post_slot.fullname
            if slot.parent is None
            else f"t1_{self._item_id(slot.sub, 't1', slot.hour, slot.parent)}"
        )
        created = float(slot.created)
        return {
            "all_awardings": [],
            "approved_at_utc": None,
            "approved_by": None,
            "archived": False,
            "associated_award": None,
            "author": author,
            "author_flair_background_color": None,
            "author_flair_css_class": None,
            "author_flair_richtext": [],
            "author_flair_template_id": None,
            "author_flair_text": None,
            "author_flair_text_color": None,
            "author_flair_type": "text",
            "author_fullname": _author_fullname(author),
            "author_is_blocked": False,
            "author_patreon_flair": False,
            "author_premium": rng.random() < 0.1,
            "awarders": [],
            "banned_at_utc": None,
            "banned_by": None,
            "body": body,
            "body_html": _md_html(body),
            "can_gild": False,
            "can_mod_post": False,
            "collapsed": False,
            "collapsed_because_crowd_control": None,
            "collapsed_reason": None,
            "collapsed_reason_code": None,
            "comment_type": None,
            "controversiality": 1 if rng.random() < 0.05 else 0,
            "created": created,
            "created_utc": created,
            "depth": slot.depth,
            "distinguished": None,
            "downs": 0,
            "edited": False,
            "gilded": 0,
            "gildings": {},
            "id": slot.item_id,
            "is_submitter": author == post["author"],
            "likes": None,
            "link_author": post["author"],
            "link_id": post_slot.fullname,
            "link_permalink": f"https://www.reddit.com{post['permalink']}",
            "link_title": post["title"],
            "link_url": post["url"],
            "locked": False,
            "mod_note": None,
            "mod_reason_by": None,
            "mod_reason_title": None,
            "mod_reports": [],
            "name": slot.fullname,
            "no_follow": score < 2,
            "num_comments": 0,  # set when served (depends on the clock)
            "num_reports": None,
            "over_18": post["over_18"],
            "parent_id": parent_id,
            "permalink": f"{post['permalink']}{slot.item_id}/",
            "quarantine": False,
            "removal_reason": None,
            "replies": "",
            "report_reasons": None,
            "saved": False,
            "score": score,
            "score_hidden": False,
            "send_replies": True,
            "steward_reports": [],
            "stickied": False,
            **self._subreddit_fields(slot.sub),
            "top_awarded_type": None,
            "total_awards_received": 0,
            "treatment_tags": [],
            "unrepliable_reason": None,
            "ups": score,
            "user_reports": [],
        }


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


@functools.cache
def _subreddit_pool(name: str, sub: str) -> tuple[_text.Entry, ...]:
    return tuple(e for e in _text.pool(name) if str(e.meta.get("subreddit") or "").lower() == sub)


def _author_fullname(author: str) -> str:
    return "t2_" + to_base36(stable_hash("author", author) % 36**8)


def _basic_auth(header: str) -> tuple[str | None, str | None]:
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None, None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else (None, None)


def _int_param(raw: str | None, default: int, low: int, high: int) -> int:
    try:
        value = int(raw) if raw not in (None, "") else default
    except ValueError:
        value = default
    if value < low:
        value = default
    return min(value, high)


def _break(data: dict[str, Any], kind: str, bad: str, now: float) -> None:
    """Damage an item's data in place the way ``bad`` says."""
    text_key = "selftext" if kind == "t3" else "body"
    if bad == "missing_id":
        data.pop("id", None)
        data.pop("name", None)
    elif bad == "bad_timestamp":
        data["created_utc"] = "not-a-date"
    elif bad == "future_timestamp":
        data["created_utc"] = float(int(now) + FUTURE_SECONDS)
    elif bad == "nul_byte":
        text = data.get(text_key) or "nothing to see here"
        half = len(text) // 2
        data[text_key] = f"{text[:half]}\u0000{text[half:]}"
    elif bad == "huge_text":
        data[text_key] = _huge_text(data.get(text_key) or "")
    elif bad == "missing_text":
        data.pop("title" if kind == "t3" else "body", None)
