"""Alpha Vantage source of the simulator: ``GET /query`` with the functions Pulse uses.

Functions: ``TIME_SERIES_DAILY`` (``outputsize=compact``: the last 100 trading days; ``full``: from 1999-11-01,
premium only unless ``premium`` is set), ``TIME_SERIES_INTRADAY`` (``interval`` 1/5/15/30/60min, ``month=YYYY-MM``
from 2000-01 to the current month, ``extended_hours``; without ``month`` the trailing 30 days; ``compact`` keeps
the newest 100 bars), ``DIGITAL_CURRENCY_DAILY`` (``symbol``, ``market``: ``crypto_days`` days up to today, UTC)
and ``GLOBAL_QUOTE``. Bodies are pretty-printed with 4 spaces like the real API.

Like the real API, everything that goes wrong comes back as **HTTP 200** with a one-key object:

* a wrong or missing ``apikey`` (or ``reject_auth``): ``{"Error Message": "the parameter apikey is invalid or
  missing. ..."}``;
* an unknown function, symbol (``invalid_symbols``, or not symbol-shaped), interval, month or market:
  ``{"Error Message": "Invalid API call. ... for <FUNCTION>."}``;
* ``outputsize=full`` on daily series without ``premium``: the premium-feature ``Information``;
* more than ``daily_quota`` calls of one key in one simulated UTC day (``<= 0``: no quota): the 2025
  ``Information`` ("... (25 requests per day) ...");
* ``note_throttle: {"count": K}``: the next K calls get the 2019 per-minute ``Note``;
* ``html_page: {"count": K}``: the next K calls get an HTML page with status 200.

Prices are a smooth deterministic function of (seed, symbol, time) with per-bar jitter from the bar's own
seeded generator, so a bar has the same bytes in every response that holds it. Trading days are Monday to
Friday without New Year's Day, Independence Day, Thanksgiving and Christmas; intraday bars run 04:00-20:00
US/Eastern (09:30-16:00 with ``extended_hours=false``) and appear once complete.

Served items are bars, identified like the parser's quarantine keys: ``SYMBOL:MARKET:interval:<timestamp key>``
(the key as served, so a broken timestamp is its own identity). ``bad_items_ratio`` breaks that share of bars:
a non-numeric value, a missing value, an unparseable timestamp, a timestamp 400 years ahead, or high below low.
"""

from __future__ import annotations

import json
import math
import random
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from dev.simulator.core import (
    Request,
    Response,
    Route,
    ServedItem,
    Source,
    register_source,
    stable_fraction,
    stable_hash,
)

DAY = 86400
ET = ZoneInfo("America/New_York")
ET_LABEL = "US/Eastern"
INTERVALS = {"1min": 1, "5min": 5, "15min": 15, "30min": 30, "60min": 60}
FULL_HISTORY_START = date(1999, 11, 1)
FIRST_INTRADAY_MONTH = "2000-01"
COMPACT_POINTS = 100
FUTURE_YEARS = 400  # a whole Gregorian cycle: the shifted date is valid whenever the original is
SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,19}$")
MONTH = re.compile(r"^(?P<y>\d{4})-(?P<m>\d{2})$")
BAD_KINDS: tuple[str, ...] = (
    "non_numeric",
    "missing_value",
    "bad_timestamp",
    "future_timestamp",
    "high_below_low",
)

APIKEY_ERROR = {
    "Error Message": "the parameter apikey is invalid or missing. Please claim your free API key on "
    "(https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."
}
NOTE_PER_MINUTE = {
    "Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute and 500 "
    "calls per day. Please visit https://www.alphavantage.co/premium/ if you would like to target a higher API "
    "call frequency."
}
PREMIUM_FULL = (
    "Thank you for using Alpha Vantage! The outputsize=full parameter value is a premium feature for the "
    "TIME_SERIES_DAILY endpoint. You may subscribe to any of the premium plans at "
    "https://www.alphavantage.co/premium/ to instantly unlock all premium features"
)
HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Alpha Vantage</title></head>\n"
    b"<body><h1>Service temporarily unavailable</h1><p>Please try again shortly.</p></body></html>\n"
)


def quota_body(quota: int) -> dict[str, str]:
    """The 2025 free-tier over-quota ``Information``."""
    return {
        "Information": "Thank you for using Alpha Vantage! Please consider spreading out your free API requests "
        "more sparingly. You may subscribe to any of the premium plans at https://www.alphavantage.co/premium/ "
        f"to lift the free key rate limit ({quota} requests per day) and instantly unlock all premium endpoints"
    }


