"""OpenWeatherMapHook: pyowm's HTTP client, configured from an Airflow connection, fetching raw weather pages.

Connection ``openweathermap_default`` (type ``pulse_openweathermap``; any type works, ``generic`` too):

=============  ==========================================================================================
field          meaning
=============  ==========================================================================================
password       the API key, sent as the ``APPID`` query parameter (``raw.api_responses`` never stores it)
host           optional base URL (the simulator, e.g. ``http://127.0.0.1:8765``); empty means the real API,
               ``https://api.openweathermap.org``
extra          ``timeout`` seconds per request (default 10), ``max_attempts`` per page (default 6),
               ``backoff`` first wait in seconds, doubled per attempt (default 1), ``jitter`` (default
               0.25), ``max_wait`` (default 60): see :mod:`pulse.hooks.base`
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

On top of that the paging engine (:mod:`pulse.hooks.base`) honours ``Retry-After`` on 429 (OpenWeatherMap itself sends none, so exponential
backoff applies), retries 5xx, timeouts and malformed pages with backoff, and turns a rejected key (401/403)
into :class:`~pulse.sources.base.SourceAuthError` so the task fails fast instead of retrying. The key never
appears in its messages.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any, Unpack
from urllib.parse import urlsplit

from pulse.hooks.base import HookArgs, Reply, SourceHook, TransientError, Verdict
from pulse.sources.base import MalformedPageError, Page, SourceAuthError, Stream
from pulse.sources.openweathermap import API_ROOT, UNITS, page_info, stream_kind

if TYPE_CHECKING:
    import requests
    from pyowm.commons.http_client import HttpClient

    from pulse.windows import Window


class OpenWeatherMapHook(SourceHook):
    """Read current weather and forecasts through pyowm's HTTP client.

    :param openweathermap_conn_id: connection with the API key (see module docstring).
    :param settings: retry settings (``max_attempts``, ``backoff``, ``jitter``, ``max_wait``, ``timeout``,
        ``sleep``): see :class:`~pulse.hooks.base.SourceHook`.
    """

    conn_name_attr = "openweathermap_conn_id"
    default_conn_name = "openweathermap_default"
    conn_type = "pulse_openweathermap"
    hook_name = "OpenWeatherMap (Pulse)"
    source_name = "OpenWeatherMap"
    credential = "API key"
    credential_fix = "the connection's password (API key)"
    default_timeout = 10.0

    def __init__(self, openweathermap_conn_id: str = default_conn_name, **settings: Unpack[HookArgs]) -> None:
        super().__init__(openweathermap_conn_id, **settings)
        self._last_response: requests.Response | None = None

    @cached_property
    def client(self) -> HttpClient:
        """pyowm's ``HttpClient`` for ``/data/2.5``, built on first use from the connection."""
        from pyowm import OWM
        from pyowm.utils.config import get_default_config
        from requests.adapters import HTTPAdapter

        conn = self.connection
        if not conn.password:
            raise SourceAuthError(f"connection '{self.conn_id}' needs the OpenWeatherMap API key (password)")
        config = copy.deepcopy(get_default_config())  # pyowm hands out its module-level dict: never mutate it
        config["connection"]["timeout_secs"] = self.timeout
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

    def test_connection(self) -> tuple[bool, str]:
        """Ask for the current weather at Greenwich to prove the key works."""
        try:
            self.client.get_json("weather", params={"lat": 51.4769, "lon": 0.0, "units": UNITS})
        except Exception as exc:
            return False, self.redact(str(exc))
        return True, "Connection successfully tested"

    # ------------------------------------------------------------------ one page

    def describe(self, stream: Stream, path: str, params: dict[str, Any]) -> str:
        return f"{path} ({stream.key})"

    def send(self, stream: Stream, params: dict[str, Any], path: str) -> Reply:
        """GET through pyowm; pyowm's exceptions for an answer are judged from the captured response."""
        import requests
        from pyowm.commons import exceptions as owm

        client = self.client
        self._last_response = None
        try:
            client.get_json(path.removeprefix(f"{API_ROOT}/"), params=dict(params))
        except (requests.RequestException, owm.TimeoutError, owm.InvalidSSLCertificateError) as exc:
            raise TransientError(repr(exc)) from exc
        except owm.PyOWMError as exc:
            if self._last_response is None:
                raise TransientError(repr(exc)) from exc
        if self._last_response is None:
            raise TransientError("no response")
        return Reply.of(self._last_response, params=dict(params))  # pyowm adds the key (APPID), not kept

    def judge(self, stream: Stream, reply: Reply, params: dict[str, Any]) -> Verdict:
        verdict = super().judge(stream, reply, params)
        if verdict.reason == "HTTP 429":
            return Verdict.throttled(f"HTTP 429 ({_message(reply)})", verdict.wait)
        return verdict

    def explain(self, reply: Reply) -> str:
        return _message(reply)

    def judge_page(self, stream: Stream, reply: Reply, params: dict[str, Any]) -> Verdict:
        kind, _city = stream_kind(stream.key)
        try:
            info = page_info(reply.body, kind)
        except MalformedPageError as exc:
            return Verdict.malformed(str(exc))
        return Verdict.ok(len(info.items))

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
        if cursor is None:
            yield from super().iter_pages(stream, window, cursor, page_no)


def _message(reply: Reply) -> str:
    """The ``message`` of an OpenWeatherMap error body, or the start of the body."""
    try:
        doc = json.loads(reply.body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return reply.text[:200].strip() or "(empty body)"
    if isinstance(doc, dict) and doc.get("message") is not None:
        return str(doc["message"])[:200]
    return reply.text[:200].strip()
