"""NewsAPI: which searches and headline lists to page through, and how a page becomes documents (pure functions).

Two kinds of stream:

* ``everything:<query>``: ``GET /v2/everything?q=<query>&from=<window start>&to=<window end>&sortBy=publishedAt``,
  newest first. Backfillable within the plan's horizon (``plan_horizon_days``, 30 for the Developer plan's
  one month); :func:`reach` tells the extract operator, which records an older window as a gap. Should
  NewsAPI still refuse a window as too old (HTTP 400 ``parameterInvalid`` "too far in the past"), the
  stream ends there with a warning.
* ``top-headlines:<country>/<category>``: ``GET /v2/top-headlines?country=&category=``: whatever is current
  now, whatever the window; a window that ended more than :data:`TOP_HEADLINES_REACH` ago cannot be served.

Paging is by page number (``page`` from 1); the next page exists while ``page * pageSize < totalResults``.
The Developer plan serves at most 100 results per request chain: asking beyond that gives HTTP 426
``maximumResultsReached``, which also ends the stream (what the plan can serve has been served).

NewsAPI articles carry no id: the article URL (without its fragment) is the external id.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urldefrag, urlsplit

from pulse.config import ConfigError, int_in, mapping, str_list
from pulse.sources.base import (
    Document,
    ItemError,
    MalformedPageError,
    ParseOutput,
    Reason,
    StoredPage,
    Stream,
    check_iso,
    check_text,
    checked_pseudonymizer,
    rejected,
)
from pulse.warehouse.pgtypes import sane_iso_epoch, storable_text

SOURCE = "newsapi"
EVERYTHING = "/v2/everything"
TOP_HEADLINES = "/v2/top-headlines"
EVERYTHING_PREFIX = "everything:"
HEADLINES_PREFIX = "top-headlines:"
#: NewsAPI's default ``pageSize`` when a request does not set one.
DEFAULT_PAGE_SIZE = 20
#: How long after a window ends the current top headlines still stand for it (a late or retried run).
TOP_HEADLINES_REACH = timedelta(hours=3)
#: The Developer (free) plan serves ``/v2/everything`` one month back.
DEVELOPER_HORIZON_DAYS = 30
#: Stream params the hook uses itself and never sends.
CONTROL_PARAMS = frozenset({"horizon_days"})
#: ``/v2/top-headlines`` categories (https://newsapi.org/docs/endpoints/top-headlines).
CATEGORIES = frozenset({"business", "entertainment", "general", "health", "science", "sports", "technology"})
#: Author bylines are handles: pseudonymised, and redacted in quarantine rows.
PII_KEYS = frozenset({"author"})
#: NewsAPI's placeholder for an article the publisher withdrew.
REMOVED = "[Removed]"
MAX_QUERY_CHARS = 500

_COUNTRY = re.compile(r"^[a-z]{2}$")
_LANGUAGE = re.compile(r"^[a-z]{2}$")
_TOO_OLD = re.compile(r"too far in the past|as far back as", re.IGNORECASE)


# ------------------------------------------------------------------------------------------------
# configuration and streams
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Headlines:
    """One ``/v2/top-headlines`` list: a country, a category, or both."""

    country: str | None
    category: str | None

    @property
    def key(self) -> str:
        """``us/technology``; ``all`` stands for a missing half."""
        return f"{self.country or 'all'}/{self.category or 'all'}"


@dataclass(frozen=True)
class NewsApiConfig:
    conn_id: str
    queries: tuple[str, ...]
    top_headlines: tuple[Headlines, ...]
    page_size: int
    language: str
    plan_horizon_days: int


def parse_config(entry: Any, where: str) -> NewsApiConfig:
    """Validate the ``newsapi`` entry of ``include/sources.yaml``.

    ``queries`` (``/v2/everything`` searches) and ``top_headlines`` (``{country, category}`` pairs) are both
    optional, but at least one of them must be given. ``plan_horizon_days`` is how far back the account's
    plan serves ``/v2/everything`` (default 30, the Developer plan).
    """
    entry = mapping(
        entry, where, {"conn_id", "queries", "top_headlines", "page_size", "language", "plan_horizon_days"}
    )
    queries = str_list(entry, "queries", where, pattern=None, required=False)
    for i, query in enumerate(queries):
        if not query.strip():
            raise ConfigError(f"{where}.queries[{i}]: the query is empty")
        if len(query) > MAX_QUERY_CHARS:
            raise ConfigError(f"{where}.queries[{i}]: longer than NewsAPI's {MAX_QUERY_CHARS} characters")
        if any(ord(c) < 32 for c in query):
            raise ConfigError(f"{where}.queries[{i}]: {query!r} holds control characters")
        if query in queries[:i]:
            raise ConfigError(f"{where}.queries[{i}]: {query!r} is listed twice")
    headlines = _headlines(entry.get("top_headlines"), f"{where}.top_headlines")
    if not queries and not headlines:
        raise ConfigError(f"{where}: give at least one of queries and top_headlines")
    language = entry.get("language", "en")
    if not isinstance(language, str) or not _LANGUAGE.match(language):
        raise ConfigError(f"{where}.language: {language!r} must be a 2-letter ISO 639-1 code, e.g. en")
    return NewsApiConfig(
        conn_id=str(entry.get("conn_id", "newsapi_default")),
        queries=queries,
        top_headlines=headlines,
        page_size=int_in(entry, "page_size", where, 1, 100, 100),
        language=language,
        plan_horizon_days=int_in(entry, "plan_horizon_days", where, 1, 3660, DEVELOPER_HORIZON_DAYS),
    )


def _headlines(value: Any, where: str) -> tuple[Headlines, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: expected a non-empty list of {{country, category}} mappings")
    out: list[Headlines] = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        item = mapping(item, at, {"country", "category"})
        country, category = item.get("country"), item.get("category")
        if country is None and category is None:
            raise ConfigError(f"{at}: give a country, a category or both")
        if country is not None and (not isinstance(country, str) or not _COUNTRY.match(country)):
            raise ConfigError(f"{at}.country: {country!r} must be a 2-letter lowercase country code, e.g. us")
        if category is not None and category not in CATEGORIES:
            raise ConfigError(f"{at}.category: {category!r} is not one of {', '.join(sorted(CATEGORIES))}")
        pair = Headlines(country, category)
        if pair in out:
            raise ConfigError(f"{at}: {pair.key} is listed twice")
        out.append(pair)
    return tuple(out)


def api_time(value: datetime) -> str:
    """A window bound as NewsAPI takes it: ISO 8601 in UTC, seconds, no offset (``2026-11-28T11:00:00``)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def plan_streams(config: NewsApiConfig, window: Any) -> list[Stream]:
    """One ``/v2/everything`` stream per query (bounded by the window) and one per headline list.

    ``horizon_days`` in an everything stream's params is for :func:`reach`; the hook does not send it.
    """
    streams = [
        Stream(
            key=f"{EVERYTHING_PREFIX}{query}",
            endpoint=EVERYTHING,
            params={
                "q": query,
                "from": api_time(window.start),
                "to": api_time(window.end),
                "sortBy": "publishedAt",
                "language": config.language,
                "pageSize": config.page_size,
                "horizon_days": config.plan_horizon_days,
            },
        )
        for query in config.queries
    ]
    for pair in config.top_headlines:
        params: dict[str, Any] = {"pageSize": config.page_size}
        if pair.country:
            params["country"] = pair.country
        if pair.category:
            params["category"] = pair.category
        streams.append(Stream(key=f"{HEADLINES_PREFIX}{pair.key}", endpoint=TOP_HEADLINES, params=params))
    return streams