def invalid_call(function: str) -> dict[str, str]:
    return {
        "Error Message": "Invalid API call. Please retry or visit the documentation "
        f"(https://www.alphavantage.co/documentation/) for {function}."
    }


#: (price in USD, typical daily volume) of a few well-known symbols; others get one from their hash.
PROFILES: dict[str, tuple[float, float]] = {
    "IBM": (230.0, 4.0e6),
    "MSFT": (420.0, 2.0e7),
    "AAPL": (225.0, 5.0e7),
    "GOOGL": (175.0, 2.5e7),
    "BTC": (91000.0, 2.5e4),
    "ETH": (3200.0, 3.0e5),
    "SOL": (180.0, 2.0e6),
}
CRYPTO_NAMES = {"BTC": "Bitcoin", "ETH": "Ethereum", "SOL": "Solana", "LTC": "Litecoin", "DOGE": "Dogecoin"}
MARKETS: dict[str, tuple[str, float]] = {
    "USD": ("United States Dollar", 1.0),
    "EUR": ("Euro", 0.92),
    "GBP": ("British Pound Sterling", 0.79),
    "JPY": ("Japanese Yen", 150.0),
    "CNY": ("Chinese Yuan", 7.2),
    "CAD": ("Canadian Dollar", 1.36),
    "AUD": ("Australian Dollar", 1.52),
    "CHF": ("Swiss Franc", 0.88),
}


def _thanksgiving(year: int) -> date:
    first = date(year, 11, 1)
    return first + timedelta(days=(3 - first.weekday()) % 7 + 21)


def is_trading_day(day: date) -> bool:
    """Monday to Friday, without the four fixed-rule US holidays the simulator knows."""
    if day.weekday() >= 5 or (day.month, day.day) in ((1, 1), (7, 4), (12, 25)):
        return False
    return not (day.month == 11 and day == _thanksgiving(day.year))


def _et(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=ET)


