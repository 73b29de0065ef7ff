"""AlphaVantageHook against the simulator over real HTTP: series, throttles, quota, 5xx, credentials."""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from airflow.sdk.exceptions import AirflowFailException

from pulse.hooks.alphavantage import AlphaVantageHook, AlphaVantageRefusedError
from pulse.sources.alphavantage import parse_config, plan_streams, series_info
from pulse.sources.base import MalformedPageError, PageFetchError, SourceAuthError, Stream
from pulse.windows import Window
from tests.conftest import WINDOW

W = Window(datetime.fromisoformat(WINDOW[0]), datetime.fromisoformat(WINDOW[1]))
KEY = "sim-alphavantage-key"
DAILY = Stream(
    key="daily:IBM",
    endpoint="/query",
    params={"function": "TIME_SERIES_DAILY", "symbol": "IBM", "outputsize": "compact"},
)


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def hook(sim: Any, waits: list[float]) -> AlphaVantageHook:
    return AlphaVantageHook(sleep=waits.append, jitter=0)  # exact backoff waits


def _requests(sim: Any) -> int:
    return sim.stats()["alphavantage"]["requests"]


def _with_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **changes: Any) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_ALPHAVANTAGE_DEFAULT"])
    extra = {**conn["extra"], **changes.pop("extra", {})}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({**conn, **changes, "extra": extra}))


def test_each_planned_stream_is_one_complete_page(hook: AlphaVantageHook, sim: Any) -> None:
    config = parse_config(
        {"stocks": ["IBM"], "intraday_interval": "60min", "crypto": [{"symbol": "BTC", "market": "EUR"}]},
        "av",
    )
    # a window across the US/Eastern month boundary: two intraday months
    window = Window(datetime(2026, 11, 1, 2, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC))
    streams = plan_streams(config, window)
    assert [s.key for s in streams] == [
        "daily:IBM",
        "intraday:IBM:60min:2026-10",
        "intraday:IBM:60min:2026-11",
        "crypto_daily:BTC:EUR",
    ]
    for stream in streams:
        pages = list(hook.iter_pages(stream, window))
        assert len(pages) == 1
        page = pages[0]
        assert (page.page_no, page.next_cursor, page.is_valid, page.status_code) == (0, None, True, 200)
        info = series_info(page.body)
        assert page.item_count == len(info.bars) > 0
        if "month" in stream.params:
            assert {k[:7] for k in info.bars} == {stream.params["month"]}, "only bars of the asked month"
    assert _requests(sim) == len(streams)
    daily = series_info(next(hook.iter_pages(streams[0], window)).body)
    assert len(daily.bars) == 100, "compact: the last 100 trading days"


def test_page_keeps_the_raw_bytes_and_the_params_sent_without_the_key(
    hook: AlphaVantageHook, sim: Any
) -> None:
    page = hook.fetch_page(DAILY, 0, dict(DAILY.params))
    direct = requests.get(
        f"{sim.url}/query", params={**DAILY.params, "apikey": KEY, "datatype": "json"}, timeout=5
    )
    assert page.body == direct.content, "the body is stored as received, not re-serialised"
    assert page.body.startswith(b'{\n    "Meta Data": {')
    assert page.params == {
        "function": "TIME_SERIES_DAILY",
        "symbol": "IBM",
        "outputsize": "compact",
        "datatype": "json",
    }
    assert page.headers["Content-Type"] == "application/json"
    assert KEY not in json.dumps(page.params) + json.dumps(page.headers)


def test_resuming_keeps_the_page_number_and_gives_the_same_bytes(hook: AlphaVantageHook) -> None:
    first = next(hook.iter_pages(DAILY, W))
    resumed = list(hook.iter_pages(DAILY, W, cursor=None, page_no=3))
    assert [(p.page_no, p.next_cursor, p.sha256) for p in resumed] == [(3, None, first.sha256)]


def test_429_waits_for_retry_after(hook: AlphaVantageHook, sim: Any, waits: list[float]) -> None:
    sim.configure({"alphavantage": {"rate_limit": {"count": 2, "retry_after": 2}}})
    page = hook.fetch_page(DAILY, 0, dict(DAILY.params))
    assert page.is_valid and page.item_count == 100
    assert waits == [2.0, 2.0]


