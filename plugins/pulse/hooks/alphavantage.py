"""AlphaVantageHook: alpha-vantage, configured from an Airflow connection, fetching series into raw pages.

Connection ``alphavantage_default`` (type ``pulse_alphavantage``; any type works, ``generic`` too):

=============  ==========================================================================================
field          meaning
=============  ==========================================================================================
host           optional base URL (the simulator, a proxy); empty means ``https://www.alphavantage.co``.
               Requests go to ``<host>/query``.
password       the API key (sent as the ``apikey`` query parameter, which ``raw.api_responses`` never stores)
extra          ``timeout`` seconds per request (default 30), ``max_attempts`` per page (default 6),
               ``backoff`` first wait in seconds after a 5xx, timeout or malformed body, doubled per attempt
               (default 1), ``throttle_wait`` first wait in seconds after an HTTP-200 ``Note``/``Information``
               throttle, doubled per attempt (default 20; Alpha Vantage's per-minute window is 60 s),
               ``jitter`` (default 0.25), ``max_wait`` (default 60): see :mod:`pulse.hooks.base`
=============  ==========================================================================================

The same code talks to alphavantage.co or to the simulator: only the connection changes.

**Why the hook does not let alpha-vantage fetch.** The library builds the request (function name, parameter
names and order, defaults such as ``extended_hours``/``adjusted``, ``apikey``, ``datatype=json``) and then
``AlphaVantage._handle_api_call`` fetches with the ``requests`` module, decodes the JSON and raises a bare
``ValueError`` for ``Error Message``, ``Information`` and ``Note`` bodies, dropping the status, headers and raw
bytes; it never looks at the HTTP status either. So the hook keeps the library's URL building (the undecorated
``get_daily`` / ``get_intraday`` / ``get_digital_currency_daily`` / ``get_quote_endpoint``) and overrides
``_handle_api_call`` in a subclass so that it sends that exact query with a ``requests.Session`` the hook owns
(its timeout, its base URL) and returns the ``requests.Response`` untouched. The library's base URL is a class
attribute of ``AlphaVantage`` shared by the whole worker process, so it is left alone: the hook re-roots the
query on the connection's host instead.

On top of that the paging engine (:mod:`pulse.hooks.base`) honours ``Retry-After`` on 429, retries 5xx, timeouts and malformed bodies with
backoff, waits and retries on the HTTP-200 throttle (``Note``, or ``Information`` without a per-day wording),
and refuses at once, without retries, what waiting cannot fix: a rejected API key (:class:`SourceAuthError`
naming the connection), a spent daily quota, a premium-only call, an invalid symbol or call
(:class:`AlphaVantageRefusedError`, a :class:`PageFetchError` that Airflow does not retry either).
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import TYPE_CHECKING, Any, Unpack
from urllib.parse import parse_qsl, urlsplit

from airflow.sdk.exceptions import AirflowFailException

from pulse.hooks.base import HookArgs, Reply, SourceHook, Verdict
from pulse.sources.alphavantage import MessageKind, api_message, series_info
from pulse.sources.base import MalformedPageError, PageFetchError, SourceAuthError, Stream

if TYPE_CHECKING:
    import requests

DEFAULT_BASE_URL = "https://www.alphavantage.co"
SECRET_PARAM = "apikey"

#: function -> (alpha-vantage method, the parameters it takes)
LIBRARY_CALLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "TIME_SERIES_DAILY": ("get_daily", ("symbol", "outputsize")),
    "TIME_SERIES_INTRADAY": (
        "get_intraday",
        ("symbol", "interval", "outputsize", "month", "extended_hours", "adjusted"),
    ),
    "DIGITAL_CURRENCY_DAILY": ("get_digital_currency_daily", ("symbol", "market")),
    "GLOBAL_QUOTE": ("get_quote_endpoint", ("symbol",)),
}


class AlphaVantageRefusedError(PageFetchError, AirflowFailException):
    """Alpha Vantage refused the call for a reason retrying cannot fix (bad symbol, premium call, quota spent).

    Also an ``AirflowFailException``, so the task fails without Airflow retries (no failure storm).
    """


def _client_class() -> type:
    from alpha_vantage.cryptocurrencies import CryptoCurrencies
    from alpha_vantage.timeseries import TimeSeries

    class RawAlphaVantage(TimeSeries, CryptoCurrencies):
        """alpha-vantage's request building, with the raw ``requests.Response`` handed back."""

        def __init__(self, key: str, session: requests.Session, query_url: str, timeout: float) -> None:
            super().__init__(key=key, output_format="json")
            self.session = session
            self.query_url = query_url
            self.timeout = timeout

        def _handle_api_call(self, url: str) -> requests.Response:
            # ``url`` is the library's own URL; keep its query, send it to the connection's host.
            params = parse_qsl(urlsplit(url).query, keep_blank_values=True)
            return self.session.get(
                self.query_url,
                params=params,
                timeout=self.timeout,
                headers=self.headers,
                proxies=self.proxy or None,
            )

        def call(self, params: dict[str, Any]) -> requests.Response:
            """Send ``params`` (``function`` plus that function's parameters) the way the library would."""
            function = params.get("function")
            if function not in LIBRARY_CALLS:
                raise ValueError(f"unsupported Alpha Vantage function {function!r}")
            method, accepted = LIBRARY_CALLS[function]
            unknown = set(params) - set(accepted) - {"function"}
            if unknown:
                raise ValueError(f"{function} takes no parameters {sorted(unknown)}")
            build_and_fetch = getattr(type(self), method).__wrapped__  # skip the JSON/ValueError layer
            response, _data_key, _meta_key = build_and_fetch(
                self, **{k: v for k, v in params.items() if k != "function"}
            )
            return response

    return RawAlphaVantage


