"""Alpha Vantage: which series to fetch for a window, and how a series page becomes market bars (pure functions).

Three functions of ``GET /query`` are used, each answering with one JSON object (no paging):

====================  ==========================================  =============================================
function              stream (one per ...)                         reach back in time
====================  ==========================================  =============================================
TIME_SERIES_DAILY     ``daily:<SYMBOL>`` per stock                 ``compact``: the last 100 trading days (free
                                                                   key); ``full``: the whole history (premium)
TIME_SERIES_INTRADAY  ``intraday:<SYMBOL>:<interval>:<YYYY-MM>``   any month from 2000-01, one call per month
                      per stock and US/Eastern month the window
                      touches
DIGITAL_CURRENCY_     ``crypto_daily:<SYMBOL>:<MARKET>`` per pair  the whole daily history in one call
DAILY
====================  ==========================================  =============================================

The window decides what is *requested*; every bar a response holds is loaded (upserts make the overlap
harmless). Every bar becomes a row of ``core.market_bars`` keyed by (symbol, market, interval, ts).

Alpha Vantage answers throttling, quota exhaustion and bad calls with HTTP 200 and a one-key object
(``Note``, ``Information`` or ``Error Message``): :func:`api_message` tells them apart, and such a body is
never taken for a page of data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pulse.config import ConfigError, mapping, str_list
from pulse.sources.base import (
    FUTURE_TOLERANCE,
    Fact,
    ItemError,
    MalformedPageError,
    ParseOutput,
    Reason,
    StoredPage,
    Stream,
    check_number,
    rejected,
)

if TYPE_CHECKING:
    from pulse.windows import Window

SOURCE = "alphavantage"
TABLE = "core.market_bars"
ENDPOINT = "/query"
DAILY = "TIME_SERIES_DAILY"
INTRADAY = "TIME_SERIES_INTRADAY"
CRYPTO_DAILY = "DIGITAL_CURRENCY_DAILY"
INTERVALS = ("1min", "5min", "15min", "30min", "60min")
OUTPUT_SIZES = ("compact", "full")
#: The exchange time zone of US stocks: intraday months and timestamps are in it.
EXCHANGE_TZ = "US/Eastern"
#: The first month TIME_SERIES_INTRADAY serves (``month=2000-01``).
FIRST_INTRADAY_MONTH = "2000-01"
#: Bars carry no personal data.
PII_KEYS: frozenset[str] = frozenset()

_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,19}$")
_MARKET = re.compile(r"^[A-Za-z]{3}$")
_NUMBERED = re.compile(r"^\d+[a-z]?\.\s*")
_SERIES = re.compile(r"^Time Series \((?P<label>[^)]+)\)$")
_FIELDS = ("open", "high", "low", "close", "volume")


# ------------------------------------------------------------------------------------------------
# configuration and planning
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CryptoPair:
    symbol: str
    market: str


@dataclass(frozen=True)
class AlphaVantageConfig:
    conn_id: str
    stocks: tuple[str, ...]
    intraday_interval: str | None
    crypto: tuple[CryptoPair, ...]
    daily_outputsize: str = "compact"


def parse_config(entry: Any, where: str) -> AlphaVantageConfig:
    """Validate the ``alphavantage`` entry of ``include/sources.yaml``.

    Shape: ``{conn_id, stocks: [SYMBOL, ...], intraday_interval: 1min|5min|15min|30min|60min (null: no
    intraday), crypto: [{symbol, market}, ...], daily_outputsize: compact|full (optional, ``full`` needs a
    premium key)}``. Symbols and markets are upper-cased; at least one stock or crypto pair is required.
    """
    entry = mapping(entry, where, {"conn_id", "stocks", "intraday_interval", "crypto", "daily_outputsize"})
    conn_id = entry.get("conn_id", "alphavantage_default")
    if not isinstance(conn_id, str) or not conn_id:
        raise ConfigError(f"{where}.conn_id: {conn_id!r} must be a connection id")
    stocks = tuple(s.upper() for s in str_list(entry, "stocks", where, pattern=_SYMBOL, required=False))
    _no_duplicates(stocks, f"{where}.stocks")
    interval = entry.get("intraday_interval", "60min")
    if interval is not None and interval not in INTERVALS:
        raise ConfigError(f"{where}.intraday_interval: {interval!r} is not one of {', '.join(INTERVALS)}")
    outputsize = entry.get("daily_outputsize", "compact")
    if outputsize not in OUTPUT_SIZES:
        raise ConfigError(f"{where}.daily_outputsize: {outputsize!r} is not one of {', '.join(OUTPUT_SIZES)}")
    crypto = _crypto_pairs(entry.get("crypto"), f"{where}.crypto")
    if not stocks and not crypto:
        raise ConfigError(f"{where}: needs at least one of stocks or crypto")
    return AlphaVantageConfig(
        conn_id=conn_id,
        stocks=stocks,
        intraday_interval=interval,
        crypto=crypto,
        daily_outputsize=outputsize,
    )


def _crypto_pairs(value: Any, where: str) -> tuple[CryptoPair, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: expected a non-empty list of {{symbol, market}}")
    pairs: list[CryptoPair] = []
    for i, item in enumerate(value):
        item = mapping(item, f"{where}[{i}]", {"symbol", "market"})
        for key, pattern in (("symbol", _SYMBOL), ("market", _MARKET)):
            text = item.get(key)
            if not isinstance(text, str) or not pattern.match(text):
                raise ConfigError(f"{where}[{i}].{key}: {text!r} is not a valid {key}")
        pairs.append(CryptoPair(item["symbol"].upper(), item["market"].upper()))
    _no_duplicates(tuple(f"{p.symbol}/{p.market}" for p in pairs), where)
    return tuple(pairs)


def _no_duplicates(values: tuple[str, ...], where: str) -> None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise ConfigError(f"{where}[{i}]: {value!r} is listed twice")
        seen.add(value)


def months_touched(window: Window) -> list[str]:
    """The ``YYYY-MM`` months (US/Eastern, like ``month=``) that ``[start, end)`` overlaps, from 2000-01."""
    tz = ZoneInfo(EXCHANGE_TZ)
    first = window.start.astimezone(tz)
    last = (window.end - timedelta(microseconds=1)).astimezone(tz)
    year, month = first.year, first.month
    out: list[str] = []
    while (year, month) <= (last.year, last.month):
        label = f"{year:04d}-{month:02d}"
        if label >= FIRST_INTRADAY_MONTH:
            out.append(label)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def plan_streams(config: AlphaVantageConfig, window: Window) -> list[Stream]:
    """One single-page stream per daily series, per intraday month the window touches, per crypto pair."""
    streams: list[Stream] = []
    for symbol in config.stocks:
        streams.append(
            Stream(
                key=f"daily:{symbol}",
                endpoint=ENDPOINT,
                params={"function": DAILY, "symbol": symbol, "outputsize": config.daily_outputsize},
            )
        )
        if config.intraday_interval is None:
            continue
        for month in months_touched(window):
            streams.append(
                Stream(
                    key=f"intraday:{symbol}:{config.intraday_interval}:{month}",
                    endpoint=ENDPOINT,
                    params={
                        "function": INTRADAY,
                        "symbol": symbol,
                        "interval": config.intraday_interval,
                        "month": month,
                        "outputsize": "full",
                    },
                )
            )
    for pair in config.crypto:
        streams.append(
            Stream(
                key=f"crypto_daily:{pair.symbol}:{pair.market}",
                endpoint=ENDPOINT,
                params={"function": CRYPTO_DAILY, "symbol": pair.symbol, "market": pair.market},
            )
        )
    return streams


#: How far back ``outputsize=compact`` reaches: 100 trading days are about 145 calendar days; the shorter
#: figure errs on the side of recording a gap rather than claiming a window the response does not hold.
COMPACT_REACH = timedelta(days=140)


def reach(stream: Stream) -> timedelta | None:
    """How far back from now ``stream`` can serve a window (None: no limit).

    Daily stock series with ``compact`` (the free key) hold the last 100 trading days; with ``full`` (premium)
    and for crypto daily series the whole history. Intraday months reach back to 2000-01, which
    :func:`months_touched` already respects.
    """
    if stream.params.get("function") == DAILY and stream.params.get("outputsize", "compact") == "compact":
        return COMPACT_REACH
    return None


# ------------------------------------------------------------------------------------------------
# HTTP-200 messages: throttling, quota, refused calls
# ------------------------------------------------------------------------------------------------

MESSAGE_KEYS = ("Error Message", "Information", "Note")


class MessageKind(StrEnum):
    """What an HTTP-200 ``Error Message`` / ``Information`` / ``Note`` body means."""

    AUTH = "auth"  # the API key is invalid, missing or the demo key: fix the connection
    INVALID_CALL = "invalid_call"  # unknown symbol, function or parameter: fix the config
    PREMIUM = "premium"  # the call needs a premium plan (e.g. outputsize=full on daily series)
    DAILY_QUOTA = "daily_quota"  # the key's requests for the day are spent: waiting minutes cannot help
    THROTTLED = "throttled"  # per-minute frequency or burst limit: wait and retry


@dataclass(frozen=True)
class ApiMessage:
    key: str
    text: str
    kind: MessageKind


_AUTH = re.compile(r"\bapi ?key\b.*\b(invalid|missing|claim|demo)\b|\bdemo\b.*\bapi ?key\b", re.I | re.S)
_PER_MINUTE = re.compile(r"per minute|/ ?min\b|calls? per second|burst", re.I)
_PER_DAY = re.compile(r"per day|daily (rate )?limit|/ ?day\b", re.I)
_PREMIUM = re.compile(
    r"is a premium (feature|endpoint)|premium (feature|endpoint) for|this is a premium", re.I
)


def api_message(doc: Any) -> ApiMessage | None:
    """Classify a decoded body that is an Alpha Vantage message instead of data (None for anything else).

    ``Note`` (2018-2023) and ``Information`` (2017, 2024+) bodies are throttling: a per-minute wording (or none)
    means wait and retry; a per-day wording means the daily quota is spent. ``Information`` also carries the
    premium-only and invalid-key notices; ``Error Message`` is a refused call (bad symbol or parameters) or,
    when it talks about the apikey, rejected credentials.
    """
    if not isinstance(doc, dict):
        return None
    for key in MESSAGE_KEYS:
        if key not in doc:
            continue
        text = doc[key] if isinstance(doc[key], str) else json.dumps(doc[key])
        if _AUTH.search(text):
            kind = MessageKind.AUTH
        elif key == "Error Message":
            kind = MessageKind.INVALID_CALL
        elif _PER_MINUTE.search(text):
            kind = MessageKind.THROTTLED
        elif _PER_DAY.search(text):
            kind = MessageKind.DAILY_QUOTA
        elif _PREMIUM.search(text):
            kind = MessageKind.PREMIUM
        else:
            kind = MessageKind.THROTTLED
        return ApiMessage(key, text, kind)
    return None


# ------------------------------------------------------------------------------------------------
# page shape
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesInfo:
    """A validated series body: who it describes and its bars (timestamp key -> bar object)."""

    symbol: str
    market: str
    asset_class: str
    interval: str
    series_key: str
    tz: ZoneInfo | None  # the time zone of intraday timestamps; None for daily series (dates)
    meta: dict[str, Any]
    bars: dict[str, Any]


def _plain(key: str) -> str:
    """``"2. Symbol"`` -> ``"Symbol"``, ``"1a. open (EUR)"`` -> ``"open (EUR)"``."""
    return _NUMBERED.sub("", key).strip()


def _zone(name: Any) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise MalformedPageError(f"Meta Data has no usable Time Zone ({name!r})")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory ("America"), a name too long
        aliases = {"US/Eastern": "America/New_York", "US/Central": "America/Chicago"}
        if name in aliases:
            return ZoneInfo(aliases[name])
        raise MalformedPageError(f"Meta Data Time Zone {name!r} is unknown") from None


def series_info(body: bytes | str) -> SeriesInfo:
    """Check that ``body`` is one daily, intraday or crypto-daily series and describe it.

    :raises MalformedPageError: bad JSON, an HTML page, a throttle/error message, no ``Meta Data``, not exactly
        one ``Time Series (...)`` object, an unsupported series, or metadata that names no symbol or time zone.
    """
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        snippet = (body[:80] if isinstance(body, str) else body[:80].decode("utf-8", "replace")).strip()
        raise MalformedPageError(f"body is not JSON ({exc}); starts with {snippet!r}") from None
    if not isinstance(doc, dict):
        raise MalformedPageError(f"body is JSON {type(doc).__name__}, expected an object")
    message = api_message(doc)
    if message is not None:
        raise MalformedPageError(f"body is an Alpha Vantage {message.key!r} message, not a series")
    raw_meta = doc.get("Meta Data")
    if not isinstance(raw_meta, dict):
        raise MalformedPageError("body has no 'Meta Data' object")
    series_keys = [k for k in doc if k.startswith("Time Series")]
    if len(series_keys) != 1:
        raise MalformedPageError(f"expected one 'Time Series (...)' object, found {series_keys}")
    series_key = series_keys[0]
    bars = doc[series_key]
    if not isinstance(bars, dict):
        raise MalformedPageError(f"{series_key!r} is {type(bars).__name__}, expected an object")
    label_match = _SERIES.match(series_key)
    label = label_match["label"] if label_match else ""
    meta = {_plain(k): v for k, v in raw_meta.items()}
    tz: ZoneInfo | None = None
    if label == "Daily":
        asset_class, interval = "stock", "1d"
    elif label == "Digital Currency Daily":
        asset_class, interval = "crypto", "1d"
    elif label in INTERVALS:
        asset_class, interval = "stock", label
        if meta.get("Interval", label) != label:
            raise MalformedPageError(
                f"Meta Data Interval {meta.get('Interval')!r} contradicts {series_key!r}"
            )
        tz = _zone(meta.get("Time Zone"))
    else:
        raise MalformedPageError(f"unsupported series {series_key!r}")
    symbol = meta.get("Symbol") or meta.get("Digital Currency Code")
    if not isinstance(symbol, str) or not _SYMBOL.match(symbol):
        raise MalformedPageError(f"Meta Data names no valid symbol ({symbol!r})")
    market = meta.get("Market Code") or meta.get("Currency")
    if market is None and asset_class == "stock":
        market = "USD"  # US listings; the stock series metadata names no currency
    if not isinstance(market, str) or not _MARKET.match(market):
        raise MalformedPageError(f"Meta Data names no valid market ({market!r})")
    return SeriesInfo(
        symbol=symbol.upper(),
        market=market.upper(),
        asset_class=asset_class,
        interval=interval,
        series_key=series_key,
        tz=tz,
        meta=meta,
        bars=bars,
    )


# ------------------------------------------------------------------------------------------------
# bars
# ------------------------------------------------------------------------------------------------


def item_identity(info: SeriesInfo, timestamp_key: str) -> str:
    """How a bar is told apart in quarantine and in the simulator's stats: ``SYMBOL:MARKET:interval:key``."""
    return f"{info.symbol}:{info.market}:{info.interval}:{timestamp_key}"