def reach(stream: Stream) -> timedelta | None:
    """How far back before now the API can serve a window of ``stream`` (the extract operator's question).

    ``/v2/everything``: the plan's horizon. ``/v2/top-headlines``: :data:`TOP_HEADLINES_REACH` (current only).
    """
    if stream.endpoint == TOP_HEADLINES:
        return TOP_HEADLINES_REACH
    if stream.endpoint == EVERYTHING:
        return timedelta(days=int(stream.params.get("horizon_days", DEVELOPER_HORIZON_DAYS)))
    return None


def request_params(stream: Stream) -> dict[str, Any]:
    """The query parameters of ``stream`` that go to NewsAPI (control params removed)."""
    return {k: v for k, v in stream.params.items() if k not in CONTROL_PARAMS}


def out_of_reach(stream: Stream, window: Any, now: datetime) -> str | None:
    """Why the hook must not ask for top headlines of ``window`` at ``now``, or None when it may.

    Top headlines are current only; an everything window too old for the plan is left to NewsAPI to refuse
    (HTTP 400, see :func:`end_of_stream`), as the plan may reach further than configured.
    """
    if stream.endpoint == TOP_HEADLINES and window.end <= now - TOP_HEADLINES_REACH:
        return (
            f"beyond reach: /v2/top-headlines serves only current headlines, and window {window} ended "
            f"more than {TOP_HEADLINES_REACH} before {now.isoformat()}"
        )
    return None