@register_source
class AlphaVantageSource(Source):
    """Simulated Alpha Vantage (what alpha-vantage 3.0 calls for daily, intraday and crypto series)."""

    name: ClassVar[str] = "alphavantage"
    defaults: ClassVar[dict[str, Any]] = {
        "credentials": {"apikey": "sim-alphavantage-key"},
        "daily_quota": 25,
        "premium": False,
        "crypto_days": 1000,
        "invalid_symbols": ["INVALID", "NOSUCHSYMBOL"],
        "reject_auth": False,
        "note_throttle": {"count": 0},
        "html_page": {"count": 0},
        "rate_limit": {"count": 0, "retry_after": 1},
        "server_errors": {"count": 0, "status": 503},
        "latency_ms": 0,
        "malformed": {"count": 0, "always": False, "skip": 0},
        "bad_items_ratio": 0.0,
    }
    fault_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "daily_quota",
            "premium",
            "reject_auth",
            "note_throttle",
            "html_page",
            "rate_limit",
            "server_errors",
            "latency_ms",
            "malformed",
            "bad_items_ratio",
        }
    )

    def __init__(self, sim: Any) -> None:
        super().__init__(sim)
        self._usage: dict[tuple[str, int], int] = {}

    # -- framework hooks -----------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        """The one endpoint: ``GET /query?function=...``."""
        return [Route("GET", r"/query", self.query)]

    def check_config(self, config: Any) -> None:
        """Range checks on top of the core's type checks."""
        if not 0.0 <= config["bad_items_ratio"] <= 1.0:
            raise ValueError("alphavantage.bad_items_ratio must be in [0, 1]")
        if not 1 <= config["crypto_days"] <= 20_000:
            raise ValueError("alphavantage.crypto_days must be in [1, 20000]")
        if not 400 <= config["server_errors"]["status"] <= 599:
            raise ValueError("alphavantage.server_errors.status must be a 4xx/5xx code")
        for key in ("note_throttle", "html_page"):
            if not isinstance(config[key].get("count"), int) or config[key]["count"] < 0:
                raise ValueError(f"alphavantage.{key}.count must be an integer >= 0")
        if not all(isinstance(s, str) for s in config["invalid_symbols"]):
            raise ValueError("alphavantage.invalid_symbols must be a list of strings")

    def on_reset(self) -> None:
        """Forget the per-key daily usage."""
        self._usage.clear()

    def authorize(self, request: Request) -> Response | None:
        """The key travels as ``apikey``; a wrong one gets Alpha Vantage's HTTP-200 error body."""
        key = request.query.get("apikey", "")
        if self.config["reject_auth"] or key != self.config["credentials"]["apikey"]:
            return _json(APIKEY_ERROR)
        return None

    # -- the endpoint ----------------------------------------------------------------------------------
    def query(self, request: Request, match: Any) -> Response:
        """``GET /query``: throttles and quota first, then the function."""
        cfg = self.config
        if cfg["html_page"]["count"] > 0:
            cfg["html_page"]["count"] -= 1
            return Response(status=200, body=HTML_PAGE, content_type="text/html; charset=utf-8")
        if cfg["note_throttle"]["count"] > 0:
            cfg["note_throttle"]["count"] -= 1
            return _json(NOTE_PER_MINUTE)
        quota = cfg["daily_quota"]
        usage_key = (request.query.get("apikey", ""), int(request.now // DAY))
        used = self._usage.get(usage_key, 0)
        if quota > 0 and used >= quota:
            return _json(quota_body(quota))
        self._usage[usage_key] = used + 1
        function = request.query.get("function", "")
        handler = {
            "TIME_SERIES_DAILY": self.daily,
            "TIME_SERIES_INTRADAY": self.intraday,
            "DIGITAL_CURRENCY_DAILY": self.crypto_daily,
            "GLOBAL_QUOTE": self.global_quote,
        }.get(function)
        if handler is None:
            return _json(invalid_call(function or "the requested function"))
        symbol = request.query.get("symbol", "")
        if not SYMBOL.match(symbol) or symbol.upper() in {s.upper() for s in cfg["invalid_symbols"]}:
            return _json(invalid_call(function))
        return handler(request, symbol)

    def stats_usage(self) -> dict[str, int]:
        """Calls counted against the quota, per ``apikey:day`` (for tests)."""
        return {f"{k}:{d}": n for (k, d), n in self._usage.items()}

    # -- TIME_SERIES_DAILY ---------------------------------------------------------------------------
    def daily(self, request: Request, symbol: str) -> Response:
        outputsize = request.query.get("outputsize", "compact")
        full = outputsize == "full"
        if full and not self.config["premium"]:
            return _json({"Information": PREMIUM_FULL})
        now = datetime.fromtimestamp(request.now, UTC)
        days = self._trading_days_until(now, None if full else COMPACT_POINTS)
        market = "USD"
        series: dict[str, Any] = {}
        served: list[ServedItem] = []
        for day in days:
            start, end = _et(day, time(9, 30)), _et(day, time(16))
            bar = self._bar(symbol, market, "1d", day.isoformat(), start.timestamp(), end.timestamp(), 4)
            self._emit(series, served, symbol, market, "1d", day.isoformat(), bar, request.now, "daily")
        latest = days[0] if days else None
        if latest is None:
            refreshed = ""
        elif now < _et(latest, time(16)):
            refreshed = now.astimezone(ET).strftime("%Y-%m-%d %H:%M:%S")
        else:
            refreshed = latest.isoformat()
        body = {
            "Meta Data": {
                "1. Information": "Daily Prices (open, high, low, close) and Volumes",
                "2. Symbol": symbol,
                "3. Last Refreshed": refreshed,
                "4. Output Size": "Full size" if full else "Compact",
                "5. Time Zone": ET_LABEL,
            },
            "Time Series (Daily)": series,
        }
        return _json(body, served=served)

    def _trading_days_until(self, now: datetime, limit: int | None) -> list[date]:
        """Trading days whose session opened by ``now``, newest first (``limit`` of them, or back to 1999-11)."""
        day = now.astimezone(ET).date()
        out: list[date] = []
        while day >= FULL_HISTORY_START and (limit is None or len(out) < limit):
            if is_trading_day(day) and _et(day, time(9, 30)) <= now:
                out.append(day)
            day -= timedelta(days=1)
        return out

    # -- TIME_SERIES_INTRADAY ------------------------------------------------------------------------
    def intraday(self, request: Request, symbol: str) -> Response:
        q = request.query
        interval = q.get("interval", "")
        if interval not in INTERVALS:
            return _json(invalid_call("TIME_SERIES_INTRADAY"))
        minutes = INTERVALS[interval]
        now = datetime.fromtimestamp(request.now, UTC)
        now_et = now.astimezone(ET)
        month = q.get("month", "")
        if month:
            m = MONTH.match(month)
            if not m or not 1 <= int(m["m"]) <= 12:
                return _json(invalid_call("TIME_SERIES_INTRADAY"))
            if month < FIRST_INTRADAY_MONTH or month > now_et.strftime("%Y-%m"):
                return _json(invalid_call("TIME_SERIES_INTRADAY"))
            first = date(int(m["y"]), int(m["m"]), 1)
            last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        else:
            first, last = (now_et - timedelta(days=30)).date(), now_et.date()
        extended = q.get("extended_hours", "true").lower() != "false"
        session = (time(4), time(20)) if extended else (time(9, 30), time(16))
        step = timedelta(minutes=minutes)
        starts: list[datetime] = []
        day = last
        while day >= first:
            if is_trading_day(day):
                t, close = _et(day, session[0]), _et(day, session[1])
                day_starts = []
                while t + step <= close:
                    if t + step <= now:
                        day_starts.append(t)
                    t += step
                starts.extend(reversed(day_starts))
            day -= timedelta(days=1)
        compact = q.get("outputsize", "compact") != "full"
        if compact:
            starts = starts[:COMPACT_POINTS]
        market = "USD"
        series: dict[str, Any] = {}
        served: list[ServedItem] = []
        for start in starts:
            key = start.strftime("%Y-%m-%d %H:%M:%S")
            bar = self._bar(symbol, market, interval, key, start.timestamp(), (start + step).timestamp(), 4)
            self._emit(series, served, symbol, market, interval, key, bar, request.now, "intraday")
        body = {
            "Meta Data": {
                "1. Information": f"Intraday ({interval}) open, high, low, close prices and volume",
                "2. Symbol": symbol,
                "3. Last Refreshed": starts[0].strftime("%Y-%m-%d %H:%M:%S") if starts else "",
                "4. Interval": interval,
                "5. Output Size": "Compact" if compact else "Full size",
                "6. Time Zone": ET_LABEL,
            },
            f"Time Series ({interval})": series,
        }
        return _json(body, served=served)

    # -- DIGITAL_CURRENCY_DAILY ----------------------------------------------------------------------
    def crypto_daily(self, request: Request, symbol: str) -> Response:
        market = request.query.get("market", "").upper()
        if market not in MARKETS:
            return _json(invalid_call("DIGITAL_CURRENCY_DAILY"))
        today = datetime.fromtimestamp(request.now, UTC).date()
        series: dict[str, Any] = {}
        served: list[ServedItem] = []
        for back in range(self.config["crypto_days"]):
            day = today - timedelta(days=back)
            start = datetime.combine(day, time(0), tzinfo=UTC).timestamp()
            bar = self._bar(symbol, market, "1d", day.isoformat(), start, start + DAY, 8)
            self._emit(
                series, served, symbol, market, "1d", day.isoformat(), bar, request.now, "crypto_daily"
            )
        body = {
            "Meta Data": {
                "1. Information": "Daily Prices and Volumes for Digital Currency",
                "2. Digital Currency Code": symbol.upper(),
                "3. Digital Currency Name": CRYPTO_NAMES.get(symbol.upper(), symbol.upper()),
                "4. Market Code": market,
                "5. Market Name": MARKETS[market][0],
                "6. Last Refreshed": f"{today.isoformat()} 00:00:00",
                "7. Time Zone": "UTC",
            },
            "Time Series (Digital Currency Daily)": series,
        }
        return _json(body, served=served)

    # -- GLOBAL_QUOTE --------------------------------------------------------------------------------
    def global_quote(self, request: Request, symbol: str) -> Response:
        now = datetime.fromtimestamp(request.now, UTC)
        latest, previous = self._trading_days_until(now, 2)
        bar = self._bar(symbol, "USD", "1d", latest.isoformat(), *_session(latest), 4)
        prev = self._bar(symbol, "USD", "1d", previous.isoformat(), *_session(previous), 4)
        change = float(bar["4. close"]) - float(prev["4. close"])
        body = {
            "Global Quote": {
                "01. symbol": symbol,
                "02. open": bar["1. open"],
                "03. high": bar["2. high"],
                "04. low": bar["3. low"],
                "05. price": bar["4. close"],
                "06. volume": bar["5. volume"],
                "07. latest trading day": latest.isoformat(),
                "08. previous close": prev["4. close"],
                "09. change": f"{change:.4f}",
                "10. change percent": f"{100 * change / float(prev['4. close']):.4f}%",
            }
        }
        return _json(body)

    # -- bars ----------------------------------------------------------------------------------------
    def _level(self, symbol: str, market: str, epoch: float) -> float:
        """The smooth price path of a symbol, in ``market`` currency units."""
        base_usd, _ = self._profile(symbol)
        phases = [stable_fraction(self.sim.seed, "phase", symbol.upper(), i) * 2 * math.pi for i in range(3)]
        t = epoch / DAY
        wave = (
            0.22 * math.sin(2 * math.pi * t / 365.25 + phases[0])
            + 0.07 * math.sin(2 * math.pi * t / 31.0 + phases[1])
            + 0.015 * math.sin(2 * math.pi * t / 4.3 + phases[2])
        )
        return base_usd * MARKETS.get(market, ("", 1.0))[1] * math.exp(wave)

    def _profile(self, symbol: str) -> tuple[float, float]:
        known = PROFILES.get(symbol.upper())
        if known:
            return known
        h = stable_hash("profile", symbol.upper())
        return 10.0 + (h % 49_000) / 100.0, float(1e5 + (h >> 64) % 9_900_000)

    def _bar(
        self, symbol: str, market: str, interval: str, key: str, start: float, end: float, decimals: int
    ) -> dict[str, str]:
        """One OHLCV bar over ``[start, end)``, the same bytes whatever response carries it."""
        rng = random.Random(stable_hash(self.sim.seed, "bar", symbol.upper(), market, interval, key))
        o = self._level(symbol, market, start) * (1 + rng.gauss(0, 0.002))
        c = self._level(symbol, market, end) * (1 + rng.gauss(0, 0.002))
        h = max(o, c) * (1 + abs(rng.gauss(0, 0.004)) + 0.0005)
        lo = min(o, c) * (1 - abs(rng.gauss(0, 0.004)) - 0.0005)
        _, daily_volume = self._profile(symbol)
        share = (end - start) / (DAY if decimals == 8 else 6.5 * 3600)
        volume = daily_volume * min(share, 1.0) * rng.uniform(0.4, 1.6)
        vol_text = f"{volume:.8f}" if decimals == 8 else str(max(int(volume), 1))
        return {
            "1. open": f"{o:.{decimals}f}",
            "2. high": f"{h:.{decimals}f}",
            "3. low": f"{lo:.{decimals}f}",
            "4. close": f"{c:.{decimals}f}",
            "5. volume": vol_text,
        }

    def _emit(
        self,
        series: dict[str, Any],
        served: list[ServedItem],
        symbol: str,
        market: str,
        interval: str,
        key: str,
        bar: dict[str, str],
        now: float,
        endpoint: str,
    ) -> None:
        """Add a bar to the series (broken when ``bad_items_ratio`` says so) and record it as served."""
        ident = f"{symbol.upper()}:{market}:{interval}:{key}"
        bad: str | None = None
        ratio = self.config["bad_items_ratio"]
        if ratio > 0 and stable_fraction(self.sim.seed, "bad", ident) < ratio:
            bad = BAD_KINDS[stable_hash(self.sim.seed, "bad-kind", ident) % len(BAD_KINDS)]
            key, bar = _break(key, dict(bar), bad)
        series[key] = bar
        served.append(ServedItem(f"{symbol.upper()}:{market}:{interval}:{key}", endpoint, bad))


def _session(day: date) -> tuple[float, float]:
    return _et(day, time(9, 30)).timestamp(), _et(day, time(16)).timestamp()


def _break(key: str, bar: dict[str, str], bad: str) -> tuple[str, dict[str, str]]:
    """Damage a bar (or its timestamp key) the way ``bad`` says."""
    if bad == "non_numeric":
        bar["1. open"] = "-"
    elif bad == "missing_value":
        bar.pop("4. close", None)
    elif bad == "bad_timestamp":
        day, _, clock = key.partition(" ")
        y, m, d = day.split("-")
        key = f"{d}.{m}.{y}" + (f" {clock[:5]}" if clock else "")
    elif bad == "future_timestamp":
        key = f"{int(key[:4]) + FUTURE_YEARS:04d}{key[4:]}"
    elif bad == "high_below_low":
        bar["2. high"], bar["3. low"] = bar["3. low"], bar["2. high"]
    return key, bar


def _json(obj: Any, served: list[ServedItem] | None = None) -> Response:
    """A 200 JSON answer, pretty-printed with 4 spaces like alphavantage.co; data answers may be truncated."""
    return Response(
        status=200,
        body=json.dumps(obj, indent=4, ensure_ascii=False).encode("utf-8"),
        content_type="application/json",
        served=served or [],
        malformable=served is not None,
    )
