"""GithubSourceHook: PyGithub, configured from an Airflow ``github`` connection, paging REST v3 into raw pages.

Connection ``github_default`` (type ``pulse_github``; the Airflow GitHub provider's ``github`` type works too):

=============  ==========================================================================================
field          meaning
=============  ==========================================================================================
password       a personal access token (the simulator accepts ``sim-github-token``); without one, the
               provider's GitHub App extras (``app_id``, ``installation_id``, ``key_path``/``private_key``)
host           the API base URL: empty means ``https://api.github.com``; the simulator's URL in tests and
               the local stack; ``https://<host>/api/v3`` for GitHub Enterprise
extra          ``timeout`` seconds per request (default 15), ``max_attempts`` per page (default 6),
               ``backoff`` first wait in seconds, doubled per attempt (default 1), ``user_agent``,
               ``seconds_between_requests`` (PyGithub's pacing; default 0.25 on api.github.com, else 0),
               ``jitter`` (default 0.25), ``max_wait`` (default 60): see :mod:`pulse.hooks.base`
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
wait is capped by ``max_wait`` and retried by the paging engine (:mod:`pulse.hooks.base`). 401 ("Bad credentials") and a 403 without rate-limit signs raise
:class:`~pulse.sources.base.SourceAuthError` naming the connection, so the task fails without retrying.
5xx, timeouts and malformed bodies are retried with backoff.
"""

from __future__ import annotations

import json
import math
from functools import cached_property
from typing import TYPE_CHECKING, Any, Unpack
from urllib.parse import parse_qsl, urlsplit

from pulse.hooks.base import HookArgs, Reply, SourceHook, Verdict, as_number, header
from pulse.sources.base import MalformedPageError, Page, PageFetchError, SourceAuthError, Stream
from pulse.sources.github import CONTROL_PARAMS, page_info, stream_kind

if TYPE_CHECKING:
    import github
    import requests

    from pulse.windows import Window

PUBLIC_API = "https://api.github.com"
DEFAULT_USER_AGENT = "pulse/0.1 (Airflow ingest)"
SECONDARY_DEFAULT_WAIT = 60.0  # GitHub: without retry-after, wait at least a minute


