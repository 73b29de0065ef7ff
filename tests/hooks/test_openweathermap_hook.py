"""OpenWeatherMapHook against the simulator over real HTTP: pages, throttling, 5xx, keys, malformed bodies."""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime
from typing import Any

import pytest
import requests

from pulse.hooks.openweathermap import OpenWeatherMapHook
from pulse.sources.base import MalformedPageError, PageFetchError, SourceAuthError, Stream
from pulse.windows import Window
from tests.conftest import SIM_NOW, WINDOW

W = Window(datetime.fromisoformat(WINDOW[0]), datetime.fromisoformat(WINDOW[1]))
LONDON = {"lat": 51.5085, "lon": -0.1257, "units": "metric"}
CURRENT = Stream(key="current:London", endpoint="/data/2.5/weather", params=LONDON)
FORECAST = Stream(key="forecast:London", endpoint="/data/2.5/forecast", params=LONDON)
SIM_EPOCH = int(datetime.fromisoformat(SIM_NOW).timestamp())


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def hook(sim: Any, waits: list[float]) -> OpenWeatherMapHook:
    return OpenWeatherMapHook(sleep=waits.append, jitter=0)  # exact backoff waits


def _stats(sim: Any) -> dict[str, Any]:
    return sim.stats()["openweathermap"]


def _variant(monkeypatch: pytest.MonkeyPatch, conn_id: str, **changes: Any) -> None:
    """A copy of ``openweathermap_default`` under ``conn_id`` with some fields or extras changed."""
    conn = json.loads(os.environ["AIRFLOW_CONN_OPENWEATHERMAP_DEFAULT"])
    extra = {**conn["extra"], **changes.pop("extra", {})}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({**conn, **changes, "extra": extra}))


def test_each_stream_is_one_page_with_the_raw_response(hook: OpenWeatherMapHook, sim: Any) -> None:
    [current] = list(hook.iter_pages(CURRENT, W))
    [forecast] = list(hook.iter_pages(FORECAST, W))
    assert (current.page_no, current.next_cursor, current.item_count) == (0, None, 1)
    assert (forecast.page_no, forecast.next_cursor, forecast.item_count) == (0, None, 40)
    body = json.loads(current.body)
    assert body["dt"] == SIM_EPOCH and body["coord"] == {"lat": 51.5085, "lon": -0.1257}
    assert -10 < body["main"]["temp"] < 25, "units=metric reached the API (Kelvin would be ~280)"
    entries = json.loads(forecast.body)["list"]
    assert [e["dt"] for e in entries] == [SIM_EPOCH + 3 * 3600 * (i + 1) for i in range(40)]
    assert current.headers["Content-Type"] == "application/json; charset=utf-8"
    assert current.params == LONDON, "the API key (APPID) is added by pyowm and never kept with the page"
    assert _stats(sim)["requests"] == 2 and _stats(sim)["served_count"] == 41


def test_a_cursor_means_the_single_page_is_stored_already(hook: OpenWeatherMapHook, sim: Any) -> None:
    first = list(hook.iter_pages(FORECAST, W))
    assert list(hook.iter_pages(FORECAST, W, cursor="stored", page_no=1)) == []
    assert _stats(sim)["requests"] == 1
    again = list(hook.iter_pages(FORECAST, W))
    assert [p.sha256 for p in again] == [p.sha256 for p in first], "same clock, same bytes"


def test_429_waits_for_retry_after(hook: OpenWeatherMapHook, sim: Any, waits: list[float]) -> None:
    sim.configure({"openweathermap": {"rate_limit": {"count": 2, "retry_after": 2}}})
    page = hook.fetch_page(CURRENT, 0, LONDON)
    assert page.is_valid and page.item_count == 1
    assert waits == [2.0, 2.0]
    assert _stats(sim)["by_status"] == {"429": 2, "200": 1}


def test_429_without_retry_after_backs_off(hook: OpenWeatherMapHook, sim: Any, waits: list[float]) -> None:
    # OpenWeatherMap itself sends no Retry-After: the connection's backoff (0.2 s, doubling) applies.
    sim.configure({"openweathermap": {"rate_limit": {"count": 2, "retry_after": 0}}})
    assert hook.fetch_page(CURRENT, 0, LONDON).is_valid
    assert waits == [0.2, 0.4]


def test_a_long_retry_after_is_capped(sim: Any, waits: list[float]) -> None:
    sim.configure({"openweathermap": {"rate_limit": {"count": 1, "retry_after": 3600}}})
    OpenWeatherMapHook(max_wait=5.0, sleep=waits.append).fetch_page(CURRENT, 0, LONDON)
    assert waits == [5.0]


def test_5xx_burst_is_retried(hook: OpenWeatherMapHook, sim: Any, waits: list[float]) -> None:
    sim.configure({"openweathermap": {"server_errors": {"count": 3, "status": 503}}})
    page = hook.fetch_page(FORECAST, 0, LONDON)
    assert page.is_valid and page.item_count == 40
    assert _stats(sim)["by_status"] == {"503": 3, "200": 1}
    assert waits == [0.2, 0.4, 0.8]


