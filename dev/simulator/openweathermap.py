"""OpenWeatherMap source of the simulator: current weather and the 5 day / 3 hour forecast (API 2.5).

``GET /data/2.5/weather`` and ``GET /data/2.5/forecast`` take a place as ``lat``/``lon`` (what Pulse sends),
``q=name[,country]`` or ``id=`` (a small built-in gazetteer), ``units`` (``standard`` Kelvin by default,
``metric``, ``imperial``), ``lang`` (ignored) and the key as ``APPID``/``appid``. ``/forecast`` also takes ``cnt``.

The weather is a pure function of ``(seed, place, hour)``: climate from the place (annual mean, seasonal swing
by latitude, a diurnal cycle by longitude) plus smooth deterministic noise (values interpolated between seeded
anchors every 6, 12 and 24 hours), so neighbouring hours look alike and the same hour always looks the same.
``/weather`` describes the simulated ``now`` (``dt = now``); ``/forecast`` has 40 entries every 3 hours from
the next 3-hour boundary after ``now``: the "truth" of those hours plus an error that grows with lead time and
changes with each 3-hour issue slot (a newer forecast differs a little from an older one).

Served identities (``/_sim/stats``): ``"<place>:current:<dt>"`` and ``"<place>:forecast:<dt>"`` with the
undamaged ``dt``; ``<place>`` is the gazetteer name (``London``) or ``"<lat>,<lon>"`` rounded to 2 decimals.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, ClassVar

from dev.simulator.core import (
    Request,
    Response,
    Route,
    ServedItem,
    Source,
    Window,
    json_bytes,
    register_source,
    stable_fraction,
    stable_hash,
)

HOUR = 3600
STEP = 3 * HOUR
MAX_ENTRIES = 40
FUTURE_SECONDS = 10 * 86400
CONTENT_TYPE = "application/json; charset=utf-8"
BAD_KINDS: tuple[str, ...] = (
    "missing_dt",
    "bad_timestamp",
    "future_timestamp",
    "non_numeric_temp",
    "missing_temp",
    "implausible_humidity",
    "nul_byte",
)
INVALID_KEY = {
    "cod": 401,
    "message": "Invalid API key. Please see https://openweathermap.org/faq#error401 for more info.",
}
CITY_NOT_FOUND = {"cod": "404", "message": "city not found"}
RATE_LIMITED = {
    "cod": "429",
    "message": "Your account is temporary blocked due to exceeding of requests limitation of your "
    "subscription type. Please choose the proper subscription http://openweathermap.org/price",
}


@dataclass(frozen=True)
class Place:
    """A gazetteer entry (or an anonymous point): what the API reports about a location."""

    name: str
    country: str
    city_id: int
    lat: float
    lon: float
    tz: int  # UTC offset in seconds (fixed: no daylight saving)
    population: int
    mean_c: float  # annual mean temperature

    @property
    def key(self) -> str:
        return self.name or f"{self.lat:.2f},{self.lon:.2f}"


GAZETTEER: tuple[Place, ...] = (
    Place("London", "GB", 2643743, 51.5085, -0.1257, 0, 8_961_989, 11.3),
    Place("Berlin", "DE", 2950159, 52.5244, 13.4105, 3600, 3_426_354, 10.0),
    Place("Paris", "FR", 2988507, 48.8534, 2.3488, 3600, 2_138_551, 12.4),
    Place("Madrid", "ES", 3117735, 40.4165, -3.7026, 3600, 3_255_944, 15.0),
    Place("New York", "US", 5128581, 40.7143, -74.006, -18000, 8_175_133, 12.9),
    Place("Tokyo", "JP", 1850147, 35.6895, 139.6917, 32400, 8_336_599, 15.8),
    Place("Sydney", "AU", 2147714, -33.8679, 151.2073, 39600, 4_627_345, 18.0),
    Place("Cairo", "EG", 360630, 30.0626, 31.2497, 7200, 7_734_614, 22.3),
    Place("Reykjavik", "IS", 3413829, 64.1355, -21.8954, 0, 118_918, 5.0),
    Place("Singapore", "SG", 1880252, 1.2897, 103.8501, 28800, 3_547_809, 27.5),
)
NEAR_DEGREES = 0.25

# (id, main, description, icon stem)
CONDITIONS = {
    "clear": (800, "Clear", "clear sky", "01"),
    "few": (801, "Clouds", "few clouds", "02"),
    "scattered": (802, "Clouds", "scattered clouds", "03"),
    "broken": (803, "Clouds", "broken clouds", "04"),
    "overcast": (804, "Clouds", "overcast clouds", "04"),
    "mist": (701, "Mist", "mist", "50"),
    "light_rain": (500, "Rain", "light rain", "10"),
    "rain": (501, "Rain", "moderate rain", "10"),
    "heavy_rain": (502, "Rain", "heavy intensity rain", "10"),
    "light_snow": (600, "Snow", "light snow", "13"),
    "snow": (601, "Snow", "snow", "13"),
}


# --------------------------------------------------------------------------------------------------
# the weather model
# --------------------------------------------------------------------------------------------------


def _noise(seed: int, key: str, name: str, hour: int, period: int) -> float:
    """Smooth value noise in [-1, 1]: seeded anchors every ``period`` hours, linearly interpolated."""
    k, offset = divmod(hour, period)
    a = 2.0 * stable_fraction(seed, key, name, period, k) - 1.0
    b = 2.0 * stable_fraction(seed, key, name, period, k + 1) - 1.0
    t = offset / period
    t = t * t * (3 - 2 * t)  # smoothstep: no kinks at the anchors
    return a + (b - a) * t


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _sun(place: Place, epoch: float) -> tuple[int, int]:
    """Sunrise and sunset (epoch seconds) of the UTC day of ``epoch`` at ``place`` (simple solar model)."""
    day = datetime.fromtimestamp(epoch, UTC)
    midnight = int(epoch) - (day.hour * HOUR + day.minute * 60 + day.second)
    doy = day.timetuple().tm_yday
    decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365)
    cos_h = _clamp(-math.tan(math.radians(place.lat)) * math.tan(decl), -1.0, 1.0)
    half_day = math.degrees(math.acos(cos_h)) / 15.0  # hours
    noon = 12.0 - place.lon / 15.0
    return midnight + int((noon - half_day) * HOUR), midnight + int((noon + half_day) * HOUR)


@dataclass
class Weather:
    """The state of the weather at one place and hour, in metric units."""

    temp: float
    temp_min: float
    temp_max: float
    feels_like: float
    pressure: float
    humidity: float
    wind: float
    gust: float
    deg: int
    clouds: int
    precip: float  # mm per hour
    visibility: int


def weather_at(seed: int, place: Place, hour: int) -> Weather:
    """The simulated truth at ``place`` during UTC hour number ``hour`` (epoch // 3600)."""
    key = place.key
    when = datetime.fromtimestamp(hour * HOUR, UTC)
    doy = when.timetuple().tm_yday
    hemisphere = 1.0 if place.lat >= 0 else -1.0
    seasonal = hemisphere * (1.0 + 0.14 * abs(place.lat)) * math.cos(2 * math.pi * (doy - 200) / 365.25)
    local_hour = (when.hour + place.lon / 15.0) % 24
    diurnal = 4.0 * math.cos(2 * math.pi * (local_hour - 15.0) / 24)
    temp = place.mean_c + seasonal + diurnal
    temp += 3.0 * _noise(seed, key, "temp", hour, 24) + 1.2 * _noise(seed, key, "temp", hour, 6)
    pressure = (
        1013.0 + 17.0 * _noise(seed, key, "pressure", hour, 24) + 4.0 * _noise(seed, key, "p", hour, 12)
    )
    pressure = _clamp(pressure, 980.0, 1040.0)
    clouds = _clamp(50.0 + 60.0 * _noise(seed, key, "clouds", hour, 6) - (pressure - 1013.0), 0.0, 100.0)
    humidity = 72.0 - 2.5 * diurnal + 14.0 * _noise(seed, key, "humidity", hour, 12) + (clouds - 50.0) / 8.0
    humidity = _clamp(humidity, 18.0, 100.0)
    wind = 3.5 + 2.5 * _noise(seed, key, "wind", hour, 24) + 1.5 * _noise(seed, key, "wind", hour, 6)
    wind = max(0.2, wind * (1.0 + (1013.0 - pressure) / 40.0))
    gust = wind * (1.3 + 0.5 * stable_fraction(seed, key, "gust", hour))
    deg = int(180 + 180 * _noise(seed, key, "deg", hour, 12)) % 360
    wet = _noise(seed, key, "precip", hour, 6) + (clouds - 75.0) / 50.0
    precip = round(max(0.0, wet) * 3.0, 2) if clouds > 60 else 0.0
    visibility = (
        10000 if precip == 0 and humidity < 95 else int(3000 + 6000 * stable_fraction(seed, key, "vis", hour))
    )
    spread = 0.3 + 1.5 * stable_fraction(seed, key, "spread", hour)
    return Weather(
        temp=temp,
        temp_min=temp - spread,
        temp_max=temp + spread * 0.8,
        feels_like=_feels_like(temp, wind, humidity),
        pressure=pressure,
        humidity=humidity,
        wind=wind,
        gust=gust,
        deg=deg,
        clouds=round(clouds),
        precip=precip,
        visibility=visibility,
    )


def _feels_like(temp: float, wind: float, humidity: float) -> float:
    """Wind chill below 10 °C, a humid-heat bump above 26 °C, else the air temperature nudged by wind."""
    kmh = wind * 3.6
    if temp <= 10.0 and kmh > 4.8:
        v = kmh**0.16
        return 13.12 + 0.6215 * temp - 11.37 * v + 0.3965 * temp * v
    if temp >= 26.0:
        return temp + (humidity - 40.0) * 0.08
    return temp - 0.2 * wind


def forecast_of(seed: int, place: Place, target: int, issued: int) -> Weather:
    """What the forecast issued at ``issued`` says about epoch ``target``: the truth plus a lead-time error."""
    truth = weather_at(seed, place, target // HOUR)
    lead_h = max(0.0, (target - issued) / HOUR)
    slot = issued // STEP

    def err(name: str) -> float:
        return 2.0 * stable_fraction(seed, place.key, "forecast", name, slot, target) - 1.0

    temp = truth.temp + 0.04 * lead_h * err("temp")
    humidity = _clamp(truth.humidity + 0.15 * lead_h * err("humidity"), 10.0, 100.0)
    wind = max(0.1, truth.wind * (1.0 + 0.004 * lead_h * err("wind")))
    pressure = _clamp(truth.pressure + 0.08 * lead_h * err("pressure"), 980.0, 1040.0)
    return Weather(
        temp=temp,
        temp_min=temp - (truth.temp - truth.temp_min),
        temp_max=temp + (truth.temp_max - truth.temp),
        feels_like=_feels_like(temp, wind, humidity),
        pressure=pressure,
        humidity=humidity,
        wind=wind,
        gust=wind * truth.gust / truth.wind,
        deg=truth.deg,
        clouds=truth.clouds,
        precip=truth.precip,
        visibility=truth.visibility,
    )


def _condition(w: Weather) -> str:
    if w.precip > 0:
        if w.temp < 0.5:
            return "light_snow" if w.precip < 1.0 else "snow"
        return "light_rain" if w.precip < 1.0 else "rain" if w.precip < 4.0 else "heavy_rain"
    if w.humidity >= 95 and w.wind < 2.0:
        return "mist"
    if w.clouds <= 10:
        return "clear"
    if w.clouds <= 25:
        return "few"
    if w.clouds <= 50:
        return "scattered"
    return "broken" if w.clouds <= 84 else "overcast"


# --------------------------------------------------------------------------------------------------
# units and payloads
# --------------------------------------------------------------------------------------------------


def _temp(celsius: float, units: str) -> float:
    if units == "metric":
        return round(celsius, 2)
    if units == "imperial":
        return round(celsius * 9 / 5 + 32, 2)
    return round(celsius + 273.15, 2)


def _speed(ms: float, units: str) -> float:
    return round(ms * 2.23694, 2) if units == "imperial" else round(ms, 2)


def _weather_list(w: Weather, is_day: bool) -> list[dict[str, Any]]:
    ident, main, description, icon = CONDITIONS[_condition(w)]
    return [
        {"id": ident, "main": main, "description": description, "icon": f"{icon}{'d' if is_day else 'n'}"}
    ]


def _main(w: Weather, units: str, forecast: bool) -> dict[str, Any]:
    pressure = round(w.pressure)
    main: dict[str, Any] = {
        "temp": _temp(w.temp, units),
        "feels_like": _temp(w.feels_like, units),
        "temp_min": _temp(w.temp_min, units),
        "temp_max": _temp(w.temp_max, units),
        "pressure": pressure,
        "humidity": round(w.humidity),
        "sea_level": pressure,
        "grnd_level": pressure - 3,
    }
    if forecast:
        main["temp_kf"] = round(w.temp_max - w.temp, 2)
    return main


def _precip(w: Weather, hours: int) -> dict[str, Any]:
    """``{"rain": {"1h": mm}}`` / ``{"snow": {"3h": mm}}`` when it falls, else nothing (like the real API)."""
    if w.precip <= 0:
        return {}
    kind = "snow" if w.temp < 0.5 else "rain"
    return {kind: {f"{hours}h": round(w.precip * hours, 2)}}


def _round_coord(value: float) -> float:
    return round(value, 4)


def _damage(item: dict[str, Any], bad: str, now: int) -> None:
    """Break one observation or forecast entry in place the way ``bad`` says."""
    if bad == "missing_dt":
        item.pop("dt", None)
    elif bad == "bad_timestamp":
        item["dt"] = datetime.fromtimestamp(item["dt"], UTC).strftime("%Y-%m-%d %H:%M:%S")
    elif bad == "future_timestamp":
        # current: an observation from the future; forecast: an entry beyond the 5-day range
        item["dt"] = int(item["dt"]) + FUTURE_SECONDS
    elif bad == "non_numeric_temp":
        item["main"]["temp"] = "N/A"
    elif bad == "missing_temp":
        item["main"].pop("temp", None)
    elif bad == "implausible_humidity":
        item["main"]["humidity"] = 140
    elif bad == "nul_byte":
        text = item["weather"][0]["description"]
        item["weather"][0]["description"] = f"{text[: len(text) // 2]}\u0000{text[len(text) // 2 :]}"


def _json(status: int, obj: Any, headers: dict[str, str] | None = None, **kw: Any) -> Response:
    return Response(
        status=status, body=json_bytes(obj), content_type=CONTENT_TYPE, headers=headers or {}, **kw
    )


# --------------------------------------------------------------------------------------------------
# the source
# --------------------------------------------------------------------------------------------------


@register_source
class OpenWeatherMapSource(Source):
    """Simulated OpenWeatherMap 2.5 API (what pyowm's ``HttpClient`` calls for weather and forecasts)."""

    name: ClassVar[str] = "openweathermap"
    defaults: ClassVar[dict[str, Any]] = {
        "credentials": {"api_key": "sim-owm-key"},
        "reject_auth": False,
        "forecast_entries": MAX_ENTRIES,
        "rate_limit": {"count": 0, "retry_after": 1},
        "server_errors": {"count": 0, "status": 503},
        "latency_ms": 0,
        "malformed": {"count": 0, "always": False, "skip": 0},
        "bad_items_ratio": 0.0,
    }
    fault_keys: ClassVar[frozenset[str]] = frozenset(
        {"reject_auth", "rate_limit", "server_errors", "latency_ms", "malformed", "bad_items_ratio"}
    )

    # -- framework hooks -----------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        """Current weather, the 3-hour forecast, and an OpenWeatherMap-style 404 for the rest of /data."""
        return [
            Route("GET", r"/data/2\.5/weather", self.current),
            Route("GET", r"/data/2\.5/forecast", self.forecast),
            Route("*", r"/data/(?:.*)", self.not_found),
        ]

    def check_config(self, config: Any) -> None:
        """Range checks on top of the core's type checks."""
        if not 0.0 <= config["bad_items_ratio"] <= 1.0:
            raise ValueError("openweathermap.bad_items_ratio must be in [0, 1]")
        if not 0 <= config["forecast_entries"] <= MAX_ENTRIES:
            raise ValueError(f"openweathermap.forecast_entries must be in [0, {MAX_ENTRIES}]")
        if not 400 <= config["server_errors"]["status"] <= 599:
            raise ValueError("openweathermap.server_errors.status must be a 4xx/5xx code")

    def authorize(self, request: Request) -> Response | None:
        """The key travels as ``APPID`` (pyowm) or ``appid`` (the docs)."""
        key = request.query.get("APPID", request.query.get("appid", ""))
        if not self.config["reject_auth"] and key == self.config["credentials"]["api_key"]:
            return None
        return _json(401, INVALID_KEY)

    def rate_limited(self, retry_after: int) -> Response:
        """429 with the real body; OpenWeatherMap sends no Retry-After, the simulator does when it is > 0."""
        return _json(429, RATE_LIMITED, {"Retry-After": str(retry_after)} if retry_after > 0 else {})

    def not_found(self, request: Request, match: Any = None) -> Response:
        """OpenWeatherMap's JSON 404."""
        return _json(404, {"cod": "404", "message": "Internal error"})

    def api_headers(self, window: Window, throttled: bool) -> dict[str, str]:
        """The CORS headers openweathermap.org sends with every API answer."""
        return {
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Allow-Methods": "GET, POST",
        }

    # -- places --------------------------------------------------------------------------------------
    def _place(self, request: Request) -> Place | Response:
        """The place a request asks for, or the API's 400/404 answer."""
        query = request.query
        if query.get("q"):
            name, _, country = (p.strip().casefold() for p in query["q"].partition(","))
            for place in GAZETTEER:
                if place.name.casefold() == name and country in ("", place.country.casefold()):
                    return place
            return _json(404, CITY_NOT_FOUND)
        if query.get("id"):
            for place in GAZETTEER:
                if str(place.city_id) == query["id"].strip():
                    return place
            return _json(404, CITY_NOT_FOUND)
        if "lat" not in query and "lon" not in query:
            return _json(400, {"cod": "400", "message": "Nothing to geocode"})
        try:
            lat, lon = float(query.get("lat", "")), float(query.get("lon", ""))
        except ValueError:
            return _json(
                400, {"cod": "400", "message": "wrong latitude" if "lat" in query else "wrong longitude"}
            )
        if not (math.isfinite(lat) and -90 <= lat <= 90):
            return _json(400, {"cod": "400", "message": "wrong latitude"})
        if not (math.isfinite(lon) and -180 <= lon <= 180):
            return _json(400, {"cod": "400", "message": "wrong longitude"})
        near = min(GAZETTEER, key=lambda p: (p.lat - lat) ** 2 + (p.lon - lon) ** 2)
        if abs(near.lat - lat) <= NEAR_DEGREES and abs(near.lon - lon) <= NEAR_DEGREES:
            return replace(near, lat=_round_coord(lat), lon=_round_coord(lon))
        mean = 27.0 - 0.35 * abs(lat)
        return Place("", "", 0, _round_coord(lat), _round_coord(lon), round(lon / 15) * 3600, 0, mean)

    def _bad(self, place: Place, kind: str, dts: list[int], issued: int) -> dict[int, str]:
        """Which items (by ``dt``) are served broken, and how (cycling through BAD_KINDS)."""
        ratio = self.config["bad_items_ratio"]
        if ratio <= 0:
            return {}
        seed = self.sim.seed
        offset = stable_hash(seed, place.key, kind, issued // STEP, "bad-offset") % len(BAD_KINDS)
        out: dict[int, str] = {}
        for dt in dts:
            if stable_fraction(seed, "bad", place.key, kind, dt) < ratio:
                out[dt] = BAD_KINDS[(offset + len(out)) % len(BAD_KINDS)]
        return out

    # -- endpoints -----------------------------------------------------------------------------------
    def current(self, request: Request, match: Any) -> Response:
        """``GET /data/2.5/weather``: the observation at the simulated now."""
        place = self._place(request)
        if isinstance(place, Response):
            return place
        units = request.query.get("units", "standard")
        now = int(request.now)
        w = weather_at(self.sim.seed, place, now // HOUR)
        sunrise, sunset = _sun(place, now)
        body: dict[str, Any] = {
            "coord": {"lon": place.lon, "lat": place.lat},
            "weather": _weather_list(w, sunrise <= now < sunset),
            "base": "stations",
            "main": _main(w, units, forecast=False),
            "visibility": w.visibility,
            "wind": {"speed": _speed(w.wind, units), "deg": w.deg, "gust": _speed(w.gust, units)},
            **_precip(w, 1),
            "clouds": {"all": w.clouds},
            "dt": now,
            "sys": {
                "type": 2,
                "id": 2000000 + place.city_id % 100000,
                "country": place.country,
                "sunrise": sunrise,
                "sunset": sunset,
            },
            "timezone": place.tz,
            "id": place.city_id,
            "name": place.name,
            "cod": 200,
        }
        bad = self._bad(place, "current", [now], now).get(now)
        if bad is not None:
            _damage(body, bad, now)
        item = ServedItem(f"{place.key}:current:{now}", "/data/2.5/weather", bad)
        return _json(200, body, served=[item], malformable=True)

    def forecast(self, request: Request, match: Any) -> Response:
        """``GET /data/2.5/forecast``: 40 three-hourly entries from the next 3-hour boundary after now."""
        place = self._place(request)
        if isinstance(place, Response):
            return place
        units = request.query.get("units", "standard")
        now = int(request.now)
        count = self.config["forecast_entries"]
        try:
            if request.query.get("cnt"):
                count = max(1, min(count, int(request.query["cnt"])))
        except ValueError:
            return _json(400, {"cod": "400", "message": f"{request.query['cnt']} is not a valid cnt"})
        first = (now // STEP + 1) * STEP
        dts = [first + i * STEP for i in range(count)]
        bad = self._bad(place, "forecast", dts, now)
        entries: list[dict[str, Any]] = []
        served: list[ServedItem] = []
        for dt in dts:
            w = forecast_of(self.sim.seed, place, dt, now)
            sunrise, sunset = _sun(place, dt)
            is_day = sunrise <= dt < sunset
            rng = random.Random(stable_hash(self.sim.seed, place.key, "pop", now // STEP, dt))
            entry: dict[str, Any] = {
                "dt": dt,
                "main": _main(w, units, forecast=True),
                "weather": _weather_list(w, is_day),
                "clouds": {"all": w.clouds},
                "wind": {"speed": _speed(w.wind, units), "deg": w.deg, "gust": _speed(w.gust, units)},
                "visibility": w.visibility,
                "pop": round(min(1.0, w.precip * 0.5 + rng.random() * 0.1), 2) if w.precip else 0,
                **_precip(w, 3),
                "sys": {"pod": "d" if is_day else "n"},
                "dt_txt": datetime.fromtimestamp(dt, UTC).strftime("%Y-%m-%d %H:%M:%S"),
            }
            kind = bad.get(dt)
            if kind is not None:
                _damage(entry, kind, now)
            entries.append(entry)
            served.append(ServedItem(f"{place.key}:forecast:{dt}", "/data/2.5/forecast", kind))
        sunrise, sunset = _sun(place, now)
        body = {
            "cod": "200",
            "message": 0,
            "cnt": len(entries),
            "list": entries,
            "city": {
                "id": place.city_id,
                "name": place.name,
                "coord": {"lat": place.lat, "lon": place.lon},
                "country": place.country,
                "population": place.population,
                "timezone": place.tz,
                "sunrise": sunrise,
                "sunset": sunset,
            },
        }
        return _json(200, body, served=served, malformable=True)
