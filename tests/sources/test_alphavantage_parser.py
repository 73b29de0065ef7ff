"""The Alpha Vantage parser on real recorded payloads (from ../shared) and on constructed bad bars."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pulse.config import ConfigError, load_source_config
from pulse.privacy import make_pseudonymizer
from pulse.sources.alphavantage import (
    COMPACT_REACH,
    AlphaVantageConfig,
    MessageKind,
    api_message,
    months_touched,
    parse_config,
    parse_page,
    plan_streams,
    reach,
    series_info,
)
from pulse.sources.base import Fact, MalformedPageError, Reason, Rejected, StoredPage
from pulse.windows import Window

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("PULSE_SHARED_DIR", REPO.parent / "shared"))
PAYLOADS = SHARED / "payloads" / "alphavantage"
NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
PSEUDO = make_pseudonymizer("alphavantage", key=b"k")
needs_payloads = pytest.mark.skipif(not PAYLOADS.exists(), reason="../shared/payloads/alphavantage is absent")


def _page(body: Any, stream: str = "daily:IBM") -> StoredPage:
    text = body if isinstance(body, str) else json.dumps(body)
    return StoredPage(id=1, source="alphavantage", stream=stream, endpoint="/query", body=text)


def _parse(body: Any, now: datetime = NOW) -> list[Any]:
    return [out for _, out in parse_page(_page(body), PSEUDO, now)]


def _recorded(name: str) -> str:
    return (PAYLOADS / name).read_text(encoding="utf-8")


def _daily(*bars: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "Meta Data": {
            "1. Information": "Daily Prices (open, high, low, close) and Volumes",
            "2. Symbol": "IBM",
            "3. Last Refreshed": "2026-11-27",
            "4. Output Size": "Compact",
            "5. Time Zone": "US/Eastern",
        },
        "Time Series (Daily)": dict(bars),
    }


def _bar(**over: Any) -> dict[str, Any]:
    bar = {"1. open": "10.0", "2. high": "12.0", "3. low": "9.5", "4. close": "11.0", "5. volume": "1000"}
    bar.update(over)
    return {k: v for k, v in bar.items() if v is not ...}


# ------------------------------------------------------------------------------------------------
# real recorded payloads
# ------------------------------------------------------------------------------------------------


@needs_payloads
def test_real_daily_stock_series() -> None:
    out = _parse(_recorded("time_series_daily_ibm.json"))
    assert all(isinstance(o, Fact) and o.table == "core.market_bars" for o in out)
    assert [o.values for o in out] == [
        {
            "source": "alphavantage",
            "symbol": "IBM",
            "market": "USD",
            "asset_class": "stock",
            "interval": "1d",
            "ts": datetime(2020, 5, 8, tzinfo=UTC),
            "open": 122.67,
            "high": 122.8,
            "low": 121.06,
            "close": 121.79,
            "volume": 2538547.0,
        },
        {
            "source": "alphavantage",
            "symbol": "IBM",
            "market": "USD",
            "asset_class": "stock",
            "interval": "1d",
            "ts": datetime(2020, 5, 7, tzinfo=UTC),
            "open": 122.98,
            "high": 123.26,
            "low": 120.85,
            "close": 121.23,
            "volume": 4412047.0,
        },
    ]


@needs_payloads
def test_real_intraday_series_is_converted_from_us_eastern_to_utc() -> None:
    body = json.loads(_recorded("time_series_intraday_1min_msft.json"))
    out = _parse(body)
    assert len(out) == len(body["Time Series (1min)"]) > 50
    assert all(isinstance(o, Fact) for o in out)
    first = out[0].values
    # 2017-12-18 14:56 EST (UTC-5) is 19:56 UTC
    assert (first["symbol"], first["interval"], first["ts"]) == (
        "MSFT",
        "1min",
        datetime(2017, 12, 18, 19, 56, tzinfo=UTC),
    )
    assert (first["open"], first["high"], first["low"], first["close"], first["volume"]) == (
        86.49,
        86.5,
        86.475,
        86.5,
        10494.0,
    )
    assert len({o.key() for o in out}) == len(out)


@needs_payloads
def test_real_crypto_daily_series() -> None:
    out = _parse(_recorded("digital_currency_daily_btc_eur.json"))
    assert len(out) == 3
    first = out[0].values
    assert (first["symbol"], first["market"], first["asset_class"], first["interval"]) == (
        "BTC",
        "EUR",
        "crypto",
        "1d",
    )
    assert first["ts"] == datetime(2025, 8, 24, tzinfo=UTC)
    assert (first["open"], first["high"], first["low"], first["close"], first["volume"]) == (
        97883.18,
        98040.37,
        97854.95,
        97886.73,
        9.35943544,
    )
    assert out[2].values["high"] == 100149.0


@needs_payloads
@pytest.mark.parametrize(
    ("name", "key", "kind"),
    [
        ("rate_limit_note_2019.json", "Note", MessageKind.THROTTLED),
        ("information_2017.json", "Information", MessageKind.THROTTLED),
        ("rate_limit_information_2025.json", "Information", MessageKind.DAILY_QUOTA),
        ("error_message_invalid_call.json", "Error Message", MessageKind.INVALID_CALL),
    ],
)
def test_real_messages_are_classified_and_never_parsed_as_data(
    name: str, key: str, kind: MessageKind
) -> None:
    body = _recorded(name)
    message = api_message(json.loads(body))
    assert message is not None and (message.key, message.kind) == (key, kind)
    with pytest.raises(MalformedPageError, match=f"{key}' message"):
        series_info(body)


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (
            {
                "Information": "Thank you for using Alpha Vantage! Our standard API rate limit is 25 requests per "
                "day. Please subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to "
                "instantly remove all daily rate limits."
            },
            MessageKind.DAILY_QUOTA,
        ),
        (
            {
                "Information": "Thank you for using Alpha Vantage! The outputsize=full parameter value is a premium "
                "feature for the TIME_SERIES_DAILY endpoint. You may subscribe to any of the premium plans at "
                "https://www.alphavantage.co/premium/ to instantly unlock all premium features"
            },
            MessageKind.PREMIUM,
        ),
        (
            {
                "Error Message": "the parameter apikey is invalid or missing. Please claim your free API key on "
                "(https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."
            },
            MessageKind.AUTH,
        ),
        (
            {
                "Information": "The **demo** API key is for demo purposes only. Please claim your free API key at "
                "(https://www.alphavantage.co/support/#api-key) to explore our full API offerings."
            },
            MessageKind.AUTH,
        ),
    ],
)
def test_other_known_messages(body: dict[str, str], kind: MessageKind) -> None:
    message = api_message(body)
    assert message is not None and message.kind == kind


def test_data_and_non_objects_are_not_messages() -> None:
    assert api_message(_daily()) is None
    assert api_message(["Note"]) is None
    assert api_message(None) is None


def test_pre_2024_crypto_keys_are_read_for_the_market() -> None:
    old_bar = {
        "1a. open (CNY)": "100.5",
        "1b. open (USD)": "15.0",
        "2a. high (CNY)": "110.0",
        "2b. high (USD)": "16.0",
        "3a. low (CNY)": "99.0",
        "3b. low (USD)": "14.5",
        "4a. close (CNY)": "105.25",
        "4b. close (USD)": "15.5",
        "5. volume": "12.5",
        "6. market cap (USD)": "193.75",
    }
    body = {
        "Meta Data": {
            "1. Information": "Daily Prices and Volumes for Digital Currency",
            "2. Digital Currency Code": "BTC",
            "3. Digital Currency Name": "Bitcoin",
            "4. Market Code": "CNY",
            "5. Market Name": "Chinese Yuan",
            "6. Last Refreshed": "2017-12-20 00:00:00",
            "7. Time Zone": "UTC",
        },
        "Time Series (Digital Currency Daily)": {"2017-12-20": old_bar},
    }
    [fact] = _parse(body)
    assert isinstance(fact, Fact)
    assert {k: fact.values[k] for k in ("market", "open", "high", "low", "close", "volume")} == {
        "market": "CNY",
        "open": 100.5,
        "high": 110.0,
        "low": 99.0,
        "close": 105.25,
        "volume": 12.5,
    }


def test_intraday_summer_time_is_utc_minus_four() -> None:
    body = {
        "Meta Data": {"2. Symbol": "ibm", "4. Interval": "60min", "6. Time Zone": "US/Eastern"},
        "Time Series (60min)": {"2026-07-01 10:00:00": _bar()},
    }
    [fact] = _parse(body)
    assert fact.values["ts"] == datetime(2026, 7, 1, 14, tzinfo=UTC)
    assert fact.values["symbol"] == "IBM"


# ------------------------------------------------------------------------------------------------
# bad bars
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "bar", "reason"),
    [
        ("2026-11-26", _bar(**{"1. open": "-"}), Reason.BAD_FIELD),
        ("2026-11-26", _bar(**{"4. close": ...}), Reason.BAD_FIELD),
        ("2026-11-26", _bar(**{"5. volume": "NaN"}), Reason.BAD_FIELD),
        ("2026-11-26", _bar(**{"2. high": "9.0"}), Reason.BAD_FIELD),
        ("26.11.2026", _bar(), Reason.BAD_TIMESTAMP),
        ("", _bar(), Reason.BAD_TIMESTAMP),
        ("2026-11-26 10:00:00", _bar(), Reason.BAD_TIMESTAMP),
        ("2426-11-26", _bar(), Reason.FUTURE_TIMESTAMP),
        ("2026-11-29", _bar(), Reason.FUTURE_TIMESTAMP),
        ("2026-11-26", "oops", Reason.NOT_AN_OBJECT),
    ],
)
def test_bad_bars_are_rejected_with_a_reason_and_the_rest_loads(key: str, bar: Any, reason: Reason) -> None:
    out = _parse(_daily(("2026-11-27", _bar()), (key, bar), ("2026-11-25", _bar())))
    assert isinstance(out[0], Fact) and isinstance(out[2], Fact)
    rej = out[1]
    assert isinstance(rej, Rejected) and rej.reason == reason, rej
    assert rej.item_key == rej.external_id == f"IBM:USD:1d:{key}"
    assert rej.item == {key: bar}


def test_a_bar_of_today_is_not_in_the_future() -> None:
    [fact] = _parse(_daily(("2026-11-28", _bar())))
    assert isinstance(fact, Fact) and fact.values["ts"] == datetime(2026, 11, 28, tzinfo=UTC)


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>Service temporarily unavailable</body></html>",
        b'{\n    "Meta Data": {\n        "1. Inform',
        b"[]",
        b"{}",
        b'{"Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute"}',
        b'{"Time Series (Daily)": {}}',
        b'{"Meta Data": {"2. Symbol": "IBM"}}',
        b'{"Meta Data": {"2. Symbol": "IBM"}, "Time Series (Daily)": []}',
        b'{"Meta Data": {"2. Symbol": "IBM"}, "Time Series (Daily)": {}, "Time Series (5min)": {}}',
        b'{"Meta Data": {"2. Symbol": "IBM"}, "Weekly Time Series": {}}',
        b'{"Meta Data": {"2. Symbol": "IBM"}, "Time Series (Weekly)": {}}',
        b'{"Meta Data": {}, "Time Series (Daily)": {}}',
        b'{"Meta Data": {"2. Symbol": "IBM", "6. Time Zone": "Mars/Olympus"}, "Time Series (5min)": {}}',
        b'{"Meta Data": {"2. Symbol": "IBM", "4. Interval": "1min", "6. Time Zone": "UTC"}, "Time Series (5min)": {}}',
        b'{"Meta Data": {"2. Digital Currency Code": "BTC"}, "Time Series (Digital Currency Daily)": {}}',
    ],
)
def test_malformed_pages_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedPageError):
        series_info(body)


def test_an_empty_series_is_a_valid_page() -> None:
    info = series_info(json.dumps(_daily()))
    assert (info.symbol, info.market, info.interval, info.bars) == ("IBM", "USD", "1d", {})


# ------------------------------------------------------------------------------------------------
# config and plan
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", [REPO / "include" / "sources.yaml", REPO / "tests" / "data" / "sources.yaml"]
)
def test_the_shipped_config_entries_parse(path: Path) -> None:
    config = load_source_config("alphavantage", path)
    assert isinstance(config, AlphaVantageConfig)
    assert config.conn_id == "alphavantage_default"
    assert "IBM" in config.stocks and config.intraday_interval == "60min"
    assert [(p.symbol, p.market) for p in config.crypto] == [("BTC", "EUR")]
    assert config.daily_outputsize == "compact"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ([], r"^alphavantage: expected a mapping"),
        ({"stocks": ["IBM"], "symbols": []}, r"^alphavantage: unknown keys \['symbols'\]"),
        ({"stocks": ["IBM", "bad symbol"]}, r"^alphavantage\.stocks\[1\]: 'bad symbol' is not a valid name"),
        ({"stocks": ["IBM", "ibm"]}, r"^alphavantage\.stocks\[1\]: 'IBM' is listed twice"),
        ({"stocks": []}, r"^alphavantage\.stocks: expected a non-empty list"),
        ({"stocks": ["IBM"], "intraday_interval": "2min"}, r"^alphavantage\.intraday_interval: '2min'"),
        ({"stocks": ["IBM"], "daily_outputsize": "huge"}, r"^alphavantage\.daily_outputsize: 'huge'"),
        ({"crypto": ["BTC"]}, r"^alphavantage\.crypto\[0\]: expected a mapping"),
        ({"crypto": [{"symbol": "BTC", "market": "EURO"}]}, r"^alphavantage\.crypto\[0\]\.market: 'EURO'"),
        ({"crypto": [{"symbol": "BTC"}]}, r"^alphavantage\.crypto\[0\]\.market: None"),
        (
            {"crypto": [{"symbol": "BTC", "market": "EUR", "x": 1}]},
            r"^alphavantage\.crypto\[0\]: unknown keys",
        ),
        (
            {"crypto": [{"symbol": "BTC", "market": "EUR"}, {"symbol": "btc", "market": "eur"}]},
            r"^alphavantage\.crypto\[1\]: 'BTC/EUR' is listed twice",
        ),
        ({"conn_id": ""}, r"^alphavantage\.conn_id"),
        ({"conn_id": "alphavantage_default"}, r"^alphavantage: needs at least one of stocks or crypto"),
    ],
)
def test_config_errors_name_the_bad_entry(entry: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(entry, "alphavantage")


def _window(start: str, end: str) -> Window:
    return Window(datetime.fromisoformat(start), datetime.fromisoformat(end))


def test_plan_one_stream_per_series_and_intraday_month() -> None:
    config = parse_config(
        {
            "stocks": ["ibm", "MSFT"],
            "intraday_interval": "15min",
            "crypto": [{"symbol": "btc", "market": "eur"}],
        },
        "alphavantage",
    )
    streams = plan_streams(config, _window("2026-11-27T22:30:00+00:00", "2026-11-28T22:30:00+00:00"))
    assert [s.key for s in streams] == [
        "daily:IBM",
        "intraday:IBM:15min:2026-11",
        "daily:MSFT",
        "intraday:MSFT:15min:2026-11",
        "crypto_daily:BTC:EUR",
    ]
    assert all(s.endpoint == "/query" for s in streams)
    assert streams[0].params == {"function": "TIME_SERIES_DAILY", "symbol": "IBM", "outputsize": "compact"}
    assert streams[1].params == {
        "function": "TIME_SERIES_INTRADAY",
        "symbol": "IBM",
        "interval": "15min",
        "month": "2026-11",
        "outputsize": "full",
    }
    assert streams[4].params == {"function": "DIGITAL_CURRENCY_DAILY", "symbol": "BTC", "market": "EUR"}
    assert "apikey" not in str([s.params for s in streams])


def test_intraday_months_are_counted_in_us_eastern_time() -> None:
    # 2026-12-01 02:00 UTC is still 30 November in New York
    assert months_touched(_window("2026-11-30T12:00:00+00:00", "2026-12-01T02:00:00+00:00")) == ["2026-11"]
    assert months_touched(_window("2026-11-30T12:00:00+00:00", "2026-12-01T06:00:00+00:00")) == [
        "2026-11",
        "2026-12",
    ]
    assert months_touched(_window("2026-10-15T00:00:00+00:00", "2027-01-02T00:00:00+00:00")) == [
        "2026-10",
        "2026-11",
        "2026-12",
        "2027-01",
    ]
    assert months_touched(_window("1999-11-15T00:00:00+00:00", "2000-02-01T06:00:00+00:00")) == [
        "2000-01",
        "2000-02",
    ], "nothing before 2000-01, which is as far back as intraday reaches"


def test_intraday_can_be_switched_off() -> None:
    config = parse_config({"stocks": ["IBM"], "intraday_interval": None}, "alphavantage")
    assert [
        s.key for s in plan_streams(config, _window("2026-11-27T00:00:00+00:00", "2026-11-28T00:00:00+00:00"))
    ] == ["daily:IBM"]


def test_reach_of_each_stream() -> None:
    config = parse_config(
        {"stocks": ["IBM"], "intraday_interval": "60min", "crypto": [{"symbol": "BTC", "market": "EUR"}]},
        "alphavantage",
    )
    streams = plan_streams(config, _window("2026-11-27T22:30:00+00:00", "2026-11-28T22:30:00+00:00"))
    assert {s.key: reach(s) for s in streams} == {
        "daily:IBM": COMPACT_REACH,
        "intraday:IBM:60min:2026-11": None,
        "crypto_daily:BTC:EUR": None,
    }
    full = parse_config({"stocks": ["IBM"], "daily_outputsize": "full"}, "alphavantage")
    assert (
        reach(plan_streams(full, _window("2026-11-27T00:00:00+00:00", "2026-11-28T00:00:00+00:00"))[0])
        is None
    )