def test_endless_5xx_gives_up_with_a_clear_error(hook: OpenWeatherMapHook, sim: Any) -> None:
    sim.configure({"openweathermap": {"server_errors": {"count": 1000, "status": 502}}})
    with pytest.raises(
        PageFetchError, match=r"/data/2.5/weather \(current:London\) page 0 failed after 4 attempts: HTTP 502"
    ):
        hook.fetch_page(CURRENT, 0, LONDON)
    assert _stats(sim)["requests"] == 4


def test_wrong_key_names_the_connection_and_is_not_retried(sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _variant(monkeypatch, "owm_bad", password="not-the-key")
    with pytest.raises(
        SourceAuthError, match=r"connection 'owm_bad' \(HTTP 401 on /data/2.5/weather\)"
    ) as err:
        OpenWeatherMapHook("owm_bad", sleep=lambda s: None).fetch_page(CURRENT, 0, LONDON)
    assert "not-the-key" not in str(err.value)
    assert _stats(sim)["by_status"] == {"401": 1}


def test_revoked_key_is_an_auth_error(hook: OpenWeatherMapHook, sim: Any) -> None:
    sim.configure({"openweathermap": {"reject_auth": True}})
    with pytest.raises(SourceAuthError, match="HTTP 401"):
        hook.fetch_page(FORECAST, 0, LONDON)


def test_a_page_that_stays_malformed_is_handed_over(hook: OpenWeatherMapHook, sim: Any) -> None:
    sim.configure({"openweathermap": {"malformed": {"always": True}}})
    with pytest.raises(
        MalformedPageError, match="stayed malformed after 4 attempts: body is not JSON"
    ) as err:
        hook.fetch_page(FORECAST, 0, LONDON)
    page = err.value.page
    assert page is not None and page.is_valid is False and "not JSON" in (page.error or "")
    assert page.body.startswith(b'{"cod": "200"') and not page.body.rstrip().endswith(b"}")
    assert _stats(sim)["requests"] == 4 and _stats(sim)["served_count"] == 0


def test_a_malformed_burst_is_retried(hook: OpenWeatherMapHook, sim: Any, waits: list[float]) -> None:
    sim.configure({"openweathermap": {"malformed": {"count": 2}}})
    page = hook.fetch_page(CURRENT, 0, LONDON)
    assert page.is_valid and json.loads(page.body)["cod"] == 200
    assert len(waits) == 2


def test_other_4xx_fail_at_once_with_the_api_message(hook: OpenWeatherMapHook, sim: Any) -> None:
    bad = Stream(key="current:Nowhere", endpoint="/data/2.5/weather", params={"lat": 95, "lon": 0})
    with pytest.raises(
        PageFetchError, match=r"HTTP 400 for /data/2.5/weather \(current:Nowhere\): wrong latitude"
    ):
        hook.fetch_page(bad, 0, dict(bad.params))
    assert _stats(sim)["requests"] == 1


def test_slow_responses_time_out_and_are_retried(sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _variant(monkeypatch, "owm_slow", extra={"timeout": 0.3, "max_attempts": 2})
    sim.configure({"openweathermap": {"latency_ms": 1500}})
    with pytest.raises(PageFetchError, match="failed after 2 attempts: network error"):
        OpenWeatherMapHook("owm_slow", sleep=lambda s: None).fetch_page(CURRENT, 0, LONDON)


def test_network_errors_never_show_the_key(sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _variant(monkeypatch, "owm_down", host=f"http://127.0.0.1:{port}", extra={"max_attempts": 1})
    with pytest.raises(PageFetchError, match="network error") as err:
        OpenWeatherMapHook("owm_down", sleep=lambda s: None).fetch_page(CURRENT, 0, LONDON)
    assert "APPID=***" in str(err.value) and "sim-owm-key" not in str(err.value)


def test_test_connection(sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert OpenWeatherMapHook().test_connection() == (True, "Connection successfully tested")
    _variant(monkeypatch, "owm_bad", password="nope")
    ok, message = OpenWeatherMapHook("owm_bad").test_connection()
    assert not ok and "Invalid API Key" in message


def test_empty_host_means_the_real_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a host the request goes to https://api.openweathermap.org (captured, nothing leaves the box)."""
    from requests.adapters import HTTPAdapter

    sent: list[requests.PreparedRequest] = []

    class Capture(HTTPAdapter):
        def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
            sent.append(request)
            resp = requests.Response()
            resp.status_code, resp._content, resp.url = 200, b'{"cod": 200, "dt": 1}', request.url or ""
            resp.headers["Content-Type"] = "application/json; charset=utf-8"
            resp.request = request
            return resp

    monkeypatch.setenv(
        "AIRFLOW_CONN_OWM_REAL", json.dumps({"conn_type": "generic", "password": "real-key", "extra": {}})
    )
    hook = OpenWeatherMapHook("owm_real")
    hook.client.http.mount("https://", Capture())
    page = hook.fetch_page(CURRENT, 0, LONDON)
    assert page.body == b'{"cod": 200, "dt": 1}'
    assert sent[0].url == (
        "https://api.openweathermap.org/data/2.5/weather"
        "?APPID=real-key&lang=en&lat=51.5085&lon=-0.1257&units=metric"
    )
