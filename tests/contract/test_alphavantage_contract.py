"""Contract: the simulator answers like the real recorded Alpha Vantage responses, and those recorded responses
go through the real hook and parser.

The recorded responses are third-party data kept outside the repo, in ``<shared>/payloads/alphavantage``
(``PULSE_SHARED_DIR`` or ``<repo>/../shared``); they are read from there at test time, never copied.

1. Shape: for each recorded body the simulator's answer to the same call has the same top-level keys, the same
   ``Meta Data`` keys, the same series name, bars with exactly the recorded keys, the same number formats
   (decimals per field, date or date-time keys) and the same message bodies (``Note``, ``Information``,
   ``Error Message``), all values strings as in the real API.
2. Playback: a tiny local HTTP server answers ``/query`` with the recorded bytes; ``AlphaVantageHook`` fetches
   them (the library builds the query) and ``parse_page`` turns them into bars, or the hook recognises the
   throttle, quota and error messages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from dev.simulator import SimulatorServer
from pulse.hooks.alphavantage import AlphaVantageHook, AlphaVantageRefusedError
from pulse.privacy import make_pseudonymizer
from pulse.sources.alphavantage import parse_page
from pulse.sources.base import Fact, PageFetchError, StoredPage, Stream
from tests.contract.conftest import StartReplay
from tests.contract.replay import ReplayServer, load_json, recordings

RECORDED = recordings("alphavantage", "Alpha Vantage")

KEY = "sim-alphavantage-key"
PSEUDO = make_pseudonymizer("alphavantage", key=b"k")


def load(name: str) -> Any:
    return load_json(RECORDED, name)


def decimals(value: str) -> int:
    """Digits after the decimal point of a numeric string (0 for an integer string)."""
    assert re.fullmatch(r"-?\d+(\.\d+)?", value), f"{value!r} is not a plain decimal string"
    return len(value.partition(".")[2])


def key_format(key: str) -> str:
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", key):
        return "date"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", key):
        return "date-time"
    return f"other: {key!r}"


def series_problems(real: dict[str, Any], sim: dict[str, Any], same_texts: set[str]) -> list[str]:
    """What differs between a recorded series body and a simulated one (empty: conformant)."""
    problems: list[str] = []
    if set(sim) != set(real):
        problems.append(f"top-level keys {sorted(sim)} != recorded {sorted(real)}")
        return problems
    real_meta, sim_meta = real["Meta Data"], sim["Meta Data"]
    if list(sim_meta) != list(real_meta):
        problems.append(f"Meta Data keys {list(sim_meta)} != recorded {list(real_meta)}")
    for key, value in sim_meta.items():
        if not isinstance(value, str):
            problems.append(f"Meta Data {key!r} is {type(value).__name__}, recorded a string")
        elif key in same_texts and value != real_meta.get(key):
            problems.append(f"Meta Data {key!r} = {value!r}, recorded {real_meta.get(key)!r}")
    series = next(k for k in real if k != "Meta Data")
    real_bars, sim_bars = real[series], sim[series]
    if not sim_bars:
        problems.append(f"{series} is empty: nothing to compare")
    real_fields = {k for bar in real_bars.values() for k in bar}
    real_formats = {key_format(k) for k in real_bars}
    real_decimals = {f: {decimals(bar[f]) for bar in real_bars.values()} for f in real_fields}
    for ts, bar in sim_bars.items():
        if key_format(ts) not in real_formats:
            problems.append(f"bar key {ts!r} is {key_format(ts)}, recorded {sorted(real_formats)}")
        if set(bar) != real_fields:
            problems.append(f"bar {ts} keys {sorted(bar)} != recorded {sorted(real_fields)}")
            continue
        for field, value in bar.items():
            if not isinstance(value, str):
                problems.append(f"bar {ts} {field} is {type(value).__name__}, recorded a string")
            elif decimals(value) not in real_decimals[field]:
                problems.append(
                    f"bar {ts} {field}={value!r}: recorded {sorted(real_decimals[field])} decimals"
                )
    return sorted(set(problems))


# ------------------------------------------------------------------------------------------------
# the simulator against the recordings
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def query(server: SimulatorServer) -> Iterator[Any]:
    server.reset()
    with requests.Session() as session:
        session.trust_env = False

        def get(**params: Any) -> requests.Response:
            resp = session.get(f"{server.url}/query", params={"apikey": KEY, "datatype": "json", **params})
            assert resp.status_code == 200, resp.text[:200]
            return resp

        yield get
    server.reset()


def test_checker_reports_differences() -> None:
    real = {
        "Meta Data": {"1. Information": "x", "2. Symbol": "A"},
        "Time Series (Daily)": {"2020-01-02": {"1. open": "1.50"}},
    }
    same = {
        "Meta Data": {"1. Information": "x", "2. Symbol": "B"},
        "Time Series (Daily)": {"2021-01-02": {"1. open": "2.25"}},
    }
    assert series_problems(real, same, {"1. Information"}) == []
    bad = {
        "Meta Data": {"1. Information": "y", "2. Symbol": 3},
        "Time Series (Daily)": {"2021-01-02 10:00:00": {"1. open": "2.5"}, "2021-01-03": {"open": "1.00"}},
    }
    assert series_problems(real, bad, {"1. Information"}) == [
        "Meta Data '1. Information' = 'y', recorded 'x'",
        "Meta Data '2. Symbol' is int, recorded a string",
        "bar 2021-01-02 10:00:00 1. open='2.5': recorded [2] decimals",
        "bar 2021-01-03 keys ['open'] != recorded ['1. open']",
        "bar key '2021-01-02 10:00:00' is date-time, recorded ['date']",
    ]
    assert series_problems(real, {"Meta Data": {}}, set()) != []


@pytest.mark.parametrize(
    ("recording", "params", "same_texts"),
    [
        (
            "time_series_daily_ibm.json",
            {"function": "TIME_SERIES_DAILY", "symbol": "IBM", "outputsize": "compact"},
            {"1. Information", "2. Symbol", "5. Time Zone"},
        ),
        (
            "time_series_intraday_1min_msft.json",
            {
                "function": "TIME_SERIES_INTRADAY",
                "symbol": "MSFT",
                "interval": "1min",
                "outputsize": "compact",
            },
            {"2. Symbol", "4. Interval", "5. Output Size", "6. Time Zone"},
        ),
        (
            "digital_currency_daily_btc_eur.json",
            {"function": "DIGITAL_CURRENCY_DAILY", "symbol": "BTC", "market": "EUR"},
            {
                "1. Information",
                "2. Digital Currency Code",
                "3. Digital Currency Name",
                "4. Market Code",
                "5. Market Name",
                "7. Time Zone",
            },
        ),
    ],
)
def test_series_match_recording(
    query: Any, recording: str, params: dict[str, str], same_texts: set[str]
) -> None:
    body = query(**params).json()
    problems = series_problems(load(recording), body, same_texts)
    assert not problems, f"simulator {params['function']} differs from {recording}:\n" + "\n".join(problems)


def test_global_quote_matches_recording(query: Any) -> None:
    real = load("global_quote_msft.json")["Global Quote"]
    sim = query(function="GLOBAL_QUOTE", symbol="MSFT").json()["Global Quote"]
    assert list(sim) == list(real)
    assert all(isinstance(v, str) for v in sim.values())
    for key in ("02. open", "05. price", "08. previous close", "09. change"):
        assert decimals(sim[key]) == decimals(real[key])
    assert re.fullmatch(r"-?\d+\.\d{4}%", sim["10. change percent"])


def test_note_throttle_body_is_the_recorded_one(query: Any, server: SimulatorServer) -> None:
    server.configure({"alphavantage": {"note_throttle": {"count": 1}}})
    assert query(function="TIME_SERIES_DAILY", symbol="IBM").json() == load("rate_limit_note_2019.json")
    assert "Meta Data" in query(function="TIME_SERIES_DAILY", symbol="IBM").json()


def test_over_quota_body_is_the_recorded_2025_information(query: Any) -> None:
    for _ in range(25):
        assert "Global Quote" in query(function="GLOBAL_QUOTE", symbol="IBM").json()
    assert query(function="TIME_SERIES_DAILY", symbol="IBM").json() == load(
        "rate_limit_information_2025.json"
    )


def test_invalid_call_body_has_the_recorded_shape(query: Any) -> None:
    recorded = load("error_message_invalid_call.json")
    expected = {"Error Message": recorded["Error Message"].replace("FX_DAILY", "TIME_SERIES_DAILY")}
    assert query(function="TIME_SERIES_DAILY", symbol="INVALID").json() == expected
    assert query(function="FX_DAILY", symbol="IBM").json() == recorded


# ------------------------------------------------------------------------------------------------
# the recorded responses through the hook and the parser
# ------------------------------------------------------------------------------------------------


class Playback:
    """The replay server answering every request with the next queued recorded body (HTTP 200)."""

    def __init__(self, server: ReplayServer) -> None:
        self.server = server

    @property
    def requests(self) -> list[dict[str, str]]:
        return [request.query | {"_path": request.path} for request in self.server.requests]

    def play(self, *names: str) -> list[bytes]:
        bodies = [(RECORDED / name).read_bytes() for name in names]
        self.server.play(*[(200, {"Content-Type": "application/json"}, body) for body in bodies])
        return bodies


@pytest.fixture
def playback(replay: StartReplay) -> Playback:
    return Playback(
        replay(
            "alphavantage_recorded",
            password="recorded-key",
            extra={"max_attempts": 4, "jitter": 0},
            default=(200, {"Content-Type": "application/json"}, b'{"error": "nothing queued"}'),
        )
    )


@pytest.fixture
def hook(playback: Playback) -> tuple[AlphaVantageHook, list[float]]:
    waits: list[float] = []
    return AlphaVantageHook("alphavantage_recorded", sleep=waits.append), waits


def _facts(page: Any, stream: Stream) -> list[Any]:
    stored = StoredPage(
        id=1, source="alphavantage", stream=stream.key, endpoint=stream.endpoint, body=page.text
    )
    return [out for _, out in parse_page(stored, PSEUDO, datetime(2026, 11, 28, 12, tzinfo=UTC))]


def test_recorded_daily_series_through_hook_and_parser(playback: Playback, hook: Any) -> None:
    av, _ = hook
    [body] = playback.play("time_series_daily_ibm.json")
    stream = Stream(
        "daily:IBM", "/query", {"function": "TIME_SERIES_DAILY", "symbol": "IBM", "outputsize": "compact"}
    )
    [page] = list(av.iter_pages(stream, None))
    assert page.body == body and page.item_count == 2 and page.next_cursor is None
    assert playback.requests == [
        {
            "_path": "/query",
            "function": "TIME_SERIES_DAILY",
            "symbol": "IBM",
            "outputsize": "compact",
            "apikey": "recorded-key",
            "datatype": "json",
        }
    ]
    assert "apikey" not in page.params
    facts = _facts(page, stream)
    assert [(f.values["ts"], f.values["close"], f.values["volume"]) for f in facts] == [
        (datetime(2020, 5, 8, tzinfo=UTC), 121.79, 2538547.0),
        (datetime(2020, 5, 7, tzinfo=UTC), 121.23, 4412047.0),
    ]


def test_recorded_intraday_series_through_hook_and_parser(playback: Playback, hook: Any) -> None:
    av, _ = hook
    [body] = playback.play("time_series_intraday_1min_msft.json")
    params = {
        "function": "TIME_SERIES_INTRADAY",
        "symbol": "MSFT",
        "interval": "1min",
        "month": "2017-12",
        "outputsize": "full",
    }
    stream = Stream("intraday:MSFT:1min:2017-12", "/query", params)
    page = av.fetch_page(stream, 0, params)
    sent = playback.requests[0]
    assert {
        k: sent[k]
        for k in ("function", "symbol", "interval", "month", "outputsize", "extended_hours", "adjusted")
    } == {
        **params,
        "extended_hours": "true",
        "adjusted": "true",
    }
    facts = _facts(page, stream)
    assert page.item_count == len(facts) == len(json.loads(body)["Time Series (1min)"])
    assert all(isinstance(f, Fact) for f in facts)
    assert facts[0].values["ts"] == datetime(2017, 12, 18, 19, 56, tzinfo=UTC)
    assert facts[-1].values["ts"] < facts[0].values["ts"]


def test_recorded_crypto_series_through_hook_and_parser(playback: Playback, hook: Any) -> None:
    av, _ = hook
    playback.play("digital_currency_daily_btc_eur.json")
    params = {"function": "DIGITAL_CURRENCY_DAILY", "symbol": "BTC", "market": "EUR"}
    stream = Stream("crypto_daily:BTC:EUR", "/query", params)
    facts = _facts(av.fetch_page(stream, 0, params), stream)
    assert [
        (f.values["market"], f.values["asset_class"], f.values["ts"].date().isoformat(), f.values["open"])
        for f in facts
    ] == [
        ("EUR", "crypto", "2025-08-24", 97883.18),
        ("EUR", "crypto", "2025-08-23", 99318.46),
        ("EUR", "crypto", "2025-08-22", 96856.83),
    ]


def test_recorded_throttle_messages_are_waited_out_never_stored(playback: Playback, hook: Any) -> None:
    av, waits = hook
    playback.play("rate_limit_note_2019.json", "information_2017.json", "time_series_daily_ibm.json")
    stream = Stream("daily:IBM", "/query", {"function": "TIME_SERIES_DAILY", "symbol": "IBM"})
    page = av.fetch_page(stream, 0, dict(stream.params))
    assert page.item_count == 2 and b"Meta Data" in page.body
    assert waits == [20.0, 40.0] and len(playback.requests) == 3


@pytest.mark.parametrize(
    ("recording", "error", "message"),
    [
        ("rate_limit_information_2025.json", AlphaVantageRefusedError, r"daily request quota .* is spent"),
        ("error_message_invalid_call.json", AlphaVantageRefusedError, r"refused TIME_SERIES_DAILY NOSUCH \("),
    ],
)
def test_recorded_refusals_stop_at_once(
    playback: Playback, hook: Any, recording: str, error: type[PageFetchError], message: str
) -> None:
    av, waits = hook
    playback.play(recording, "time_series_daily_ibm.json")
    stream = Stream("daily:NOSUCH", "/query", {"function": "TIME_SERIES_DAILY", "symbol": "NOSUCH"})
    with pytest.raises(error, match=message):
        av.fetch_page(stream, 0, dict(stream.params))
    assert waits == [] and len(playback.requests) == 1
