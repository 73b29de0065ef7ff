"""The OpenWeatherMap parser on real recorded payloads (from ../shared), constructed bad items, config, streams."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pulse.config import ConfigError, load_source_config
from pulse.sources.base import Fact, MalformedPageError, Reason, Rejected, StoredPage
from pulse.sources.openweathermap import (
    City,
    OpenWeatherMapConfig,
    forecast_start,
    page_info,
    parse_config,
    parse_page,
    plan_streams,
    stream_kind,
)
from pulse.windows import Window, utcnow

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("PULSE_SHARED_DIR") or REPO.parent / "shared")
PAYLOADS = SHARED / "payloads" / "owm"
NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
T0 = int(NOW.timestamp())
HOUR = 3600


def PSEUDO(value: str | None) -> str | None:
    raise AssertionError("weather payloads carry no handles to pseudonymise")


def _page(stream: str, body: Any) -> StoredPage:
    kind = stream.partition(":")[0]
    text = body if isinstance(body, str) else json.dumps(body)
    return StoredPage(id=1, source="openweathermap", stream=stream, endpoint=f"/data/2.5/{kind}", body=text)


def _parse(stream: str, body: Any, now: datetime = NOW) -> list[Fact | Rejected]:
    out = list(parse_page(_page(stream, body), PSEUDO, now))
    assert [i for i, _ in out] == list(range(len(out)))
    return [o for _, o in out]


def _metric(doc: dict[str, Any]) -> dict[str, Any]:
    """The recorded body as the API answers with ``units=metric``: the recordings were made in standard units
    (Kelvin); only the temperatures differ (wind is m/s in both)."""
    doc = copy.deepcopy(doc)
    for holder in [doc, *doc.get("list", [])]:
        main = holder.get("main", {})
        for key in ("temp", "temp_min", "temp_max", "feels_like"):
            if key in main:
                main[key] = round(main[key] - 273.15, 2)
    return doc


def _recorded(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


needs_payloads = pytest.mark.skipif(not PAYLOADS.is_dir(), reason=f"{PAYLOADS} is not present")


# ------------------------------------------------------------------------------------------------ real payloads


@needs_payloads
def test_real_current_weather() -> None:
    [fact] = _parse("current:Greater London", _metric(_recorded("current_weather_london.json")))
    assert isinstance(fact, Fact) and fact.table == "core.weather_observations"
    assert fact.values == {
        "source": "openweathermap",
        "city": "Greater London",  # the configured name, not the API's "London"
        "country": "GB",
        "lat": 51.50853,
        "lon": -0.12574,
        "kind": "current",
        "valid_at": datetime(2013, 9, 11, 10, 26, 17, tzinfo=UTC),
        "issued_at": datetime(2013, 9, 11, 10, 26, 17, tzinfo=UTC),
        "temp_c": 15.29,
        "feels_like_c": None,  # the 2013 recording predates feels_like
        "pressure_hpa": 1022.0,
        "humidity_pct": 75.0,
        "wind_speed_ms": 1.54,
        "wind_deg": 31.0,
        "clouds_pct": 92.0,
        "rain_mm": None,
        "condition": "Clouds",
        "description": "overcast clouds",
    }
    assert fact.key() == ("core.weather_observations", "Greater London", "current", fact.values["valid_at"])


@needs_payloads
def test_real_forecast_entry() -> None:
    [fact] = _parse("forecast:London", _metric(_recorded("forecast_3h_london.json")))
    assert isinstance(fact, Fact)
    valid_at = datetime(2014, 10, 14, 0, 0, tzinfo=UTC)
    assert {
        k: fact.values[k] for k in ("city", "country", "lat", "lon", "kind", "valid_at", "issued_at")
    } == {
        "city": "London",
        "country": "GB",
        "lat": 51.50853,
        "lon": -0.12574,
        "kind": "forecast",
        "valid_at": valid_at,
        "issued_at": valid_at - timedelta(hours=3),
    }
    assert fact.values["temp_c"] == pytest.approx(12.77)
    assert (fact.values["pressure_hpa"], fact.values["humidity_pct"], fact.values["rain_mm"]) == (
        1005.16,
        98,
        0.0,
    )
    assert (fact.values["wind_speed_ms"], fact.values["wind_deg"], fact.values["clouds_pct"]) == (
        3.31,
        303.502,
        92,
    )
    assert (fact.values["condition"], fact.values["description"]) == ("Clouds", "overcast clouds")


@needs_payloads
def test_kelvin_where_celsius_was_asked_for_is_rejected() -> None:
    """The untouched recordings are in Kelvin: read as the metric answers Pulse asks for, 288 °C is implausible."""
    [current] = _parse("current:London", _recorded("current_weather_london.json"))
    [entry] = _parse("forecast:London", _recorded("forecast_3h_london.json"))
    for rejected, key in ((current, "London:current:1378895177"), (entry, "London:forecast:1413244800")):
        assert isinstance(rejected, Rejected) and rejected.reason == Reason.BAD_FIELD
        assert "main.temp" in rejected.detail and "outside [-90, 60]" in rejected.detail
        assert rejected.item_key == key


@needs_payloads
@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("error_401_invalid_api_key.json", "current"),
        ("error_404_city_not_found.json", "current"),
        ("error_429_rate_limited.json", "forecast"),
        ("current_weather_london.json", "forecast"),  # an observation where a forecast was expected
    ],
)
def test_real_error_bodies_are_not_pages(name: str, kind: str) -> None:
    with pytest.raises(MalformedPageError):
        page_info((PAYLOADS / name).read_bytes(), kind)


# ------------------------------------------------------------------------------------------------ forecasts


def _entry(dt: Any = ..., **main: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "dt": T0 + 3 * HOUR if dt is ... else dt,
        "main": {"temp": 7.5, "feels_like": 5.1, "pressure": 1012, "humidity": 81, **main},
        "weather": [{"id": 500, "main": "Rain", "description": "light rain", "icon": "10d"}],
        "clouds": {"all": 90},
        "wind": {"speed": 4.2, "deg": 250, "gust": 7.7},
        "rain": {"3h": 0.84},
        "dt_txt": "2026-11-28 15:00:00",
    }
    return {k: v for k, v in entry.items() if v is not ...}


def _forecast(*entries: Any) -> dict[str, Any]:
    return {
        "cod": "200",
        "message": 0,
        "cnt": len(entries),
        "list": list(entries),
        "city": {"id": 1, "name": "London", "coord": {"lat": 51.5085, "lon": -0.1257}, "country": "GB"},
    }


def test_forecast_entries_lie_in_the_future_by_nature() -> None:
    entries = [_entry(T0 + 3 * HOUR * (i + 1)) for i in range(40)]
    out = _parse("forecast:London", _forecast(*entries))
    assert all(isinstance(o, Fact) for o in out), [o for o in out if isinstance(o, Rejected)]
    assert {o.values["issued_at"] for o in out if isinstance(o, Fact)} == {NOW}
    last = out[-1]
    assert isinstance(last, Fact) and last.values["valid_at"] == NOW + timedelta(hours=120)
    assert (last.values["rain_mm"], last.values["temp_c"], last.values["feels_like_c"]) == (0.84, 7.5, 5.1)


def test_issued_at_is_the_window_end_when_the_stored_page_has_one() -> None:
    @dataclass
    class WindowedPage(StoredPage):
        window_end: datetime | None = None

    end = datetime(2026, 11, 28, 12, 5, tzinfo=UTC)
    page = WindowedPage(
        1, "openweathermap", "forecast:London", "/data/2.5/forecast", json.dumps(_forecast(_entry()))
    )
    page.window_end = end
    [(_, fact)] = list(parse_page(page, PSEUDO, NOW))
    assert isinstance(fact, Fact) and fact.values["issued_at"] == end


def test_rows_do_not_depend_on_when_they_are_loaded() -> None:
    body = _forecast(_entry(), _entry(T0 + 6 * HOUR))
    early = _parse("forecast:London", body, NOW)
    late = _parse("forecast:London", body, NOW + timedelta(days=30))
    assert [o.content_hash() for o in early if isinstance(o, Fact)] == [
        o.content_hash() for o in late if isinstance(o, Fact)
    ]


@pytest.mark.parametrize(
    ("bad", "reason", "keyed"),
    [
        ({"dt": ...}, Reason.BAD_TIMESTAMP, False),
        ({"dt": "2026-11-28 18:00:00"}, Reason.BAD_TIMESTAMP, False),
        ({"dt": None}, Reason.BAD_TIMESTAMP, False),
        ({"dt": T0 + 10 * 24 * HOUR}, Reason.FUTURE_TIMESTAMP, True),  # beyond the 5-day range
        ({"dt": 0}, Reason.BAD_TIMESTAMP, True),  # before the forecast's first entry
        ({"temp": "N/A"}, Reason.BAD_FIELD, True),
        ({"temp": ...}, Reason.BAD_FIELD, True),
        ({"temp": 61.0}, Reason.BAD_FIELD, True),
        ({"temp": -90.5}, Reason.BAD_FIELD, True),
        ({"humidity": 140}, Reason.BAD_FIELD, True),
        ({"humidity": -1}, Reason.BAD_FIELD, True),
        ({"pressure": "high"}, Reason.BAD_FIELD, True),
        ({"description": "light\x00rain"}, Reason.TEXT_NUL_BYTE, True),
        ({"description": "x" * 100_001}, Reason.TEXT_TOO_LARGE, True),
        ({"main": "warm"}, Reason.BAD_FIELD, True),
        ({"wind": [4.2]}, Reason.BAD_FIELD, True),
    ],
)
def test_bad_entries_are_rejected_and_the_rest_loads(
    bad: dict[str, Any], reason: Reason, keyed: bool
) -> None:
    entry = _entry(T0 + 6 * HOUR)
    for key, value in bad.items():
        if key == "dt":
            entry.pop("dt") if value is ... else entry.update(dt=value)
        elif key == "description":
            entry["weather"][0]["description"] = value
        elif key in ("main", "wind"):
            entry[key] = value
        elif value is ...:
            entry["main"].pop(key)
        else:
            entry["main"][key] = value
    good, rejected = _parse("forecast:London", _forecast(_entry(), entry))
    assert isinstance(good, Fact) and good.values["valid_at"] == NOW + timedelta(hours=3)
    assert isinstance(rejected, Rejected) and rejected.reason == reason, rejected
    assert rejected.item_index == 1
    if keyed:
        assert rejected.item_key == f"London:forecast:{int(entry['dt'])}" == rejected.external_id
    else:
        assert rejected.item_key.startswith("sha256:") and rejected.external_id is None


def test_entries_that_are_not_objects_are_rejected() -> None:
    out = _parse("forecast:London", _forecast("oops", _entry()))
    assert isinstance(out[0], Rejected) and out[0].reason == Reason.NOT_AN_OBJECT
    assert isinstance(out[1], Fact)


def test_a_forecast_issued_in_the_future_is_rejected() -> None:
    shifted = _forecast(_entry(T0 + 2 * 24 * HOUR))
    [rejected] = _parse("forecast:London", shifted)
    assert isinstance(rejected, Rejected) and rejected.reason == Reason.FUTURE_TIMESTAMP


def test_damaged_first_entries_neither_move_the_issue_time_nor_share_a_key() -> None:
    a, b = _entry(), _entry(T0 + 6 * HOUR)
    a.pop("dt")
    b.pop("dt")
    b["main"]["temp"] = 8.0
    out = _parse("forecast:London", _forecast(a, b, _entry(T0 + 9 * HOUR)))
    keys = [o.item_key for o in out if isinstance(o, Rejected)]
    assert len(keys) == 2 and len(set(keys)) == 2
    assert isinstance(out[2], Fact) and out[2].values["issued_at"] == NOW


def test_forecast_start_is_told_by_the_majority_of_entries() -> None:
    entries = [_entry(T0 + 3 * HOUR * (i + 1)) for i in range(5)]
    entries[0]["dt"] = T0 + 10 * 24 * HOUR  # shifted far ahead
    entries[1]["dt"] = 0  # shifted far back
    assert forecast_start(entries) == NOW + timedelta(hours=3)
    assert forecast_start([{"dt": "x"}, "oops"]) is None


# ------------------------------------------------------------------------------------------------ current


def _current(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "coord": {"lon": 13.4105, "lat": 52.5244},
        "weather": [{"id": 804, "main": "Clouds", "description": "overcast clouds", "icon": "04d"}],
        "main": {"temp": 3.2, "feels_like": 0.4, "pressure": 1019, "humidity": 88},
        "wind": {"speed": 3.6, "deg": 240},
        "rain": {"1h": 0.2, "3h": 0.9},
        "clouds": {"all": 100},
        "dt": T0 - 600,
        "sys": {"country": "DE", "sunrise": T0 - 4 * HOUR, "sunset": T0 + 4 * HOUR},
        "name": "Mitte",
        "cod": 200,
    }
    doc.update(over)
    return doc


def test_current_prefers_the_last_hour_of_rain() -> None:
    [fact] = _parse("current:Berlin", _current())
    assert isinstance(fact, Fact)
    assert (
        fact.values["rain_mm"] == 0.2 and fact.values["city"] == "Berlin" and fact.values["country"] == "DE"
    )
    [no_rain] = _parse("current:Berlin", _current(rain=None))
    assert isinstance(no_rain, Fact) and no_rain.values["rain_mm"] is None


def test_current_from_the_future_is_rejected() -> None:
    [rejected] = _parse("current:Berlin", _current(dt=T0 + 10 * 24 * HOUR))
    assert isinstance(rejected, Rejected) and rejected.reason == Reason.FUTURE_TIMESTAMP
    assert rejected.item_key == f"Berlin:current:{T0 + 10 * 24 * HOUR}"


def test_current_without_a_time_is_rejected() -> None:
    doc = _current()
    doc.pop("dt")
    [rejected] = _parse("current:Berlin", doc)
    assert isinstance(rejected, Rejected) and rejected.reason == Reason.BAD_TIMESTAMP
    assert rejected.item_key.startswith("sha256:")


@pytest.mark.parametrize(
    "body",
    [
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
        '{"cod": 200, "main": {"te',
        "[]",
        '{"cod": "404", "message": "city not found"}',
        '{"main": {"temp": 1}}',
    ],
)
def test_malformed_current_pages_are_refused(body: str) -> None:
    with pytest.raises(MalformedPageError):
        list(parse_page(_page("current:Berlin", body), PSEUDO, NOW))


@pytest.mark.parametrize(
    "body", ['{"cod": "200", "list": {}}', '{"cod": "200"}', '{"cod": "200", "list": [], "city": "London"}']
)
def test_malformed_forecast_pages_are_refused(body: str) -> None:
    with pytest.raises(MalformedPageError):
        page_info(body, "forecast")


def test_an_empty_forecast_is_a_page_with_no_items() -> None:
    assert page_info('{"cod": "200", "cnt": 0, "list": []}', "forecast").items == []


def test_stream_keys() -> None:
    assert stream_kind("forecast:Rio de Janeiro") == ("forecast", "Rio de Janeiro")
    for key in ("daily:London", "current:", "London"):
        with pytest.raises(MalformedPageError):
            stream_kind(key)


# ------------------------------------------------------------------------------------------------ config


def test_the_shipped_configs_parse() -> None:
    for path in (REPO / "include" / "sources.yaml", REPO / "tests" / "data" / "sources.yaml"):
        config = load_source_config("openweathermap", path)
        assert isinstance(config, OpenWeatherMapConfig)
        assert config.conn_id == "openweathermap_default" and config.forecast is True
        assert config.cities[0] == City("London", "GB", 51.5085, -0.1257)


CITY = {"name": "London", "country": "GB", "lat": 51.5085, "lon": -0.1257}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ([], r"^openweathermap: expected a mapping"),
        ({"cities": [CITY], "units": "metric"}, r"^openweathermap: unknown keys \['units'\]"),
        ({}, r"^openweathermap\.cities: expected a non-empty list"),
        ({"cities": [CITY, {**CITY, "name": "Paris", "lat": 95}]}, r"^openweathermap\.cities\[1\]\.lat: 95"),
        (
            {"cities": [{**CITY, "lon": "west"}]},
            r"^openweathermap\.cities\[0\]\.lon: 'west' must be a number",
        ),
        ({"cities": [{**CITY, "lat": True}]}, r"^openweathermap\.cities\[0\]\.lat"),
        ({"cities": [{**CITY, "country": "gb"}]}, r"^openweathermap\.cities\[0\]\.country: 'gb'"),
        ({"cities": [{**CITY, "name": "a:b"}]}, r"^openweathermap\.cities\[0\]\.name: 'a:b'"),
        ({"cities": [{**CITY, "name": " "}]}, r"^openweathermap\.cities\[0\]\.name"),
        (
            {"cities": [{k: v for k, v in CITY.items() if k != "lat"}]},
            r"^openweathermap\.cities\[0\]\.lat: None",
        ),
        ({"cities": [{**CITY, "zip": "SW1"}]}, r"^openweathermap\.cities\[0\]: unknown keys \['zip'\]"),
        (
            {"cities": [CITY, {**CITY, "name": "london"}]},
            r"^openweathermap\.cities\[1\]\.name: 'london' repeats",
        ),
        ({"cities": [CITY], "forecast": "yes"}, r"^openweathermap\.forecast: 'yes' must be true or false"),
        ({"cities": [CITY], "conn_id": ""}, r"^openweathermap\.conn_id"),
    ],
)
def test_config_errors_name_the_bad_entry(entry: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(entry, "openweathermap")


# ------------------------------------------------------------------------------------------------ streams


CONFIG = OpenWeatherMapConfig(
    "openweathermap_default", (City("London", "GB", 51.5, -0.12), City("Berlin", "DE", 52.5, 13.4)), True
)


def _window(end: datetime) -> Window:
    return Window(end - timedelta(hours=1), end)


def test_two_streams_per_city() -> None:
    streams = plan_streams(CONFIG, _window(NOW))
    assert [s.key for s in streams] == [
        "current:London",
        "forecast:London",
        "current:Berlin",
        "forecast:Berlin",
    ]
    assert streams[1].endpoint == "/data/2.5/forecast"
    assert streams[1].params == {"lat": 51.5, "lon": -0.12, "units": "metric"}
    no_forecast = OpenWeatherMapConfig(CONFIG.conn_id, CONFIG.cities, False)
    assert [s.key for s in plan_streams(no_forecast, _window(NOW))] == ["current:London", "current:Berlin"]
    assert plan_streams(CONFIG, _window(NOW - timedelta(days=30))) == streams, "the window changes no request"


class _Coverage:
    """Stands in for the warehouse connection: records the coverage rows the operator writes."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    def transaction(self) -> Any:
        import contextlib

        return contextlib.nullcontext()

    def execute(self, sql: str, params: tuple[Any, ...]) -> None:
        self.rows.append(params)