class AlphaVantageHook(SourceHook):
    """Fetch Alpha Vantage series through alpha-vantage, one raw page per call.

    :param alphavantage_conn_id: connection with the API key (see module docstring).
    :param settings: retry settings (``max_attempts``, ``backoff``, ``jitter``, ``max_wait``, ``timeout``,
        ``sleep``): see :class:`~pulse.hooks.base.SourceHook`.
    """

    conn_name_attr = "alphavantage_conn_id"
    default_conn_name = "alphavantage_default"
    conn_type = "pulse_alphavantage"
    hook_name = "Alpha Vantage (Pulse)"
    source_name = "Alpha Vantage"
    credential = "API key"
    credential_fix = "the connection's password (the API key)"
    default_timeout = 30.0

    def __init__(self, alphavantage_conn_id: str = default_conn_name, **settings: Unpack[HookArgs]) -> None:
        super().__init__(alphavantage_conn_id, **settings)

    @property
    def throttle_wait(self) -> float:
        """First wait after an HTTP-200 throttle message (the ``throttle_wait`` extra, default 20 s)."""
        return float(self.extras.get("throttle_wait", 20.0))

    @cached_property
    def client(self) -> Any:
        """The alpha-vantage client (a ``TimeSeries`` + ``CryptoCurrencies``), built on first use."""
        import requests

        conn = self.connection
        if not conn.password:
            raise SourceAuthError(
                f"connection '{self.conn_id}' needs the Alpha Vantage API key in its password"
            )
        base = (conn.host or "").strip().rstrip("/") or DEFAULT_BASE_URL
        if "://" not in base:
            base = f"https://{base}"  # a bare host name, e.g. www.alphavantage.co
        query_url = base if base.endswith("/query") else f"{base}/query"
        return _client_class()(
            key=conn.password, session=requests.Session(), query_url=query_url, timeout=self.timeout
        )

    def test_connection(self) -> tuple[bool, str]:
        """Ask for IBM's global quote (one call of the daily quota) to prove the key works."""
        try:
            response = self.client.call({"function": "GLOBAL_QUOTE", "symbol": "IBM"})
            message = api_message(response.json()) if response.status_code == 200 else None
        except Exception as exc:
            return False, self.redact(str(exc))
        if response.status_code != 200:
            return False, f"HTTP {response.status_code}"
        if message is not None and message.kind is not MessageKind.THROTTLED:
            return False, f"{message.key}: {message.text}"
        return True, "Connection successfully tested"

    # ------------------------------------------------------------------ one page

    def describe(self, stream: Stream, path: str, params: dict[str, Any]) -> str:
        return _describe(params)

    def send(self, stream: Stream, params: dict[str, Any], path: str) -> Reply:
        resp = self.client.call(params)
        return Reply.of(resp, params=_sent_params(resp))

    def judge_page(self, stream: Stream, reply: Reply, params: dict[str, Any]) -> Verdict:
        """A 200 may carry a message instead of a series: refused at once, or a throttle to wait out.

        :raises SourceAuthError: a message rejecting the API key.
        :raises AlphaVantageRefusedError: invalid symbol/call, premium-only call or spent daily quota.
        """
        message = api_message(_json_or_none(reply.body))
        if message is not None:
            self._refuse_if_final(message, _describe(params))
            return Verdict.throttled(
                f"throttled (HTTP 200 {message.key!r}: {message.text[:160]})", first_wait=self.throttle_wait
            )
        try:
            info = series_info(reply.body)
            asked = str(params.get("symbol", "")).upper()
            if asked and info.symbol != asked:
                raise MalformedPageError(f"series is for {info.symbol}, not {asked}")
        except MalformedPageError as exc:
            return Verdict.malformed(str(exc))
        # One call holds the whole series: no next cursor. The planner already chose what the window needs
        # (one stream per series or per intraday month), so the shared paging yields this one page.
        return Verdict.ok(len(info.bars))

    def _refuse_if_final(self, message: Any, what: str) -> None:
        """Raise for the HTTP-200 messages that waiting cannot fix; return for plain throttling."""
        text = message.text[:300]
        if message.kind is MessageKind.AUTH:
            raise self.auth_error(f"HTTP 200 {message.key!r}: {text}", what)
        if message.kind is MessageKind.INVALID_CALL:
            raise AlphaVantageRefusedError(
                f"Alpha Vantage refused {what} ({message.key}: {text}). Check the symbol and settings in "
                "include/sources.yaml; not retrying."
            )
        if message.kind is MessageKind.PREMIUM:
            raise AlphaVantageRefusedError(
                f"Alpha Vantage serves {what} to premium keys only ({text}). Use daily_outputsize: compact "
                f"or a premium key in connection '{self.conn_id}'; not retrying."
            )
        if message.kind is MessageKind.DAILY_QUOTA:
            raise AlphaVantageRefusedError(
                f"the daily request quota of the API key in connection '{self.conn_id}' is spent "
                f"(asked for {what}; {message.key}: {text}). Retrying before the quota resets cannot help."
            )


def _describe(params: dict[str, Any]) -> str:
    """``TIME_SERIES_DAILY IBM`` / ``TIME_SERIES_INTRADAY IBM 60min 2026-11`` / ``... BTC/EUR``."""
    parts = [str(params.get("function", "?")), str(params.get("symbol", "?"))]
    if params.get("market"):
        parts[-1] += f"/{params['market']}"
    parts += [str(params[k]) for k in ("interval", "month") if params.get(k)]
    return " ".join(parts)


def _sent_params(resp: requests.Response) -> dict[str, str]:
    """The query actually sent, without the API key."""
    url = resp.request.url if resp.request is not None else resp.url
    return {
        k: v for k, v in parse_qsl(urlsplit(url or "").query, keep_blank_values=True) if k != SECRET_PARAM
    }


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
