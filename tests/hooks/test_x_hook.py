"""XHook against the simulator over real HTTP: paging, windows and reach, throttling, 5xx, credentials."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pulse.hooks.x import Gap, XHook, server_time
from pulse.sources.base import MalformedPageError, PageFetchError, SourceAuthError, Stream
from pulse.sources.x import SEARCH_RECENT, parse_config, plan_streams
from pulse.windows import Window
from tests.conftest import SIM_NOW, WINDOW

NOW = datetime.fromisoformat(SIM_NOW)
W = Window(datetime.fromisoformat(WINDOW[0]), datetime.fromisoformat(WINDOW[1]))
CONFIG = parse_config({"queries": ["python lang:en", "airflow"], "max_results": 10}, "x")
PYTHON = plan_streams(CONFIG, W)[0]
PARAMS = {**PYTHON.params, "start_time": "2026-11-28T11:00:00Z", "end_time": "2026-11-28T11:59:00Z"}


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def xsim(sim: Any) -> Any:
    sim.configure({"x": {"tweets_per_hour": 30, "reply_ratio": 0.3}})
    return sim


@pytest.fixture
def hook(xsim: Any, waits: list[float]) -> XHook:
    return XHook(sleep=waits.append, jitter=0)  # exact backoff waits


def _tweets(pages: list[Any]) -> list[dict[str, Any]]:
    return [t for p in pages for t in json.loads(p.body).get("data", [])]


def _conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **changes: Any) -> str:
    conn = json.loads(os.environ["AIRFLOW_CONN_X_DEFAULT"])
    extra = {**conn["extra"], **changes.pop("extra", {})}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({**conn, **changes, "extra": extra}))
    return conn_id


def test_pages_through_the_window_and_stops(hook: XHook, xsim: Any) -> None:
    pages = list(hook.iter_pages(PYTHON, W))
    assert len(pages) == 3  # 30 tweets an hour, 10 a page
    assert [p.page_no for p in pages] == [0, 1, 2]
    assert all(p.next_cursor for p in pages[:-1]) and pages[-1].next_cursor is None
    assert [p.item_count for p in pages] == [10, 10, 10]
    tweets = _tweets(pages)
    created = [t["created_at"] for t in tweets]
    assert created == sorted(created, reverse=True)
    assert W.start.isoformat().replace("+00:00", "") <= created[-1] and created[0] < "2026-11-28T11:59:48"
    assert len({t["id"] for t in tweets}) == 30
    assert xsim.stats()["x"]["served_count"] == 30
    # The simulator's clock is 12:00:00, so X refuses end_time 12:00: the window is cut at X's Date - 12 s.
    assert {p.params["end_time"] for p in pages} == {"2026-11-28T11:59:48Z"}
    assert pages[1].params["next_token"] == pages[0].next_cursor
    assert hook.gaps == [
        Gap(PYTHON.key, datetime(2026, 11, 28, 11, 59, 48, tzinfo=UTC), W.end, "not_yet_available")
    ]
    headers = {k.lower(): v for k, v in pages[0].headers.items()}
    assert headers["x-rate-limit-limit"] == "450" and "x-rate-limit-reset" in headers
    assert xsim.stats()["x"]["by_status"] == {"400": 1, "200": 3}


def test_resume_from_a_cursor(hook: XHook) -> None:
    pages = list(hook.iter_pages(PYTHON, W))
    resumed = list(hook.iter_pages(PYTHON, W, cursor=pages[0].next_cursor, page_no=1))
    assert [p.page_no for p in resumed] == [1, 2]
    assert [p.sha256 for p in resumed] == [p.sha256 for p in pages[1:]]


def test_a_window_with_no_tweets_gives_one_empty_page(hook: XHook, xsim: Any) -> None:
    xsim.configure({"x": {"tweets_per_hour": 0}})
    [page] = list(hook.iter_pages(PYTHON, W))
    assert (page.is_valid, page.item_count, page.next_cursor) == (True, 0, None)
    assert json.loads(page.body) == {"meta": {"result_count": 0}}


def test_a_window_beyond_the_7_day_reach_yields_nothing(
    hook: XHook, xsim: Any, caplog: pytest.LogCaptureFixture
) -> None:
    old = Window(NOW - timedelta(days=8), NOW - timedelta(days=8) + timedelta(hours=1))
    with caplog.at_level(logging.WARNING, logger="pulse.hooks.x"):
        assert list(hook.iter_pages(PYTHON, old)) == []
    assert "beyond recent search's 7-day reach" in caplog.text
    assert "must be on or after 2026-11-21T12:00Z" in caplog.text
    assert hook.gaps == [Gap(PYTHON.key, old.start, old.end, "beyond_reach")]
    stats = xsim.stats()["x"]
    assert stats["by_status"] == {"400": 1} and stats["served_count"] == 0


def test_a_window_partly_beyond_reach_is_clipped(hook: XHook, xsim: Any) -> None:
    edge = NOW - timedelta(days=7)
    window = Window(edge - timedelta(hours=1), edge + timedelta(hours=1))
    pages = list(hook.iter_pages(PYTHON, window))
    assert {p.params["start_time"] for p in pages} == {"2026-11-21T12:02:00Z"}
    assert {p.params["end_time"] for p in pages} == {"2026-11-21T13:00:00Z"}
    created = [t["created_at"] for t in _tweets(pages)]
    assert created and min(created) >= "2026-11-21T12:02:00"
    assert hook.gaps == [Gap(PYTHON.key, window.start, edge + timedelta(minutes=2), "beyond_reach")]


def test_a_window_that_just_ended_is_waited_for(xsim: Any, waits: list[float]) -> None:
    # By the local clock the window ended 3 s ago: X needs 10 s (+2 s margin), so the hook waits 9 s first.
    hook = XHook(sleep=waits.append, clock=lambda: W.end + timedelta(seconds=3))
    pages = list(hook.iter_pages(PYTHON, W))
    assert waits == [9.0]
    assert pages[-1].next_cursor is None


def test_429_waits_for_the_rate_limit_reset(hook: XHook, xsim: Any, waits: list[float]) -> None:
    xsim.configure({"x": {"rate_limit": {"count": 2, "retry_after": 7}}})
    page = hook.fetch_page(PYTHON, 0, PARAMS)
    assert page.is_valid and page.item_count == 10
    assert waits == [7.0, 7.0]  # x-rate-limit-reset (epoch) minus the server's Date
    assert xsim.stats()["x"]["by_status"] == {"429": 2, "200": 1}


def test_429_honours_retry_after_and_caps_the_wait(xsim: Any, waits: list[float]) -> None:
    xsim.configure({"x": {"rate_limit": {"count": 1, "retry_after": 5}, "retry_after_header": True}})
    XHook(sleep=waits.append).fetch_page(PYTHON, 0, PARAMS)
    xsim.configure({"x": {"rate_limit": {"count": 1, "retry_after": 900}}})
    XHook(sleep=waits.append, max_wait=30).fetch_page(PYTHON, 0, PARAMS)
    assert waits == [5.0, 30.0]


def test_endless_429_gives_up(hook: XHook, xsim: Any) -> None:
    xsim.configure({"x": {"rate_limit": {"count": 1000, "retry_after": 1}}})
    with pytest.raises(PageFetchError, match=r"stayed throttled after 4 attempts"):
        hook.fetch_page(PYTHON, 0, PARAMS)


def test_5xx_burst_is_retried_with_backoff(hook: XHook, xsim: Any, waits: list[float]) -> None:
    xsim.configure({"x": {"server_errors": {"count": 3, "status": 503}}})
    page = hook.fetch_page(PYTHON, 0, PARAMS)
    assert page.is_valid and page.item_count == 10
    assert waits == pytest.approx([0.2, 0.4, 0.8])
    assert xsim.stats()["x"]["by_status"] == {"503": 3, "200": 1}


def test_endless_5xx_gives_up_with_a_clear_error(hook: XHook, xsim: Any) -> None:
    xsim.configure({"x": {"server_errors": {"count": 1000, "status": 502}}})
    with pytest.raises(
        PageFetchError, match=r"page 0 \(search:python lang:en\) failed after 4 attempts: HTTP 502"
    ):
        hook.fetch_page(PYTHON, 0, PARAMS)


def test_rejected_token_names_the_connection(xsim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = _conn(monkeypatch, "x_bad", password="not-the-token")
    with pytest.raises(SourceAuthError, match=r"connection 'x_bad' \(HTTP 401"):
        list(XHook(conn_id, sleep=lambda s: None).iter_pages(PYTHON, W))
    assert xsim.stats()["x"]["by_status"] == {"401": 1}


def test_forbidden_is_an_auth_error(hook: XHook, xsim: Any) -> None:
    xsim.configure({"x": {"forbidden": True}})
    with pytest.raises(SourceAuthError, match=r"connection 'x_default' \(HTTP 403"):
        hook.fetch_page(PYTHON, 0, PARAMS)


def test_page_that_stays_malformed_raises_with_the_page(hook: XHook, xsim: Any) -> None:
    xsim.configure({"x": {"malformed": {"always": True}}})
    with pytest.raises(MalformedPageError, match="stayed malformed after 4 attempts") as err:
        hook.fetch_page(PYTHON, 0, PARAMS)
    page = err.value.page
    assert page is not None and page.is_valid is False and page.status_code == 200
    assert "not JSON" in (page.error or "") and page.body.startswith(b'{"data": [')


def test_a_malformed_page_is_retried(hook: XHook, xsim: Any, waits: list[float]) -> None:
    xsim.configure({"x": {"malformed": {"count": 1}}})
    page = hook.fetch_page(PYTHON, 0, PARAMS)
    assert page.is_valid and page.item_count == 10 and waits == [0.2]


def test_other_400s_fail_at_once(hook: XHook, xsim: Any, waits: list[float]) -> None:
    with pytest.raises(PageFetchError, match=r"HTTP 400 .*`max_results` query parameter value \[5\]"):
        hook.fetch_page(PYTHON, 0, {**PARAMS, "max_results": 5})
    assert waits == [] and xsim.stats()["x"]["by_status"] == {"400": 1}


def test_slow_responses_time_out_and_are_retried(xsim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = _conn(monkeypatch, "x_slow", extra={"timeout": 0.3, "max_attempts": 2})
    xsim.configure({"x": {"latency_ms": 1500}})
    with pytest.raises(PageFetchError, match="failed after 2 attempts: network error"):
        XHook(conn_id, sleep=lambda s: None).fetch_page(PYTHON, 0, PARAMS)


def test_server_time_reads_the_last_date() -> None:
    class R:
        headers = {"date": "Sat, 28 Nov 2026 12:46:52 GMT, Sat, 28 Nov 2026 12:00:00 GMT"}

    assert server_time(R()) == NOW  # type: ignore[arg-type]
    R.headers = {"date": "Fri, 07 Oct 2022 22:43:19 UTC"}  # how api.twitter.com writes it
    assert server_time(R()) == datetime(2022, 10, 7, 22, 43, 19, tzinfo=UTC)  # type: ignore[arg-type]
    R.headers = {}
    assert server_time(R()) is None  # type: ignore[arg-type]


def test_only_recent_search_is_paged(hook: XHook) -> None:
    with pytest.raises(ValueError, match=SEARCH_RECENT):
        hook.fetch_page(Stream("x", "/2/tweets"), 0, {"query": "a"})


def test_test_connection(hook: XHook, monkeypatch: pytest.MonkeyPatch) -> None:
    assert hook.test_connection() == (True, "Connection successfully tested")
    bad = XHook(_conn(monkeypatch, "x_bad2", password="nope"))
    ok, message = bad.test_connection()
    assert not ok and "401" in message
