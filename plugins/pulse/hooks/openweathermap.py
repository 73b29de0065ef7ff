"""OpenWeatherMapHook: pyowm's HTTP client, configured from an Airflow connection, fetching raw weather pages.

Connection ``openweathermap_default`` (type ``generic``):

=============  ==========================================================================================
field          meaning
=============  ==========================================================================================
password       the API key, sent as the ``APPID`` query parameter (``raw.api_responses`` never stores it)
host           optional base URL (the simulator, e.g. ``http://127.0.0.1:8765``); empty means the real API,
               ``https://api.openweathermap.org``
extra          ``timeout`` seconds per request (default 10), ``max_attempts`` per page (default 6),
               ``backoff`` first wait in seconds, doubled per attempt (default 1)
=============  ==========================================================================================

The same code talks to openweathermap.org or to the simulator: only the connection changes. pyowm has no
base-URL option, so for a ``host`` the hook re-roots the weather manager's ``HttpClient`` (``root_uri`` on the
host, ``admits_subdomains=False``, ``use_ssl`` from the scheme), as pyowm's own URL builder expects.

Why ``HttpClient.get_json`` and not ``weather_at_coords`` / ``forecast_at_coords``: those parse the answer
into ``Observation`` / ``Forecaster`` objects, always ask for standard units (Kelvin) and drop the response,
while Pulse keeps every page byte for byte in ``raw.api_responses`` and asks for ``units=metric``. So the hook
uses pyowm's HTTP layer (URL building, ``APPID`` and ``lang`` parameters, status-to-exception mapping) and
captures the raw response from below it: configuring ``max_retries`` makes pyowm give the client a
``requests.Session``; the hook mounts a retry-free adapter on it (retries are the hook's job, with waits it
can observe) and a session response hook that keeps the last response (status, headers, bytes as received).

On top of that the hook honours ``Retry-After`` on 429 (OpenWeatherMap itself sends none, so exponential
backoff applies), retries 5xx, timeouts and malformed pages with backoff, and turns a rejected key (401/403)
into :class:`~pulse.sources.base.SourceAuthError` so the task fails fast instead of retrying. The key never
appears in its messages.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook

from pulse.sources.base import MalformedPageError, Page, PageFetchError, SourceAuthError, Stream
from pulse.sources.openweathermap import API_ROOT, UNITS, page_info, stream_kind

if TYPE_CHECKING:
    import requests
    from pyowm.commons.http_client import HttpClient

    from pulse.windows import Window

log = logging.getLogger(__name__)


class OpenWeatherMapHook(BaseHook):
    """Read current weather and forecasts through pyowm's HTTP client.

    :param openweathermap_conn_id: connection with the API key (see module docstring).
    :param max_attempts: attempts per page for throttling, server errors, timeouts and malformed bodies
        (default: the connection's ``max_attempts`` extra, else 6).
    :param max_wait: the longest single wait in seconds (a longer ``Retry-After`` is capped and retried).
    :param sleep: how to wait between attempts (tests pass a recorder).
    """

    conn_name_attr = "openweathermap_conn_id"
    default_conn_name = "openweathermap_default"
    conn_type = "generic"
    hook_name = "OpenWeatherMap"

    def __init__(
        self,
        openweathermap_conn_id: str = default_conn_name,
        max_attempts: int | None = None,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self.openweathermap_conn_id = openweathermap_conn_id
        self.max_attempts = max_attempts or 6
        self._explicit_attempts = max_attempts is not None
        self.backoff = 1.0
        self.max_wait = max_wait
        self._sleep = sleep
        self._api_key = ""
        self._last_response: requests.Response | None = None

    # ------------------------------------------------------------------ client

    @cached_property
    def client(self) -> HttpClient:
        """pyowm's ``HttpClient`` for ``/data/2.5``, built on first use from the connection."""
        import copy

        from pyowm import OWM
        from pyowm.utils.config import get_default_config
        from requests.adapters import HTTPAdapter

        conn = self.get_connection(self.openweathermap_conn_id)
        extra = conn.extra_dejson
        if not conn.password:
            raise SourceAuthError(
                f"connection '{self.openweathermap_conn_id}' needs the OpenWeatherMap API key (password)"
            )
        self._api_key = conn.password
        if not self._explicit_attempts and extra.get("max_attempts"):
            self.max_attempts = int(extra["max_attempts"])
        self.backoff = float(extra.get("backoff", self.backoff))
        config = copy.deepcopy(get_default_config())  # pyowm hands out its module-level dict: never mutate it
        config["connection"]["timeout_secs"] = float(extra.get("timeout", 10))
        config["connection"]["max_retries"] = 0  # any value makes HttpClient.http a requests.Session
        base = (conn.host or "").strip().rstrip("/")
        split = urlsplit(base if "://" in base else f"http://{base}") if base else None
        if split is not None:
            config["connection"]["use_ssl"] = split.scheme == "https"
        client = OWM(conn.password, config).weather_manager().http_client
        if split is not None:
            client.root_uri = f"{split.netloc}{split.path}{API_ROOT}".replace("//", "/")
            client.admits_subdomains = False
        session = client.http
        adapter = HTTPAdapter(max_retries=0)  # no urllib3 retries on 429/5xx: the hook retries, visibly
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.hooks["response"].append(self._remember)
        return client

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last_response = response

    def _redact(self, text: str) -> str:
        """``text`` without the API key (request URLs in network errors carry ``APPID=<key>``)."""
        return text.replace(self._api_key, "***") if self._api_key else text

    def test_connection(self) -> tuple[bool, str]:
        """Ask for the current weather at Greenwich to prove the key works."""
        try:
            self.client.get_json("weather", params={"lat": 51.4769, "lon": 0.0, "units": UNITS})
        except Exception as exc:
            return False, self._redact(str(exc))
        return True, "Connection successfully tested"

    # ------------------------------------------------------------------ one page

    def _auth_error(self, status: int, what: str) -> SourceAuthError:
        return SourceAuthError(
            f"OpenWeatherMap rejected the API key of connection '{self.openweathermap_conn_id}' "
            f"(HTTP {status} on {what}). Fix the connection's password (API key); not retrying."
        )

    def fetch_page(self, stream: Stream, page_no: int, params: dict[str, Any]) -> Page:
        """GET one page, retrying what can be retried; return it with its raw bytes and headers.

        :raises SourceAuthError: 401/403, at once.
        :raises MalformedPageError: the body stayed malformed on every attempt (``exc.page`` holds the last).
        :raises PageFetchError: throttling, 5xx or timeouts outlasted every attempt, or another 4xx.
        """
        import requests
        from pyowm.commons import exceptions as owm

        client = self.client  # resolves the connection's retry settings too
        kind, _city = stream_kind(stream.key)
        path = stream.endpoint.removeprefix(f"{API_ROOT}/")
        last_problem = ""
        malformed: Page | None = None
        for attempt in range(1, self.max_attempts + 1):
            self._last_response = None
            last_problem = ""
            wait = min(self.max_wait, self.backoff * 2.0 ** (attempt - 1))
            error: Exception | None = None
            try:
                client.get_json(path, params=dict(params))
            except (owm.PyOWMError, requests.RequestException) as exc:
                error = exc  # judged below from the captured response
            resp = self._last_response
            network = isinstance(
                error, requests.RequestException | owm.TimeoutError | owm.InvalidSSLCertificateError
            )
            if resp is None or network:
                last_problem = f"network error: {self._redact(repr(error))}"
            elif resp.status_code in (401, 403):
                raise self._auth_error(resp.status_code, stream.endpoint)
            elif resp.status_code == 429:
                wait = self._retry_after(resp, default=wait)
                last_problem = f"HTTP 429 ({_message(resp)})"
            elif resp.status_code >= 500 or resp.status_code == 408:
                last_problem = f"HTTP {resp.status_code}"
            elif resp.status_code != 200:
                raise PageFetchError(
                    f"OpenWeatherMap answered HTTP {resp.status_code} for {stream.endpoint} "
                    f"({stream.key}): {_message(resp)}"
                )
            else:
                page = Page(
                    stream=stream,
                    page_no=page_no,
                    endpoint=stream.endpoint,
                    params=dict(params),  # the key is added by pyowm as APPID and is not in here
                    status_code=200,
                    headers=dict(resp.headers),
                    body=resp.content,
                )
                try:
                    info = page_info(resp.content, kind)
                except MalformedPageError as exc:
                    page.is_valid, page.error = False, str(exc)
                    malformed, last_problem = page, f"malformed page: {exc}"
                else:
                    page.item_count = len(info.items)
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
                f"{stream.endpoint} ({stream.key}) page {page_no} stayed malformed after {self.max_attempts} "
                f"attempts: {malformed.error}",
                page=malformed,
            )
        raise PageFetchError(
            f"{stream.endpoint} ({stream.key}) page {page_no} failed after {self.max_attempts} attempts: "
            f"{last_problem}"
        )

    def _retry_after(self, response: requests.Response, default: float) -> float:
        """Seconds to wait from ``Retry-After`` (seconds or an HTTP date), capped by ``max_wait``."""
        value = response.headers.get("retry-after")
        if not value:
            return default
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return default
            from pulse.windows import utcnow

            seconds = (when - utcnow()).total_seconds()
        return max(0.0, min(self.max_wait, seconds))

    # ------------------------------------------------------------------ paging

    def iter_pages(
        self, stream: Stream, window: Window, cursor: str | None = None, page_no: int = 0
    ) -> Iterator[Page]:
        """Yield the stream's single page (``/weather`` and ``/forecast`` have no paging and no time filter).

        The page's ``next_cursor`` is ``None``: the stream is complete for the window. A ``cursor`` means the
        page is already stored, so nothing is fetched. The API answers for the present whatever the window;
        windows it cannot serve never get here (:func:`pulse.sources.openweathermap.reach`, checked by the
        extract operator).
        """
        if cursor is not None:
            return
        page = self.fetch_page(stream, page_no, dict(stream.params))
        page.next_cursor = None
        yield page


def _message(response: requests.Response) -> str:
    """The ``message`` of an OpenWeatherMap error body, or the start of the body."""
    try:
        doc = response.json()
    except (ValueError, RecursionError):
        return response.text[:200].strip() or "(empty body)"
    if isinstance(doc, dict) and doc.get("message") is not None:
        return str(doc["message"])[:200]
    return response.text[:200].strip()
