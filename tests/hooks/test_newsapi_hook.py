"""NewsApiHook against the simulator over real HTTP: paging, windows, plan limits, throttling, 5xx, credentials."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from pulse.hooks.newsapi import NewsApiHook
from pulse.sources.base import MalformedPageError, PageFetchError, SourceAuthError, Stream
from pulse.sources.newsapi import NewsApiConfig, parse_config, plan_streams
from pulse.windows import Window
from tests.conftest import SIM_NOW, WINDOW

W = Window(datetime.fromisoformat(WINDOW[0]), datetime.fromisoformat(WINDOW[1]))
NOW = datetime.fromisoformat(SIM_NOW)
CONFIG: NewsApiConfig = parse_config(
    {"queries": ["bitcoin"], "top_headlines": [{"country": "us", "category": "technology"}], "page_size": 10},
    "newsapi",
)
#: The simulator's volume settings these tests rely on (volume survives ``sim.reset()``, so set it).
VOLUME = {
    "api_key": "sim-newsapi-key",
    "articles_per_hour": 24,
    "headlines_per_hour": 4,
    "headlines_total": 38,
    "max_results": 100,
    "plan_horizon_days": 30,
}


def streams(window: Window = W) -> tuple[Stream, Stream]:
    everything, headlines = plan_streams(CONFIG, window)
    return everything, headlines


@pytest.fixture
def news(sim: Any) -> Iterator[Any]:
    sim.configure({"newsapi": VOLUME})
    yield sim
    sim.configure({"newsapi": VOLUME})


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def hook(news: Any, waits: list[float]) -> NewsApiHook:
    return NewsApiHook(sleep=waits.append, now=lambda: NOW, jitter=0)  # exact backoff waits


def _conn_variant(monkeypatch: pytest.MonkeyPatch, conn_id: str, **changes: Any) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_NEWSAPI_DEFAULT"])
    extra = {**conn["extra"], **changes.pop("extra", {})}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({**conn, **changes, "extra": extra}))


def _articles(page: Any) -> list[dict[str, Any]]:
    return json.loads(page.body)["articles"]


def test_everything_pages_through_the_window_and_stops(hook: NewsApiHook, news: Any) -> None:
    everything, _ = streams()
    pages = list(hook.iter_pages(everything, W))
    assert [p.page_no for p in pages] == [0, 1, 2]
    assert [p.params["page"] for p in pages] == [1, 2, 3]
    assert [p.item_count for p in pages] == [10, 10, 4]
    assert [p.next_cursor for p in pages] == ["2", "3", None]
    assert all(p.status_code == 200 and p.is_valid and p.error is None for p in pages)
    published = [a["publishedAt"] for p in pages for a in _articles(p)]
    assert published == sorted(published, reverse=True)
    assert published[0] < "2026-11-28T12:00:00Z" and published[-1] >= "2026-11-28T11:00:00Z"
    assert pages[0].params["from"] == "2026-11-28T11:00:00" and pages[0].params["to"] == "2026-11-28T12:00:00"
    assert "horizon_days" not in pages[0].params, "control params are not sent"
    assert all(p.oldest_created is None for p in pages), "a stream that ended normally has no listing-cap gap"
    assert json.loads(pages[0].body)["totalResults"] == 24
    assert news.stats()["newsapi"]["served_count"] == 24
    # the key travels as a header only: nothing of it in what raw stores
    assert "sim-newsapi-key" not in json.dumps(pages[0].params) + json.dumps(pages[0].headers)
    assert pages[0].headers["Content-Type"] == "application/json; charset=utf-8"


def test_the_key_is_sent_as_a_header_not_in_the_url(hook: NewsApiHook) -> None:
    resp = hook._get("/v2/everything", {"q": "bitcoin", "pageSize": 1})
    assert resp.status_code == 200
    assert "sim-newsapi-key" not in resp.url and "apiKey" not in resp.url
    assert resp.request.headers["X-Api-Key"] == "sim-newsapi-key"
    assert "Authorization" not in resp.request.headers
    assert not {"max_attempts", "backoff", "timeout"} & {k.lower() for k in resp.request.headers}


def test_the_window_given_bounds_the_search(hook: NewsApiHook, news: Any) -> None:
    everything, _ = streams()  # planned for W
    half = Window(W.start + timedelta(minutes=30), W.end)
    pages = list(hook.iter_pages(everything, half))
    assert (pages[0].params["from"], pages[0].params["to"]) == ("2026-11-28T11:30:00", "2026-11-28T12:00:00")
    published = [a["publishedAt"] for p in pages for a in _articles(p)]
    assert published and min(published) >= "2026-11-28T11:30:00Z"
    assert len(published) < 24


def test_resume_from_a_cursor(hook: NewsApiHook) -> None:
    everything, _ = streams()
    pages = list(hook.iter_pages(everything, W))
    resumed = list(hook.iter_pages(everything, W, cursor=pages[0].next_cursor, page_no=1))
    assert [(p.page_no, p.sha256) for p in resumed] == [(p.page_no, p.sha256) for p in pages[1:]]


def test_an_empty_window_is_one_valid_empty_page(hook: NewsApiHook, news: Any) -> None:
    news.configure({"newsapi": {"articles_per_hour": 0}})
    everything, _ = streams()
    [page] = list(hook.iter_pages(everything, W))
    assert page.is_valid and page.item_count == 0 and page.next_cursor is None
    assert json.loads(page.body) == {"status": "ok", "totalResults": 0, "articles": []}


def test_top_headlines_are_current_whatever_the_window(hook: NewsApiHook, news: Any) -> None:
    _, headlines = streams()
    pages = list(hook.iter_pages(headlines, W))
    assert [p.item_count for p in pages] == [10, 10, 10, 8]
    assert pages[0].params == {"country": "us", "category": "technology", "pageSize": 10, "page": 1}
    assert all(a["title"].endswith(" - " + a["source"]["name"]) for p in pages for a in _articles(p))
    assert news.stats()["newsapi"]["served_count"] == 38


def test_top_headlines_skip_a_past_window_without_asking(news: Any, waits: list[float]) -> None:
    _, headlines = streams()
    later = NewsApiHook(sleep=waits.append, now=lambda: NOW + timedelta(hours=4))
    assert list(later.iter_pages(headlines, W)) == []
    assert news.stats()["newsapi"]["requests"] == 0
    late_but_current = NewsApiHook(sleep=waits.append, now=lambda: NOW + timedelta(hours=2))
    assert len(list(late_but_current.iter_pages(headlines, W))) == 4


def test_plan_cap_426_ends_the_stream_cleanly(hook: NewsApiHook, news: Any) -> None:
    news.configure({"newsapi": {"articles_per_hour": 150}})
    everything, _ = streams()
    pages = list(hook.iter_pages(everything, W))
    assert len(pages) == 11
    assert [p.item_count for p in pages[:10]] == [10] * 10 and all(p.next_cursor for p in pages[:10])
    last = pages[-1]
    assert (last.status_code, last.is_valid, last.item_count, last.next_cursor) == (426, True, 0, None)
    assert last.error is not None and last.error.startswith("plan cap reached")
    assert json.loads(last.body)["code"] == "maximumResultsReached"
    assert news.stats()["newsapi"]["by_status"] == {"200": 10, "426": 1}
    # how far back the stream got: the oldest article served, well after the window start
    oldest = min(a["publishedAt"] for a in _articles(pages[9]))
    assert last.oldest_created == datetime.fromisoformat(oldest).timestamp() > W.start.timestamp()


def test_max_results_extra_stops_at_the_cap_without_a_426(
    news: Any, waits: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    _conn_variant(monkeypatch, "newsapi_capped", extra={"max_results": 50})
    news.configure({"newsapi": {"articles_per_hour": 150}})
    everything, _ = streams()
    pages = list(NewsApiHook("newsapi_capped", sleep=waits.append).iter_pages(everything, W))
    assert len(pages) == 5 and pages[-1].next_cursor is None and pages[-1].status_code == 200
    assert news.stats()["newsapi"]["by_status"] == {"200": 5}
    oldest = min(a["publishedAt"] for a in _articles(pages[-1]))
    assert pages[-1].oldest_created == datetime.fromisoformat(oldest).timestamp() > W.start.timestamp()
    assert all(p.oldest_created is None for p in pages[:-1])


def test_window_beyond_the_plan_horizon_ends_the_stream_with_a_warning(
    hook: NewsApiHook, news: Any, caplog: pytest.LogCaptureFixture
) -> None:
    old = Window(W.start - timedelta(days=40), W.end - timedelta(days=40))
    everything, _ = streams(old)
    [page] = list(hook.iter_pages(everything, old))
    assert (page.status_code, page.is_valid, page.item_count, page.next_cursor) == (400, True, 0, None)
    assert page.error is not None and page.error.startswith("beyond reach")
    assert "as far back as 2026-10-29" in page.error
    assert any("beyond reach" in r.getMessage() for r in caplog.records)


def test_429_waits_for_retry_after(hook: NewsApiHook, news: Any, waits: list[float]) -> None:
    news.configure({"newsapi": {"rate_limit": {"count": 2, "retry_after": 2}}})
    everything, _ = streams()
    page = hook.fetch_page(everything, 0, {**everything.params, "page": 1})
    assert page.is_valid and page.item_count == 10
    assert waits == [2.0, 2.0]


def test_429_without_retry_after_backs_off(hook: NewsApiHook, news: Any, waits: list[float]) -> None:
    news.configure({"newsapi": {"rate_limit": {"count": 2}}})
    everything, _ = streams()
    page = hook.fetch_page(everything, 0, {**everything.params, "page": 1})
    assert page.is_valid
    assert waits == pytest.approx([0.2, 0.4])
    assert news.stats()["newsapi"]["by_status"] == {"429": 2, "200": 1}


def test_5xx_burst_is_retried(hook: NewsApiHook, news: Any) -> None:
    news.configure({"newsapi": {"server_errors": {"count": 2, "status": 500}}})
    everything, _ = streams()
    assert hook.fetch_page(everything, 0, {**everything.params, "page": 1}).is_valid
    news.configure({"newsapi": {"server_errors": {"count": 3, "status": 503}}})
    assert hook.fetch_page(everything, 0, {**everything.params, "page": 1}).is_valid
    assert news.stats()["newsapi"]["by_status"] == {"500": 2, "503": 3, "200": 2}


def test_endless_5xx_gives_up_with_a_clear_error(hook: NewsApiHook, news: Any) -> None:
    news.configure({"newsapi": {"server_errors": {"count": 1000, "status": 502}}})
    everything, _ = streams()
    with pytest.raises(PageFetchError, match=r"/v2/everything page 0 failed after 4 attempts: HTTP 502"):
        hook.fetch_page(everything, 0, {**everything.params, "page": 1})


def test_rejected_key_names_the_connection(news: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _conn_variant(monkeypatch, "newsapi_bad", password="nope")
    everything, _ = streams()
    with pytest.raises(SourceAuthError, match=r"connection 'newsapi_bad' \(HTTP 401 .*apiKeyInvalid"):
        NewsApiHook("newsapi_bad", sleep=lambda s: None).fetch_page(everything, 0, everything.params)
    assert news.stats()["newsapi"]["by_status"] == {"401": 1}, "a rejected key is not retried"


def test_missing_key_is_an_auth_error_before_any_request(news: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _conn_variant(monkeypatch, "newsapi_nokey", password="")
    everything, _ = streams()
    with pytest.raises(SourceAuthError, match=r"connection 'newsapi_nokey' has no NewsAPI key"):
        NewsApiHook("newsapi_nokey").fetch_page(everything, 0, everything.params)
    assert news.stats()["newsapi"]["requests"] == 0


def test_other_4xx_fails_without_retries(hook: NewsApiHook, news: Any) -> None:
    bad = Stream(key="everything:", endpoint="/v2/everything", params={"pageSize": 10})
    with pytest.raises(PageFetchError, match=r"HTTP 400 for /v2/everything: parametersMissing"):
        hook.fetch_page(bad, 0, bad.params)
    assert news.stats()["newsapi"]["requests"] == 1


def test_html_error_page_with_status_200_is_retried(hook: NewsApiHook, news: Any, waits: list[float]) -> None:
    news.configure({"newsapi": {"html_pages": {"count": 2}}})
    everything, _ = streams()
    page = hook.fetch_page(everything, 0, {**everything.params, "page": 1})
    assert page.is_valid and page.item_count == 10
    assert len(waits) == 2


def test_page_that_stays_malformed_raises_with_the_page(hook: NewsApiHook, news: Any) -> None:
    news.configure({"newsapi": {"html_pages": {"always": True}}})
    everything, _ = streams()
    with pytest.raises(MalformedPageError, match="stayed malformed after 4 attempts") as err:
        hook.fetch_page(everything, 0, {**everything.params, "page": 1})
    page = err.value.page
    assert page is not None and not page.is_valid and page.status_code == 200
    assert page.body.startswith(b"<!DOCTYPE html>") and "not JSON" in (page.error or "")
    news.configure({"newsapi": {"html_pages": {"always": False}, "malformed": {"always": True}}})
    with pytest.raises(MalformedPageError) as err:
        hook.fetch_page(everything, 0, {**everything.params, "page": 1})
    assert err.value.page is not None and err.value.page.body.startswith(b'{"status": "ok"')


def test_slow_responses_time_out_and_are_retried(news: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _conn_variant(monkeypatch, "newsapi_slow", extra={"timeout": 0.3, "max_attempts": 2})
    news.configure({"newsapi": {"latency_ms": 1500}})
    everything, _ = streams()
    with pytest.raises(PageFetchError, match="failed after 2 attempts: network error"):
        NewsApiHook("newsapi_slow", sleep=lambda s: None).fetch_page(everything, 0, everything.params)


def test_empty_host_means_the_real_api(news: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _conn_variant(monkeypatch, "newsapi_prod", host="", extra={"max_results": 100})
    hook = NewsApiHook("newsapi_prod")
    assert hook.client.url_from_endpoint("/v2/everything") == "https://newsapi.org/v2/everything"
    assert (hook.max_attempts, hook.backoff, hook.timeout, hook.max_results) == (4, 0.2, 5.0, 100)


def test_test_connection(news: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert NewsApiHook().test_connection() == (True, "Connection successfully tested")
    _conn_variant(monkeypatch, "newsapi_bad", password="nope")
    ok, message = NewsApiHook("newsapi_bad").test_connection()
    assert not ok and "401" in message and "apiKeyInvalid" in message
