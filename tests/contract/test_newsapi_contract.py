"""Contract: the simulator's NewsAPI answers have the shape of real recorded NewsAPI responses, and the real
recorded responses go through the real hook and parser.

The recorded responses are third-party data kept outside the repo, in ``<shared>/payloads/newsapi``
(``PULSE_SHARED_DIR`` or ``<repo>/../shared``); they are read from there at test time, never copied.

Shape: for each recorded body the simulator's answer to the same call must carry every key the real body
carries (at every level, list elements merged), with a compatible JSON type (null on either side is
compatible, bool is not a number); over a large sample, every type a real field shows (a null ``author``, a
string ``source.id``...) must show up in the simulator too. Error bodies must be the real ones, up to the
numbers and dates inside the message.

Playback: a tiny local HTTP server answers with the recorded bytes; ``NewsApiHook.fetch_page`` /
``iter_pages`` fetch them through a connection pointing at it, and ``parse_page`` turns them into documents.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from dev.simulator import SimulatorServer
from pulse.hooks.newsapi import NewsApiHook
from pulse.privacy import make_pseudonymizer
from pulse.sources.base import Document, PageFetchError, SourceAuthError, StoredPage, Stream
from pulse.sources.newsapi import parse_page
from pulse.windows import Window
from tests.contract.conftest import StartReplay
from tests.contract.replay import NOW, Answer, ReplayServer, Request, header_rows, load_json, recordings
from tests.contract.shapes import conformance_problems, missing_types, shape_of

NEWSAPI = recordings("newsapi", "NewsAPI")

KEY = {"X-Api-Key": "sim-newsapi-key"}
PSEUDO = make_pseudonymizer("newsapi", key=b"k")


def load(name: str) -> Any:
    return load_json(NEWSAPI, name)


def header_names() -> set[str]:
    """The header names HEADERS.md lists (those of the recorded 426)."""
    return {name.lower() for name in header_rows(NEWSAPI, name=r"[A-Za-z0-9-]+")}


def numbers_out(text: str) -> str:
    return re.sub(r"\d+", "N", text)


def get(
    http: requests.Session, server: SimulatorServer, path: str, headers: Any = None, **params: Any
) -> Any:
    return http.get(f"{server.url}{path}", params=params, headers=KEY if headers is None else headers)


# ------------------------------------------------------------------------------------------------
# the checker itself must be able to fail
# ------------------------------------------------------------------------------------------------


def test_checker_reports_missing_and_mistyped_keys() -> None:
    real = shape_of({"articles": [{"url": "a", "source": {"id": None, "name": "x"}, "n": 1}], "total": 3})
    assert conformance_problems(real, {"articles": [], "total": 1}) == []
    good = {"articles": [{"url": "b", "source": {"id": "i", "name": "y"}, "n": 2.5}], "total": 0}
    assert conformance_problems(real, good) == []
    bad = {"articles": [{"url": 5, "source": {"id": 1}, "n": True}]}
    assert conformance_problems(real, bad) == [
        "$.articles[*].n: type bool, real data has ['number']",
        "$.articles[*].source.name: missing",
        "$.articles[*].url: type number, real data has ['string']",
        "$.total: missing",
    ]
    assert missing_types(shape_of({"a": None}, {"a": "x"}), shape_of({"a": "y"})) == ["$.a: never null"]


# ------------------------------------------------------------------------------------------------
# the simulator against the recordings
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recording", "path", "params"),
    [
        (
            "everything_crypto.json",
            "/v2/everything",
            {"q": "bitcoin", "sortBy": "publishedAt", "language": "en"},
        ),
        (
            "top_headlines_us_technology.json",
            "/v2/top-headlines",
            {"country": "us", "category": "technology"},
        ),
    ],
)
def test_pages_match_recording(
    http: requests.Session, server: SimulatorServer, recording: str, path: str, params: dict[str, Any]
) -> None:
    real = load(recording)
    resp = get(http, server, path, pageSize=100, **params)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    body = resp.json()
    assert body["articles"], "compare real articles, not an empty list"
    problems = conformance_problems(shape_of(real), body)
    assert not problems, f"simulator {path} differs from {recording}:\n" + "\n".join(problems)
    # every article carries every key of a real article, and the fields vary like the real ones do
    assert all(list(a) == list(real["articles"][0]) for a in body["articles"])
    gaps = missing_types(shape_of(*real["articles"]), shape_of(*body["articles"]))
    assert not gaps, f"simulator {path} never shows some real variants:\n" + "\n".join(gaps)


def test_empty_page_matches_recording(http: requests.Session, server: SimulatorServer) -> None:
    resp = get(http, server, "/v2/everything", q="bitcoin", **{"from": "2026-11-28T12:00:00", "to": NOW})
    assert resp.status_code == 200
    assert resp.json() == load("everything_empty.json")


def test_error_bodies_match_recording(http: requests.Session, server: SimulatorServer) -> None:
    resp = get(http, server, "/v2/everything", headers={"X-Api-Key": "wrong"}, q="bitcoin")
    assert resp.status_code == 401 and resp.json() == load("error_401_api_key_invalid.json")

    server.configure({"newsapi": {"rate_limit": {"count": 1}}})
    try:
        resp = get(http, server, "/v2/everything", q="bitcoin")
    finally:
        server.reset()
    assert resp.status_code == 429 and resp.json() == load("error_429_rate_limited.json")
    assert "retry-after" not in resp.headers, "NewsAPI sends no Retry-After"

    for recording, status, params in (
        ("error_426_maximum_results_reached.json", 426, {"pageSize": 90, "page": 2}),
        ("error_400_parameter_invalid_too_old.json", 400, {"from": "2026-10-01"}),
    ):
        real = load(recording)
        resp = get(http, server, "/v2/everything", q="bitcoin", **params)
        body = resp.json()
        assert resp.status_code == status
        assert (list(body), body["status"], body["code"]) == (list(real), real["status"], real["code"])
        assert numbers_out(body["message"]) == numbers_out(real["message"])
    assert (
        "results 90 to 180"
        in get(http, server, "/v2/everything", q="b", pageSize=90, page=2).json()["message"]
    )


def test_headers_match_recording(http: requests.Session, server: SimulatorServer) -> None:
    recorded = header_names() - {"server", "content-length"}  # Server: the simulator's own HTTP server
    assert {"cache-control", "x-cached-result", "cf-cache-status", "content-type"} <= recorded
    for resp in (
        get(http, server, "/v2/everything", q="bitcoin", pageSize=5),
        get(http, server, "/v2/everything", q="bitcoin", pageSize=100, page=2),
        get(http, server, "/v2/top-headlines", country="us", pageSize=5),
    ):
        missing = recorded - {k.lower() for k in resp.headers}
        assert not missing, f"HTTP {resp.status_code} lacks recorded headers {sorted(missing)}"
        assert resp.headers["content-type"] == "application/json; charset=utf-8"
        assert not {h for h in resp.headers if "ratelimit" in h.lower()}, (
            "NewsAPI sends no rate-limit headers"
        )


# ------------------------------------------------------------------------------------------------
# the recordings through the real hook and parser
# ------------------------------------------------------------------------------------------------

#: What the playback server answers, by query (``q``, or ``country`` for headlines) and page number.
PLAYBACK: dict[tuple[str, str], tuple[int, str]] = {
    ("crypto", "1"): (200, "everything_crypto.json"),
    ("nothing", "1"): (200, "everything_empty.json"),
    ("us", "1"): (200, "top_headlines_us_technology.json"),
    ("capped", "1"): (200, "everything_crypto.json"),
    ("capped", "2"): (426, "error_426_maximum_results_reached.json"),
    ("old", "1"): (400, "error_400_parameter_invalid_too_old.json"),
    ("badkey", "1"): (401, "error_401_api_key_invalid.json"),
    ("busy", "1"): (429, "error_429_rate_limited.json"),
}


class Playback:
    """The replay server answering by :data:`PLAYBACK`; ``seen`` lists (path, query, headers) of each request."""

    def __init__(self, server: ReplayServer) -> None:
        self.server = server
        self.url = server.url

    @property
    def seen(self) -> list[tuple[str, dict[str, str], dict[str, str]]]:
        return [(request.path, request.query, request.headers) for request in self.server.requests]


def _answer(request: Request) -> Answer:
    query = request.query
    status, name = PLAYBACK.get(
        (query.get("q") or query.get("country", ""), query.get("page", "1")), (404, "")
    )
    body = (NEWSAPI / name).read_bytes() if name else b'{"status": "error", "code": "x"}'
    return status, {"Content-Type": "application/json; charset=utf-8"}, body


@pytest.fixture
def playback(replay: StartReplay) -> Playback:
    return Playback(
        replay(
            "newsapi_replay",
            conn_type="http",
            password="replay-key",
            extra={"timeout": 5, "max_attempts": 3, "backoff": 0.1, "jitter": 0},
            respond=_answer,
        )
    )


@pytest.fixture
def replay_hook(playback: Playback) -> tuple[NewsApiHook, list[float]]:
    waits: list[float] = []
    return NewsApiHook("newsapi_replay", sleep=waits.append), waits


def _everything(q: str, size: int = 20) -> Stream:
    return Stream(key=f"everything:{q}", endpoint="/v2/everything", params={"q": q, "pageSize": size})


def _stored(page: Any) -> StoredPage:
    return StoredPage(id=1, source="newsapi", stream=page.stream.key, endpoint=page.endpoint, body=page.text)


def test_real_everything_page_through_hook_and_parser(
    replay_hook: tuple[NewsApiHook, list[float]], playback: Playback
) -> None:
    hook, _ = replay_hook
    stream = _everything("crypto")
    page = hook.fetch_page(stream, 0, {**stream.params, "page": 1})
    assert page.body == (NEWSAPI / "everything_crypto.json").read_bytes(), "raw keeps the bytes as received"
    assert (page.status_code, page.is_valid, page.item_count, page.next_cursor) == (200, True, 20, "2")
    docs = [o for _, o in parse_page(_stored(page), PSEUDO, datetime(2026, 11, 28, tzinfo=UTC))]
    assert len(docs) == 20 and all(isinstance(d, Document) for d in docs)
    real = load("everything_crypto.json")["articles"]
    assert [d.external_id for d in docs] == [a["url"] for a in real]
    assert docs[2].channel == "Slashdot.org" and docs[2].author_pseudonym == PSEUDO("greeceplate5")
    assert docs[2].payload == {
        "source_id": None,
        "source_name": "Slashdot.org",
        "url_to_image": None,
        "query": "crypto",
    }
    path, query, headers = playback.seen[0]
    assert path == "/v2/everything" and query == {"q": "crypto", "pageSize": "20", "page": "1"}
    assert headers.get("X-Api-Key") == "replay-key" and "Authorization" not in headers


def test_real_headlines_and_empty_pages_through_hook_and_parser(
    replay_hook: tuple[NewsApiHook, list[float]],
) -> None:
    hook, _ = replay_hook
    headlines = Stream(
        key="top-headlines:us/technology", endpoint="/v2/top-headlines", params={"country": "us"}
    )
    page = hook.fetch_page(headlines, 0, {**headlines.params, "pageSize": 6, "page": 1})
    assert (page.item_count, page.next_cursor) == (6, "2")  # 6 of totalResults 70
    docs = [o for _, o in parse_page(_stored(page), PSEUDO, datetime(2026, 11, 28, tzinfo=UTC))]
    assert [d.channel for d in docs if isinstance(d, Document)] == [
        "Nintendo Life",
        "Rolling Stone",
        "Nintendo Life",
        "Google News",
        "ComicBook.com",
        "CNET",
    ]
    window = Window(datetime(2026, 11, 28, 11, tzinfo=UTC), datetime(2026, 11, 28, 12, tzinfo=UTC))
    [empty] = list(hook.iter_pages(_everything("nothing"), window))
    assert (empty.status_code, empty.item_count, empty.next_cursor) == (200, 0, None)
    assert list(parse_page(_stored(empty), PSEUDO, datetime(2026, 11, 28, tzinfo=UTC))) == []


def test_real_plan_limits_end_the_stream_cleanly(replay_hook: tuple[NewsApiHook, list[float]]) -> None:
    hook, waits = replay_hook
    window = Window(datetime(2026, 11, 28, 11, tzinfo=UTC), datetime(2026, 11, 28, 12, tzinfo=UTC))
    first, capped = list(hook.iter_pages(_everything("capped"), window))
    assert (first.item_count, first.next_cursor) == (20, "2")
    assert (capped.status_code, capped.is_valid, capped.item_count, capped.next_cursor) == (
        426,
        True,
        0,
        None,
    )
    assert (
        capped.error is not None and "Developer accounts are limited to a max of 100 results" in capped.error
    )
    assert list(parse_page(_stored(capped), PSEUDO, datetime(2026, 11, 28, tzinfo=UTC))) == []
    [old] = list(hook.iter_pages(_everything("old"), window))
    assert (old.status_code, old.item_count, old.next_cursor) == (400, 0, None)
    assert old.error is not None and old.error.startswith("beyond reach") and "2019-07-07" in old.error
    assert waits == [], "plan limits are not retried"


def test_real_error_answers_through_the_hook(
    replay_hook: tuple[NewsApiHook, list[float]], playback: Playback
) -> None:
    hook, waits = replay_hook
    stream = _everything("badkey")
    with pytest.raises(SourceAuthError, match=r"'newsapi_replay' \(HTTP 401 on /v2/everything apiKeyInvalid"):
        hook.fetch_page(stream, 0, {**stream.params, "page": 1})
    assert len(playback.seen) == 1
    stream = _everything("busy")
    with pytest.raises(PageFetchError, match=r"failed after 3 attempts: HTTP 429 \(rateLimited\)"):
        hook.fetch_page(stream, 0, {**stream.params, "page": 1})
    assert waits == pytest.approx([0.1, 0.2])  # no Retry-After from NewsAPI: backoff
    assert len(playback.seen) == 4
