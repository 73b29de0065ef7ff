"""NewsApiHook: NewsAPI over the http provider's HttpHook, configured from an Airflow connection.

Connection ``newsapi_default`` (type ``pulse_newsapi``; ``http`` and ``generic`` connections work too):

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
               answers 426), ``max_wait`` the longest single wait in seconds (default 60), ``jitter``
               (default 0.25): see :mod:`pulse.hooks.base`. Other text extras are sent as request
               headers, as the http provider does.
=============  ==========================================================================================

The same code talks to newsapi.org or to the simulator: only the connection changes. Requests go through the
http provider's ``HttpHook``, handed a view of the connection without the credentials (so no Basic auth) and
without the extras this hook reads (so they are not sent as headers). Per page the paging engine
(:mod:`pulse.hooks.base`) retries 429 (``Retry-After`` when NewsAPI sends one, else backoff), 5xx, timeouts and malformed bodies (bad
JSON, or a proxy's HTML error page served with HTTP 200), turns 401/403 into
:class:`~pulse.sources.base.SourceAuthError`, and ends a stream cleanly, with a warning and the answer kept
in raw, on HTTP 426 ``maximumResultsReached`` (the plan's result cap) and on HTTP 400 ``parameterInvalid``
for a window older than the plan's horizon.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Unpack

from pulse.hooks.base import RETRY_EXTRAS, HookArgs, Reply, SourceHook, Verdict
from pulse.sources.base import MalformedPageError, Page, SourceAuthError, Stream
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


def _utcnow() -> datetime:
    from pulse.windows import utcnow

    return utcnow()


DEFAULT_BASE_URL = "https://newsapi.org"
#: Connection extras read by this hook; the http provider would otherwise send them as request headers.
OWN_EXTRAS = RETRY_EXTRAS | {"max_results"}


def _http_hook(conn: Any) -> HttpHook:
    """An ``HttpHook(method="GET")`` on a view of ``conn``: its host and header extras, no credentials."""
    from airflow.providers.http.hooks.http import HttpHook
    from airflow.sdk import Connection

    view = Connection(
        conn_id=conn.conn_id,
        conn_type="http",
        host=conn.host or DEFAULT_BASE_URL,
        schema=conn.schema,
        port=conn.port,
        extra=json.dumps({k: v for k, v in (conn.extra_dejson or {}).items() if k not in OWN_EXTRAS}),
    )

    class NewsApiHttpHook(HttpHook):
        @classmethod
        def get_connection(cls, conn_id: str) -> Any:
            return view  # resolved once by NewsApiHook, not once per request

    return NewsApiHttpHook(method="GET", http_conn_id=conn.conn_id)


class NewsApiHook(SourceHook):
    """Page NewsAPI's ``/v2/everything`` and ``/v2/top-headlines`` through the http provider's ``HttpHook``.

    :param newsapi_conn_id: connection with the base URL and the API key (see module docstring).
    :param now: the clock deciding whether a window is still current for top headlines (default: UTC now).
    :param settings: retry settings (``max_attempts``, ``backoff``, ``jitter``, ``max_wait``, ``timeout``,
        ``sleep``): see :class:`~pulse.hooks.base.SourceHook`.
    """

    conn_name_attr = "newsapi_conn_id"
    default_conn_name = "newsapi_default"
    conn_type = "pulse_newsapi"
    hook_name = "NewsAPI (Pulse)"
    source_name = "NewsAPI"
    credential = "API key"
    credential_fix = "the connection's password (the API key)"
    default_timeout = 30.0

    def __init__(
        self,
        newsapi_conn_id: str = default_conn_name,
        now: Callable[[], datetime] | None = None,
        **settings: Unpack[HookArgs],
    ) -> None:
        super().__init__(newsapi_conn_id, **settings)
        self._clock = now

    def now(self) -> datetime:
        return (self._clock or _utcnow)()

    @property
    def max_results(self) -> int | None:
        """The plan's cap on results per stream (the ``max_results`` extra), or None."""
        value = self.extras.get("max_results")
        return int(value) if value else None

    @cached_property
    def client(self) -> HttpHook:
        """The ``HttpHook``, built on first use from the connection."""
        if not self.connection.password:
            raise SourceAuthError(
                f"connection '{self.conn_id}' has no NewsAPI key: put it in the password field"
            )
        return _http_hook(self.connection)

    def _get(self, endpoint: str, params: dict[str, Any]) -> requests.Response:
        client = self.client  # first: checks the key is there
        return client.run(
            endpoint,
            data=params,
            headers={"X-Api-Key": self.connection.password},
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

    def prepare_params(self, stream: Stream, params: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in params.items() if k not in CONTROL_PARAMS}

    def send(self, stream: Stream, params: dict[str, Any], path: str) -> Reply:
        return Reply.of(self._get(path, params))

    def judge(self, stream: Stream, reply: Reply, params: dict[str, Any]) -> Verdict:
        """Besides the usual: a 426 ``maximumResultsReached`` or a too-old 400 ``parameterInvalid`` is a valid
        page with no items and no next cursor, its ``error`` saying why the stream ends there."""
        if reply.status == 200:
            return self.judge_page(stream, reply, params)
        info = _error_info(reply.body)
        said = f"{info.code}: {info.message}" if info is not None else reply.text[:200]
        if reply.status in (401, 403):
            return Verdict.auth(f"HTTP {reply.status}", f" {said}" if info is not None and info.code else "")
        if info is not None and (end := end_of_stream(reply.status, info)):
            return Verdict.ok(0, None, error=end)
        if reply.status == 429:
            return Verdict.throttled(
                f"HTTP 429 ({info.code if info else 'no code'})", self.retry_after(reply)
            )
        if reply.status >= 500 or reply.status == 408:
            return Verdict.retry(f"HTTP {reply.status}")
        return Verdict.refused(f"HTTP {reply.status}", said)

    def judge_page(self, stream: Stream, reply: Reply, params: dict[str, Any]) -> Verdict:
        try:
            ok = page_info(reply.body)
            if ok.status != "ok":
                raise MalformedPageError(f"HTTP 200 carrying a NewsAPI error ({ok.code})")
        except MalformedPageError as exc:
            return Verdict.malformed(str(exc))
        return Verdict.ok(len(ok.articles), next_page(params, ok))

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
        reason = out_of_reach(stream, window, self.now())
        if reason:
            log.warning("%s: not fetched, %s", stream.key, reason)
            return
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
