"""OpenWeatherMap: which cities to ask for, how far back the API reaches, and how a page becomes facts.

Pure functions (no I/O). Two endpoints per configured city, both asked with ``units=metric``:

* ``GET /data/2.5/weather?lat=&lon=`` (current weather): one observation, ``kind = "current"``;
* ``GET /data/2.5/forecast?lat=&lon=`` (5 day / 3 hour forecast): up to 40 entries, ``kind = "forecast"``.

Both rows go to ``core.weather_observations`` keyed by ``(city, kind, valid_at)``; the city is the configured
name, carried by the stream key (``current:London``, ``forecast:London``), never the API's ``name`` field.
Neither endpoint takes a time: they describe *now* (and the days after it), so a window that ended more than
:data:`BACKFILL_REACH` ago is beyond reach (:func:`reach`): the extract operator records it as a gap instead of
fetching.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pulse.config import ConfigError, mapping
from pulse.sources.base import (
    FUTURE_TOLERANCE,
    Fact,
    ItemError,
    MalformedPageError,
    ParseOutput,
    Reason,
    StoredPage,
    Stream,
    check_epoch,
    check_number,
    check_text,
    rejected,
)
from pulse.warehouse.pgtypes import epoch as epoch_time
from pulse.warehouse.pgtypes import sane_epoch

SOURCE = "openweathermap"
TABLE = "core.weather_observations"
API_ROOT = "/data/2.5"
ENDPOINTS = {"current": f"{API_ROOT}/weather", "forecast": f"{API_ROOT}/forecast"}
UNITS = "metric"

#: How long after a window's end the present-only endpoints still count as covering it (a late or retried run).
BACKFILL_REACH = timedelta(hours=2)
#: The forecast's step; ``issued_at`` of a forecast page is its start (first entry) minus one step.
FORECAST_STEP = timedelta(hours=3)
#: How far the 5 day / 3 hour forecast reaches past its first entry (40 entries = 117 h; a little slack).
FORECAST_RANGE = timedelta(days=5)
#: Plausible values in metric units; outside them the item is rejected with ``bad_field``.
TEMP_RANGE_C = (-90.0, 60.0)
HUMIDITY_RANGE_PCT = (0.0, 100.0)

#: Weather payloads carry no personal data.
PII_KEYS: frozenset[str] = frozenset()

_CITY_NAME = re.compile(r"^[^\x00-\x1f:]{1,100}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


# ------------------------------------------------------------------------------------------------ config


@dataclass(frozen=True)
class City:
    """A configured place: ``name`` keys its rows, ``lat``/``lon`` are what the API is asked for."""

    name: str
    country: str
    lat: float
    lon: float


@dataclass(frozen=True)
class OpenWeatherMapConfig:
    conn_id: str
    cities: tuple[City, ...]
    forecast: bool


def _coordinate(entry: dict[str, Any], key: str, where: str, limit: float) -> float:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where}.{key}: {value!r} must be a number")
    if not -limit <= value <= limit:
        raise ConfigError(f"{where}.{key}: {value!r} must be between -{limit:g} and {limit:g}")
    return float(value)


def _city(entry: Any, where: str) -> City:
    entry = mapping(entry, where, {"name", "country", "lat", "lon"})
    name, country = entry.get("name"), entry.get("country")
    if not isinstance(name, str) or not _CITY_NAME.match(name) or not name.strip():
        raise ConfigError(f"{where}.name: {name!r} must be a city name (1-100 characters, no ':')")
    if not isinstance(country, str) or not _COUNTRY.match(country):
        raise ConfigError(f"{where}.country: {country!r} must be an ISO 3166 two-letter code like GB")
    return City(
        name=name.strip(),
        country=country,
        lat=_coordinate(entry, "lat", where, 90),
        lon=_coordinate(entry, "lon", where, 180),
    )


def parse_config(entry: Any, where: str) -> OpenWeatherMapConfig:
    """Validate the ``openweathermap`` entry of ``include/sources.yaml``.

    ``{conn_id, cities: [{name, country, lat, lon}], forecast: bool}``; city names must be unique (they key
    the rows of ``core.weather_observations``).
    """
    entry = mapping(entry, where, {"conn_id", "cities", "forecast"})
    conn_id = entry.get("conn_id", "openweathermap_default")
    if not isinstance(conn_id, str) or not conn_id:
        raise ConfigError(f"{where}.conn_id: {conn_id!r} must be a connection id")
    raw_cities = entry.get("cities")
    if not isinstance(raw_cities, list) or not raw_cities:
        raise ConfigError(f"{where}.cities: expected a non-empty list")
    cities: list[City] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_cities):
        city = _city(raw, f"{where}.cities[{i}]")
        if city.name.casefold() in seen:
            raise ConfigError(
                f"{where}.cities[{i}].name: {city.name!r} repeats cities[{seen[city.name.casefold()]}] "
                "(city names key the weather rows)"
            )
        seen[city.name.casefold()] = i
        cities.append(city)
    forecast = entry.get("forecast", True)
    if not isinstance(forecast, bool):
        raise ConfigError(f"{where}.forecast: {forecast!r} must be true or false")
    return OpenWeatherMapConfig(conn_id=conn_id, cities=tuple(cities), forecast=forecast)


# ------------------------------------------------------------------------------------------------ streams


def reach(stream: Stream) -> timedelta:
    """How far back the API can serve a window of ``stream``: :data:`BACKFILL_REACH` for both endpoints.

    ``/weather`` and ``/forecast`` take no time parameter; they answer for the present only. The extract
    operator records an older window (or its older part) as a ``beyond_reach`` gap in ``ops.coverage``
    instead of fetching today's weather for it.
    """
    return BACKFILL_REACH


def plan_streams(config: OpenWeatherMapConfig, window: Any) -> list[Stream]:
    """Per city: the current weather and (when ``forecast``) the 5 day / 3 hour forecast.

    The window does not change the requests (there is nothing to page and no time filter); whether it is
    within reach is the operator's check, through :func:`reach`.
    """
    kinds = ("current", "forecast") if config.forecast else ("current",)
    return [
        Stream(
            key=f"{kind}:{city.name}",
            endpoint=ENDPOINTS[kind],
            params={"lat": city.lat, "lon": city.lon, "units": UNITS},
        )
        for city in config.cities
        for kind in kinds
    ]


def stream_kind(stream_key: str) -> tuple[str, str]:
    """``"forecast:London"`` -> ``("forecast", "London")``.

    :raises MalformedPageError: the key is not one of this source's stream keys.
    """
    kind, sep, city = stream_key.partition(":")
    if not sep or kind not in ENDPOINTS or not city:
        raise MalformedPageError(
            f"stream {stream_key!r} is not an OpenWeatherMap stream (current:/forecast:)"
        )
    return kind, city


# ------------------------------------------------------------------------------------------------ pages


@dataclass(frozen=True)
class PageInfo:
    """A checked response: the whole document and its items (the observation, or the forecast entries)."""

    doc: dict[str, Any]
    items: list[Any]


def page_info(body: bytes | str, kind: str) -> PageInfo:
    """Check that ``body`` is an OpenWeatherMap ``kind`` answer and return its items.

    :raises MalformedPageError: bad JSON, an HTML page, an error envelope (``cod`` other than 200) or a
        forecast without its ``list``.
    """
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        snippet = (body[:80] if isinstance(body, str) else body[:80].decode("utf-8", "replace")).strip()
        raise MalformedPageError(f"body is not JSON ({exc}); starts with {snippet!r}") from None
    if not isinstance(doc, dict):
        raise MalformedPageError(f"body is JSON {type(doc).__name__}, not an OpenWeatherMap object")
    if str(doc.get("cod")) != "200":
        raise MalformedPageError(
            f"body is not a {kind} answer: cod={doc.get('cod')!r}, message={str(doc.get('message'))[:120]!r}"
        )
    if kind == "current":
        return PageInfo(doc, [doc])
    entries = doc.get("list")
    if not isinstance(entries, list):
        raise MalformedPageError("forecast has no list of entries")
    if "city" in doc and not isinstance(doc["city"], dict):
        raise MalformedPageError(f"forecast city is {type(doc['city']).__name__}, expected an object")
    return PageInfo(doc, entries)


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _location(doc: dict[str, Any], kind: str) -> tuple[str | None, float | None, float | None]:
    """``(country, lat, lon)`` as the API reports them (``sys``/``coord`` or the forecast's ``city``)."""
    holder = doc if kind == "current" else doc.get("city") or {}
    coord = holder.get("coord") if isinstance(holder.get("coord"), dict) else {}
    country = (doc.get("sys") if kind == "current" else holder) or {}
    code = country.get("country") if isinstance(country, dict) else None
    return (
        code if isinstance(code, str) and 0 < len(code) <= 3 else None,
        _float_or_none(coord.get("lat")),
        _float_or_none(coord.get("lon")),
    )


def _epoch(value: Any) -> float | None:
    """``dt`` as epoch seconds when it is a usable event time (a finite number within 1970-2100), else None."""
    return sane_epoch(value)


def _dt_text(dt: float) -> str:
    """``dt`` as it keys a quarantine row: whole seconds without a fraction (as the API sends them)."""
    return str(int(dt)) if dt.is_integer() else repr(dt)


def item_key(city: str, kind: str, item: Any) -> str | None:
    """``"<city>:<kind>:<dt>"``: the item's identity for quarantine, when its ``dt`` can be told. It is the
    item's identity in ``core.weather_observations`` (city, kind, valid_at): a later forecast for the same hour
    replaces the earlier one there, and its quarantine row likewise."""
    dt = _epoch(item.get("dt")) if isinstance(item, dict) else None
    return None if dt is None else f"{city}:{kind}:{_dt_text(dt)}"


def forecast_start(items: list[Any]) -> datetime | None:
    """When the forecast starts: the time of its first entry, told by the majority of the entries.

    Entries come every 3 hours, so entry ``j`` implies a start of ``dt_j - j * 3 h``. The most common implied
    start wins (on a tie, the one the list shows first), so a damaged, missing or shifted entry, even the
    first one, cannot move it. None when no entry has a usable ``dt``.
    """
    step = int(FORECAST_STEP.total_seconds())
    votes = Counter(
        dt - j * step
        for j, dt in enumerate(_epoch(i.get("dt")) if isinstance(i, dict) else None for i in items)
        if dt is not None
    )
    # A start that is no usable time itself (a hostile dt near 1970 minus the entry's offset) gets no vote.
    votes = Counter({start: n for start, n in votes.items() if sane_epoch(start) is not None})
    if not votes:
        return None
    start = max(votes, key=votes.__getitem__)  # on a tie, the first in list order (Counter keeps it)
    return datetime.fromtimestamp(start, tz=UTC)


def _in_range(name: str, value: float | None, bounds: tuple[float, float], unit: str) -> float | None:
    if value is not None and not bounds[0] <= value <= bounds[1]:
        raise ItemError(
            Reason.BAD_FIELD,
            f"{name} {value:g}{unit} is outside [{bounds[0]:g}, {bounds[1]:g}] (units=metric)",
        )
    return value


def _sub(item: dict[str, Any], key: str) -> dict[str, Any]:
    value = item.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ItemError(Reason.BAD_FIELD, f"{key} is {type(value).__name__}, expected an object")
    return value


@dataclass(frozen=True)
class _PageContext:
    city: str
    kind: str
    country: str | None
    lat: float | None
    lon: float | None
    start: datetime | None
    issued_at: datetime | None


def parse_item(item: Any, ctx: _PageContext, now: datetime) -> Fact:
    """Turn one observation or forecast entry into a weather fact, or raise :class:`ItemError`."""
    if not isinstance(item, dict):
        raise ItemError(Reason.NOT_AN_OBJECT, f"{ctx.kind} entry is {type(item).__name__}, not an object")
    if item.get("dt") is None:
        raise ItemError(Reason.BAD_TIMESTAMP, "dt is missing")
    if ctx.kind == "current":
        valid_at = check_epoch("dt", item["dt"], now)
        issued_at: datetime | None = valid_at
    else:
        valid_at = epoch_time("dt", item["dt"])
        issued_at = ctx.issued_at
        if ctx.start is not None and valid_at > ctx.start + FORECAST_RANGE:
            raise ItemError(
                Reason.FUTURE_TIMESTAMP,
                f"dt {valid_at.isoformat()} is beyond the 5-day range of a forecast starting {ctx.start.isoformat()}",
            )
        if ctx.start is not None and valid_at < ctx.start:
            raise ItemError(
                Reason.BAD_TIMESTAMP,
                f"dt {valid_at.isoformat()} is before the forecast's first entry {ctx.start.isoformat()}",
            )
        if ctx.start is not None and ctx.start - FORECAST_STEP > now + FUTURE_TOLERANCE:
            raise ItemError(
                Reason.FUTURE_TIMESTAMP,
                f"forecast starting {ctx.start.isoformat()} was issued after {now.isoformat()}",
            )
    main = item.get("main")
    if not isinstance(main, dict):
        raise ItemError(Reason.BAD_FIELD, "main (temperature, pressure, humidity) is missing")
    temp = _in_range(
        "main.temp", check_number("main.temp", main.get("temp"), required=True), TEMP_RANGE_C, "°C"
    )
    humidity = _in_range(
        "main.humidity", check_number("main.humidity", main.get("humidity")), HUMIDITY_RANGE_PCT, "%"
    )
    wind, clouds, rain = _sub(item, "wind"), _sub(item, "clouds"), _sub(item, "rain")
    rain_mm = check_number("rain.1h", rain.get("1h"))
    if rain_mm is None:
        rain_mm = check_number("rain.3h", rain.get("3h"))
    weather = item.get("weather")
    if weather is not None and not isinstance(weather, list):
        raise ItemError(Reason.BAD_FIELD, f"weather is {type(weather).__name__}, expected a list")
    first_condition = weather[0] if weather else {}
    if not isinstance(first_condition, dict):
        raise ItemError(Reason.BAD_FIELD, "weather[0] is not an object")
    return Fact(
        TABLE,
        {
            "source": SOURCE,
            "city": ctx.city,
            "country": ctx.country,
            "lat": ctx.lat,
            "lon": ctx.lon,
            "kind": ctx.kind,
            "valid_at": valid_at,
            "issued_at": issued_at,
            "temp_c": temp,
            "feels_like_c": check_number("main.feels_like", main.get("feels_like")),
            "pressure_hpa": check_number("main.pressure", main.get("pressure")),
            "humidity_pct": humidity,
            "wind_speed_ms": check_number("wind.speed", wind.get("speed")),
            "wind_deg": check_number("wind.deg", wind.get("deg")),
            "clouds_pct": check_number("clouds.all", clouds.get("all")),
            "rain_mm": rain_mm,
            "condition": check_text("weather[0].main", first_condition.get("main")),
            "description": check_text("weather[0].description", first_condition.get("description")),
        },
    )


def parse_page(
    page: StoredPage, pseudonymize: Callable[[str | None], str | None], now: datetime
) -> ParseOutput:
    """Yield ``(item_index, Fact | Rejected)`` for the observation or every forecast entry of a stored page.

    A forecast's ``issued_at`` must not depend on when the page was fetched or loaded (re-runs give the same
    rows): it is the window end of the run that fetched it when the stored page carries one
    (``page.window_end``), else the forecast's start (:func:`forecast_start`) minus one 3-hour step.
    """
    kind, city = stream_kind(page.stream)
    info = page_info(page.body, kind)
    country, lat, lon = _location(info.doc, kind)
    start = forecast_start(info.items) if kind == "forecast" else None
    window_end = getattr(page, "window_end", None)
    if kind == "forecast" and isinstance(window_end, datetime):
        issued_at: datetime | None = window_end.astimezone(UTC)
    else:
        issued_at = start - FORECAST_STEP if start is not None else None
    ctx = _PageContext(city, kind, country, lat, lon, start, issued_at)
    for index, item in enumerate(info.items):
        try:
            yield index, parse_item(item, ctx, now)
        except ItemError as exc:
            yield index, rejected(index, exc, item_key(city, kind, item), item, PII_KEYS, pseudonymize)


# ------------------------------------------------------------------------------------------------
# the declaration: everything else about this source derives from it (pulse.sources.spec,
# docs/adding-a-source.md)
# ------------------------------------------------------------------------------------------------

from datetime import timedelta  # noqa: E402

from pulse.sources.spec import Freshness, SourceSpec  # noqa: E402

SPEC = SourceSpec(
    name="openweathermap",
    title="OpenWeatherMap",
    hook="pulse.hooks.openweathermap:OpenWeatherMapHook",
    schedule="5 * * * *",
    default_window=timedelta(hours=1),
    deadline=timedelta(minutes=30),
    pool_slots=2,
    budgets=((60, 60),),
    budget_note="60 calls/min on the free plan",
    tables=("core.weather_observations",),
    freshness=Freshness("core.weather_observations", max_age_minutes=180),
    conn_defaults={"host": ""},
    local_conn={"password": "sim-owm-key"},
)
