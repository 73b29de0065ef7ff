"""SourceHook: the paging engine every Pulse source hook is built on.

A source hook supplies three things: its client (:attr:`SourceHook.client`, built lazily from the connection),
how to send one page (:meth:`SourceHook.send`, returning a :class:`Reply`: status, headers, body bytes as
received) and how to judge an answer (:meth:`SourceHook.judge_page`, returning a :class:`Verdict`). The engine
(:meth:`SourceHook.fetch_page`) owns the rest, the same for every source:

* the attempts for one page, each retry logged with its reason and wait;
* exponential backoff with jitter (``backoff * 2**n``, plus up to ``jitter`` of it at random, capped by
  ``max_wait``) after 5xx/408 answers, timeouts and network errors, and malformed pages;
* throttling: a 429 (or a throttle the hook recognises in a 200 body) waits what the server asks, from
  ``Retry-After`` (seconds or an HTTP date) or the hook's rate-limit reset headers (seconds, or an epoch
  measured against the response's ``Date``), capped by ``max_wait``; without a hint, the backoff;
* the endings: rejected credentials raise :class:`~pulse.sources.base.SourceAuthError` at once (no retry);
  another refusal (a 4xx) raises :class:`~pulse.sources.base.PageFetchError` at once; attempts outlasted by
  throttling, server errors or timeouts raise :class:`~pulse.sources.base.PageFetchError`, and by malformed
  pages :class:`~pulse.sources.base.MalformedPageError` with ``.page`` holding the last malformed page.

Retry settings are resolved once, from explicit constructor arguments first, then the connection's extras,
then the hook's defaults (the provider convention):

================  ========================================================================================
extra / argument  meaning
================  ========================================================================================
max_attempts      attempts per page (default 6)
backoff           first wait in seconds after a failed attempt, doubled per attempt (default 1)
jitter            up to this fraction of a backoff wait is added at random, so that tasks hit by the same
                  outage do not retry in step (default 0.25; 0 turns it off); server-given waits are exact
max_wait          the longest single wait in seconds (default 60); a longer ``Retry-After`` is capped
timeout           seconds per request (default: the hook's)
================  ========================================================================================

Reading :attr:`SourceHook.client` has no effect on these settings, and they need no client.

Paging (:meth:`SourceHook.iter_pages`) is shared too: a page asks for ``page_params`` (the stream's parameters
plus the cursor as ``cursor_param``), and the stream ends when a page has no ``next_cursor`` or
``is_last`` says so. A hook overrides only what differs.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

from airflow.sdk import BaseHook

from pulse.sources.base import MalformedPageError, Page, PageFetchError, SourceAuthError, Stream

if TYPE_CHECKING:
    import requests

    from pulse.windows import Window

log = logging.getLogger(__name__)

#: Connection extras read by the engine (a hook's own extras come on top).
RETRY_EXTRAS = frozenset({"max_attempts", "backoff", "jitter", "max_wait", "timeout"})

# HTTP dates; X writes "UTC" where HTTP says "GMT": accept both.
_HTTP_DATE = re.compile(r"[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} (?:GMT|UTC)")


class TransientError(Exception):
    """A send that got no usable answer (network trouble a client library reports its own way): retried."""


@dataclass(frozen=True)
class Reply:
    """One answer as received: what a page keeps (status, headers, body bytes) and what judging may need.

    :param params: the query actually sent, when the client knows it better than the caller (else the caller's).
    :param raw: the client's own response object (e.g. a ``requests.Response``), for ``links`` and the like.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    params: dict[str, Any] | None = None
    raw: Any = None

    @classmethod
    def of(cls, response: requests.Response, params: dict[str, Any] | None = None) -> Reply:
        return cls(response.status_code, dict(response.headers), response.content, params, response)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class Outcome(Enum):
    OK = "ok"
    AUTH = "auth"
    THROTTLED = "throttled"
    RETRY = "retry"
    MALFORMED = "malformed"
    REFUSED = "refused"


@dataclass(frozen=True)
class Verdict:
    """How a hook judges one answer. Build it with the class methods."""

    outcome: Outcome
    reason: str = ""
    detail: str = ""
    wait: float | None = None
    item_count: int | None = None
    next_cursor: str | None = None
    oldest_created: float | None = None
    error: str | None = None
    first_wait: float | None = None

    @classmethod
    def ok(
        cls,
        item_count: int,
        next_cursor: str | None = None,
        oldest_created: float | None = None,
        error: str | None = None,
    ) -> Verdict:
        """A page to keep; ``error`` marks a valid page that ends the stream (e.g. a plan cap)."""
        return cls(Outcome.OK, "", "", None, item_count, next_cursor, oldest_created, error)

    @classmethod
    def auth(cls, reason: str, detail: str = "") -> Verdict:
        """Credentials rejected: fail at once (``detail`` starts with its separator, e.g. ``": message"``)."""
        return cls(Outcome.AUTH, reason, detail)

    @classmethod
    def throttled(cls, reason: str, wait: float | None = None, first_wait: float | None = None) -> Verdict:
        """Slow down: wait ``wait`` seconds (the server's word), else a backoff from ``first_wait`` doubled
        per throttle, else the usual backoff."""
        return cls(Outcome.THROTTLED, reason, wait=wait, first_wait=first_wait)

    @classmethod
    def retry(cls, reason: str) -> Verdict:
        """A failure that may pass (5xx, 408): back off and retry."""
        return cls(Outcome.RETRY, reason)

    @classmethod
    def malformed(cls, reason: str) -> Verdict:
        """A page of the wrong shape: kept as evidence, retried."""
        return cls(Outcome.MALFORMED, reason)

    @classmethod
    def refused(cls, reason: str, detail: str = "") -> Verdict:
        """A refusal waiting cannot fix (another 4xx): fail at once."""
        return cls(Outcome.REFUSED, reason, detail)


@dataclass(frozen=True)
class RetrySettings:
    """The resolved retry settings of one hook (see the module docstring)."""

    max_attempts: int = 6
    backoff: float = 1.0
    jitter: float = 0.25
    max_wait: float = 60.0
    timeout: float = 30.0


class HookArgs(TypedDict, total=False):
    """The keyword arguments every source hook takes (explicit ones win over the connection's extras)."""

    max_attempts: int | None
    backoff: float | None
    jitter: float | None
    max_wait: float | None
    timeout: float | None
    sleep: Callable[[float], None]


def as_number(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def http_date(value: str | None) -> float | None:
    """An HTTP date (``GMT`` or X's ``UTC``; the last one when a header was sent twice) as an epoch."""
    dates = _HTTP_DATE.findall(value or "")
    if not dates:
        return None
    try:
        return email.utils.parsedate_to_datetime(dates[-1]).timestamp()
    except (TypeError, ValueError):
        return None


class SourceHook(BaseHook):
    """Base of the Pulse source hooks: retry settings, the attempt loop for one page, and paging.

    :param conn_id: the connection (default :attr:`default_conn_name`); subclasses take it under their
        :attr:`conn_name_attr` name too, as Airflow's connection form does.
    :param max_attempts: attempts per page (default: the connection's ``max_attempts`` extra, else 6).
    :param backoff: first backoff wait in seconds (default: the ``backoff`` extra, else 1).
    :param jitter: the random share added to backoff waits (default: the ``jitter`` extra, else 0.25).
    :param max_wait: the longest single wait in seconds (default: the ``max_wait`` extra, else 60).
    :param timeout: seconds per request (default: the ``timeout`` extra, else :attr:`default_timeout`).
    :param sleep: how to wait (tests pass a recorder).
    """

    #: Names used in messages: "<source_name> rejected the <credential> of connection ...".
    source_name: ClassVar[str] = "The source"
    credential: ClassVar[str] = "credentials"
    credential_fix: ClassVar[str] = "the connection's password"
    default_timeout: ClassVar[float] = 30.0
    #: Rate-limit reset headers: name -> ``"seconds"`` (from now) or ``"epoch"`` (against the ``Date``).
    reset_headers: ClassVar[Mapping[str, str]] = {}
    #: 429s get their own ``max_attempts`` budget, and do not raise the backoff exponent.
    separate_throttle_budget: ClassVar[bool] = False
    #: The query parameter carrying the cursor between pages (None: the source has one page per stream).
    cursor_param: ClassVar[str | None] = None

    def __init__(
        self,
        conn_id: str | None = None,
        *,
        max_attempts: int | None = None,
        backoff: float | None = None,
        jitter: float | None = None,
        max_wait: float | None = None,
        timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        setattr(self, self.conn_name_attr, conn_id or self.default_conn_name)
        explicit = {
            "max_attempts": max_attempts,
            "backoff": backoff,
            "jitter": jitter,
            "max_wait": max_wait,
            "timeout": timeout,
        }
        self._explicit = {k: v for k, v in explicit.items() if v is not None}
        self._sleep = sleep
        self._random: Callable[[], float] = random.random

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form, as the provider info declares it for :attr:`conn_type` (:mod:`pulse.provider`)."""
        from pulse.provider import ui_field_behaviour

        return ui_field_behaviour(cls.conn_type)

    # ------------------------------------------------------------------ connection and settings

    @property
    def conn_id(self) -> str:
        return str(getattr(self, self.conn_name_attr))

    @cached_property
    def connection(self) -> Any:
        """The Airflow connection, looked up once."""
        return self.get_connection(self.conn_id)

    @property
    def extras(self) -> dict[str, Any]:
        return self.connection.extra_dejson or {}

    @cached_property
    def settings(self) -> RetrySettings:
        """Explicit arguments, else the connection's extras, else the defaults (resolved once)."""
        defaults = RetrySettings(timeout=self.default_timeout)
        extras = self.extras

        def pick(name: str) -> Any:
            if name in self._explicit:
                return self._explicit[name]
            value = extras.get(name)
            return getattr(defaults, name) if value in (None, "") else value

        return RetrySettings(
            max_attempts=max(1, int(pick("max_attempts"))),
            backoff=float(pick("backoff")),
            jitter=float(pick("jitter")),
            max_wait=float(pick("max_wait")),
            timeout=float(pick("timeout")),
        )

    @property
    def max_attempts(self) -> int:
        return self.settings.max_attempts

    @property
    def backoff(self) -> float:
        return self.settings.backoff

    @property
    def jitter(self) -> float:
        return self.settings.jitter

    @property
    def max_wait(self) -> float:
        return self.settings.max_wait

    @property
    def timeout(self) -> float:
        return self.settings.timeout

    def redact(self, text: str) -> str:
        """``text`` without the connection's secret (request URLs in network errors may carry it)."""
        secret = self.connection.password
        return text.replace(secret, "***") if secret else text

    # ------------------------------------------------------------------ what a source supplies

    @cached_property
    def client(self) -> Any:
        """The source's client library object, built on first use from :attr:`connection`."""
        raise NotImplementedError

    def send(self, stream: Stream, params: dict[str, Any], path: str) -> Reply:
        """Send one request for ``path`` with ``params``; raise a :meth:`transient_errors` error without answer."""
        raise NotImplementedError

    def judge_page(self, stream: Stream, reply: Reply, params: dict[str, Any]) -> Verdict:
        """Judge an HTTP-200 answer: a page (:meth:`Verdict.ok`), malformed, a throttle in the body..."""
        raise NotImplementedError

    def test_connection(self) -> tuple[bool, str]:
        raise NotImplementedError

    # ------------------------------------------------------------------ defaults a source may override

    def transient_errors(self) -> tuple[type[BaseException], ...]:
        """Exceptions from :meth:`send` meaning "no answer, try again" (timeouts, connection errors)."""
        import requests

        return (TransientError, requests.RequestException)

    def judge(self, stream: Stream, reply: Reply, params: dict[str, Any]) -> Verdict:
        """401/403 auth, 429 throttled, 5xx/408 retry, other non-200 refused; a 200 goes to :meth:`judge_page`."""
        status = reply.status
        if status in (401, 403):
            return Verdict.auth(f"HTTP {status}")
        if status == 429:
            return Verdict.throttled("HTTP 429", self.retry_after(reply))
        if status >= 500 or status == 408:
            return Verdict.retry(f"HTTP {status}")
        if status != 200:
            return Verdict.refused(f"HTTP {status}", self.explain(reply))
        return self.judge_page(stream, reply, params)

    def explain(self, reply: Reply) -> str:
        """What a refusal says, for the error message (default: the start of the body)."""
        return reply.text[:200]

    def prepare_params(self, stream: Stream, params: dict[str, Any]) -> dict[str, Any]:
        """The parameters to send (e.g. without the planner's control parameters)."""
        return dict(params)

    def describe(self, stream: Stream, path: str, params: dict[str, Any]) -> str:
        """How refusals and page labels name what was asked for (default: the path)."""
        return path

    def page_label(self, stream: Stream, page_no: int, path: str, params: dict[str, Any]) -> str:
        """How messages name a page, e.g. ``/r/python/new page 0``."""
        return f"{self.describe(stream, path, params)} page {page_no}"

    def auth_error(self, reason: str, what: str, detail: str = "") -> SourceAuthError:
        """``detail`` (what the source said) follows ``what`` as is: start it with its separator."""
        return SourceAuthError(
            f"{self.source_name} rejected the {self.credential} of connection '{self.conn_id}' "
            f"({reason} on {what}{detail}). Fix {self.credential_fix}; not retrying."
        )

    def refused_error(self, reason: str, what: str, detail: str = "") -> PageFetchError:
        said = f": {detail}" if detail else ""
        return PageFetchError(f"{self.source_name} answered {reason} for {what}{said}")

    def now(self) -> datetime:
        """The clock server times are measured against when a response has no ``Date``: the machine's, as
        the server's clock is real time (not the pipeline clock, which tests pin)."""
        return datetime.fromtimestamp(time.time(), UTC)

    def server_now(self, reply: Reply) -> float:
        """The server's clock (its ``Date`` header) as an epoch, else :meth:`now`."""
        when = http_date(header(reply.headers, "date"))
        return when if when is not None else self.now().timestamp()

    def retry_after(self, reply: Reply) -> float | None:
        """The wait the server asks for, capped by ``max_wait``: ``Retry-After`` (seconds or an HTTP date),
        else the latest of the hook's :attr:`reset_headers` still ahead; None without a usable hint."""
        value = header(reply.headers, "retry-after")
        seconds = as_number(value)
        if seconds is None and value and (when := http_date(value)) is not None:
            seconds = math.ceil(when - self.server_now(reply))
        if seconds is None:
            resets = [
                reset if kind == "seconds" else math.ceil(reset - self.server_now(reply))
                for name, kind in self.reset_headers.items()
                if (reset := as_number(header(reply.headers, name))) is not None
            ]
            ahead = max(resets, default=0.0)
            seconds = ahead if ahead > 0 else None  # a reset already past says nothing
        return None if seconds is None else max(0.0, min(self.max_wait, float(seconds)))

    def backoff_wait(self, n: int, first: float | None = None) -> float:
        """``first`` (default ``backoff``) doubled ``n`` times, plus jitter, capped by ``max_wait``."""
        wait = (self.backoff if first is None else first) * 2.0**n
        return min(self.max_wait, wait * (1.0 + self.jitter * self._random()))

    # ------------------------------------------------------------------ the engine

    def fetch_page(
        self, stream: Stream, page_no: int, params: dict[str, Any], path: str | None = None
    ) -> Page:
        """Fetch one page, retrying what can be retried; return it with its raw bytes and headers.

        :param path: what to request (default ``stream.endpoint``; a cursor link for some sources).
        :raises SourceAuthError: rejected credentials, at once.
        :raises MalformedPageError: the body stayed malformed on every attempt (``exc.page`` holds the last).
        :raises PageFetchError: throttling, 5xx or timeouts outlasted every attempt, or a refusal (at once).
        """
        target = path or stream.endpoint
        send = self.prepare_params(stream, params)
        what, label = self.describe(stream, target, send), self.page_label(stream, page_no, target, send)
        transient = self.transient_errors()
        failures = throttles = 0
        problem = ""
        malformed: Page | None = None
        while True:
            try:
                reply = self.send(stream, send, target)
            except transient as exc:
                verdict = Verdict.retry(f"network error: {self.redact(_describe_error(exc))}")
                reply = None
            else:
                verdict = self.judge(stream, reply, send)
            if verdict.outcome is Outcome.AUTH:
                raise self.auth_error(verdict.reason, target, verdict.detail)
            if verdict.outcome is Outcome.REFUSED:
                raise self.refused_error(verdict.reason, what, verdict.detail)
            if reply is not None and verdict.outcome in (Outcome.OK, Outcome.MALFORMED):
                page = Page(
                    stream=stream,
                    page_no=page_no,
                    endpoint=target,
                    params=reply.params if reply.params is not None else send,
                    status_code=reply.status,
                    headers=dict(reply.headers),
                    body=reply.body,
                )
                if verdict.outcome is Outcome.OK:
                    page.item_count, page.next_cursor = verdict.item_count, verdict.next_cursor
                    page.oldest_created, page.error = verdict.oldest_created, verdict.error
                    return page
                page.is_valid, page.error = False, verdict.reason
                malformed = page
            problem = (
                verdict.reason
                if verdict.outcome is not Outcome.MALFORMED
                else f"malformed page: {verdict.reason}"
            )
            exponent = failures if self.separate_throttle_budget else failures + throttles
            if verdict.outcome is Outcome.THROTTLED:
                if verdict.wait is not None:  # the server's word: exact
                    wait = verdict.wait
                elif verdict.first_wait is not None:  # the hook's own backoff for this kind of throttle
                    wait = self.backoff_wait(throttles, verdict.first_wait)
                else:
                    wait = self.backoff_wait(exponent)
                throttles += 1
                if self.separate_throttle_budget and throttles >= self.max_attempts:
                    raise PageFetchError(f"{label} stayed throttled after {throttles} attempts: {problem}")
            else:
                wait = self.backoff_wait(exponent)
                failures += 1
            attempts = failures if self.separate_throttle_budget else failures + throttles
            if attempts >= self.max_attempts:
                break
            log.warning(
                "%s page %s attempt %s/%s: %s; waiting %.1fs",
                stream.key,
                page_no,
                failures + throttles,
                self.max_attempts,
                problem,
                wait,
            )
            self._sleep(wait)
        if malformed is not None and problem.startswith("malformed"):
            raise MalformedPageError(
                f"{label} stayed malformed after {attempts} attempts: {malformed.error}", page=malformed
            )
        raise PageFetchError(f"{label} failed after {attempts} attempts: {problem}")

    # ------------------------------------------------------------------ paging

    def stream_params(self, stream: Stream, window: Window) -> dict[str, Any]:
        """The parameters every page of ``stream`` sends for ``window`` (default: the stream's own)."""
        return dict(stream.params)

    def page_params(self, stream: Stream, window: Window, cursor: str | None) -> dict[str, Any]:
        """The parameters of the page after ``cursor`` (the first page without one)."""
        params = self.stream_params(stream, window)
        if cursor and self.cursor_param:
            params[self.cursor_param] = cursor
        return params

    def page_path(self, stream: Stream, cursor: str | None) -> str | None:
        """What to request for the page after ``cursor`` (default ``stream.endpoint``)."""
        return None

    def is_last(self, stream: Stream, window: Window, page: Page, params: dict[str, Any]) -> bool:
        """True when no page after ``page`` is needed for ``window`` (default: an empty page ends it)."""
        return not page.item_count

    def iter_pages(
        self, stream: Stream, window: Window, cursor: str | None = None, page_no: int = 0
    ) -> Iterator[Page]:
        """Page ``stream`` for ``window`` from ``cursor``.

        Each yielded page has ``next_cursor`` set to the cursor to continue from, or ``None`` when the stream
        is complete for this window, so a retry can resume after the last stored page.
        """
        while True:
            params = self.page_params(stream, window, cursor)
            page = self.fetch_page(stream, page_no, params, self.page_path(stream, cursor))
            if self.is_last(stream, window, page, params):
                page.next_cursor = None
            yield page
            if page.next_cursor is None:
                return
            cursor, page_no = page.next_cursor, page_no + 1


def header(headers: Mapping[str, str], name: str) -> str | None:
    """``headers[name]``, whatever the case of the name (a plain dict copy of the headers keeps theirs)."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def _describe_error(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, TransientError) else repr(exc)
