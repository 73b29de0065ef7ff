"""Contract: the simulator's X answers have the shape of real recorded X API v2 responses, and the real
recorded responses run through XHook and the parser.

The recorded responses are third-party data kept outside the repo, in ``<shared>/payloads/twitter``
(``PULSE_SHARED_DIR`` or ``<repo>/../shared``); they are read from there at test time, never copied.

Shape: for each recorded body the simulator's answer to the same call must carry every key the real body
carries wherever every real instance carries it (list elements are merged), with a compatible JSON type (null
on either side is compatible, int and float are compatible, bool is not a number). X leaves a tweet's
conditional fields out when they do not apply (``in_reply_to_user_id`` on a tweet that answers nobody,
``entities`` on a tweet without any...); the recordings are all replies, so those keys are checked as
optional, and the simulator must still produce each of them somewhere.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from dev.simulator import SimulatorServer
from tests.contract.conftest import StartReplay
from tests.contract.replay import NOW, Answer, header_rows, load_json, recordings
from tests.contract.shapes import Rules, Shape, shape_of
from tests.contract.shapes import conformance_problems as _conformance

TWITTER = recordings("twitter", "X")

TOKEN = "sim-x-bearer-token"
SEARCH = "/2/tweets/search/recent"

#: Tweet keys X sends only when they apply (conditional fields, API v2 data dictionary).
CONDITIONAL = {"in_reply_to_user_id", "referenced_tweets", "entities", "attachments", "geo", "withheld"}
#: Entity kinds appear only when the text has one.
ENTITY_KINDS = {"hashtags", "mentions", "urls", "cashtags", "annotations"}
#: Media and places are not simulated (Pulse does not request them); everything else conditional is.
NOT_SIMULATED = {"attachments", "geo"}
#: The fields and expansions of the docs example behind search_recent_with_expansions.json.
DOCS_EXAMPLE = {
    "tweet.fields": "attachments,author_id,created_at,entities,geo,id,in_reply_to_user_id,lang,"
    "possibly_sensitive,referenced_tweets,source,text",
    "user.fields": "created_at,description,id,name,username",
    "expansions": "author_id,referenced_tweets.id",
}


def _optional(path: str, key: str) -> bool:
    return key in CONDITIONAL or (path.endswith(".entities") and key in ENTITY_KINDS)


def conformance_problems(real: Shape, value: Any) -> list[str]:
    """The shared check, with X's conditional fields optional."""
    return _conformance(real, value, rules=Rules(optional=_optional))


def keys_at(value: Any, path: str) -> set[str]:
    """Every key of the objects at ``path`` (``data[*]``, ``data[*].entities``...) in ``value``."""
    found: set[str] = set()

    def walk(node: Any, parts: list[str]) -> None:
        if not parts:
            if isinstance(node, dict):
                found.update(node)
            return
        head, rest = parts[0], parts[1:]
        if head.endswith("[*]"):
            inner = node.get(head[:-3]) if isinstance(node, dict) else None
            for element in inner if isinstance(inner, list) else []:
                walk(element, rest)
        elif isinstance(node, dict) and head in node:
            walk(node[head], rest)

    walk(value, path.split("."))
    return found


def load(name: str) -> Any:
    return load_json(TWITTER, name)


def recorded_headers(section: str) -> dict[str, str]:
    """The headers listed in HEADERS.md for one recorded file (name -> value)."""
    return header_rows(TWITTER, section)