def bar_time(info: SeriesInfo, key: str, now: datetime) -> datetime:
    """The bar's start in UTC: a date means 00:00 UTC that day; a date-time is in the metadata's time zone."""
    if not key:
        raise ItemError(Reason.BAD_TIMESTAMP, "the bar has no timestamp")
    formats = ("%Y-%m-%d",) if info.tz is None else ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")
    parsed: datetime | None = None
    for fmt in formats:
        try:
            parsed = datetime.strptime(key, fmt)
            break
        except ValueError:
            continue
    if parsed is None:
        raise ItemError(Reason.BAD_TIMESTAMP, f"timestamp {key[:40]!r} is not {' or '.join(formats)}")
    ts = parsed.replace(tzinfo=UTC) if info.tz is None else parsed.replace(tzinfo=info.tz).astimezone(UTC)
    if ts > now + FUTURE_TOLERANCE:
        raise ItemError(Reason.FUTURE_TIMESTAMP, f"bar {ts.isoformat()} is after {now.isoformat()}")
    return ts


def bar_values(bar: dict[str, Any], market: str) -> dict[str, float | None]:
    """OHLCV numbers of one bar, from ``"1. open"`` keys or the pre-2024 crypto ``"1a. open (EUR)"`` keys."""
    plain = {_plain(k): v for k, v in bar.items()}
    values: dict[str, float | None] = {}
    for field in _FIELDS:
        for name in (field, f"{field} ({market})"):
            if name in plain:
                values[field] = check_number(field, plain[name], required=True)
                break
        else:
            raise ItemError(Reason.BAD_FIELD, f"{field} is missing")
    high, low = values["high"], values["low"]
    if high is not None and low is not None and high < low:
        raise ItemError(Reason.BAD_FIELD, f"high {high} is below low {low}")
    return values


