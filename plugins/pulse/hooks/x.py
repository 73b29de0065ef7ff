"""XHook: tweepy's v2 ``Client``, configured from an Airflow connection, paging recent search into raw pages.

Connection ``x_default`` (type ``pulse_x``; any type works, ``generic`` too):

=============  ==========================================================================================
field          meaning
=============  ==========================================================================================
password       the app's bearer token (app-only auth)
host           optional base URL (the simulator, e.g. ``http://127.0.0.1:8765``); empty means
               ``https://api.twitter.com``. A host without a scheme is taken as ``https://host[:port]``.
extra          ``timeout`` seconds per request (default 30), ``max_attempts`` per page (default 6),
               ``backoff`` first wait in seconds, doubled per attempt (default 1), ``jitter`` (default
               0.25), ``max_wait`` (default 60): see :mod:`pulse.hooks.base`
=============  ==========================================================================================

The same code talks to api.twitter.com or to the simulator: tweepy hard-codes ``https://api.twitter.com``,
so the client gets a session that re-roots that prefix onto the connection's host (and enforces the
connection's timeout, which tweepy never sets). The client returns raw ``requests`` responses
(``return_type=requests.Response``), so every page keeps the bytes and headers as received.

Limits and failures (the paging engine, :mod:`pulse.hooks.base`): a 429 waits until ``x-rate-limit-reset`` (epoch seconds, compared with the server's
``Date``), or ``Retry-After`` when sent, capped by ``max_wait``; 5xx, timeouts and malformed pages are
retried with backoff (429s have their own ``max_attempts`` budget); 401/403 raise :class:`~pulse.sources.base.SourceAuthError` naming the connection.

Windows: recent search reaches back 7 days and its ``end_time`` must be at least 10 s before the request.
The server's clock decides: a window X refuses as too old yields nothing (logged, recorded in
:attr:`XHook.gaps`), a window partly older is clipped to what X still serves, and an end that is too recent
is clipped to the server's ``Date`` minus 12 s. A window that ended only seconds ago (a scheduled run
starting on its tick) is waited for first, so its last seconds are not lost.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, Unpack

from pulse.hooks.base import HookArgs, Reply, SourceHook, Verdict, header, http_date
from pulse.sources.base import MalformedPageError, Page, PageFetchError, SourceAuthError, Stream
from pulse.sources.x import END_LAG, REACH_MARGIN, SEARCH_RECENT, search_info
from pulse.windows import utcnow

if TYPE_CHECKING:
    import requests
    import tweepy

    from pulse.windows import Window

log = logging.getLogger(__name__)

API_URL = "https://api.twitter.com"
#: Safety on top of X's 10 s: the request must still be valid when it reaches the server.
END_MARGIN = timedelta(seconds=2)
#: How many times one page may be re-planned after X refuses its window.
MAX_WINDOW_ADJUSTMENTS = 3

_ON_OR_AFTER = re.compile(r"must be on or after (\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?Z)")


@dataclass(frozen=True)
class Gap:
    """A part of a stream's window that X could not serve, and why.

    ``reason``: ``beyond_reach`` (older than recent search's 7 days) or ``not_yet_available`` (later than
    the server's now minus 10 s).
    """

    stream: str
    start: datetime
    end: datetime
    reason: str


class WindowRejectedError(PageFetchError):
    """X answered 400 because of ``start_time``/``end_time``: the window must be re-planned.

    :param errors: parameter name -> X's message.
    :param server_now: the server's clock (its ``Date`` header), when it sent one.
    """

    def __init__(self, message: str, errors: dict[str, str], server_now: datetime | None) -> None:
        super().__init__(message)
        self.errors = errors
        self.server_now = server_now


def _rebased_session_class() -> type:
    import requests

    class RebasedSession(requests.Session):
        """A session that sends ``https://api.twitter.com/...`` to ``base`` and enforces a timeout."""

        def __init__(self, base: str, timeout: float) -> None:
            super().__init__()
            self.base = base
            self.timeout = timeout

        def request(
            self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
        ) -> requests.Response:
            if isinstance(url, str) and self.base != API_URL and url.startswith(API_URL):
                url = self.base + url[len(API_URL) :]
            kwargs["timeout"] = self.timeout
            return super().request(method, url, *args, **kwargs)

    return RebasedSession


def _base_url(host: str | None, port: int | None) -> str:
    host = (host or "").strip().rstrip("/")
    if not host:
        return API_URL
    if "://" in host:
        return host
    return f"https://{host}:{port}" if port else f"https://{host}"


def server_time(response: requests.Response | Reply | None) -> datetime | None:
    """The server's clock from a response's ``Date`` header (the last value when it was sent twice)."""
    when = http_date(header(response.headers, "date")) if response is not None else None
    return datetime.fromtimestamp(when, UTC) if when is not None else None


def _rfc3339(value: datetime, *, up: bool = False) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` (X's format), rounded down, or up for a window end."""
    value = value.astimezone(UTC)
    if up and value.microsecond:
        value = value.replace(microsecond=0) + timedelta(seconds=1)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class XHook(SourceHook):
    """Read X API v2 recent search through tweepy.

    :param x_conn_id: connection with the bearer token and optional base URL (see module docstring).
    :param clock: the pipeline's clock (default :func:`pulse.windows.utcnow`), used to wait for a window that
        ended seconds ago and when X sends no ``Date``.
    :param settings: retry settings (``max_attempts`` for server errors, timeouts and malformed bodies, and
        separately for 429s; ``backoff``, ``jitter``, ``max_wait``, ``timeout``, ``sleep``): see
        :class:`~pulse.hooks.base.SourceHook`.
    """

    conn_name_attr = "x_conn_id"
    default_conn_name = "x_default"
    conn_type = "pulse_x"
    hook_name = "X (Pulse)"
    source_name = "X"
    credential_fix = "the connection's password (the bearer token) or the app's API access"
    default_timeout = 30.0
    reset_headers = {"x-rate-limit-reset": "epoch"}
    separate_throttle_budget = True

    def __init__(
        self,
        x_conn_id: str = default_conn_name,
        clock: Callable[[], datetime] | None = None,
        **settings: Unpack[HookArgs],
    ) -> None:
        super().__init__(x_conn_id, **settings)
        self._clock = clock or utcnow
        #: What X could not serve, per stream, in the order found (for a coverage record).
        self.gaps: list[Gap] = []

    def now(self) -> datetime:
        return self._clock()

    @cached_property
    def client(self) -> tweepy.Client:
        """The tweepy v2 client, built on first use from the connection."""
        import requests
        import tweepy

        conn = self.connection
        if not conn.password:
            raise SourceAuthError(f"connection '{self.conn_id}' needs the X bearer token (password)")
        client = tweepy.Client(
            bearer_token=conn.password, return_type=requests.Response, wait_on_rate_limit=False
        )
        client.session.close()
        client.session = _rebased_session_class()(_base_url(conn.host, conn.port), self.timeout)
        return client

    def test_connection(self) -> tuple[bool, str]:
        """Run one small recent search to prove the token works."""
        try:
            self.client.search_recent_tweets("from:XDevelopers", max_results=10)
        except Exception as exc:
            return False, str(exc)
        return True, "Connection successfully tested"

    # ------------------------------------------------------------------ one page

    def describe(self, stream: Stream, path: str, params: dict[str, Any]) -> str:
        return f"{path} ({stream.key})"

    def page_label(self, stream: Stream, page_no: int, path: str, params: dict[str, Any]) -> str:
        return f"{path} page {page_no} ({stream.key})"

    def prepare_params(self, stream: Stream, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` are the query parameters as sent (``tweet.fields``, ``start_time``, ``next_token``...)."""
        if stream.endpoint != SEARCH_RECENT:
            raise ValueError(f"XHook pages {SEARCH_RECENT} only, not {stream.endpoint}")
        return dict(params)

    def send(self, stream: Stream, params: dict[str, Any], path: str) -> Reply:
        """Search through tweepy; for an error answer, tweepy's exception carries the response."""
        import tweepy

        kwargs = {k.replace(".", "_"): v for k, v in params.items() if k != "query"}
        try:
            return Reply.of(self.client.search_recent_tweets(params["query"], **kwargs))
        except tweepy.HTTPException as exc:
            return Reply.of(exc.response)

    def judge(self, stream: Stream, reply: Reply, params: dict[str, Any]) -> Verdict:
        """Besides the usual: a 400 about the window raises :class:`WindowRejectedError` (see
        :meth:`iter_pages`), any other 400 is refused."""
        if reply.status == 400:
            raise self._bad_request(reply, stream)
        return super().judge(stream, reply, params)

    def judge_page(self, stream: Stream, reply: Reply, params: dict[str, Any]) -> Verdict:
        try:
            info = search_info(reply.body)
        except MalformedPageError as exc:
            return Verdict.malformed(str(exc))
        return Verdict.ok(len(info.tweets), info.next_token)

    def _bad_request(self, response: Reply, stream: Stream) -> PageFetchError:
        """A 400: about the window (re-plan it) or about anything else (refuse, no retry)."""
        try:
            body = json.loads(response.body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            body = {}
        items = body.get("errors") if isinstance(body, dict) else None
        window_errors: dict[str, str] = {}
        other: list[str] = []
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            message = str(item.get("message", item))
            names = list(item.get("parameters") or {}) if isinstance(item.get("parameters"), dict) else []
            if names and all(n in ("start_time", "end_time") for n in names):
                for name in names:
                    window_errors[name] = message
            else:
                other.append(message)
        text = "; ".join([*window_errors.values(), *other]) or response.text[:300]
        if window_errors and not other:
            return WindowRejectedError(
                f"X refused the window of {stream.key}: {text}", window_errors, server_time(response)
            )
        return PageFetchError(
            f"X refused the request for {stream.key} (HTTP 400 on {stream.endpoint}): {text}; not retrying"
        )

    # ------------------------------------------------------------------ paging

    def iter_pages(
        self, stream: Stream, window: Window, cursor: str | None = None, page_no: int = 0
    ) -> Iterator[Page]:
        """Page a recent search through ``[window.start, window.end)`` with ``next_token``.

        Each yielded page has ``next_cursor`` set to the ``next_token`` to continue from, or ``None`` when
        the stream is complete for this window, so a retry can resume after the last stored page. A window
        X cannot serve at all yields nothing (see :attr:`gaps`).
        """
        start, end = window.start, window.end
        self._wait_for_end(stream, end)
        adjustments = 0
        while True:
            params: dict[str, Any] = {
                **stream.params,
                "start_time": _rfc3339(start),
                "end_time": _rfc3339(end, up=True),
            }
            if cursor:
                params["next_token"] = cursor
            try:
                page = self.fetch_page(stream, page_no, params)
            except WindowRejectedError as exc:
                adjustments += 1
                if adjustments > MAX_WINDOW_ADJUSTMENTS:
                    raise PageFetchError(
                        f"{stream.key}: X kept refusing the window after {MAX_WINDOW_ADJUSTMENTS} adjustments: "
                        f"{exc}"
                    ) from exc
                bounds = self._replan(stream, window, start, end, exc)
                if bounds is None:
                    return
                start, end = bounds
                continue
            adjustments = 0
            if page.item_count == 0:
                page.next_cursor = None
            yield page
            if page.next_cursor is None:
                return
            cursor, page_no = page.next_cursor, page_no + 1

    def _wait_for_end(self, stream: Stream, end: datetime) -> None:
        """Sleep when the window ended less than X's 10 s (plus margin) ago by the local clock."""
        now = self._clock()
        lag = (end + END_LAG + END_MARGIN - now).total_seconds()
        if 0 < lag <= self.max_wait:
            log.info(
                "%s: the window ended at %s, %.1fs ago; waiting %.1fs until X serves all of it",
                stream.key,
                end.isoformat(),
                (now - end).total_seconds(),
                lag,
            )
            self._sleep(lag)

    def _replan(
        self, stream: Stream, window: Window, start: datetime, end: datetime, exc: WindowRejectedError
    ) -> tuple[datetime, datetime] | None:
        """Narrow ``[start, end)`` to what X says it can serve; None when nothing is left (logged)."""
        new_start, new_end = start, end
        too_old = exc.errors.get("start_time", "")
        if "on or after" in too_old:
            match = _ON_OR_AFTER.search(too_old)
            if match is None:
                raise PageFetchError(f"{stream.key}: cannot read the oldest allowed start from X: {too_old}")
            oldest = datetime.fromisoformat(match.group(1).replace("Z", "+00:00")) + REACH_MARGIN
            if end <= oldest:
                self.gaps.append(Gap(stream.key, window.start, window.end, "beyond_reach"))
                log.warning(
                    "%s: window %s is beyond recent search's 7-day reach (X: %s); nothing to fetch",
                    stream.key,
                    window,
                    too_old,
                )
                return None
            new_start = max(start, oldest)
        if any("10 seconds prior" in message for message in exc.errors.values()):
            latest = (exc.server_now or self._clock()) - END_LAG - END_MARGIN
            if latest <= new_start:
                self.gaps.append(Gap(stream.key, new_start, window.end, "not_yet_available"))
                log.warning(
                    "%s: window %s is not served yet (X's clock %s; end_time must be 10 s in the past); "
                    "nothing to fetch",
                    stream.key,
                    window,
                    exc.server_now,
                )
                return None
            new_end = min(end, latest)
        if (new_start, new_end) == (start, end):
            raise PageFetchError(
                f"{stream.key}: X refused the window {window} and it cannot be narrowed: {exc}"
            )
        if new_start > start:
            self.gaps.append(Gap(stream.key, start, new_start, "beyond_reach"))
            log.warning(
                "%s: window %s starts beyond recent search's 7-day reach; fetching from %s (X: %s)",
                stream.key,
                window,
                new_start.isoformat(),
                too_old,
            )
        if new_end < end:
            self.gaps.append(Gap(stream.key, new_end, end, "not_yet_available"))
            log.warning(
                "%s: X's clock is %s, so the window ends at %s instead of %s (end_time must be 10 s in the past)",
                stream.key,
                exc.server_now,
                new_end.isoformat(),
                end.isoformat(),
            )
        return new_start, new_end