class GithubSourceHook(SourceHook):
    """Read GitHub REST v3 pages (repositories, events, issues, repository search) through PyGithub.

    :param github_conn_id: connection with the token and base URL (see module docstring).
    :param settings: retry settings (``max_attempts``, ``backoff``, ``jitter``, ``max_wait``, ``timeout``,
        ``sleep``): see :class:`~pulse.hooks.base.SourceHook`.
    """

    conn_name_attr = "github_conn_id"
    default_conn_name = "github_default"
    conn_type = "pulse_github"
    hook_name = "GitHub (Pulse)"
    source_name = "GitHub"
    credential_fix = "the connection's password (token)"
    default_timeout = 15.0

    def __init__(self, github_conn_id: str = default_conn_name, **settings: Unpack[HookArgs]) -> None:
        super().__init__(github_conn_id, **settings)
        self._last_response: requests.Response | None = None

    @cached_property
    def client(self) -> github.Github:
        """The PyGithub client, built on first use from the connection (through the provider's hook)."""
        from airflow.providers.github.hooks.github import GithubHook
        from github import Github

        conn, extra = self.connection, self.extras
        try:
            provided = GithubHook(github_conn_id=self.conn_id).get_conn()
        except (ValueError, TypeError, OSError, AssertionError) as exc:
            raise SourceAuthError(
                f"connection '{self.conn_id}' has no usable GitHub credentials ({exc}); "
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

    def prepare_params(self, stream: Stream, params: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in params.items() if k not in CONTROL_PARAMS}

    def send(self, stream: Stream, params: dict[str, Any], path: str) -> Reply:
        """GET through PyGithub's requester; the body and headers come from the recorded response."""
        requester = self.client.requester
        self._last_response = None
        status, headers, text = requester.requestJson("GET", path, params, cnx=self._cnx)
        resp = self._last_response
        if resp is None:
            return Reply(status, dict(headers), text.encode("utf-8"))
        return Reply.of(resp)

    def explain(self, reply: Reply) -> str:
        return _message(reply.body) or repr(reply.body[:200])

    def judge(self, stream: Stream, reply: Reply, params: dict[str, Any]) -> Verdict:
        """401, or 403 without rate-limit signs: credentials; 403/429 with them: a rate limit to wait out."""
        if reply.status not in (401, 403, 429):
            return super().judge(stream, reply, params)
        message = _message(reply.body)
        limited = self._limit_wait(reply, message) if reply.status != 401 else None
        if limited is None:
            why = "wrong, expired or revoked" if reply.status == 401 else "not allowed to read this resource"
            return Verdict.auth(
                f"HTTP {reply.status}", f": {message or 'no message'}; the token may be {why}"
            )
        wait, what = limited
        return Verdict.throttled(
            f"HTTP {reply.status} {what}" + (f", waiting {wait:.0f}s" if wait else ""), wait
        )

    def judge_page(self, stream: Stream, reply: Reply, params: dict[str, Any]) -> Verdict:
        try:
            info = page_info(stream_kind(stream.key), reply.body)
        except MalformedPageError as exc:
            return Verdict.malformed(str(exc))
        return Verdict.ok(len(info.items), self._next_cursor(reply.raw), info.oldest_created)

    def _limit_wait(self, reply: Reply, message: str) -> tuple[float | None, str] | None:
        """How long a 403/429 asks to wait (None: the backoff), or None when it is not a rate limit."""
        from github.Requester import Requester

        retry_after = as_number(header(reply.headers, "retry-after"))
        remaining = as_number(header(reply.headers, "x-ratelimit-remaining"))
        reset = as_number(header(reply.headers, "x-ratelimit-reset"))
        secondary = Requester.isSecondaryRateLimitError(message)
        wait: float | None
        if retry_after is not None:
            wait, what = retry_after, "secondary rate limit" if secondary else "Retry-After"
        elif remaining == 0 and reset is not None:
            wait, what = reset - self.server_now(reply), "primary rate limit"
        elif secondary:
            wait, what = SECONDARY_DEFAULT_WAIT, "secondary rate limit"
        elif Requester.isPrimaryRateLimitError(message) or reply.status == 429:
            wait, what = None, "rate limit"
        else:
            return None
        return (None if wait is None else max(0.0, min(self.max_wait, wait))), what

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

    def page_params(self, stream: Stream, window: Window, cursor: str | None) -> dict[str, Any]:
        """A cursor is the ``Link: rel="next"`` path and query: its query holds the page's parameters."""
        if cursor:
            return dict(parse_qsl(cursor.partition("?")[2], keep_blank_values=True))
        return dict(stream.params)

    def page_path(self, stream: Stream, cursor: str | None) -> str | None:
        return cursor.partition("?")[0] if cursor else None

    def is_last(self, stream: Stream, window: Window, page: Page, params: dict[str, Any]) -> bool:
        """Following ``Link: rel="next"``, a stream is complete for ``window``:

        * ``repo:`` after its one page.
        * ``events:`` newest first; after the page that reaches events older than the window start (or at the
          end of what GitHub keeps: 300 events, 90 days).
        * ``issues:`` ``since`` the window start, updated ascending; after the page that reaches items updated
          at or after the window end (later ones belong to later windows).
        * ``search:`` once ``max_items`` hits are fetched (whole pages).
        """
        kind, cap = stream_kind(stream.key), stream.params.get("max_items")
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


def _port(parts: Any) -> int | None:
    return parts.port or {"https": 443, "http": 80}.get(parts.scheme)


def _message(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return ""
    return str(doc.get("message") or "") if isinstance(doc, dict) else ""