def parse_bar(info: SeriesInfo, key: str, bar: Any, now: datetime) -> Fact:
    """Turn one bar into a ``core.market_bars`` fact, or raise :class:`ItemError` with a reason."""
    if not isinstance(bar, dict):
        raise ItemError(Reason.NOT_AN_OBJECT, f"bar {key[:40]!r} is {type(bar).__name__}, expected an object")
    ts = bar_time(info, key, now)
    return Fact(
        TABLE,
        {
            "source": SOURCE,
            "symbol": info.symbol,
            "market": info.market,
            "asset_class": info.asset_class,
            "interval": info.interval,
            "ts": ts,
            **bar_values(bar, info.market),
        },
    )


def parse_page(
    page: StoredPage, pseudonymize: Callable[[str | None], str | None], now: datetime
) -> ParseOutput:
    """Yield ``(bar_index, Fact | Rejected)`` for every bar of a stored series page."""
    info = series_info(page.body)
    for index, (key, bar) in enumerate(info.bars.items()):
        try:
            yield index, parse_bar(info, key, bar, now)
        except ItemError as exc:
            ident = item_identity(info, key)
            yield index, rejected(index, exc, ident, {key: bar}, PII_KEYS, pseudonymize)


# ------------------------------------------------------------------------------------------------
# the declaration: everything else about this source derives from it (pulse.sources.spec,
# docs/adding-a-source.md)
# ------------------------------------------------------------------------------------------------

from datetime import timedelta  # noqa: E402

from pulse.sources.spec import Freshness, SourceSpec  # noqa: E402

SPEC = SourceSpec(
    name="alphavantage",
    title="Alpha Vantage",
    hook="pulse.hooks.alphavantage:AlphaVantageHook",
    schedule="30 22 * * 1-5",  # weekdays after the US close
    default_window=timedelta(days=1),
    max_active_runs=1,  # one run at a time: the free key has 25 calls a day
    deadline=timedelta(hours=2),
    pool_slots=1,
    budgets=((86400, 25),),
    budget_note="25 requests/day on the free plan",
    tables=("core.market_bars",),
    freshness=Freshness("core.market_bars", max_age_minutes=1500),
    conn_defaults={"host": "https://www.alphavantage.co"},
    local_conn={"password": "sim-alphavantage-key"},
)