# ------------------------------------------------------------------------------------------------
# pages
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageInfo:
    """A NewsAPI answer: ``status`` "ok" with ``articles`` and ``total_results``, or "error" with a code."""

    status: str
    articles: list[Any]
    total_results: int
    code: str | None = None
    message: str | None = None


def page_info(body: bytes | str) -> PageInfo:
    """Check that ``body`` is a NewsAPI envelope (a page of articles or an error) and return what it holds.

    :raises MalformedPageError: bad JSON, an HTML page (a proxy's error page, even with HTTP 200), or JSON
        of another shape.
    """
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        snippet = (body[:80] if isinstance(body, str) else body[:80].decode("utf-8", "replace")).strip()
        raise MalformedPageError(f"body is not JSON ({exc}); starts with {snippet!r}") from None
    if not isinstance(doc, dict):
        raise MalformedPageError(f"body is JSON {type(doc).__name__}, not a NewsAPI object")
    status = doc.get("status")
    if status == "error":
        code, message = doc.get("code"), doc.get("message")
        if not isinstance(code, str):
            raise MalformedPageError("NewsAPI error envelope without a code")
        return PageInfo("error", [], 0, code, message if isinstance(message, str) else None)
    if status != "ok":
        raise MalformedPageError(f"body is JSON but not a NewsAPI page (status {status!r})")
    articles, total = doc.get("articles"), doc.get("totalResults")
    if not isinstance(articles, list):
        raise MalformedPageError("NewsAPI page has no articles list")
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise MalformedPageError(f"NewsAPI page totalResults is {total!r}, expected a count")
    return PageInfo("ok", articles, total)


def end_of_stream(status: int, info: PageInfo) -> str | None:
    """The warning to record when an error answer means "nothing more for this stream", else None.

    * HTTP 426 ``maximumResultsReached``: the plan's cap on results (100 on the Developer plan) is reached.
    * HTTP 400 ``parameterInvalid`` about ``from``: the window is older than the plan lets anyone ask for.
    """
    if info.status != "error":
        return None
    # The message goes to raw.api_responses.error: escaped, whatever the API put in it.
    info = PageInfo(
        info.status, info.articles, info.total_results, info.code, storable_text(info.message or "")
    )
    if status == 426 and info.code == "maximumResultsReached":
        return f"plan cap reached: NewsAPI serves no more results for this stream ({info.message})"
    if status == 400 and info.code == "parameterInvalid" and _TOO_OLD.search(info.message or ""):
        return f"beyond reach: the window is older than the NewsAPI plan allows ({info.message})"
    return None


def next_page(params: dict[str, Any], info: PageInfo) -> str | None:
    """The next ``page`` number as text, or None when this page is the last one."""
    number = int(params.get("page", 1))
    size = int(params.get("pageSize", DEFAULT_PAGE_SIZE))
    if not info.articles or number * size >= info.total_results:
        return None
    return str(number + 1)


def oldest_published(articles: list[Any]) -> float | None:
    """The oldest usable ``publishedAt`` of ``articles`` as epoch seconds, or None.

    Only times a parser would accept count (ISO 8601 within 1970-2100): a hostile article's year-0 or garbage
    date is skipped for paging and gap decisions, never trusted and never allowed to raise.
    """
    stamps = [
        epoch
        for article in articles
        if isinstance(article, dict) and (epoch := sane_iso_epoch(article.get("publishedAt"))) is not None
    ]
    return min(stamps) if stamps else None


# ------------------------------------------------------------------------------------------------
# items
# ------------------------------------------------------------------------------------------------


