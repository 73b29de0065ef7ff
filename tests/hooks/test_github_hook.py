"""GithubSourceHook against the simulator over real HTTP: paging, windows, limits, 5xx, credentials."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from pulse.hooks.github import GithubSourceHook
from pulse.sources.base import MalformedPageError, PageFetchError, SourceAuthError, Stream
from pulse.windows import Window
from tests.conftest import WINDOW

W = Window(datetime.fromisoformat(WINDOW[0]), datetime.fromisoformat(WINDOW[1]))
REPO = "apache/airflow"
EVENTS = Stream(key=f"events:{REPO}", endpoint=f"/repos/{REPO}/events", params={"per_page": 5})
ISSUES_PARAMS = {"state": "all", "since": "2026-11-28T11:00:00Z", "sort": "updated", "direction": "asc"}
ISSUES = Stream(
    key=f"issues:{REPO}", endpoint=f"/repos/{REPO}/issues", params={**ISSUES_PARAMS, "per_page": 3}
)
SNAPSHOT = Stream(key=f"repo:{REPO}@{W.end.isoformat()}", endpoint=f"/repos/{REPO}")
VOLUME = {
    "events_per_hour": 12,
    "issues_per_hour": 2,
    "events_cap": 300,
    "search_total": 57,
    "missing_repos": [],
}


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def gh(sim: Any) -> Any:
    sim.configure({"github": VOLUME})
    return sim


@pytest.fixture
def hook(gh: Any, waits: list[float]) -> GithubSourceHook:
    return GithubSourceHook(sleep=waits.append, jitter=0)  # exact backoff waits


def _items(pages: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in pages:
        body = json.loads(page.body)
        out.extend(body["items"] if isinstance(body, dict) and "items" in body else body)
    return out


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **changes: Any) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_GITHUB_DEFAULT"])
    extra = {**conn["extra"], **changes.pop("extra", {})}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({**conn, **changes, "extra": extra}))


# ------------------------------------------------------------------------------------------------ paging


def test_events_page_back_to_the_window_start_and_no_further(hook: GithubSourceHook, gh: Any) -> None:
    pages = list(hook.iter_pages(EVENTS, W))
    assert len(pages) == 3  # 12 events in the window, 5 a page: the third page reaches past the start
    assert [p.page_no for p in pages] == [0, 1, 2]
    assert all(p.next_cursor for p in pages[:-1]) and pages[-1].next_cursor is None
    # GitHub's next links point at /repositories/{id}/events; the cursor is that link, relative to the base URL
    assert pages[0].next_cursor.startswith("/repositories/") and "page=2" in pages[0].next_cursor
    assert pages[1].endpoint.startswith("/repositories/") and pages[1].params["page"] == "2"
    created = [_ts(e["created_at"]) for e in _items(pages)]
    assert created == sorted(created, reverse=True)
    assert min(created) < W.start.timestamp() <= min(created[:10])
    assert pages[0].oldest_created == min(created[:5])
    headers = {k.lower(): v for k, v in pages[0].headers.items()}
    assert headers["x-ratelimit-remaining"].isdigit() and 'rel="next"' in headers["link"]
    assert gh.stats()["github"]["served_count"] == 15


def test_resume_from_a_cursor(hook: GithubSourceHook) -> None:
    pages = list(hook.iter_pages(EVENTS, W))
    resumed = list(hook.iter_pages(EVENTS, W, cursor=pages[0].next_cursor, page_no=1))
    assert [p.page_no for p in resumed] == [1, 2]
    assert [p.sha256 for p in resumed] == [p.sha256 for p in pages[1:]]


def test_issues_since_the_window_start_in_update_order(hook: GithubSourceHook, gh: Any) -> None:
    pages = list(hook.iter_pages(ISSUES, W))
    assert len(pages) >= 2 and pages[-1].next_cursor is None
    items = _items(pages)
    updated = [_ts(i["updated_at"]) for i in items]
    assert updated == sorted(updated)
    assert min(updated) >= W.start.timestamp()
    # the same as one big page: nothing lost or repeated between pages
    everything = requests.get(
        f"{gh.url}/repos/{REPO}/issues", params={**ISSUES_PARAMS, "per_page": 100}, timeout=5
    ).json()
    assert [i["id"] for i in items] == [i["id"] for i in everything]
    assert any("pull_request" in i for i in items) or len(items) < 5


def test_issues_of_an_older_window_stop_at_its_end(hook: GithubSourceHook, gh: Any) -> None:
    older = Window(W.start - timedelta(hours=4), W.end - timedelta(hours=4))  # 07:00-08:00: 6 updates
    stream = Stream(
        key=ISSUES.key,
        endpoint=ISSUES.endpoint,
        params={**ISSUES_PARAMS, "since": "2026-11-28T07:00:00Z", "per_page": 3},
    )
    pages = list(hook.iter_pages(stream, older))
    last = pages[-1]
    assert last.next_cursor is None
    assert 'rel="next"' in {k.lower(): v for k, v in last.headers.items()}["link"], "GitHub had more pages"
    updated = [_ts(i["updated_at"]) for i in _items(pages)]
    assert max(updated) >= older.end.timestamp() > max(_ts(i["updated_at"]) for i in _items(pages[:-1]))


def test_search_stops_at_max_items_in_whole_pages(hook: GithubSourceHook, gh: Any) -> None:
    stream = Stream(
        key=f"search:topic:data-engineering@{W.end.isoformat()}",
        endpoint="/search/repositories",
        params={
            "q": "topic:data-engineering",
            "sort": "stars",
            "order": "desc",
            "per_page": 5,
            "max_items": 12,
        },
    )
    pages = list(hook.iter_pages(stream, W))
    assert [p.item_count for p in pages] == [5, 5, 5] and pages[-1].next_cursor is None
    assert "max_items" not in pages[0].params, "control params are not sent"
    stars = [r["stargazers_count"] for r in _items(pages)]
    assert stars == sorted(stars, reverse=True)
    assert json.loads(pages[0].body)["total_count"] == 57


def test_repository_snapshot_is_one_page(hook: GithubSourceHook) -> None:
    (page,) = list(hook.iter_pages(SNAPSHOT, W))
    body = json.loads(page.body)
    assert (page.item_count, page.next_cursor, body["full_name"]) == (1, None, REPO)
    assert body["url"].startswith("http://127.0.0.1:"), "API URLs point at the simulator, not api.github.com"


# ------------------------------------------------------------------------------------------------ limits


@pytest.mark.parametrize("kind", ["primary", "primary_429"])
def test_primary_rate_limit_waits_until_the_reset(
    hook: GithubSourceHook, gh: Any, waits: list[float], kind: str
) -> None:
    gh.configure({"github": {"rate_limit": {"count": 2, "retry_after": 3, "kind": kind}}})
    page = hook.fetch_page(SNAPSHOT, 0, {})
    assert page.is_valid and page.item_count == 1
    assert len(waits) == 2 and all(2.0 <= w <= 3.0 for w in waits), waits  # x-ratelimit-reset - Date
    assert gh.stats()["github"]["by_status"]["429" if kind == "primary_429" else "403"] == 2


def test_secondary_rate_limit_waits_for_retry_after(
    hook: GithubSourceHook, gh: Any, waits: list[float]
) -> None:
    gh.configure({"github": {"rate_limit": {"count": 2, "retry_after": 7, "kind": "secondary"}}})
    assert hook.fetch_page(SNAPSHOT, 0, {}).is_valid
    assert waits == [7.0, 7.0]


def test_a_long_wait_is_capped_by_max_wait(gh: Any, waits: list[float]) -> None:
    gh.configure({"github": {"rate_limit": {"count": 1, "retry_after": 3600, "kind": "secondary"}}})
    assert GithubSourceHook(max_wait=2.0, sleep=waits.append).fetch_page(SNAPSHOT, 0, {}).is_valid
    assert waits == [2.0]


def test_5xx_burst_is_retried(hook: GithubSourceHook, gh: Any, waits: list[float]) -> None:
    gh.configure({"github": {"server_errors": {"count": 3, "status": 502}}})
    assert hook.fetch_page(EVENTS, 0, {"per_page": 5}).item_count == 5
    assert gh.stats()["github"]["by_status"]["502"] == 3
    assert waits == pytest.approx([0.2, 0.4, 0.8])  # the connection's backoff extra, doubled per attempt


def test_endless_5xx_gives_up_with_a_clear_error(hook: GithubSourceHook, gh: Any) -> None:
    gh.configure({"github": {"server_errors": {"count": 1000, "status": 503}}})
    with pytest.raises(
        PageFetchError, match=rf"/repos/{REPO}/events page 0 failed after 4 attempts: HTTP 503"
    ):
        hook.fetch_page(EVENTS, 0, {"per_page": 5})


def test_missing_repository_is_not_retried(hook: GithubSourceHook, gh: Any) -> None:
    gh.configure({"github": {"missing_repos": [REPO]}})
    with pytest.raises(PageFetchError, match="HTTP 404"):
        hook.fetch_page(SNAPSHOT, 0, {})
    assert gh.stats()["github"]["requests"] == 1


# ------------------------------------------------------------------------------------------------ credentials


def test_wrong_token_names_the_connection(gh: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _connection(monkeypatch, "github_bad", password="nope")
    with pytest.raises(SourceAuthError, match=r"connection 'github_bad' \(HTTP 401 on .*Bad credentials"):
        GithubSourceHook("github_bad", sleep=lambda s: None).fetch_page(SNAPSHOT, 0, {})
    assert gh.stats()["github"]["requests"] == 1, "a 401 is not retried"


def test_plain_403_is_an_auth_error(hook: GithubSourceHook, gh: Any) -> None:
    gh.configure({"github": {"forbidden": True}})
    with pytest.raises(SourceAuthError, match=r"github_default' \(HTTP 403 .*not accessible"):
        hook.fetch_page(SNAPSHOT, 0, {})


def test_a_connection_without_token_is_an_auth_error(gh: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _connection(monkeypatch, "github_empty", password="")
    with pytest.raises(SourceAuthError, match="connection 'github_empty' has no usable GitHub credentials"):
        GithubSourceHook("github_empty").fetch_page(SNAPSHOT, 0, {})


def test_test_connection(gh: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = GithubSourceHook().test_connection()
    assert ok and "core requests left" in message
    _connection(monkeypatch, "github_bad", password="nope")
    ok, message = GithubSourceHook("github_bad").test_connection()
    assert not ok and "Bad credentials" in message


# ------------------------------------------------------------------------------------------------ bad bodies


def test_page_that_stays_malformed_raises_with_the_page(hook: GithubSourceHook, gh: Any) -> None:
    gh.configure({"github": {"malformed": {"always": True}}})
    with pytest.raises(
        MalformedPageError, match="stayed malformed after 4 attempts: body is not JSON"
    ) as err:
        hook.fetch_page(EVENTS, 0, {"per_page": 5})
    page = err.value.page
    assert page is not None and not page.is_valid and page.status_code == 200
    assert page.body.startswith(b"[{") and not page.body.endswith(b"]")


def test_html_page_with_status_200_is_retried(hook: GithubSourceHook, gh: Any, waits: list[float]) -> None:
    gh.configure({"github": {"html_pages": {"count": 2}}})
    page = hook.fetch_page(EVENTS, 0, {"per_page": 5})
    assert page.is_valid and page.item_count == 5 and len(waits) == 2


def test_slow_responses_time_out_and_are_retried(gh: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _connection(monkeypatch, "github_slow", extra={"timeout": 0.3, "max_attempts": 2})
    gh.configure({"github": {"latency_ms": 1500}})
    with pytest.raises(PageFetchError, match="network error"):
        GithubSourceHook("github_slow", sleep=lambda s: None).fetch_page(SNAPSHOT, 0, {})
