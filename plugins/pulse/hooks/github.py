"""GithubSourceHook: PyGithub, configured from an Airflow ``github`` connection, paging REST v3 into raw pages.

Connection ``github_default`` (type ``github``, the Airflow GitHub provider's type):

=============  ==========================================================================================
field          meaning
=============  ==========================================================================================
password       a personal access token (the simulator accepts ``sim-github-token``); without one, the
               provider's GitHub App extras (``app_id``, ``installation_id``, ``key_path``/``private_key``)
host           the API base URL: empty means ``https://api.github.com``; the simulator's URL in tests and
               the local stack; ``https://<host>/api/v3`` for GitHub Enterprise
extra          ``timeout`` seconds per request (default 15), ``max_attempts`` per page (default 6),
               ``backoff`` first wait in seconds, doubled per attempt (default 1), ``user_agent``,
               ``seconds_between_requests`` (PyGithub's pacing; default 0.25 on api.github.com, else 0)
=============  ==========================================================================================

The same code talks to api.github.com or to the simulator: only the connection changes.

How it uses the libraries. The Airflow provider's :class:`~airflow.providers.github.hooks.github.GithubHook`
reads the connection and builds the authentication (token or GitHub App) and base URL; this hook takes those
from the provider's client (``requester.kwargs``) and builds its own :class:`github.Github` with
``retry=None`` (PyGithub's ``GithubRetry`` would sleep on rate limits by itself, outside ``max_wait`` and the
``sleep`` used in tests: the retries here are the hook's own) and no pacing off api.github.com.

Pages are fetched with :meth:`github.Requester.Requester.requestJson`, which sends the request with the
client's authentication, user agent and API version and returns the status without raising, through a
``cnx`` connection object of PyGithub's own connection classes whose ``requests`` session carries a response
hook. The hook keeps the :class:`requests.Response`, so every page holds the body bytes and the headers as
received from the HTTP layer (``requestJson`` alone returns the body decoded to ``str``; re-encoding it would
not give back bytes that are not valid UTF-8, and the parsed objects of PyGithub's higher-level API
re-serialised would not be the response at all). Paging follows the ``Link: rel="next"`` header, as PyGithub's
``PaginatedList`` does; the cursor kept between pages is that link relative to the base URL.

Limits (GitHub's documented rules): a 403 or 429 with ``x-ratelimit-remaining: 0`` (primary limit) waits until
``x-ratelimit-reset`` (an epoch, measured against the response's ``Date``), a ``retry-after`` header
(secondary limit, or any 429) waits that long, a secondary-limit message without it waits a minute; each
wait is capped by ``max_wait`` and retried. 401 ("Bad credentials") and a 403 without rate-limit signs raise
:class:`~pulse.sources.base.SourceAuthError` naming the connection, so the task fails without retrying.
5xx, timeouts and malformed bodies are retried with backoff.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from airflow.sdk import BaseHook

from pulse.sources.base import MalformedPageError, Page, PageFetchError, SourceAuthError, Stream
from pulse.sources.github import CONTROL_PARAMS, page_info, stream_kind

if TYPE_CHECKING:
    import github
    import requests

    from pulse.windows import Window

log = logging.getLogger(__name__)

PUBLIC_API = "https://api.github.com"
DEFAULT_USER_AGENT = "pulse/0.1 (Airflow ingest)"
SECONDARY_DEFAULT_WAIT = 60.0  # GitHub: without retry-after, wait at least a minute


class GithubSourceHook(BaseHook):
    """Read GitHub REST v3 pages (repositories, events, issues, repository search) through PyGithub.

    :param github_conn_id: connection with the token and base URL (see module docstring).
    :param max_attempts: attempts per page for rate limits, server errors, timeouts and malformed bodies
        (default: the connection's ``max_attempts`` extra, else 6).
    :param max_wait: the longest single wait in seconds (a later rate-limit reset is capped and retried).
    :param sleep: how to wait (tests pass a recorder).
    """

    conn_name_attr = "github_conn_id"
    default_conn_name = "github_default"
    conn_type = "github"
    hook_name = "GitHub (Pulse ingest)"

    def __init__(
        self,
        github_conn_id: str = default_conn_name,
        max_attempts: int | None = None,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self.github_conn_id = github_conn_id
        self.max_attempts = max_attempts or 6
        self._explicit_attempts = max_attempts is not None
        self.backoff = 1.0
        self.timeout = 15.0
        self.max_wait = max_wait
        self._sleep = sleep
        self._last_response: requests.Response | None = None

    # ------------------------------------------------------------------ client

    @cached_property
    def client(self) -> github.Github:
        """The PyGithub client, built on first use from the connection (through the provider's hook)."""
        from airflow.providers.github.hooks.github import GithubHook
        from github import Github

        conn = self.get_connection(self.github_conn_id)
        extra = conn.extra_dejson or {}
        if not self._explicit_attempts and extra.get("max_attempts"):
            self.max_attempts = int(extra["max_attempts"])
        self.backoff = float(extra.get("backoff", self.backoff))
        self.timeout = float(extra.get("timeout", self.timeout))
        try:
            provided = GithubHook(github_conn_id=self.github_conn_id).get_conn()
        except (ValueError, TypeError, OSError, AssertionError) as exc:
            raise SourceAuthError(
                f"connection '{self.github_conn_id}' has no usable GitHub credentials ({exc}); "
                "set its password to a token"
            ) from exc
        kwargs = provided.requester.kwargs
        provided.close()
        public = (conn.host or PUBLIC_API).rstrip("/") == PUBLIC_API
        kwargs.update(
            retry=None,
            timeout=max(1, math.ceil(self.timeout)),
            user_agent=str(extra.get("user_agent") or DEFAULT_USER_AGENT),
            seconds_between_requests=float(extra.get("seconds_between_requests", 0.25 if public else 0.0)),
            seconds_between_writes=0.0,
        )
        return Github(**kwargs)

    def get_conn(self) -> github.Github:
        """The PyGithub client (same as :attr:`client`)."""
        return self.client

    @cached_property
    def _cnx(self) -> Any:
        """A PyGithub connection object to the base URL whose session records every response."""
        from github.Requester import HTTPRequestsConnectionClass, HTTPSRequestsConnectionClass

        base = urlsplit(self.client.requester.base_url)
        cls = HTTPSRequestsConnectionClass if base.scheme == "https" else HTTPRequestsConnectionClass
        cnx = cls(base.hostname, base.port, timeout=self.timeout, retry=None)
        cnx.session.hooks["response"].append(self._remember)
        return cnx

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last_response = response

    def test_connection(self) -> tuple[bool, str]:
        """Read ``/rate_limit`` (free of charge) to prove the token works."""
        try:
            core = self.client.get_rate_limit().resources.core
        except Exception as exc:
            return False, str(exc)
        return True, f"Connection successfully tested: {core.remaining}/{core.limit} core requests left"

    # ------------------------------------------------------------------ one page

    def _auth_error(self, status: int, path: str, message: str) -> SourceAuthError:
        why = (
            "the token is wrong, expired or revoked"
            if status == 401
            else "the token may not read this resource"
        )
        return SourceAuthError(
            f"GitHub rejected the credentials of connection '{self.github_conn_id}' (HTTP {status} on {path}: "
            f"{message or 'no message'}); {why}. Fix the connection's password (token); not retrying."
        )

    def fetch_page(
        self, stream: Stream, page_no: int, params: dict[str, Any], path: str | None = None
    ) -> Page:
        """GET one page, retrying what can be retried; return it with its raw bytes and headers.

        :param path: the path to request (a ``Link`` cursor's path); default ``stream.endpoint``.
        :raises SourceAuthError: 401, or 403 without rate-limit signs, at once.
        :raises MalformedPageError: the body stayed malformed on every attempt (``exc.page`` holds the last).
        :raises PageFetchError: limits, 5xx or timeouts outlasted every attempt, or another 4xx.
        """
        import requests

        requester = self.client.requester  # resolves the connection's retry settings too
        target = path or stream.endpoint
        send = {k: v for k, v in params.items() if k not in CONTROL_PARAMS}
        kind = stream_kind(stream.key)
        last_problem = ""
        malformed: Page | None = None
        for attempt in range(1, self.max_attempts + 1):
            self._last_response = None
            last_problem = ""
            wait = min(self.max_wait, self.backoff * 2.0 ** (attempt - 1))
            try:
                status, _headers, text = requester.requestJson("GET", target, send, cnx=self._cnx)
            except requests.RequestException as exc:
                last_problem = f"network error: {exc!r}"
            else:
                resp = self._last_response
                body = resp.content if resp is not None else text.encode("utf-8")
                headers = dict(resp.headers) if resp is not None else dict(_headers)
                if status == 200:
                    page = Page(
                        stream=stream,
                        page_no=page_no,
                        endpoint=target,
                        params=send,
                        status_code=200,
                        headers=headers,
                        body=body,
                    )
                    try:
                        info = page_info(kind, body)
                    except MalformedPageError as exc:
                        page.is_valid, page.error = False, str(exc)
                        malformed, last_problem = page, f"malformed page: {exc}"
                    else:
                        page.item_count = len(info.items)
                        page.oldest_created = info.oldest_created
                        page.next_cursor = self._next_cursor(resp)
                        return page
                else:
                    message = _message(body)
                    if status == 401:
                        raise self._auth_error(status, target, message)
                    if status in (403, 429):
                        limited = self._limit_wait(status, resp, message, default=wait)
                        if limited is None:
                            raise self._auth_error(status, target, message)
                        wait, what = limited
                        last_problem = f"HTTP {status} {what}, waiting {wait:.0f}s"
                    elif status >= 500 or status == 408:
                        last_problem = f"HTTP {status}"
                    else:
                        detail = message or repr(body[:200])
                        raise PageFetchError(f"GitHub answered HTTP {status} for {target}: {detail}")
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
                f"{target} page {page_no} stayed malformed after {self.max_attempts} attempts: "
                f"{malformed.error}",
                page=malformed,
            )
        raise PageFetchError(
            f"{target} page {page_no} failed after {self.max_attempts} attempts: {last_problem}"
        )

    def _limit_wait(
        self, status: int, response: requests.Response | None, message: str, default: float
    ) -> tuple[float, str] | None:
        """How long a 403/429 asks to wait, or None when it is not a rate limit (a plain 403)."""
        from github.Requester import Requester

        headers = response.headers if response is not None else {}
        retry_after = _number(headers.get("retry-after"))
        remaining = _number(headers.get("x-ratelimit-remaining"))
        reset = _number(headers.get("x-ratelimit-reset"))
        secondary = Requester.isSecondaryRateLimitError(message)
        if retry_after is not None:
            wait, what = retry_after, "secondary rate limit" if secondary else "Retry-After"
        elif remaining == 0 and reset is not None:
            wait, what = reset - _server_now(headers), "primary rate limit"
        elif secondary:
            wait, what = SECONDARY_DEFAULT_WAIT, "secondary rate limit"
        elif Requester.isPrimaryRateLimitError(message) or status == 429:
            wait, what = default, "rate limit"
        else:
            return None
        return max(0.0, min(self.max_wait, wait)), what

    def _next_cursor(self, response: requests.Response | None) -> str | None:
        """The ``Link: rel="next"`` URL relative to the base URL (path and query), or None."""
        if response is None:
            return None
        url = response.links.get("next", {}).get("url")
        if not url:
            return None
        base = urlsplit(self.client.requester.base_url)
        link = urlsplit(url)
        if link.netloc and (link.hostname, _port(link)) != (base.hostname, _port(base)):
            raise PageFetchError(
                f"Link rel=next {url} leaves the connection's base URL {self.client.requester.base_url}"
            )
        prefix = base.path.rstrip("/")
        path = link.path[len(prefix) :] if prefix and link.path.startswith(prefix + "/") else link.path
        return f"{path}?{link.query}" if link.query else path

    # ------------------------------------------------------------------ paging

    def iter_pages(
        self, stream: Stream, window: Window, cursor: str | None = None, page_no: int = 0
    ) -> Iterator[Page]:
        """Page one stream for ``window``, following ``Link: rel="next"``.

        * ``repo:`` one page.
        * ``events:`` newest first; stops after the page that reaches events older than the window start
          (or at the end of what GitHub keeps: 300 events, 90 days).
        * ``issues:`` ``since`` the window start, updated ascending; stops after the page that reaches items
          updated at or after the window end (later ones belong to later windows).
        * ``search:`` stops once ``max_items`` hits are fetched (whole pages).

        Each yielded page has ``next_cursor`` set to the link to continue from, or ``None`` when the stream is
        complete for this window, so a retry can resume after the last stored page.
        """
        kind = stream_kind(stream.key)
        cap = stream.params.get("max_items")
        while True:
            if cursor:
                path, _, query = cursor.partition("?")
                params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
                page = self.fetch_page(stream, page_no, params, path=path)
            else:
                params = dict(stream.params)
                page = self.fetch_page(stream, page_no, params)
            if self._complete(kind, page, params, window, cap):
                page.next_cursor = None
            yield page
            if page.next_cursor is None:
                return
            cursor, page_no = page.next_cursor, page_no + 1

    @staticmethod
    def _complete(kind: str, page: Page, params: dict[str, Any], window: Window, cap: Any) -> bool:
        """True when no page after ``page`` is needed for ``window``."""
        if kind == "repo" or not page.item_count:
            return True
        if kind == "events":
            return page.oldest_created is not None and page.oldest_created < window.start.timestamp()
        if kind == "issues":
            newest = page_info(kind, page.body).newest_updated
            return newest is not None and newest >= window.end.timestamp()
        if kind == "search" and cap:
            per_page = int(params.get("per_page") or 30)
            return (page.page_no + 1) * per_page >= int(cap)
        return False


def _number(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _port(parts: Any) -> int | None:
    return parts.port or {"https": 443, "http": 80}.get(parts.scheme)


def _server_now(headers: Any) -> float:
    """The server's clock from the ``Date`` header (the reset epoch is on that clock), else ours."""
    value = headers.get("date")
    if value:
        try:
            return parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            pass
    return time.time()


def _message(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return ""
    return str(doc.get("message") or "") if isinstance(doc, dict) else ""
