"""NewsApiHook: NewsAPI over the http provider's HttpHook, configured from an Airflow connection.

Connection ``newsapi_default`` (type ``http``):

=============  ==========================================================================================
field          meaning
=============  ==========================================================================================
host           base URL with its scheme, e.g. ``http://127.0.0.1:8765`` (the simulator); empty means
               ``https://newsapi.org``
password       the NewsAPI key, sent as the ``X-Api-Key`` header (never in the URL, so it cannot reach
               ``raw.api_responses.request_params`` or a log line)
login          unused (the http provider would turn it into Basic auth; this hook never does)
extra          ``timeout`` seconds per request (default 30), ``max_attempts`` per page (default 6),
               ``backoff`` first wait in seconds, doubled per attempt (default 1), ``max_results`` the
               plan's cap on results per stream (100 on the Developer plan; unset: page until NewsAPI
               answers 426), ``max_wait`` the longest single wait in seconds (default 60). Other text
               extras are sent as request headers, as the http provider does.
=============  ==========================================================================================

The same code talks to newsapi.org or to the simulator: only the connection changes. Per page the hook
retries 429 (``Retry-After`` when NewsAPI sends one, else backoff), 5xx, timeouts and malformed bodies (bad
JSON, or a proxy's HTML error page served with HTTP 200), turns 401/403 into
:class:`~pulse.sources.base.SourceAuthError`, and ends a stream cleanly, with a warning and the answer kept
in raw, on HTTP 426 ``maximumResultsReached`` (the plan's result cap) and on HTTP 400 ``parameterInvalid``
for a window older than the plan's horizon.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from pulse.sources.base import MalformedPageError, Page, PageFetchError, SourceAuthError, Stream
from pulse.sources.newsapi import (
    CONTROL_PARAMS,
    DEFAULT_PAGE_SIZE,
    EVERYTHING,
    PageInfo,
    api_time,
    end_of_stream,
    next_page,
    oldest_published,
    out_of_reach,
    page_info,
    request_params,
)

if TYPE_CHECKING:
    import requests
    from airflow.providers.http.hooks.http import HttpHook

    from pulse.windows import Window

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://newsapi.org"
#: Connection extras read by this hook; the http provider would otherwise send them as request headers.
OWN_EXTRAS = frozenset({"timeout", "max_attempts", "backoff", "max_results", "max_wait"})


def _utcnow() -> datetime:
    from pulse.windows import utcnow

    return utcnow()


def _http_hook(conn: Any) -> HttpHook:
    """An ``HttpHook(method="GET")`` bound to the already resolved connection ``conn``."""
    from airflow.providers.http.hooks.http import HttpHook

    class _NewsApiHttpHook(HttpHook):
        default_host = DEFAULT_BASE_URL

        def get_connection(self, conn_id: str) -> Any:  # type: ignore[override]
            return conn  # resolved once by NewsApiHook, not once per request

        def _configure_session_from_auth(self, session: Any, connection: Any) -> Any:
            session.auth = None  # the key travels in X-Api-Key only, never as Basic auth
            return session

        def _configure_session_from_extra(self, session: Any, connection: Any, extra_options: Any) -> Any:
            session = super()._configure_session_from_extra(session, connection, extra_options)
            for key in OWN_EXTRAS:
                session.headers.pop(key, None)
            return session

    return _NewsApiHttpHook(method="GET", http_conn_id=conn.conn_id)


class NewsApiHook(BaseHook):
    """Page NewsAPI's ``/v2/everything`` and ``/v2/top-headlines`` through the http provider's ``HttpHook``.

    :param newsapi_conn_id: connection with the base URL and the API key (see module docstring).
    :param max_attempts: attempts per page for throttling, server errors, timeouts and malformed bodies
        (default: the connection's ``max_attempts`` extra, else 6).
    :param max_wait: the longest single wait in seconds (a longer ``Retry-After`` is capped and retried).
    :param sleep: how to wait (tests pass a recorder).
    :param now: the clock deciding whether a window is still current for top headlines (default: UTC now).
    """

    conn_name_attr = "newsapi_conn_id"
    default_conn_name = "newsapi_default"
    conn_type = "http"
    hook_name = "NewsAPI"

    def __init__(
        self,
        newsapi_conn_id: str = default_conn_name,
        max_attempts: int | None = None,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__()
        self.newsapi_conn_id = newsapi_conn_id
        self.max_attempts = max_attempts or 6
        self._explicit_attempts = max_attempts is not None
        self.backoff = 1.0
        self.timeout = 30.0
        self.max_results: int | None = None
        self.max_wait = max_wait
        self._sleep = sleep
        self._now = now
        self._api_key = ""

    # ------------------------------------------------------------------ client

    @cached_property
    def client(self) -> HttpHook:
        """The ``HttpHook``, built on first use from the connection (which also sets the retry settings)."""
        conn = self.get_connection(self.newsapi_conn_id)
        if not conn.password:
            raise SourceAuthError(
                f"connection '{self.newsapi_conn_id}' has no NewsAPI key: put it in the password field"
            )
        extra = conn.extra_dejson
        if not self._explicit_attempts and extra.get("max_attempts"):
            self.max_attempts = int(extra["max_attempts"])
        self.backoff = float(extra.get("backoff", self.backoff))
        self.timeout = float(extra.get("timeout", self.timeout))
        self.max_wait = float(extra.get("max_wait", self.max_wait))
        self.max_results = int(extra["max_results"]) if extra.get("max_results") else None
        self._api_key = conn.password
        return _http_hook(conn)

    def _get(self, endpoint: str, params: dict[str, Any]) -> requests.Response:
        client = self.client  # first: sets the key and the timeout from the connection
        return client.run(
            endpoint,
            data=params,
            headers={"X-Api-Key": self._api_key},
            extra_options={"check_response": False, "timeout": self.timeout},
        )

    def test_connection(self) -> tuple[bool, str]:
        """Ask for one current US headline to prove the base URL and the key work."""
        try:
            resp = self._get("/v2/top-headlines", {"country": "us", "pageSize": 1})
            if resp.status_code != 200:
                return False, f"HTTP {resp.status_code}: {resp.text[:300]}"
            page_info(resp.content)
        except Exception as exc:
            return False, str(exc)
        return True, "Connection successfully tested"

    # ------------------------------------------------------------------ one page

    def _auth_error(self, status: int, info: PageInfo | None, what: str) -> SourceAuthError:
        said = f" {info.code}: {info.message}" if info is not None and info.code else ""
        return SourceAuthError(
            f"NewsAPI rejected the API key of connection '{self.newsapi_conn_id}' (HTTP {status} on {what}"
            f"{said}). Fix the connection's password (the API key); not retrying."
        )

    def fetch_page(self, stream: Stream, page_no: int, params: dict[str, Any]) -> Page:
        """GET one page, retrying what can be retried; return it with its raw bytes and headers.

        A 426 ``maximumResultsReached`` or a too-old 400 ``parameterInvalid`` comes back as a valid page with
        no items, no next cursor and ``error`` saying why the stream ends there.

        :raises SourceAuthError: 401/403, at once.
        :raises MalformedPageError: the body stayed malformed on every attempt (``exc.page`` holds the last).
        :raises PageFetchError: throttling, 5xx or timeouts outlasted every attempt, or another 4xx.
        """
        import requests

        self.client  # noqa: B018  (resolves the connection's retry settings)
        params = {k: v for k, v in params.items() if k not in CONTROL_PARAMS}
        last_problem = ""
        malformed: Page | None = None
        for attempt in range(1, self.max_attempts + 1):
            wait = min(self.max_wait, self.backoff * 2.0 ** (attempt - 1))
            try:
                resp = self._get(stream.endpoint, params)
            except requests.RequestException as exc:
                last_problem = f"network error: {exc!r}"
            else:
                page = Page(
                    stream=stream,
                    page_no=page_no,
                    endpoint=stream.endpoint,
                    params=params,
                    status_code=resp.status_code,
                    headers=dict(resp.headers),
                    body=resp.content,
                )
                status = resp.status_code
                info = _error_info(resp.content) if status != 200 else None
                if status == 200:
                    try:
                        ok = page_info(resp.content)
                        if ok.status != "ok":
                            raise MalformedPageError(f"HTTP 200 carrying a NewsAPI error ({ok.code})")
                    except MalformedPageError as exc:
                        page.is_valid, page.error = False, str(exc)
                        malformed, last_problem = page, f"malformed page: {exc}"
                    else:
                        page.item_count = len(ok.articles)
                        page.next_cursor = next_page(params, ok)
                        return page
                elif status in (401, 403):
                    raise self._auth_error(status, info, stream.endpoint)
                elif info is not None and (end := end_of_stream(status, info)):
                    page.item_count, page.next_cursor, page.error = 0, None, end
                    return page
                elif status == 429:
                    wait = self._retry_after(resp, default=wait)
                    last_problem = f"HTTP 429 ({info.code if info else 'no code'})"
                elif status >= 500 or status == 408:
                    last_problem = f"HTTP {status}"
                else:
                    said = f"{info.code}: {info.message}" if info else resp.text[:200]
                    raise PageFetchError(f"NewsAPI answered HTTP {status} for {stream.endpoint}: {said}")
            if attempt < self.max_attempts:
                log.warning(
                    "%s page %s attempt %s/%s: %s; waiting %.1fs",
                    stream.key,
                    page_no,
                    attempt,
                    self.max_attempts,
                    last_problem,
                    wait,
                )
                self._sleep(wait)
        if malformed is not None and last_problem.startswith("malformed"):
            raise MalformedPageError(
                f"{stream.endpoint} page {page_no} stayed malformed after {self.max_attempts} attempts: "
                f"{malformed.error}",
                page=malformed,
            )
        raise PageFetchError(
            f"{stream.endpoint} page {page_no} failed after {self.max_attempts} attempts: {last_problem}"
        )

    def _retry_after(self, response: requests.Response, default: float) -> float:
        """``Retry-After`` in seconds or as an HTTP date, capped by ``max_wait``; ``default`` without one."""
        value = response.headers.get("retry-after")
        if not value:
            return default
        try:
            seconds = float(value)
        except ValueError:
            try:
                seconds = (parsedate_to_datetime(value) - _utcnow()).total_seconds()
            except (TypeError, ValueError):
                return default
        return max(0.0, min(self.max_wait, seconds))

    # ------------------------------------------------------------------ paging

    def iter_pages(
        self, stream: Stream, window: Window, cursor: str | None = None, page_no: int = 0
    ) -> Iterator[Page]:
        """Page a stream from page ``cursor`` (default 1) until NewsAPI has no more for it.

        An everything stream asks for ``from`` / ``to`` = the window given here. Each yielded page has
        ``next_cursor`` set to the next page number, or ``None`` when the stream is complete for this window
        (last page, plan cap, or window beyond the plan's reach), so a retry can resume after the last stored
        page. When the plan's result cap cuts an everything stream short, the last page's ``oldest_created``
        says how far back the stream got (the rest of the window is a listing-cap gap). A top-headlines
        stream whose window is no longer current yields nothing (with a warning): the API cannot serve it.
        """
        reason = out_of_reach(stream, window, (self._now or _utcnow)())
        if reason:
            log.warning("%s: not fetched, %s", stream.key, reason)
            return
        self.client  # noqa: B018  (resolves max_results)
        base = request_params(stream)
        if stream.endpoint == EVERYTHING:
            base.update({"from": api_time(window.start), "to": api_time(window.end)})
        size = int(base.get("pageSize", DEFAULT_PAGE_SIZE))
        number = int(cursor) if cursor else 1
        oldest: float | None = None
        while True:
            params: dict[str, Any] = {**base, "page": number}
            page = self.fetch_page(stream, page_no, params)
            if page.error:
                log.warning("%s page %d (page=%d): stream ends, %s", stream.key, page_no, number, page.error)
                if stream.endpoint == EVERYTHING and page.status_code == 426:
                    page.oldest_created = oldest
            elif page.next_cursor is not None and self.max_results and number * size >= self.max_results:
                log.warning(
                    "%s: stopping at the plan's cap of %d results (max_results); NewsAPI reports more",
                    stream.key,
                    self.max_results,
                )
                page.next_cursor = None
                if stream.endpoint == EVERYTHING:
                    page.oldest_created = oldest_published(page_info(page.body).articles)
            elif page.item_count:
                oldest = oldest_published(page_info(page.body).articles)
            yield page
            if page.next_cursor is None:
                return
            number, page_no = int(page.next_cursor), page_no + 1


def _error_info(body: bytes) -> PageInfo | None:
    """The NewsAPI error envelope of a non-200 answer, or None (an HTML gateway page, say)."""
    try:
        info = page_info(body)
    except MalformedPageError:
        return None
    return info if info.status == "error" else None
