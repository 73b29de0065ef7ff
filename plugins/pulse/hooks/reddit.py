"""RedditHook: praw, configured from an Airflow connection, paging listings into raw pages.

Connection ``reddit_default`` (type ``pulse_reddit``; any type works, ``generic`` too):

=============  ==========================================================================================
field          meaning
=============  ==========================================================================================
login          OAuth client id of the Reddit app
password       OAuth client secret
host           optional base URL for both the API and the token endpoint (the simulator); empty means
               ``https://oauth.reddit.com`` and ``https://www.reddit.com``
extra          ``user_agent`` (required by Reddit's rules), ``oauth_url`` / ``reddit_url`` to set the two
               bases separately, ``timeout`` seconds (default 16), ``max_attempts`` per page (default 6),
               ``backoff`` first wait in seconds, doubled per attempt (default 1), ``jitter`` (default
               0.25), ``max_wait`` longest wait in seconds (default 60): see :mod:`pulse.hooks.base`
=============  ==========================================================================================

The same code talks to reddit.com or to the simulator: only the connection changes. praw/prawcore keep their
own behaviour (token refresh, ``x-ratelimit-*`` pacing, two retries on 5xx); the response is captured below
them by a session response hook, and the paging engine (:mod:`pulse.hooks.base`) honours ``Retry-After`` /
``x-ratelimit-reset`` on 429, retries 5xx bursts, timeouts and malformed pages with backoff, and turns
rejected credentials into :class:`~pulse.sources.base.SourceAuthError` so the task fails fast.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, Unpack

from pulse.hooks.base import HookArgs, Reply, SourceHook, TransientError, Verdict
from pulse.sources.base import MalformedPageError, Page, PageFetchError, SourceAuthError, Stream
from pulse.sources.reddit import listing_info

if TYPE_CHECKING:
    import praw
    import requests

    from pulse.windows import Window

__all__ = ["PageFetchError", "RedditHook"]


def _TimeoutSession(timeout: float) -> requests.Session:
    import requests

    class TimeoutSession(requests.Session):
        """A session whose timeout wins over the fixed 16 s prawcore passes with every request."""

        def request(self, *args: Any, **kwargs: Any) -> requests.Response:
            kwargs["timeout"] = timeout
            return super().request(*args, **kwargs)

    return TimeoutSession()


class RedditHook(SourceHook):
    """Read Reddit listings through praw.

    :param reddit_conn_id: connection with the app's client id and secret (see module docstring).
    :param settings: retry settings (``max_attempts``, ``backoff``, ``jitter``, ``max_wait``, ``timeout``,
        ``sleep``): see :class:`~pulse.hooks.base.SourceHook`.
    """

    conn_name_attr = "reddit_conn_id"
    default_conn_name = "reddit_default"
    conn_type = "pulse_reddit"
    hook_name = "Reddit (Pulse)"
    source_name = "Reddit"
    credential_fix = "the connection's login (client id) and password (client secret)"
    default_timeout = 16.0
    reset_headers = {"x-ratelimit-reset": "seconds"}
    cursor_param = "after"

    def __init__(self, reddit_conn_id: str = default_conn_name, **settings: Unpack[HookArgs]) -> None:
        super().__init__(reddit_conn_id, **settings)
        self._last_response: requests.Response | None = None

    @cached_property
    def client(self) -> praw.Reddit:
        """The praw client, built on first use from the connection."""
        import praw

        conn, extra = self.connection, self.extras
        if not conn.login or not conn.password:
            raise SourceAuthError(
                f"connection '{self.conn_id}' needs the Reddit app's client id (login) and secret (password)"
            )
        base = (conn.host or "").rstrip("/")
        session = _TimeoutSession(self.timeout)
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

    def transient_errors(self) -> tuple[type[BaseException], ...]:
        return (TransientError,)

    def send(self, stream: Stream, params: dict[str, Any], path: str) -> Reply:
        """GET through praw; whatever prawcore raises for an answer, the answer itself is judged."""
        import prawcore

        client = self.client
        self._last_response = None
        try:
            client.request(method="GET", path=path, params=params)
        except (prawcore.OAuthException, prawcore.InvalidToken, prawcore.Forbidden) as exc:
            status = getattr(getattr(exc, "response", None), "status_code", "401")
            raise self.auth_error(f"HTTP {status}", path) from exc
        except prawcore.ResponseException:
            pass  # 429, 5xx, bad JSON...: judged from the captured response
        except prawcore.RequestException as exc:
            raise TransientError(repr(exc.original_exception)) from exc
        if self._last_response is None:
            raise TransientError("no response")
        return Reply.of(self._last_response)

    def judge_page(self, stream: Stream, reply: Reply, params: dict[str, Any]) -> Verdict:
        try:
            info = listing_info(reply.body)
        except MalformedPageError as exc:
            return Verdict.malformed(str(exc))
        return Verdict.ok(len(info.children), info.after, info.oldest_created)

    # ------------------------------------------------------------------ paging

    def stream_params(self, stream: Stream, window: Window) -> dict[str, Any]:
        return {**stream.params, "raw_json": 1}

    def is_last(self, stream: Stream, window: Window, page: Page, params: dict[str, Any]) -> bool:
        """A newest-first listing is complete at an empty page or at items older than the window's start."""
        oldest = page.oldest_created
        return not page.item_count or (oldest is not None and oldest < window.start.timestamp())