def _external_id(article: dict[str, Any]) -> str:
    url = article.get("url")
    if url is None or (isinstance(url, str) and not url.strip()):
        raise ItemError(Reason.MISSING_ID, "url is missing (NewsAPI articles have no other id)")
    url = check_text("url", url)
    assert url is not None
    try:
        parts = urlsplit(url.strip())
        ident = urldefrag(url.strip()).url
    except ValueError:  # e.g. "http://[::1" (an unclosed IPv6 host)
        raise ItemError(Reason.BAD_FIELD, f"url {url[:200]!r} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ItemError(Reason.BAD_FIELD, f"url {url[:200]!r} is not an http(s) URL")
    return ident


def _context(page: StoredPage) -> dict[str, str]:
    if page.stream.startswith(EVERYTHING_PREFIX):
        return {"query": page.stream[len(EVERYTHING_PREFIX) :]}
    if page.stream.startswith(HEADLINES_PREFIX):
        return {"headlines": page.stream[len(HEADLINES_PREFIX) :]}
    return {}


def parse_item(
    article: Any,
    pseudonymize: Callable[[str | None], str | None],
    now: datetime,
    context: dict[str, str] | None = None,
) -> Document:
    """Turn one article into a document, or raise :class:`ItemError` with a reason.

    ``context`` (``{"query": ...}`` or ``{"headlines": ...}``) says which stream found it; it goes to the
    payload.
    """
    if not isinstance(article, dict):
        raise ItemError(Reason.NOT_AN_OBJECT, "article is not an object")
    if article.get("title") == REMOVED:
        raise ItemError(
            Reason.BAD_FIELD, "NewsAPI lists the article as [Removed] (withdrawn by its publisher)"
        )
    external_id = _external_id(article)
    created_at = check_iso("publishedAt", article.get("publishedAt"), now)
    assert created_at is not None
    title = check_text("title", article.get("title"), required=True)
    description = check_text("description", article.get("description"))
    content = check_text("content", article.get("content"))
    body = "\n\n".join(part for part in (description, content) if part) or None
    source = article.get("source")
    if source is None:
        source = {}
    if not isinstance(source, dict):
        raise ItemError(Reason.BAD_FIELD, f"source is {type(source).__name__}, expected an object")
    source_id = check_text("source.id", source.get("id"))
    source_name = check_text("source.name", source.get("name"))
    author = article.get("author")
    if author is not None and not isinstance(author, str):
        raise ItemError(Reason.BAD_FIELD, f"author is {type(author).__name__}, expected text")
    return Document(
        source=SOURCE,
        external_id=external_id,
        kind="article",
        created_at=created_at,
        channel=source_name or None,
        title=title,
        body=body,
        url=article["url"],
        author_pseudonym=pseudonymize(author.strip()) if author and author.strip() else None,
        score=None,
        metrics={},
        payload={
            "source_id": source_id,
            "source_name": source_name,
            "url_to_image": check_text("urlToImage", article.get("urlToImage")),
            **(context or {}),
        },
    )


def parse_page(
    page: StoredPage, pseudonymize: Callable[[str | None], str | None], now: datetime
) -> ParseOutput:
    """Yield ``(item_index, Document | Rejected)`` for every article of a stored page.

    A stored error answer that ended its stream (HTTP 426 / too-old 400, kept in raw as evidence) holds no
    articles and yields nothing.
    """
    info = page_info(page.body)
    if info.status == "error":
        if info.code in ("maximumResultsReached", "parameterInvalid"):
            return
        raise MalformedPageError(f"stored page is a NewsAPI error ({info.code}: {info.message})")
    context = _context(page)
    checked = checked_pseudonymizer(pseudonymize)
    for index, article in enumerate(info.articles):
        try:
            yield index, parse_item(article, checked, now, context)
        except ItemError as exc:
            yield index, rejected(index, exc, _known_id(article), article, PII_KEYS, pseudonymize)


def _known_id(article: Any) -> str | None:
    """The article's URL key when it can be told (not for [Removed] placeholders, which share one URL)."""
    if not isinstance(article, dict) or article.get("title") == REMOVED:
        return None
    try:
        return _external_id(article)
    except ItemError:
        return None


# ------------------------------------------------------------------------------------------------
# the declaration: everything else about this source derives from it (pulse.sources.spec,
# docs/adding-a-source.md)
# ------------------------------------------------------------------------------------------------

from datetime import timedelta  # noqa: E402

from pulse.sources.spec import Freshness, SourceSpec  # noqa: E402

SPEC = SourceSpec(
    name="newsapi",
    title="NewsAPI",
    hook="pulse.hooks.newsapi:NewsApiHook",
    schedule="20 * * * *",
    default_window=timedelta(hours=1),
    pool_slots=1,
    budgets=((86400, 100),),
    budget_note="100 requests/day on the Developer plan",
    tables=("core.documents",),
    freshness=Freshness("core.documents", max_age_minutes=180),
    conn_defaults={"host": "https://newsapi.org"},
    local_conn={"password": "sim-newsapi-key"},
)
