"""Contract: the simulator answers like the real OpenWeatherMap API, and real answers run through hook and parser.

The recorded responses are third-party data kept outside the repo, in ``<shared>/payloads/owm``
(``PULSE_SHARED_DIR`` or ``<repo>/../shared``); they are read from there at test time, never copied.

1. Shape: for each recorded body, the simulator's answer to the same call carries every key the real body
   carries, with a compatible JSON type (null on either side is compatible, int and float are compatible, bool
   is not a number). List elements are merged into one shape. OpenWeatherMap documents ``rain``/``snow`` as
   present only "where available", so they may be absent, but their type is checked when present.
2. Playback: a tiny local HTTP server answers with the recorded bodies and statuses, and the real hook and parser
   run on them (raw bytes kept as received, the key never kept, errors mapped as in production).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from dev.simulator import SimulatorServer
from pulse.hooks.openweathermap import OpenWeatherMapHook
from pulse.sources.base import Fact, PageFetchError, Reason, Rejected, SourceAuthError, StoredPage, Stream
from pulse.sources.openweathermap import parse_page
from tests.contract.conftest import StartReplay
from tests.contract.replay import NOW, Answer, ReplayServer, Request, load_json, recordings
from tests.contract.shapes import Rules, Shape, shape_of
from tests.contract.shapes import conformance_problems as _conformance

OWM = recordings("owm", "OpenWeatherMap")

KEY = "sim-owm-key"
LONDON = {"lat": 51.5085, "lon": -0.1257, "units": "metric"}
OPTIONAL = {"rain", "snow"}  # "where available" in OpenWeatherMap's documentation


def conformance_problems(real: Shape, value: Any, path: str = "$") -> list[str]:
    """The shared check, with rain/snow conditional ("where available")."""
    return _conformance(real, value, path, rules=Rules(optional=lambda p, k: k in OPTIONAL))


def recorded(name: str) -> Any:
    return load_json(OWM, name)


def get(http: requests.Session, sim: SimulatorServer, path: str, **params: Any) -> requests.Response:
    return http.get(f"{sim.url}{path}", params={"APPID": KEY, **params})


# ------------------------------------------------------------------------------------------------ the checker


def test_checker_reports_missing_and_mistyped_keys() -> None:
    real = shape_of(
        {"main": {"temp": 1.5, "humidity": 80}, "list": [{"dt": 1, "rain": {"3h": 0}}], "cod": "200"}
    )
    good = {
        "main": {"temp": 2, "humidity": 81.0, "extra": 1},
        "list": [{"dt": 2}, {"dt": 3, "rain": {"3h": 0.5}}],
        "cod": "2",
    }
    assert conformance_problems(real, good) == []
    bad = {"main": {"temp": True}, "list": [{"rain": {"3h": "x"}}], "cod": 200}
    assert conformance_problems(real, bad) == [
        "$.cod: type number, real data has ['string']",
        "$.list[*].dt: missing",
        "$.list[*].rain.3h: type string, real data has ['number']",
        "$.main.humidity: missing",
        "$.main.temp: type bool, real data has ['number']",
    ]


# ------------------------------------------------------------------------------------------------ the contract


def test_current_weather_matches_recording(http: requests.Session, server: SimulatorServer) -> None:
    resp = get(http, server, "/data/2.5/weather", **LONDON)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json; charset=utf-8"  # HEADERS.md
    problems = conformance_problems(shape_of(recorded("current_weather_london.json")), resp.json())
    assert not problems, "simulator /weather differs from current_weather_london.json:\n" + "\n".join(
        problems
    )


def test_forecast_matches_recording(http: requests.Session, server: SimulatorServer) -> None:
    resp = get(http, server, "/data/2.5/forecast", **LONDON)
    assert resp.status_code == 200
    body = resp.json()
    assert body["cnt"] == len(body["list"]) == 40
    assert any("rain" in e for e in body["list"]), "pick a place and time with rain so its shape is checked"
    problems = conformance_problems(shape_of(recorded("forecast_3h_london.json")), body)
    assert not problems, "simulator /forecast differs from forecast_3h_london.json:\n" + "\n".join(problems)


def test_standard_units_are_kelvin_like_the_recordings(
    http: requests.Session, server: SimulatorServer
) -> None:
    standard = get(http, server, "/data/2.5/weather", lat=51.5085, lon=-0.1257).json()["main"]["temp"]
    metric = get(http, server, "/data/2.5/weather", **LONDON).json()["main"]["temp"]
    assert standard == pytest.approx(metric + 273.15, abs=0.02)
    assert 250 < recorded("current_weather_london.json")["main"]["temp"] < 320


def test_wrong_key_answers_like_the_real_401(http: requests.Session, server: SimulatorServer) -> None:
    resp = http.get(f"{server.url}/data/2.5/weather", params={**LONDON, "APPID": "wrong"})
    assert resp.status_code == 401
    real = recorded("error_401_invalid_api_key.json")
    assert conformance_problems(shape_of(real), resp.json()) == []
    assert resp.json()["cod"] == real["cod"] == 401 and "faq#error401" in resp.json()["message"]


def test_unknown_city_answers_like_the_real_404(http: requests.Session, server: SimulatorServer) -> None:
    resp = get(http, server, "/data/2.5/weather", q="Atlantis,XX")
    assert resp.status_code == 404
    real = recorded("error_404_city_not_found.json")
    assert conformance_problems(shape_of(real), resp.json()) == []
    assert resp.json()["cod"] == real["cod"] == "404"


def test_throttling_answers_with_the_real_429_body(http: requests.Session, server: SimulatorServer) -> None:
    server.configure({"openweathermap": {"rate_limit": {"count": 1, "retry_after": 0}}})
    try:
        resp = get(http, server, "/data/2.5/forecast", **LONDON)
    finally:
        server.reset()
    assert resp.status_code == 429
    assert resp.json() == recorded("error_429_rate_limited.json")
    assert "retry-after" not in {k.lower() for k in resp.headers}, "OpenWeatherMap sends no Retry-After"


# ------------------------------------------------------------------------------------------------ playback


class Recorded:
    """The replay server answering OpenWeatherMap paths with recorded bodies, in a scripted order.

    ``script[path]`` is a list of ``(status, file name)`` served one after the other (the last repeats).
    A metric request gets the recording's temperatures in Celsius, as the API converts them (the recordings
    were made in standard units); ``verbatim = True`` serves the file bytes untouched.
    """

    def __init__(self, server: ReplayServer) -> None:
        self.server = server
        self.script: dict[str, list[tuple[int, str]]] = {}
        self.verbatim = False

    @property
    def requests(self) -> list[dict[str, str]]:
        return [request.query for request in self.server.requests]

    def answer(self, request: Request) -> Answer:
        steps = self.script.get(request.path) or [(404, "error_404_city_not_found.json")]
        status, name = steps.pop(0) if len(steps) > 1 else steps[0]
        body = (OWM / name).read_bytes()
        if status == 200 and not self.verbatim and request.query.get("units") == "metric":
            body = json.dumps(_to_celsius(json.loads(body))).encode()
        return status, {"Content-Type": "application/json; charset=utf-8"}, body


def _to_celsius(doc: dict[str, Any]) -> dict[str, Any]:
    for holder in [doc, *doc.get("list", [])]:
        for key in ("temp", "temp_min", "temp_max", "feels_like"):
            if key in holder.get("main", {}):
                holder["main"][key] = round(holder["main"][key] - 273.15, 2)
    return doc


@pytest.fixture
def played(replay: StartReplay) -> Recorded:
    server = replay("owm_recorded", password=KEY, extra={"max_attempts": 3, "backoff": 0.5, "jitter": 0})
    recorded = Recorded(server)
    server.respond = recorded.answer
    return recorded


def _stream(kind: str) -> Stream:
    return Stream(
        key=f"{kind}:London", endpoint=f"/data/2.5/{'weather' if kind == 'current' else kind}", params=LONDON
    )


def _load(page: Any) -> list[Any]:
    stored = StoredPage(1, "openweathermap", page.stream.key, page.endpoint, page.body.decode("utf-8"))
    return [o for _, o in parse_page(stored, lambda v: v, datetime(2026, 11, 28, 12, 5, tzinfo=UTC))]


def test_recorded_current_weather_through_hook_and_parser(played: Recorded) -> None:
    played.script["/data/2.5/weather"] = [(200, "current_weather_london.json")]
    hook = OpenWeatherMapHook("owm_recorded", sleep=lambda s: None)
    [page] = list(hook.iter_pages(_stream("current"), window=None))  # type: ignore[arg-type]
    assert played.requests == [
        {"APPID": KEY, "lang": "en", "lat": "51.5085", "lon": "-0.1257", "units": "metric"}
    ]
    assert page.params == LONDON and page.item_count == 1 and page.next_cursor is None
    [fact] = _load(page)
    assert isinstance(fact, Fact)
    assert fact.values["valid_at"] == datetime.fromtimestamp(1378895177, tz=UTC)
    assert (fact.values["city"], fact.values["country"], fact.values["temp_c"]) == ("London", "GB", 15.29)
    assert (fact.values["pressure_hpa"], fact.values["humidity_pct"], fact.values["condition"]) == (
        1022,
        75,
        "Clouds",
    )


def test_recorded_forecast_through_hook_and_parser(played: Recorded) -> None:
    played.script["/data/2.5/forecast"] = [(200, "forecast_3h_london.json")]
    page = OpenWeatherMapHook("owm_recorded").fetch_page(_stream("forecast"), 0, LONDON)
    assert page.item_count == 1
    [fact] = _load(page)
    assert isinstance(fact, Fact)
    valid_at = datetime(2014, 10, 14, tzinfo=UTC)
    assert (fact.values["kind"], fact.values["valid_at"], fact.values["issued_at"]) == (
        "forecast",
        valid_at,
        valid_at - timedelta(hours=3),
    )
    assert (fact.values["rain_mm"], fact.values["wind_deg"], fact.values["temp_c"]) == (0.0, 303.502, 12.77)


def test_recorded_bytes_are_kept_exactly_and_kelvin_is_caught(played: Recorded) -> None:
    played.verbatim = True
    played.script["/data/2.5/weather"] = [(200, "current_weather_london.json")]
    page = OpenWeatherMapHook("owm_recorded").fetch_page(_stream("current"), 0, LONDON)
    assert page.body == (OWM / "current_weather_london.json").read_bytes()
    [rejected] = _load(page)
    assert isinstance(rejected, Rejected) and rejected.reason == Reason.BAD_FIELD
    assert rejected.item_key == "London:current:1378895177"


def test_recorded_401_is_an_auth_error(played: Recorded) -> None:
    played.script["/data/2.5/weather"] = [(401, "error_401_invalid_api_key.json")]
    with pytest.raises(SourceAuthError, match=r"connection 'owm_recorded' \(HTTP 401"):
        OpenWeatherMapHook("owm_recorded").fetch_page(_stream("current"), 0, LONDON)
    assert len(played.requests) == 1


def test_recorded_429_backs_off_then_loads(played: Recorded) -> None:
    played.script["/data/2.5/forecast"] = [
        (429, "error_429_rate_limited.json"),
        (429, "error_429_rate_limited.json"),
        (200, "forecast_3h_london.json"),
    ]
    waits: list[float] = []
    page = OpenWeatherMapHook("owm_recorded", sleep=waits.append).fetch_page(_stream("forecast"), 0, LONDON)
    assert waits == [0.5, 1.0], "no Retry-After from OpenWeatherMap: the connection's backoff"
    assert isinstance(_load(page)[0], Fact)


def test_recorded_404_fails_with_the_api_message(played: Recorded) -> None:
    played.script["/data/2.5/weather"] = [(404, "error_404_city_not_found.json")]
    with pytest.raises(PageFetchError, match=r"HTTP 404 for /data/2\.5/weather .*Error: Not found city"):
        OpenWeatherMapHook("owm_recorded").fetch_page(_stream("current"), 0, LONDON)
    assert len(played.requests) == 1


def test_simulator_playback_of_recorded_responses_through_hook_and_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulator's recorded-folder playback (``<folder>/openweathermap/<endpoint>/NNN.json``) with the real
    files: a throttled answer, then the recorded observation, then the generated weather again."""
    folder = tmp_path / "openweathermap" / "data" / "2.5" / "weather"
    folder.mkdir(parents=True)
    (folder / "001.json").write_bytes((OWM / "error_429_rate_limited.json").read_bytes())
    (folder / "001.status").write_text("429")
    (folder / "002.json").write_bytes((OWM / "current_weather_london.json").read_bytes())
    sim = SimulatorServer(port=0, seed=42, now=NOW, playback=tmp_path).start()
    try:
        monkeypatch.setenv(
            "AIRFLOW_CONN_OWM_PLAYBACK",
            json.dumps(
                {
                    "conn_type": "generic",
                    "host": sim.url,
                    "password": KEY,
                    "extra": {"backoff": 0.5, "jitter": 0},
                }
            ),
        )
        waits: list[float] = []
        hook = OpenWeatherMapHook("owm_playback", sleep=waits.append)
        played = hook.fetch_page(_stream("current"), 0, LONDON)
        assert waits == [0.5]
        assert played.body == (folder / "002.json").read_bytes()
        [rejected] = _load(played)  # recorded in Kelvin, read as the metric answer that was asked for
        assert isinstance(rejected, Rejected) and rejected.item_key == "London:current:1378895177"
        generated = hook.fetch_page(_stream("current"), 0, LONDON)
        [fact] = _load(generated)
        assert isinstance(fact, Fact) and fact.values["valid_at"] == datetime.fromisoformat(NOW)
    finally:
        sim.stop()