def test_http_200_note_is_throttling_waited_out_and_never_data(
    hook: AlphaVantageHook, sim: Any, waits: list[float]
) -> None:
    sim.configure({"alphavantage": {"note_throttle": {"count": 2}}})
    page = hook.fetch_page(DAILY, 0, dict(DAILY.params))
    assert page.is_valid and b"Note" not in page.body and page.item_count == 100
    assert waits == [20.0, 40.0], "throttle_wait (default 20 s), doubled"
    assert _requests(sim) == 3


def test_throttling_that_never_ends_gives_up(hook: AlphaVantageHook, sim: Any, waits: list[float]) -> None:
    sim.configure({"alphavantage": {"note_throttle": {"count": 100}}})
    with pytest.raises(PageFetchError, match=r"failed after 4 attempts: throttled \(HTTP 200 'Note'") as err:
        hook.fetch_page(DAILY, 0, dict(DAILY.params))
    assert not isinstance(err.value, AirflowFailException), "a per-minute throttle may pass: Airflow retries"
    assert waits == [20.0, 40.0, 60.0]


def test_spent_daily_quota_fails_at_once_without_retries(
    hook: AlphaVantageHook, sim: Any, waits: list[float]
) -> None:
    sim.configure({"alphavantage": {"daily_quota": 2}})
    hook.fetch_page(DAILY, 0, dict(DAILY.params))
    hook.fetch_page(DAILY, 0, dict(DAILY.params))
    with pytest.raises(
        AlphaVantageRefusedError, match=r"daily request quota .* 'alphavantage_default' is spent"
    ):
        hook.fetch_page(DAILY, 0, dict(DAILY.params))
    assert waits == [] and _requests(sim) == 3
    # the quota is per simulated day
    sim.set_now("2026-11-29T12:00:00+00:00")
    assert hook.fetch_page(DAILY, 0, dict(DAILY.params)).is_valid


def test_invalid_symbol_is_refused_naming_it(hook: AlphaVantageHook, sim: Any, waits: list[float]) -> None:
    stream = Stream("daily:INVALID", "/query", {**DAILY.params, "symbol": "INVALID"})
    with pytest.raises(
        AlphaVantageRefusedError, match=r"refused TIME_SERIES_DAILY INVALID .*Invalid API call"
    ) as err:
        hook.fetch_page(stream, 0, dict(stream.params))
    assert isinstance(err.value, PageFetchError) and isinstance(err.value, AirflowFailException)
    assert waits == [] and _requests(sim) == 1


def test_premium_only_call_is_refused(hook: AlphaVantageHook, sim: Any) -> None:
    params = {**DAILY.params, "outputsize": "full"}
    with pytest.raises(AlphaVantageRefusedError, match="premium keys only"):
        hook.fetch_page(DAILY, 0, params)
    sim.configure({"alphavantage": {"premium": True}})
    page = hook.fetch_page(DAILY, 0, params)
    info = series_info(page.body)
    assert min(info.bars) == "1999-11-01" and len(info.bars) > 6000


def test_5xx_burst_is_retried(hook: AlphaVantageHook, sim: Any, waits: list[float]) -> None:
    sim.configure({"alphavantage": {"server_errors": {"count": 3, "status": 503}}})
    page = hook.fetch_page(DAILY, 0, dict(DAILY.params))
    assert page.is_valid
    assert sim.stats()["alphavantage"]["by_status"] == {"503": 3, "200": 1}
    assert waits == [0.2, 0.4, 0.8]


def test_endless_5xx_gives_up_with_a_clear_error(hook: AlphaVantageHook, sim: Any) -> None:
    sim.configure({"alphavantage": {"server_errors": {"count": 1000, "status": 502}}})
    with pytest.raises(
        PageFetchError, match=r"TIME_SERIES_DAILY IBM page 0 failed after 4 attempts: HTTP 502"
    ) as err:
        hook.fetch_page(DAILY, 0, dict(DAILY.params))
    assert not isinstance(err.value, AirflowFailException)


