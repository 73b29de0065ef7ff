"""RedditHook: praw, configured from an Airflow connection, paging listings into raw pages.

Connection ``reddit_default`` (any type; ``generic`` in the local stack):

=============  ==========================================================================================
field          meaning
=============  ==========================================================================================
login          OAuth client id of the Reddit app
password       OAuth client secret
host           optional base URL for both the API and the token endpoint (the simulator); empty means
               ``https://oauth.reddit.com`` and ``https://www.reddit.com``
extra          ``user_agent`` (required by Reddit's rules), ``oauth_url`` / ``reddit_url`` to set the two
               bases separately, ``timeout`` seconds (default 16), ``max_attempts`` per page (default 6),
               ``backoff`` first wait in seconds, doubled per attempt (default 1)
=============  ==========================================================================================

The same code talks to reddit.com or to the simulator: only the connection changes. praw/prawcore keep their
own behaviour (token refresh, ``x-ratelimit-*`` pacing, two retries on 5xx); on top of that the hook honours
``Retry-After`` on 429, retries 5xx bursts, timeouts and malformed pages with backoff, and turns rejected
credentials into :class:`~pulse.sources.base.SourceAuthError` so the task fails fast instead of retrying.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from pulse.sources.base import MalformedPageError, Page, PageFetchError, SourceAuthError, Stream
from pulse.sources.reddit import listing_info

if TYPE_CHECKING:
    import praw
    import requests

    from pulse.windows import Window

log = logging.getLogger(__name__)


def _timeout_session_class() -> type:
    import requests

    class TimeoutSession(requests.Session):
        """A session whose timeout wins over the fixed 16 s prawcore passes with every request."""

        def __init__(self, timeout: float) -> None:
            super().__init__()
            self.timeout = timeout

        def request(self, *args: Any, **kwargs: Any) -> requests.Response:
            kwargs["timeout"] = self.timeout
            return super().request(*args, **kwargs)

    return TimeoutSession


def _TimeoutSession(timeout: float) -> requests.Session:
    return _timeout_session_class()(timeout)


class RedditHook(BaseHook):
    """Read Reddit listings through praw.

    :param reddit_conn_id: connection with the app's client id and secret (see module docstring).
    :param max_attempts: attempts per page for throttling, server errors, timeouts and malformed bodies
        (default: the connection's ``max_attempts`` extra, else 6).
    :param max_wait: the longest single wait in seconds (a longer ``Retry-After`` is capped and retried).
    """

    conn_name_attr = "reddit_conn_id"
    default_conn_name = "reddit_default"
    conn_type = "generic"
    hook_name = "Reddit"

    def __init__(
        self,
        reddit_conn_id: str = default_conn_name,
        max_attempts: int | None = None,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self.reddit_conn_id = reddit_conn_id
        self.max_attempts = max_attempts or 6
        self._explicit_attempts = max_attempts is not None
        self.backoff = 1.0
        self.max_wait = max_wait
        self._sleep = sleep
        self._last_response: requests.Response | None = None

    # ------------------------------------------------------------------ client

    @cached_property
    def client(self) -> praw.Reddit:
        """The praw client, built on first use from the connection."""
        import praw

        conn = self.get_connection(self.reddit_conn_id)
        extra = conn.extra_dejson
        if not conn.login or not conn.password:
            raise SourceAuthError(
                f"connection '{self.reddit_conn_id}' needs the Reddit app's client id (login) and secret (password)"
            )
        if not self._explicit_attempts and extra.get("max_attempts"):
            self.max_attempts = int(extra["max_attempts"])
        self.backoff = float(extra.get("backoff", self.backoff))
        base = (conn.host or "").rstrip("/")
        session = _TimeoutSession(float(extra.get("timeout", 16)))
        session.hooks["response"].append(self._remember)
        return praw.Reddit(
            client_id=conn.login,
            client_secret=conn.password,
            user_agent=extra.get("user_agent", "pulse/0.1 (Airflow ingest)"),
            oauth_url=extra.get("oauth_url") or base or "https://oauth.reddit.com",
            reddit_url=extra.get("reddit_url") or base or "https://www.reddit.com",
            check_for_updates=False,
            requestor_kwargs={"session": session},
        )

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last_response = response

    def test_connection(self) -> tuple[bool, str]:
        """Fetch one item of r/announcements to prove the credentials work."""
        try:
            self.client.request(method="GET", path="/r/announcements/new", params={"limit": 1})
        except Exception as exc:
            return False, str(exc)
        return True, "Connection successfully tested"

    # ------------------------------------------------------------------ one page

    def _auth_error(self, status: int | str, what: str) -> SourceAuthError:
        return SourceAuthError(
            f"Reddit rejected the credentials of connection '{self.reddit_conn_id}' (HTTP {status} on {what}). "
            "Fix the connection's login (client id) and password (client secret); not retrying."
        )

    def fetch_page(self, stream: Stream, page_no: int, params: dict[str, Any]) -> Page:
        """GET one listing page, retrying what can be retried; return it with its raw bytes and headers.

        :raises SourceAuthError: 401/403, at once.
        :raises MalformedPageError: the body stayed malformed on every attempt (``exc.page`` holds the last).
        :raises PageFetchError: throttling, 5xx or timeouts outlasted every attempt.
        """
        import prawcore

        client = self.client  # resolves the connection's retry settings too
        last_problem = ""
        malformed: Page | None = None
        for attempt in range(1, self.max_attempts + 1):
            self._last_response = None
            last_problem = ""
            wait = min(self.max_wait, self.backoff * 2.0 ** (attempt - 1))
            try:
                client.request(method="GET", path=stream.endpoint, params=params)
            except prawcore.TooManyRequests as exc:
                wait = self._retry_after(exc.response, default=wait)
                last_problem = f"HTTP 429, Retry-After {wait:.0f}s"
            except (prawcore.OAuthException, prawcore.InvalidToken, prawcore.Forbidden) as exc:
                status = getattr(getattr(exc, "response", None), "status_code", "401")
                raise self._auth_error(status, stream.endpoint) from exc
            except prawcore.BadJSON:
                pass  # judged below from the captured body, like any other 200
            except prawcore.ResponseException as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    raise self._auth_error(status, stream.endpoint) from exc
                if status < 500 and status != 408:
                    raise PageFetchError(
                        f"Reddit answered HTTP {status} for {stream.endpoint}: {exc}"
                    ) from exc
                last_problem = f"HTTP {status}"
            except prawcore.RequestException as exc:
                last_problem = f"network error: {exc.original_exception!r}"
            resp = self._last_response
            if resp is not None and resp.status_code == 200 and not last_problem.startswith("HTTP 429"):
                page = Page(
                    stream=stream,
                    page_no=page_no,
                    endpoint=stream.endpoint,
                    params=params,
                    status_code=200,
                    headers=dict(resp.headers),
                    body=resp.content,
                )
                try:
                    info = listing_info(resp.content)
                except MalformedPageError as exc:
                    page.is_valid, page.error = False, str(exc)
                    malformed, last_problem = page, f"malformed page: {exc}"
                else:
                    page.item_count = len(info.children)
                    page.next_cursor = info.after
                    page.oldest_created = info.oldest_created
                    return page
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

    def _retry_after(self, response: requests.Response | None, default: float) -> float:
        if response is None:
            return default
        for header in ("retry-after", "x-ratelimit-reset"):
            value = response.headers.get(header)
            if value:
                try:
                    return max(0.0, min(self.max_wait, float(value)))
                except ValueError:
                    continue
        return default

    # ------------------------------------------------------------------ paging

    def iter_pages(
        self, stream: Stream, window: Window, cursor: str | None = None, page_no: int = 0
    ) -> Iterator[Page]:
        """Page a newest-first listing back to the window's start (or to the listing's end).

        Each yielded page has ``next_cursor`` set to the ``after`` to continue from, or ``None`` when the
        stream is complete for this window, so a retry can resume after the last stored page.
        """
        start_epoch = window.start.timestamp()
        while True:
            params: dict[str, Any] = {**stream.params, "raw_json": 1}
            if cursor:
                params["after"] = cursor
            page = self.fetch_page(stream, page_no, params)
            oldest = page.oldest_created
            if page.next_cursor is not None and oldest is not None and oldest < start_epoch:
                page.next_cursor = None  # reached items older than the window: done
            if page.item_count == 0:
                page.next_cursor = None
            yield page
            if page.next_cursor is None:
                return
            cursor, page_no = page.next_cursor, page_no + 1