def search(http: requests.Session, server: SimulatorServer, token: str | None = TOKEN, **params: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http.get(f"{server.url}{SEARCH}", params=params, headers=headers)


# ------------------------------------------------------------------------------------------------
# the checker itself must be able to fail
# ------------------------------------------------------------------------------------------------


def test_checker_reports_missing_and_mistyped_keys() -> None:
    real = shape_of({"data": [{"id": "1", "lang": "en", "public_metrics": {"like_count": 1}, "geo": {}}]})
    good = {"data": [{"id": "2", "lang": None, "public_metrics": {"like_count": 2.0, "extra": 1}}]}
    assert conformance_problems(real, good) == []
    bad = {"data": [{"lang": True, "public_metrics": {}}, "text"]}
    assert conformance_problems(real, bad) == [
        "$.data[*].id: missing",
        "$.data[*].lang: type bool, real data has ['string']",
        "$.data[*].public_metrics.like_count: missing",
        "$.data[*]: type string, real data has ['object']",
    ]
    assert conformance_problems(shape_of({"meta": {"next_token": "a"}}), {"meta": {}}) == [
        "$.meta.next_token: missing"
    ]
    assert keys_at(
        {"data": [{"entities": {"urls": []}}, {"entities": {"mentions": []}}]}, "data[*].entities"
    ) == {
        "urls",
        "mentions",
    }


# ------------------------------------------------------------------------------------------------
# the simulator against the recordings
# ------------------------------------------------------------------------------------------------


def test_default_fields_search_matches_recording(http: requests.Session, server: SimulatorServer) -> None:
    resp = search(http, server, query="Tweepy")
    assert resp.status_code == 200
    body = resp.json()
    assert body["meta"]["result_count"] == len(body["data"]) == 10 and body["meta"]["next_token"]
    assert {k for t in body["data"] for k in t} == {"id", "text", "edit_history_tweet_ids"}
    problems = conformance_problems(shape_of(load("search_recent.json")), body)
    assert not problems, "simulator search differs from search_recent.json:\n" + "\n".join(problems)
    assert len(body["meta"]["next_token"]) == len(load("search_recent.json")["meta"]["next_token"])


def test_expanded_search_matches_recording(http: requests.Session, server: SimulatorServer) -> None:
    real = load("search_recent_with_expansions.json")
    resp = search(http, server, query="python", max_results=100, **DOCS_EXAMPLE)
    assert resp.status_code == 200
    body = resp.json()
    assert len(body["data"]) == 100
    problems = conformance_problems(shape_of(real), body)
    assert not problems, "simulator search differs from search_recent_with_expansions.json:\n" + "\n".join(
        problems
    )
    # Conditional keys are optional per tweet, but the simulator must produce each one the real data shows.
    for path in ("data[*]", "includes.tweets[*]", "data[*].entities"):
        expected = keys_at(real, path) & (CONDITIONAL | ENTITY_KINDS)
        assert expected - NOT_SIMULATED <= keys_at(body, path), path
    # includes.users holds every author of the page, with exactly the requested user fields.
    authors = {t["author_id"] for t in body["data"]}
    assert authors <= {u["id"] for u in body["includes"]["users"]}
    assert {k for u in body["includes"]["users"] for k in u} == {
        "created_at",
        "description",
        "id",
        "name",
        "username",
    }


def test_search_headers_match_recording(http: requests.Session, server: SimulatorServer) -> None:
    recorded = recorded_headers("search_recent.json")
    resp = search(http, server, query="Tweepy")
    missing = set(recorded) - {k.lower() for k in resp.headers}
    assert not missing, f"simulator search lacks recorded headers {sorted(missing)}"
    assert resp.headers["content-type"] == recorded["content-type"] == "application/json; charset=utf-8"
    assert resp.headers["cache-control"] == recorded["cache-control"]
    now = datetime.fromisoformat(NOW).timestamp()
    assert now < int(resp.headers["x-rate-limit-reset"]) <= now + 900  # epoch seconds, like the recording
    assert int(resp.headers["x-rate-limit-remaining"]) < int(resp.headers["x-rate-limit-limit"])


def test_401_matches_recording(http: requests.Session, server: SimulatorServer) -> None:
    resp = search(http, server, token="wrong", query="python")
    assert resp.status_code == 401
    assert resp.json() == load("error_401_unauthorized.json")


def test_403_matches_recording(http: requests.Session, server: SimulatorServer) -> None:
    server.configure({"x": {"forbidden": True}})
    try:
        resp = search(http, server, query="python")
    finally:
        server.reset()
    assert resp.status_code == 403
    real = load("error_403_client_forbidden.json")
    assert conformance_problems(shape_of(real), resp.json()) == []
    assert {k: resp.json()[k] for k in ("title", "reason", "type")} == {
        k: real[k] for k in ("title", "reason", "type")
    }


def test_429_matches_recording(http: requests.Session, server: SimulatorServer) -> None:
    server.configure({"x": {"rate_limit": {"count": 1, "retry_after": 60}}})
    try:
        resp = search(http, server, query="python")
    finally:
        server.reset()
    assert resp.status_code == 429
    assert resp.json() == load("error_429_too_many_requests.json")
    # HEADERS.md: a real 429 carries x-rate-limit-remaining 0 and the reset epoch.
    assert resp.headers["x-rate-limit-remaining"] == "0"
    assert int(resp.headers["x-rate-limit-reset"]) == int(datetime.fromisoformat(NOW).timestamp()) + 60


def test_window_errors_have_the_real_invalid_request_shape(
    http: requests.Session, server: SimulatorServer
) -> None:
    resp = search(
        http, server, query="python", start_time="2026-11-01T00:00:00Z", end_time="2026-11-28T12:00:00Z"
    )
    assert resp.status_code == 400
    assert resp.json() == {
        "errors": [
            {
                "parameters": {"start_time": ["2026-11-01T00:00Z"]},
                "message": "Invalid 'start_time':'2026-11-01T00:00Z'. 'start_time' must be on or after "
                "2026-11-21T12:00Z",
            },
            {
                "parameters": {"end_time": ["2026-11-28T12:00Z"]},
                "message": "Invalid 'end_time':'2026-11-28T12:00Z'. 'end_time' must be a minimum of 10 seconds "
                "prior to the request time.",
            },
        ],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }


# ------------------------------------------------------------------------------------------------
# the recordings through the hook and the parser
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def x_replay(replay: StartReplay) -> Any:
    """``x_replay(*answers)``: a replay server answering each request with the next scripted answer (no
    ``Date`` of its own: the recorded one is sent), the connection ``x_replay`` on it, an XHook and its waits."""

    def start(*script: Answer) -> Any:
        from pulse.hooks.x import XHook

        srv = replay("x_replay", password="recorded-token", extra={"backoff": 0.1}, server_headers=False)
        srv.play(*script)
        waits: list[float] = []
        return srv, XHook("x_replay", max_attempts=3, sleep=waits.append), waits

    return start


def _recorded(name: str, section: str = "search_recent.json", status: int = 200) -> Answer:
    return status, recorded_headers(section), (TWITTER / name).read_bytes()


def test_recorded_pages_run_through_hook_and_parser(x_replay: Any) -> None:
    from pulse.privacy import make_pseudonymizer
    from pulse.sources.base import Document, StoredPage
    from pulse.sources.x import parse_config, parse_page, plan_streams
    from pulse.windows import Window

    # Page 1 is the recorded default-fields search (it has a next_token), page 2 the expanded one (it has none).
    srv, hook, waits = x_replay(
        _recorded("search_recent.json"), _recorded("search_recent_with_expansions.json")
    )
    stream = plan_streams(parse_config({"queries": ["Tweepy"], "max_results": 10}, "x"), None)[0]
    window = Window(datetime(2022, 10, 7, 21, tzinfo=UTC), datetime(2022, 10, 7, 22, tzinfo=UTC))
    pages = list(hook.iter_pages(stream, window))
    assert [(p.page_no, p.item_count) for p in pages] == [(0, 10), (1, 4)]
    assert (
        pages[0].next_cursor == "b26v89c19zqg8o3fpzbn1e0ffhxjiofzw6po136rvbnul"
        and pages[1].next_cursor is None
    )
    assert pages[0].body == (TWITTER / "search_recent.json").read_bytes()  # the bytes as received
    assert pages[0].headers["x-rate-limit-reset"] == "1665183229" and waits == []
    # What went over the wire: tweepy's request, re-rooted on the connection's host, with the bearer token.
    (path, params, headers), (_, params2, _) = [(r.path, r.query, r.headers) for r in srv.requests]
    assert path == SEARCH and headers["Authorization"] == "Bearer recorded-token"
    assert params == {
        "query": "Tweepy",
        "max_results": "10",
        "expansions": "author_id",
        "tweet.fields": "created_at,public_metrics,lang,conversation_id,author_id,entities,in_reply_to_user_id",
        "user.fields": "username,name,verified,public_metrics",
        "start_time": "2022-10-07T21:00:00Z",
        "end_time": "2022-10-07T22:00:00Z",
    }
    assert params2 == {**params, "next_token": pages[0].next_cursor}

    pseudo = make_pseudonymizer("x", key=b"k")
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    out = [
        o for p in pages for _, o in parse_page(StoredPage(1, "x", stream.key, SEARCH, p.text), pseudo, now)
    ]
    docs = [o for o in out if isinstance(o, Document)]
    assert len(docs) == len(out) == 14
    assert docs[0].external_id == "1578516068309794817" and docs[0].channel == "Tweepy"
    assert docs[0].created_at == datetime(
        2022, 10, 7, 22, 42, 12, 752000, tzinfo=UTC
    )  # from the snowflake id
    assert docs[10].external_id == "1276035977375477760" and docs[10].author_pseudonym == pseudo(
        "happycamper"
    )


def test_recorded_429_waits_for_its_reset_then_reads_the_page(x_replay: Any) -> None:
    from pulse.sources.x import parse_config, plan_streams

    headers = {
        "content-type": "application/json; charset=utf-8",
        "date": "Fri, 07 Oct 2022 22:43:19 UTC",
        "x-rate-limit-limit": "450",
        "x-rate-limit-remaining": "0",
        "x-rate-limit-reset": str(int(datetime(2022, 10, 7, 22, 43, 19, tzinfo=UTC).timestamp()) + 4),
    }
    throttled = (429, headers, (TWITTER / "error_429_too_many_requests.json").read_bytes())
    _, hook, waits = x_replay(throttled, _recorded("search_recent.json"))
    stream = plan_streams(parse_config({"queries": ["Tweepy"], "max_results": 10}, "x"), None)[0]
    page = hook.fetch_page(stream, 0, stream.params)
    assert page.is_valid and page.item_count == 10
    assert waits == [4.0]  # x-rate-limit-reset minus X's Date (written in UTC, not GMT)


def test_recorded_401_is_an_auth_error(x_replay: Any) -> None:
    from pulse.sources.base import SourceAuthError
    from pulse.sources.x import parse_config, plan_streams

    unauthorized = (
        401,
        {"content-type": "application/json"},
        (TWITTER / "error_401_unauthorized.json").read_bytes(),
    )
    _, hook, _ = x_replay(unauthorized)
    stream = plan_streams(parse_config({"queries": ["Tweepy"]}, "x"), None)[0]
    with pytest.raises(SourceAuthError, match=r"connection 'x_replay' \(HTTP 401"):
        hook.fetch_page(stream, 0, stream.params)


def test_simulator_playback_serves_the_recordings_to_the_hook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulator's recorded-folder playback (``<folder>/x/2/tweets/search/recent/NNN.json``) for X."""
    from pulse.hooks.x import XHook
    from pulse.sources.x import parse_config, plan_streams

    folder = tmp_path / "x" / SEARCH.strip("/")
    folder.mkdir(parents=True)
    (folder / "001.json").write_bytes((TWITTER / "error_429_too_many_requests.json").read_bytes())
    (folder / "001.status").write_text("429")
    (folder / "001.headers.json").write_text(json.dumps({"x-rate-limit-remaining": "0", "Retry-After": "2"}))
    (folder / "002.json").write_bytes((TWITTER / "search_recent_with_expansions.json").read_bytes())
    sim = SimulatorServer(port=0, seed=42, now=NOW, playback=tmp_path).start()
    try:
        conn = {"conn_type": "generic", "host": sim.url, "password": TOKEN, "extra": {"backoff": 0.1}}
        monkeypatch.setenv("AIRFLOW_CONN_X_PLAYBACK", json.dumps(conn))
        waits: list[float] = []
        stream = plan_streams(parse_config({"queries": ["python"], "max_results": 10}, "x"), None)[0]
        page = XHook("x_playback", max_wait=10, sleep=waits.append).fetch_page(stream, 0, stream.params)
        assert page.body == (TWITTER / "search_recent_with_expansions.json").read_bytes()
        assert (page.item_count, page.next_cursor) == (4, None)
        # One wait, at least the played Retry-After (the core adds the simulator's own x-rate-limit-reset,
        # which points at the end of its 15-minute window, so the wait is capped by max_wait).
        assert len(waits) == 1 and 2.0 <= waits[0] <= 10.0
        # The files ran out: the generated search takes over again.
        generated = XHook("x_playback", sleep=waits.append).fetch_page(stream, 0, stream.params)
        assert generated.item_count == 10 and generated.next_cursor
    finally:
        sim.stop()