def test_rejected_key_names_the_connection(sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _with_conn(monkeypatch, "alphavantage_bad", password="nope")
    with pytest.raises(
        SourceAuthError, match=r"connection 'alphavantage_bad' \(HTTP 200 'Error Message'.*apikey"
    ):
        AlphaVantageHook("alphavantage_bad", sleep=lambda s: None).fetch_page(DAILY, 0, dict(DAILY.params))
    assert _requests(sim) == 1


def test_missing_key_is_an_auth_error_before_any_call(sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _with_conn(monkeypatch, "alphavantage_nokey", password="")
    with pytest.raises(SourceAuthError, match="'alphavantage_nokey' needs the Alpha Vantage API key"):
        AlphaVantageHook("alphavantage_nokey").fetch_page(DAILY, 0, dict(DAILY.params))
    assert _requests(sim) == 0


def test_malformed_page_is_retried_then_refused_with_the_page(
    hook: AlphaVantageHook, sim: Any, waits: list[float]
) -> None:
    sim.configure({"alphavantage": {"malformed": {"count": 1}}})
    assert hook.fetch_page(DAILY, 0, dict(DAILY.params)).is_valid
    sim.configure({"alphavantage": {"malformed": {"always": True}}})
    with pytest.raises(
        MalformedPageError, match="stayed malformed after 4 attempts: body is not JSON"
    ) as err:
        hook.fetch_page(DAILY, 0, dict(DAILY.params))
    page = err.value.page
    assert page is not None and page.is_valid is False and page.status_code == 200
    assert page.body.startswith(b'{\n    "Meta Data"') and "not JSON" in (page.error or "")


def test_html_page_with_status_200_is_retried(hook: AlphaVantageHook, sim: Any) -> None:
    sim.configure({"alphavantage": {"html_page": {"count": 2}}})
    page = hook.fetch_page(DAILY, 0, dict(DAILY.params))
    assert page.is_valid and page.item_count == 100
    assert _requests(sim) == 3


def test_slow_responses_time_out_and_are_retried(sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _with_conn(monkeypatch, "alphavantage_slow", extra={"timeout": 0.3, "max_attempts": 2})
    sim.configure({"alphavantage": {"latency_ms": 1500}})
    with pytest.raises(PageFetchError, match=r"failed after 2 attempts: network error: .*Read timed out"):
        AlphaVantageHook("alphavantage_slow", sleep=lambda s: None).fetch_page(DAILY, 0, dict(DAILY.params))
    assert _requests(sim) == 2


def test_network_errors_never_show_the_key(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    with socket.socket() as s:  # a port nobody listens on: requests quotes the URL, apikey included
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv(
        "AIRFLOW_CONN_ALPHAVANTAGE_CLOSED",
        json.dumps({"conn_type": "generic", "host": closed, "password": KEY, "extra": {"max_attempts": 2}}),
    )
    with pytest.raises(PageFetchError, match=r"network error: ConnectionError.*apikey=\*\*\*") as err:
        AlphaVantageHook("alphavantage_closed", sleep=lambda s: None).fetch_page(DAILY, 0, dict(DAILY.params))
    assert KEY not in str(err.value) and KEY not in caplog.text
    assert "apikey=***" in caplog.text


def test_test_connection(sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert AlphaVantageHook().test_connection() == (True, "Connection successfully tested")
    _with_conn(monkeypatch, "alphavantage_bad", password="nope")
    ok, message = AlphaVantageHook("alphavantage_bad").test_connection()
    assert not ok and "apikey is invalid or missing" in message


def test_schema_drift_in_bars_quarantines_them_and_in_the_envelope_refuses_the_page(
    hook: AlphaVantageHook, sim: Any
) -> None:
    from pulse.sources.alphavantage import parse_page
    from pulse.sources.base import Rejected, StoredPage

    sim.configure({"alphavantage": {"drift": {"rename": {"4. close": "4. closing"}}}})
    page = hook.fetch_page(DAILY, 0, dict(DAILY.params))
    stored = StoredPage(1, "alphavantage", DAILY.key, DAILY.endpoint, page.text)
    out = [o for _, o in parse_page(stored, lambda h: h, datetime(2026, 11, 28, 12, tzinfo=UTC))]
    assert len(out) == 100
    assert all(
        isinstance(o, Rejected) and o.reason == "bad_field" and "close is missing" in o.detail for o in out
    )
    sim.configure({"alphavantage": {"drift": {"drop": ["Meta Data"]}}})
    with pytest.raises(MalformedPageError, match="no 'Meta Data' object"):
        hook.fetch_page(DAILY, 0, dict(DAILY.params))
