"""RedditHook against the simulator over real HTTP: paging, windows, throttling, 5xx, credentials."""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

import pytest

from pulse.hooks.reddit import PageFetchError, RedditHook
from pulse.sources.base import SourceAuthError, Stream
from pulse.windows import Window
from tests.conftest import WINDOW

W = Window(datetime.fromisoformat(WINDOW[0]), datetime.fromisoformat(WINDOW[1]))
NEW = Stream(key="new:python", endpoint="/r/python/new", params={"limit": 5})


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def hook(sim: Any, waits: list[float]) -> RedditHook:
    return RedditHook(sleep=waits.append)


def test_pages_back_to_the_window_start_and_no_further(hook: RedditHook, sim: Any) -> None:
    pages = list(hook.iter_pages(NEW, W))
    assert len(pages) >= 3
    assert [p.page_no for p in pages] == list(range(len(pages)))
    assert all(p.next_cursor for p in pages[:-1]) and pages[-1].next_cursor is None
    created = [c["data"]["created_utc"] for p in pages for c in json.loads(p.body)["data"]["children"]]
    assert created == sorted(created, reverse=True)
    assert min(created) < W.start.timestamp() <= min(created[:-5])  # stopped on the first page past the start
    assert "x-ratelimit-remaining" in {k.lower() for k in pages[0].headers}


def test_resume_from_a_cursor(hook: RedditHook) -> None:
    pages = list(hook.iter_pages(NEW, W))
    resumed = list(hook.iter_pages(NEW, W, cursor=pages[0].next_cursor, page_no=1))
    assert [p.sha256 for p in resumed] == [p.sha256 for p in pages[1:]]


def test_429_waits_for_retry_after(hook: RedditHook, sim: Any, waits: list[float]) -> None:
    sim.configure({"reddit": {"rate_limit": {"count": 2, "retry_after": 2}}})
    page = hook.fetch_page(NEW, 0, {"limit": 5, "raw_json": 1})
    assert page.is_valid and page.item_count == 5
    assert waits == [2.0, 2.0]


def test_5xx_burst_is_retried(hook: RedditHook, sim: Any) -> None:
    sim.configure({"reddit": {"server_errors": {"count": 4, "status": 503}}})
    page = hook.fetch_page(NEW, 0, {"limit": 5, "raw_json": 1})
    assert page.is_valid
    assert sim.stats()["reddit"]["by_status"]["503"] == 4


def test_endless_5xx_gives_up_with_a_clear_error(hook: RedditHook, sim: Any) -> None:
    sim.configure({"reddit": {"server_errors": {"count": 1000, "status": 502}}})
    with pytest.raises(PageFetchError, match=r"/r/python/new page 0 failed after 4 attempts: HTTP 502"):
        hook.fetch_page(NEW, 0, {"limit": 5})


def test_rejected_credentials_name_the_connection(sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_REDDIT_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_REDDIT_BAD", json.dumps({**conn, "password": "nope"}))
    with pytest.raises(SourceAuthError, match=r"connection 'reddit_bad' \(HTTP 401"):
        RedditHook("reddit_bad", sleep=lambda s: None).fetch_page(NEW, 0, {"limit": 5})


def test_forbidden_is_an_auth_error(hook: RedditHook, sim: Any) -> None:
    sim.configure({"reddit": {"forbidden": True}})
    with pytest.raises(SourceAuthError, match="HTTP 403"):
        hook.fetch_page(NEW, 0, {"limit": 5})


def test_slow_responses_time_out_and_are_retried(sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_REDDIT_DEFAULT"])
    monkeypatch.setenv(
        "AIRFLOW_CONN_REDDIT_SLOW",
        json.dumps({**conn, "extra": {**conn["extra"], "timeout": 0.3, "max_attempts": 2}}),
    )
    sim.configure({"reddit": {"latency_ms": 1500}})
    with pytest.raises(PageFetchError, match="network error"):
        RedditHook("reddit_slow", sleep=lambda s: None).fetch_page(NEW, 0, {"limit": 5})
