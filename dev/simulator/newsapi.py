"""NewsAPI source of the simulator: ``GET /v2/everything`` and ``GET /v2/top-headlines``.

Articles live in *pools*: one per ``/v2/everything`` query (case-insensitive) and one per top-headlines
``country``/``category`` pair. A pool holds ``articles_per_hour`` (everything) or ``headlines_per_hour``
(headlines) articles in every UTC hour, at times spread inside the hour by
``random.Random(sha256(seed, pool, hour))``; everything else about an article comes from its own seeded
generator, so an article has the same bytes on every page and in every run (for a given seed and volume).

* ``/v2/everything?q=&from=&to=&page=&pageSize=``: the pool's articles with ``publishedAt`` in ``[from, to)``
  (and not after the clock), newest first. ``from`` defaults to the plan's horizon, ``to`` to now; a
  ``from`` before the horizon (``plan_horizon_days``) is refused with HTTP 400 ``parameterInvalid``.
* ``/v2/top-headlines?country=&category=&page=&pageSize=``: the newest ``headlines_total`` articles of the
  pair's pool published before now, newest first.
* Paging by ``page`` (from 1) and ``pageSize`` (default 20, at most 100); ``totalResults`` counts every
  match. ``page * pageSize > max_results`` (100, the Developer plan's cap; 0 = no cap) gives HTTP 426
  ``maximumResultsReached``.
* The key is accepted as ``X-Api-Key``, as ``Authorization: <key>`` (newsapi-python) or ``Bearer <key>``,
  or as the ``apiKey`` query parameter; none gives 401 ``apiKeyMissing``, a wrong one 401 ``apiKeyInvalid``.
* Faults: the generic switches, a 429 ``rateLimited`` body (``Retry-After`` only when
  ``rate_limit.retry_after`` > 0: NewsAPI sends none), 500 as NewsAPI's JSON ``unexpectedError`` and other
  5xx as a gateway's HTML page, ``html_pages`` (a proxy's HTML error page served with HTTP 200) and
  ``bad_items_ratio`` (articles broken in one of :data:`BAD_KINDS`).

The identity of an article in the stats is its URL (NewsAPI has no ids).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import formatdate
from typing import Any, ClassVar

from dev.simulator import text as _text
from dev.simulator.core import (
    Request,
    Response,
    Route,
    ServedItem,
    Source,
    Window,
    format_time,
    html_error,
    json_response,
    register_source,
    stable_fraction,
    stable_hash,
    to_base36,
)

HOUR = 3600
DAY = 86400
MAX_PER_HOUR = 100_000
MAX_SCAN_HOURS = 24 * 400
FUTURE_SECONDS = 400 * DAY  # a wrong year: still "future" for a test suite run months later
HUGE_TEXT_CHARS = 110_000
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
JSON_TYPE = "application/json; charset=utf-8"
BAD_KINDS: tuple[str, ...] = (
    "missing_id",
    "bad_timestamp",
    "future_timestamp",
    "nul_byte",
    "huge_text",
    "missing_text",
)
#: Headers NewsAPI (behind Cloudflare) sends with every answer (HEADERS.md of the recorded payloads).
NEWSAPI_HEADERS = {
    "Cache-Control": "no-cache",
    "Pragma": "no-cache",
    "Expires": "-1",
    "X-Cached-Result": "false",
    "CF-Cache-Status": "DYNAMIC",
}
PROXY_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Service Temporarily Unavailable</title></head>\n"
    b"<body><h1>Service Temporarily Unavailable</h1><p>The proxy could not reach the upstream server. "
    b"Please try again later.</p><hr><address>corporate-proxy</address></body></html>\n"
)

ERR_KEY_MISSING = (
    "apiKeyMissing",
    "Your API key is missing. Append this to the URL with the apiKey param, or use the x-api-key HTTP header.",
)
ERR_KEY_INVALID = (
    "apiKeyInvalid",
    "Your API key is invalid or incorrect. Check your key, or go to https://newsapi.org to create a free API key.",
)
ERR_RATE_LIMITED = (
    "rateLimited",
    "You have made too many requests recently. Developer accounts are limited to 100 requests over a 24 hour "
    "period (50 requests available every 12 hours). Please upgrade to a paid plan if you need more requests.",
)
ERR_UNEXPECTED = (
    "unexpectedError",
    "This shouldn't happen, and if it does then it's our fault, not yours. Try the request again shortly.",
)

# --------------------------------------------------------------------------------------------------
# built-in vocabulary
# --------------------------------------------------------------------------------------------------

#: (source id or None, source name, domain)
OUTLETS: tuple[tuple[str | None, str, str], ...] = (
    ("bbc-news", "BBC News", "www.bbc.co.uk"),
    ("the-verge", "The Verge", "www.theverge.com"),
    ("techcrunch", "TechCrunch", "techcrunch.com"),
    ("wired", "Wired", "www.wired.com"),
    ("ars-technica", "Ars Technica", "arstechnica.com"),
    ("reuters", "Reuters", "www.reuters.com"),
    ("google-news", "Google News", "news.google.com"),
    (None, "Cointelegraph", "cointelegraph.com"),
    (None, "Yahoo Entertainment", "finance.yahoo.com"),
    (None, "Slashdot.org", "slashdot.org"),
    (None, "EL PAÍS", "elpais.com"),
    (None, "Boing Boing", "boingboing.net"),
    (None, "newsBTC", "www.newsbtc.com"),
    (None, "CNET", "www.cnet.com"),
    (None, "Nintendo Life", "www.nintendolife.com"),
    (None, "Daily Mail", "www.dailymail.co.uk"),
)

FIRST_NAMES: tuple[str, ...] = (
    "Nick",
    "Jáchym",
    "Andrey",
    "Miquel",
    "Manisha",
    "Cole",
    "Felipe",
    "Tim",
    "David",
    "Tyler",
    "Amelia",
    "Sofia",
    "Kenji",
    "Zoë",
)
LAST_NAMES: tuple[str, ...] = (
    "Chong",
    "Flídr",
    "Shevchenko",
    "Echarri",
    "Priyadarshini",
    "Petersen",
    "Erazo",
    "Chan",
    "Katzmaier",
    "Fischer",
    "Okafor",
    "Rossi",
    "Tanaka",
    "Müller",
)

TITLES: tuple[str, ...] = (
    "{topic}: what changed this week and why it matters",
    "Analysts say {topic} could surge past expectations",
    "Why everyone is suddenly talking about {topic}",
    "The {topic} debate, explained in five charts",
    "{topic} faces new scrutiny from regulators",
    "How {topic} is reshaping small businesses 🚀",
    "Opinion: we are thinking about {topic} all wrong",
    "A beginner's guide to {topic} in 2026",
    "{topic} hits a record as investors pile in 📈",
    "Inside the lab betting big on {topic}",
    "Five things to know about {topic} today",
    "{topic} outage leaves thousands without service",
)

SENTENCES: tuple[str, ...] = (
    "The announcement came after weeks of speculation among industry watchers.",
    "Critics argue the numbers do not tell the whole story.",
    "Officials declined to comment on the timeline.",
    "Early adopters reported mixed results, with some seeing gains and others losses.",
    "The company said the change would roll out gradually over the coming months.",
    "Experts warn that the market remains volatile and unpredictable.",
    "Here's what you need to know before the next update lands.",
    "It is the third such move this year, and probably not the last.",
    "Independent researchers say the data is promising but incomplete.",
    "Prices rose sharply on Monday before settling in the afternoon.",
    "The report, published on Tuesday, draws on interviews with more than 200 people.",
    "Local businesses say they are still waiting for clarity.",
    "Products featured are independently selected by our editorial team.",
    "“We did not expect this level of interest,” a spokesperson said.",
    "Engineers traced the fault to a configuration change in one data centre.",
    "Some readers asked whether the trend will last; here is our take.",
)


def _slug(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > 60:
            break
        slug = candidate
    return slug or "article"


def _huge_text(seed_text: str) -> str:
    filler = " ".join(SENTENCES)
    repeats = HUGE_TEXT_CHARS // len(filler) + 1
    return f"{seed_text} {' '.join([filler] * repeats)}".lstrip()


def _parse_bound(raw: str | None, *, upper: bool) -> float | None:
    """``from`` / ``to`` as epoch seconds: ISO 8601 date or datetime, naive = UTC. A date-only ``to``
    means the end of that day. Raises ValueError when unparseable."""
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        day = datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
        return (day + timedelta(days=1 if upper else 0)).timestamp()
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _int_param(raw: str | None, default: int) -> int:
    """A positive integer parameter; ValueError when it is not one."""
    if raw is None or raw == "":
        return default
    value = int(raw)
    if value < 1:
        raise ValueError(raw)
    return value


def _error(status: int, code_message: tuple[str, str], headers: dict[str, str] | None = None) -> Response:
    code, message = code_message
    return json_response(
        status, {"status": "error", "code": code, "message": message}, headers, content_type=JSON_TYPE
    )


# --------------------------------------------------------------------------------------------------
# articles
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """Where an article lives: its pool, hour bucket, index in the bucket and publication time."""

    pool: str
    hour: int
    idx: int
    published: int


@register_source
class NewsApiSource(Source):
    """Simulated NewsAPI v2 (what the http provider's HttpHook and newsapi-python call)."""

    name: ClassVar[str] = "newsapi"
    defaults: ClassVar[dict[str, Any]] = {
        "api_key": "sim-newsapi-key",
        "articles_per_hour": 24,
        "headlines_per_hour": 4,
        "headlines_total": 38,
        # Planted near-duplicates: this share of a pool's articles are an earlier article of the same pool and
        # hour under another outlet, the headline unchanged or lightly rewritten. See dev/simulator/text.py.
        "syndication_ratio": 0.04,
        "max_results": 100,
        "plan_horizon_days": 30,
        "reject_auth": False,
        "rate_limit": {"count": 0, "retry_after": 0},
        "server_errors": {"count": 0, "status": 500},
        "latency_ms": 0,
        "malformed": {"count": 0, "always": False, "skip": 0},
        "html_pages": {"count": 0, "always": False},
        "bad_items_ratio": 0.0,
    }
    fault_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "reject_auth",
            "rate_limit",
            "server_errors",
            "latency_ms",
            "malformed",
            "html_pages",
            "bad_items_ratio",
        }
    )

    def __init__(self, sim: Any) -> None:
        super().__init__(sim)
        self._buckets: dict[tuple[Any, ...], list[Slot]] = {}
        self._articles: dict[tuple[Any, ...], dict[str, Any]] = {}

    # -- framework hooks -----------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        """The two article endpoints."""
        return [
            Route("GET", r"/v2/everything", self.everything),
            Route("GET", r"/v2/top-headlines", self.top_headlines),
        ]

    def check_config(self, config: Any) -> None:
        """Range checks on top of the core's type checks."""
        for key in ("articles_per_hour", "headlines_per_hour"):
            if not 0 <= config[key] < MAX_PER_HOUR:
                raise ValueError(f"newsapi.{key} must be in [0, {MAX_PER_HOUR})")
        for key in ("headlines_total", "max_results", "plan_horizon_days"):
            if config[key] < 0:
                raise ValueError(f"newsapi.{key} must be >= 0")
        for key in ("bad_items_ratio", "syndication_ratio"):
            if not 0.0 <= config[key] <= 1.0:
                raise ValueError(f"newsapi.{key} must be in [0, 1]")
        if not 400 <= config["server_errors"]["status"] <= 599:
            raise ValueError("newsapi.server_errors.status must be a 4xx/5xx code")

    def on_reset(self) -> None:
        """Drop the caches (they depend on seed and volume only, but keep memory bounded)."""
        self._buckets.clear()
        self._articles.clear()

    def authorize(self, request: Request) -> Response | None:
        """``X-Api-Key``, ``Authorization: [Bearer] <key>`` or ``apiKey=``; 401 like NewsAPI otherwise."""
        key = request.header("X-Api-Key").strip()
        if not key:
            auth = request.header("Authorization").strip()
            key = auth[7:].strip() if auth.lower().startswith("bearer ") else auth
        if not key:
            key = request.query.get("apiKey", "").strip()
        if not key:
            return _error(401, ERR_KEY_MISSING)
        if self.config["reject_auth"] or key != self.config["api_key"]:
            return _error(401, ERR_KEY_INVALID)
        return None

    def rate_limited(self, retry_after: int) -> Response:
        """429 ``rateLimited``; a ``Retry-After`` header only when the fault asks for one."""
        return _error(429, ERR_RATE_LIMITED, {"Retry-After": str(retry_after)} if retry_after > 0 else None)

    def server_error(self, status: int) -> Response:
        """500 is NewsAPI's own JSON error; 502/503/504 come from the CDN as HTML."""
        if status == 500:
            return _error(500, ERR_UNEXPECTED)
        return Response(status=status, body=html_error(status), content_type="text/html; charset=UTF-8")

    def api_headers(self, window: Window, throttled: bool) -> dict[str, str]:
        """NewsAPI sends no rate-limit headers, only Cloudflare's cache headers."""
        return dict(NEWSAPI_HEADERS)

    # -- endpoints -----------------------------------------------------------------------------------
    def everything(self, request: Request, match: Any) -> Response:
        """``GET /v2/everything``: a query's articles in ``[from, to)``, newest first."""
        proxy = self._proxy_page()
        if proxy is not None:
            return proxy
        query = (request.query.get("q") or request.query.get("qInTitle") or "").strip()
        if not query:
            return _error(
                400,
                (
                    "parametersMissing",
                    "Required parameters are missing, the scope of your search is too broad. Please set any of "
                    "the following required parameters and try again: q, qInTitle, sources, domains.",
                ),
            )
        try:
            page, size = self._paging(request)
            start = _parse_bound(request.query.get("from"), upper=False)
            end = _parse_bound(request.query.get("to"), upper=True)
        except ValueError as exc:
            return _error(400, ("parameterInvalid", f"A parameter is invalid: {exc}."))
        now = request.now
        horizon_days = self.config["plan_horizon_days"]
        oldest = datetime.fromtimestamp(now, UTC).date() - timedelta(days=horizon_days or 30)
        oldest_epoch = datetime.combine(oldest, datetime.min.time(), tzinfo=UTC).timestamp()
        if start is None:
            start = oldest_epoch
        elif horizon_days and start < oldest_epoch:
            asked = datetime.fromtimestamp(start, UTC).date()
            return _error(
                400,
                (
                    "parameterInvalid",
                    "You are trying to request results too far in the past. Your plan permits you to request "
                    f"articles as far back as {oldest.isoformat()}, but you have requested {asked.isoformat()}. "
                    "To extend this please upgrade to a paid plan.",
                ),
            )
        cutoff = float(int(now) + 1)  # published at or before the clock's second
        end = cutoff if end is None else min(end, cutoff)
        capped = self._cap(page, size)
        if capped is not None:
            return capped
        slots = self._everything(query.lower(), start, end)
        return self._page(slots, page, size, "/v2/everything", now)

    def top_headlines(self, request: Request, match: Any) -> Response:
        """``GET /v2/top-headlines``: the newest headlines of a country/category, whatever the window."""
        proxy = self._proxy_page()
        if proxy is not None:
            return proxy
        country = request.query.get("country", "").strip().lower()
        category = request.query.get("category", "").strip().lower()
        if not (country or category or request.query.get("q") or request.query.get("sources")):
            return _error(
                400,
                (
                    "parametersMissing",
                    "Required parameters are missing. Please set any of the following parameters and try "
                    "again: sources, q, language, country, category.",
                ),
            )
        try:
            page, size = self._paging(request)
        except ValueError as exc:
            return _error(400, ("parameterInvalid", f"A parameter is invalid: {exc}."))
        capped = self._cap(page, size)
        if capped is not None:
            return capped
        slots = self._headlines(country or "all", category or "general", request.now)
        return self._page(slots, page, size, "/v2/top-headlines", request.now)

    # -- paging --------------------------------------------------------------------------------------
    def _proxy_page(self) -> Response | None:
        """The ``html_pages`` fault: a proxy's HTML error page with HTTP 200."""
        fault = self.config["html_pages"]
        if fault.get("always") or fault.get("count", 0) > 0:
            if not fault.get("always"):
                fault["count"] -= 1
            return Response(status=200, body=PROXY_PAGE, content_type="text/html; charset=utf-8")
        return None

    @staticmethod
    def _paging(request: Request) -> tuple[int, int]:
        page = _int_param(request.query.get("page"), 1)
        size = min(_int_param(request.query.get("pageSize"), DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
        return page, size

    def _cap(self, page: int, size: int) -> Response | None:
        cap = self.config["max_results"]
        if cap and page * size > cap:
            return _error(
                426,
                (
                    "maximumResultsReached",
                    f"You have requested too many results. Developer accounts are limited to a max of {cap} "
                    f"results. You are trying to request results {(page - 1) * size} to {page * size}. "
                    "Please upgrade to a paid plan if you need more results.",
                ),
            )
        return None

    def _page(self, slots: list[Slot], page: int, size: int, endpoint: str, now: float) -> Response:
        chunk = slots[(page - 1) * size : page * size]
        articles: list[dict[str, Any]] = []
        served: list[ServedItem] = []
        for slot in chunk:
            article, item = self._serve(slot, endpoint, now)
            articles.append(article)
            served.append(item)
        body = {"status": "ok", "totalResults": len(slots), "articles": articles}
        return json_response(200, body, served=served, malformable=True, content_type=JSON_TYPE)

    # -- pools and buckets ---------------------------------------------------------------------------
    def _bucket(self, pool: str, hour: int) -> list[Slot]:
        count = self.config["headlines_per_hour" if pool.startswith("h:") else "articles_per_hour"]
        spike = self.sim.spike
        if spike is not None:
            count = min(count + spike.extra("newsapi", hour * HOUR, HOUR, count), MAX_PER_HOUR - 1)
        key = (self.sim.seed, pool, hour, count, spike)
        cached = self._buckets.get(key)
        if cached is not None:
            return cached
        rng = random.Random(stable_hash(self.sim.seed, pool, hour))
        bucket = [Slot(pool, hour, i, hour * HOUR + rng.randrange(HOUR)) for i in range(count)]
        if len(self._buckets) > 50_000:
            self._buckets.clear()
        self._buckets[key] = bucket
        return bucket

    def _everything(self, query: str, start: float, end: float) -> list[Slot]:
        """Articles of the query's pool published in ``[start, end)``, newest first."""
        if end <= start or self.config["articles_per_hour"] <= 0:
            return []
        pool = f"q:{query}"
        first = int(start // HOUR)
        last = int((end - 1) // HOUR)
        first = max(first, last - MAX_SCAN_HOURS)
        out = [
            slot
            for hour in range(first, last + 1)
            for slot in self._bucket(pool, hour)
            if start <= slot.published < end
        ]
        out.sort(key=lambda s: (s.published, s.hour, s.idx), reverse=True)
        return out

    def _headlines(self, country: str, category: str, now: float) -> list[Slot]:
        """The newest ``headlines_total`` articles of the pair's pool published by ``now``."""
        total = self.config["headlines_total"]
        if total <= 0 or self.config["headlines_per_hour"] <= 0:
            return []
        pool = f"h:{country}:{category}"
        hour = int(now // HOUR)
        out: list[Slot] = []
        for _ in range(MAX_SCAN_HOURS):
            visible = [s for s in self._bucket(pool, hour) if s.published <= now]
            out.extend(sorted(visible, key=lambda s: (s.published, s.idx), reverse=True))
            if len(out) >= total:
                break
            hour -= 1
        return out[:total]

    # -- text --------------------------------------------------------------------------------------
    def origin(self, slot: Slot) -> str:
        """The corpus id of the article's story (a syndicated copy has its original's): equal = copies."""
        return self._text_entry(slot)[0].id

    def _text_entry(self, slot: Slot) -> tuple[_text.Entry, Slot | None, str]:
        """The story of an article, the article it copies (None for an original), a spike term to append."""
        seed = self.sim.seed
        headlines = slot.pool.startswith("h:")
        base = self.config["headlines_per_hour" if headlines else "articles_per_hour"]
        n = slot.hour * max(base, 1) + slot.idx
        spike = self.sim.spike
        if spike is not None and slot.idx >= base:
            entry, add = _text.spike_entry(spike, "news", seed, f"news:{slot.pool}", n)
            return entry, None, spike.term if add else ""
        bucket = self._bucket(slot.pool, slot.hour)
        earlier = [s for s in _earlier(bucket, slot) if s.idx < base]
        if (
            earlier
            and _text.fraction(seed, "syndicated", slot.pool, slot.hour, slot.idx)
            < (self.config["syndication_ratio"])
        ):
            original = earlier[
                stable_hash(seed, "syndicated-from", slot.pool, slot.hour, slot.idx) % len(earlier)
            ]
            return self._text_entry(original)[0], original, ""
        entries = _text.pool("news")
        if not headlines:
            matches = _text.matching("news", slot.pool[2:])
            if len(matches) >= 20:
                entries = matches
        return _text.pick(entries, seed, f"news:{slot.pool}", n), None, ""

    def _bad_kinds(self, pool: str, hour: int) -> dict[int, str]:
        """Which articles of a bucket are served broken, and how (cycling through BAD_KINDS)."""
        ratio = self.config["bad_items_ratio"]
        if ratio <= 0:
            return {}
        seed = self.sim.seed
        offset = stable_hash(seed, pool, hour, "bad-offset") % len(BAD_KINDS)
        out: dict[int, str] = {}
        for slot in self._bucket(pool, hour):
            if stable_fraction(seed, "bad", pool, hour, slot.idx) < ratio:
                out[slot.idx] = BAD_KINDS[(offset + len(out)) % len(BAD_KINDS)]
        return out

    # -- article data --------------------------------------------------------------------------------
    def _serve(self, slot: Slot, endpoint: str, now: float) -> tuple[dict[str, Any], ServedItem]:
        article = dict(self._article(slot))
        article["source"] = dict(article["source"])
        url = article["url"]
        bad = self._bad_kinds(slot.pool, slot.hour).get(slot.idx)
        if bad is not None:
            _break(article, bad, now)
        return article, ServedItem(url, endpoint, bad)

    def _article(self, slot: Slot) -> dict[str, Any]:
        key = (self.sim.seed, slot)
        cached = self._articles.get(key)
        if cached is not None:
            return cached
        seed = self.sim.seed
        rng = random.Random(stable_hash(seed, slot.pool, slot.hour, slot.idx))
        headlines = slot.pool.startswith("h:")
        source_id, source_name, domain = rng.choice(OUTLETS)
        entry, copied, term = self._text_entry(slot)
        outlet = str(entry.meta.get("outlet") or "")
        if copied is None and outlet:
            source_id, source_name, domain = _text.OUTLET_IDS.get(outlet), _text.outlet_name(outlet), outlet
        elif copied is not None:  # the same story under another outlet
            taken = self._article(copied)["source"]["name"]
            others = [o for o in OUTLETS if o[1] != taken and o[1] != _text.outlet_name(outlet)]
            source_id, source_name, domain = others[stable_hash(seed, "syndicated", slot) % len(others)]
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        roll = rng.random()
        if roll < 0.1:
            author: str | None = None
        elif roll < 0.25:
            author = f"{source_name} By {first} {last}"
        elif roll < 0.35:
            author = f"{first.lower()}{rng.randint(1, 99)}"
        elif roll < 0.42:
            author = source_name
        else:
            author = f"{first} {last}"
        title = entry.title or entry.body[:80]
        if copied is not None:
            title = _text.rewrite_headline(
                title, source_name, random.Random(stable_hash(seed, "rewrite", slot))
            )
        if term:
            title = _text.with_term(title, term)
        if headlines:
            title = f"{title} - {source_name}"
        text = " ".join(str(entry.meta.get("text") or "").split())
        # NewsAPI's description is the outlet's standfirst, else usually the lede: the first sentence.
        description = entry.body or _text.lede(text) or None
        content: str | None = None
        # Like the real API, about 6 % of the articles come without a description and 6 % without content
        # (1 in 16 each, spread evenly along a pool so every page of 16 or more shows both variants).
        turn = (slot.hour * 7 + slot.idx) % 16
        if turn == 5:
            description = None
        if text and turn != 11:
            content = f"{text[:200]}… [+{max(len(text) - 200, 0)} chars]"
        if copied is not None:  # a copy carries the original's standfirst and text as they were served
            original = self._article(copied)
            description, content = original["description"], original["content"]
        tag = to_base36(stable_hash(seed, slot.pool, "tag") % 36**6).rjust(6, "0")
        uid = tag + to_base36(slot.hour * MAX_PER_HOUR + slot.idx)
        day = datetime.fromtimestamp(slot.published, UTC)
        url = f"https://{domain}/{day:%Y/%m/%d}/{_slug(title)}-{uid}"
        image = None if rng.random() < 0.15 else f"https://cdn.{domain.removeprefix('www.')}/images/{uid}.jpg"
        article = {
            "source": {"id": source_id, "name": source_name},
            "author": author,
            "title": title,
            "description": description,
            "url": url,
            "urlToImage": image,
            "publishedAt": format_time(float(slot.published)),
            "content": content,
        }
        if len(self._articles) > 50_000:
            self._articles.clear()
        self._articles[key] = article
        return article


def _earlier(bucket: list[Slot], slot: Slot) -> list[Slot]:
    """Articles of the bucket published before ``slot`` (candidates for it to copy)."""
    return [s for s in bucket if (s.published, s.idx) < (slot.published, slot.idx)]


def _break(article: dict[str, Any], bad: str, now: float) -> None:
    """Damage an article in place the way ``bad`` says."""
    if bad == "missing_id":
        article["url"] = None
    elif bad == "bad_timestamp":
        # an RFC 1123 date where ISO 8601 belongs
        article["publishedAt"] = formatdate(
            datetime.fromisoformat(article["publishedAt"]).timestamp(), usegmt=True
        )
    elif bad == "future_timestamp":
        article["publishedAt"] = format_time(float(int(now) + FUTURE_SECONDS))
    elif bad == "nul_byte":
        text = article.get("description") or "nothing to see here"
        half = len(text) // 2
        article["description"] = f"{text[:half]}\u0000{text[half:]}"
    elif bad == "huge_text":
        article["content"] = _huge_text(article.get("content") or "")
    elif bad == "missing_text":
        article["title"] = None