@pytest.mark.parametrize(
    ("ended_ago", "outcome"),
    [
        (timedelta(hours=-1), "whole"),  # a window reaching past now
        (timedelta(0), "whole"),
        (timedelta(minutes=55), "whole"),  # a late or retried run
        (timedelta(hours=1, minutes=55), "clipped"),  # its first 55 minutes are beyond reach
        (timedelta(hours=2, minutes=5), "gap"),
        (timedelta(days=30), "gap"),
    ],
)
def test_windows_beyond_reach_become_coverage_gaps(ended_ago: timedelta, outcome: str) -> None:
    """Both endpoints serve only the present: through the extract operator's reach check, a window that ended
    more than 2 hours ago is recorded as a ``beyond_reach`` gap instead of fetched."""
    import pulse.sources.openweathermap as parser
    from pulse.budget import Budget
    from pulse.ingest.extract import ExtractRun, reachable
    from pulse.warehouse.raw import RunContext

    assert all(parser.reach(s) == timedelta(hours=2) for s in plan_streams(CONFIG, _window(NOW)))
    window = _window(utcnow() - ended_ago)  # the operator's clock (PULSE_NOW in the suite)
    conn = _Coverage()
    run = ExtractRun(
        conn, "openweathermap", RunContext("d", "r", 1, window), Budget(conn, "openweathermap", ())
    )
    stream = plan_streams(CONFIG, window)[0]
    got = reachable(run, parser, stream)
    if outcome == "whole":
        assert got == window and conn.rows == []
        return
    [row] = conn.rows
    assert row[:3] == ("openweathermap", "current:London", window.start)
    assert row[4:] == ("gap", "beyond_reach", "r")
    if outcome == "gap":
        assert got is None and row[3] == window.end
    else:
        assert got is not None and got.end == window.end and row[3] == got.start > window.start
