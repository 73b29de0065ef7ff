"""Contract: the simulator's GitHub answers have the shape of real recorded GitHub responses, and the real
recorded responses, played over HTTP, go through GithubSourceHook and the parser.

The recorded responses are third-party data kept outside the repo, in ``<shared>/payloads/github``
(``PULSE_SHARED_DIR`` or ``<repo>/../shared``); they are read from there at test time, never copied.

Shapes are compared at every depth: the simulator's value must carry every key that **every** real instance
at that place carries, with a compatible JSON type (null on either side is compatible, int and float are
compatible, bool is not a number). Events are compared per ``type``, issues apart from pull requests, so a
simulated ``PushEvent`` is checked against the real push events only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from dev.simulator import SimulatorServer
from pulse.hooks.github import GithubSourceHook
from pulse.privacy import make_pseudonymizer
from pulse.sources.base import Document, Fact, PageFetchError, SourceAuthError, StoredPage, Stream
from pulse.sources.github import parse_page
from pulse.windows import Window
from tests.contract.conftest import StartReplay
from tests.contract.replay import Answer, ReplayServer, header_rows, load_json, recordings
from tests.contract.shapes import conformance_problems, shape_of

GITHUB = recordings("github", "GitHub")

TOKEN = "sim-github-token"
PSEUDO = make_pseudonymizer("github", key=b"contract")


def load(name: str) -> Any:
    return load_json(GITHUB, name)


def recorded_headers(section: str) -> dict[str, str]:
    """The headers HEADERS.md lists for one recorded file."""
    return {name.lower(): value for name, value in header_rows(GITHUB, section).items()}


# ------------------------------------------------------------------------------------------------ the simulator


@pytest.fixture(scope="module")
def server(server: SimulatorServer) -> SimulatorServer:
    server.configure({"github": {"events_per_hour": 60}})
    return server


@pytest.fixture(scope="module")
def http(http: requests.Session) -> requests.Session:
    http.headers["Authorization"] = f"token {TOKEN}"
    return http


def get(http: requests.Session, server: SimulatorServer, path: str, **params: Any) -> requests.Response:
    return http.get(f"{server.url}{path}", params=params, timeout=10)


def test_checker_reports_missing_and_mistyped_keys() -> None:
    real = shape_of(
        {"id": 1, "user": {"login": "a", "site_admin": False}, "labels": [{"name": "x"}], "note": None}
    )
    good = {"id": 2.0, "user": {"login": "b", "site_admin": True, "extra": 1}, "labels": [], "note": "n"}
    assert conformance_problems(real, good) == []
    bad = {"id": True, "user": {"site_admin": None}, "labels": [{"name": 3}]}
    assert conformance_problems(real, bad) == [
        "$.id: type bool, real data has ['number']",
        "$.labels[*].name: type number, real data has ['string']",
        "$.note: missing",
        "$.user.login: missing",
    ]
    # a key only some real instances carry is optional; present, it must have the right type
    assert conformance_problems(shape_of({"a": 1}, {"a": 1, "b": "x"}), {"a": 1}) == []
    assert conformance_problems(shape_of({"a": 1}, {"a": 1, "b": "x"}), {"a": 1, "b": 2}) != []


def test_repository_matches_recording(http: requests.Session, server: SimulatorServer) -> None:
    resp = get(http, server, "/repos/PyGithub/PyGithub")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json; charset=utf-8"
    body = resp.json()
    assert conformance_problems(shape_of(load("repo.json")), body) == []
    assert body["subscribers_count"] < body["watchers_count"] == body["stargazers_count"]
    assert "api.github.com" not in resp.text and body["url"] == f"{server.url}/repos/PyGithub/PyGithub"


def _events(http: requests.Session, server: SimulatorServer) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    url: str | None = f"{server.url}/repos/apache/airflow/events?per_page=100"
    while url:
        resp = http.get(url, timeout=10)
        assert resp.status_code == 200
        out.extend(resp.json())
        url = resp.links.get("next", {}).get("url")
    return out


def test_events_match_recordings_per_type(http: requests.Session, server: SimulatorServer) -> None:
    real: dict[str, list[Any]] = {}
    for event in load("repo_events.json") + load("public_events.json"):
        real.setdefault(event["type"], []).append(event)
    simulated = _events(http, server)
    assert len(simulated) == 300, "GitHub keeps 300 events"
    envelope = shape_of(*[{**e, "payload": {}} for events in real.values() for e in events])
    compared: set[str] = set()
    for event in simulated:
        assert conformance_problems(envelope, {**event, "payload": {}}) == []
        if event["type"] in real:
            compared.add(event["type"])
            problems = conformance_problems(shape_of(*real[event["type"]]), event, f"<{event['type']}>")
            assert not problems, "\n".join(problems)
    assert compared >= {
        "PushEvent",
        "IssueCommentEvent",
        "IssuesEvent",
        "PullRequestEvent",
        "PullRequestReviewCommentEvent",
        "WatchEvent",
        "ForkEvent",
        "CreateEvent",
        "DeleteEvent",
    }


def test_issues_match_recording(http: requests.Session, server: SimulatorServer) -> None:
    recorded = load("repo_issues.json")
    real_prs = shape_of(*[i for i in recorded if "pull_request" in i])
    real_issues = shape_of(*[i for i in recorded if "pull_request" not in i])
    resp = get(http, server, "/repos/apache/airflow/issues", state="all", per_page=100)
    items = resp.json()
    assert len(items) == 100 and {"pull_request" in i for i in items} == {True, False}
    for item in items:
        problems = conformance_problems(real_prs if "pull_request" in item else real_issues, item)
        assert not problems, "\n".join(problems)


def test_search_matches_recordings(http: requests.Session, server: SimulatorServer) -> None:
    body = get(
        http, server, "/search/repositories", q="github language:Python", sort="stars", order="desc"
    ).json()
    assert len(body["items"]) == 30 and body["total_count"] == 57
    assert conformance_problems(shape_of(load("search_repositories.json")), body) == []
    assert conformance_problems(shape_of(load("search_repositories_empty.json")), body) == []
    empty = get(http, server, "/search/repositories", q="doesnotexist", per_page=1).json()
    assert empty == load("search_repositories_empty.json")


def test_rate_limit_matches_recording(http: requests.Session, server: SimulatorServer) -> None:
    body = get(http, server, "/rate_limit").json()
    assert conformance_problems(shape_of(load("rate_limit.json")), body) == []


@pytest.mark.parametrize(
    ("recording", "setup", "status"),
    [
        ("error_401_bad_credentials.json", {"reject_auth": True}, 401),
        ("error_403_rate_limit_exceeded.json", {"rate_limit": {"count": 1, "kind": "primary"}}, 403),
        ("error_403_secondary_rate_limit.json", {"rate_limit": {"count": 1, "kind": "secondary"}}, 403),
        ("error_404_not_found.json", {"missing_repos": ["o/gone"]}, 404),
    ],
)
def test_error_bodies_match_recordings(
    http: requests.Session, server: SimulatorServer, recording: str, setup: dict[str, Any], status: int
) -> None:
    from github.Requester import Requester

    server.configure({"github": setup})
    try:
        resp = get(http, server, "/repos/o/gone")
    finally:
        server.reset()
        server.configure({"github": {"missing_repos": []}})
    real = load(recording)
    assert resp.status_code == status
    assert conformance_problems(shape_of(real), resp.json()) == []
    # PyGithub (and the hook) tell the kinds apart the same way for the real and the simulated bodies
    message = resp.json()["message"]
    assert Requester.isPrimaryRateLimitError(message) == Requester.isPrimaryRateLimitError(real["message"])
    assert Requester.isSecondaryRateLimitError(message) == Requester.isSecondaryRateLimitError(
        real["message"]
    )
    assert type(Requester.createException(status, {}, resp.json())) is type(
        Requester.createException(status, {}, real)
    )
    headers = {k.lower() for k in resp.headers}
    if "secondary" in recording:
        assert resp.json() == real and "retry-after" in headers
    if "rate_limit_exceeded" in recording:
        assert resp.headers["x-ratelimit-remaining"] == "0" and int(resp.headers["x-ratelimit-reset"]) > 0


#: Recorded headers the simulator does not reproduce: the long-gone ``Status`` header, the response date
#: (the HTTP server sets its own) and the OAuth scope headers of a classic token.
NOT_SIMULATED = {"status", "date", "x-oauth-scopes", "x-accepted-oauth-scopes"}


@pytest.mark.parametrize(
    ("recording", "path", "params"),
    [
        ("repo.json", "/repos/PyGithub/PyGithub", {}),
        ("repo_events.json", "/repos/jacquev6/PyGithub/events", {"per_page": 30}),
        ("repo_issues.json", "/repos/PyGithub/PyGithub/issues", {"state": "all", "per_page": 30}),
        ("search_repositories.json", "/search/repositories", {"q": "github", "sort": "stars"}),
        ("rate_limit.json", "/rate_limit", {}),
    ],
)
def test_headers_match_recordings(
    http: requests.Session, server: SimulatorServer, recording: str, path: str, params: dict[str, Any]
) -> None:
    recorded = recorded_headers(recording)
    resp = get(http, server, path, **params)
    missing = set(recorded) - NOT_SIMULATED - {k.lower() for k in resp.headers}
    assert not missing, f"{path} lacks recorded headers {sorted(missing)}"
    assert (
        int(resp.headers["x-ratelimit-reset"]) > datetime.now(tz=UTC).timestamp() - 5
    )  # an epoch, not seconds
    if "link" in recorded:
        assert recorded["link"].startswith("<https://api.github.com/")
        assert resp.headers["link"].startswith(f"<{server.url}/"), "Link must point at the simulator"


# ------------------------------------------------------------------------------------------------ real bytes


class Playback:
    """The replay server answering GitHub paths with recorded responses, in order (the last one repeats)."""

    def __init__(self, server: ReplayServer) -> None:
        self.server = server
        self.url = server.url

    @property
    def routes(self) -> dict[str, list[Answer]]:
        return self.server.routes

    @property
    def requests(self) -> list[tuple[str, dict[str, str]]]:
        return [(request.target, request.headers) for request in self.server.requests]

    def serve(self, path: str, recording: str, status: int = 200, rewrite_links: bool = True) -> None:
        headers = {
            k: v for k, v in recorded_headers(recording).items() if k not in ("status", "content-length")
        }
        if rewrite_links and "link" in headers:
            headers["link"] = headers["link"].replace("https://api.github.com", self.url)
        self.server.route(path, (status, headers, (GITHUB / recording).read_bytes()))


@pytest.fixture
def playback(replay: StartReplay) -> Playback:
    return Playback(
        replay(
            "github_playback",
            conn_type="github",
            password="recorded-token",
            extra={"timeout": 5, "max_attempts": 3, "backoff": 0.5, "jitter": 0},
            default=(404, {}, b'{"message":"Not Found"}'),
        )
    )


def _hook(waits: list[float] | None = None, max_wait: float = 5.0) -> GithubSourceHook:
    return GithubSourceHook(
        "github_playback", max_wait=max_wait, sleep=(waits if waits is not None else []).append
    )


def _parse(stream: Stream, page: Any) -> list[Any]:
    stored = StoredPage(id=1, source="github", stream=stream.key, endpoint=page.endpoint, body=page.text)
    return [out for _, out in parse_page(stored, PSEUDO, datetime(2026, 12, 1, tzinfo=UTC))]


W2013 = Window(datetime(2013, 9, 6, 12, tzinfo=UTC), datetime(2013, 9, 6, 13, tzinfo=UTC))


def test_recorded_repository_through_hook_and_parser(playback: Playback) -> None:
    playback.serve("/repos/PyGithub/PyGithub", "repo.json")
    stream = Stream(
        key="repo:PyGithub/PyGithub@2026-11-28T12:00:00+00:00", endpoint="/repos/PyGithub/PyGithub"
    )
    (page,) = list(_hook().iter_pages(stream, W2013))
    assert page.body == (GITHUB / "repo.json").read_bytes(), "the page keeps the bytes as received"
    assert page.headers["etag"] == recorded_headers("repo.json")["etag"]
    (fact,) = _parse(stream, page)
    assert isinstance(fact, Fact) and (
        fact.values["repo"],
        fact.values["stars"],
        fact.values["watchers"],
    ) == (
        "PyGithub/PyGithub",
        7701,
        110,
    )
    path, headers = playback.requests[0]
    assert path == "/repos/PyGithub/PyGithub" and headers["Authorization"] == "token recorded-token"


def test_recorded_events_page_through_the_link_header(playback: Playback) -> None:
    playback.serve("/repos/jacquev6/PyGithub/events", "repo_events.json")
    playback.routes["/repositories/3544490/events"] = [(200, {"content-type": "application/json"}, b"[]")]
    stream = Stream(
        key="events:jacquev6/PyGithub", endpoint="/repos/jacquev6/PyGithub/events", params={"per_page": 100}
    )
    hook = _hook()
    # the recorded page reaches back to 2013-09-05: for a window starting then, one page is enough
    (only,) = list(hook.iter_pages(stream, Window(datetime(2013, 9, 6, 12, tzinfo=UTC), W2013.end)))
    assert only.next_cursor is None and only.item_count == 30
    # an earlier window needs the next page, which the recorded Link names by repository id
    earlier = Window(datetime(2013, 9, 1, tzinfo=UTC), datetime(2013, 9, 2, tzinfo=UTC))
    first, second = list(hook.iter_pages(stream, earlier))
    assert first.next_cursor == "/repositories/3544490/events?page=2"
    assert (second.endpoint, second.params, second.item_count, second.next_cursor) == (
        "/repositories/3544490/events",
        {"page": "2"},
        0,
        None,
    )
    docs = _parse(stream, first)
    assert len(docs) == 30 and all(isinstance(d, Document) for d in docs)
    assert docs[0].external_id == "event:1823555573" and docs[0].channel == "jacquev6/PyGithub"


def test_recorded_issues_and_search_through_hook_and_parser(playback: Playback) -> None:
    playback.serve("/repos/PyGithub/PyGithub/issues", "repo_issues.json")
    playback.serve("/search/repositories", "search_repositories.json")
    issues = Stream(
        key="issues:PyGithub/PyGithub", endpoint="/repos/PyGithub/PyGithub/issues", params={"state": "all"}
    )
    # the recording holds items updated up to 2024-09-17: past a window ending before that, paging stops
    window = Window(datetime(2024, 9, 1, tzinfo=UTC), datetime(2024, 9, 10, tzinfo=UTC))
    (page,) = list(_hook().iter_pages(issues, window))
    assert page.next_cursor is None and 'rel="next"' in page.headers["link"]
    docs = _parse(issues, page)
    assert [d.kind for d in docs].count("pull_request") == 9 and len(docs) == 30
    search = Stream(
        key="search:github language:Python@2026-11-28T12:00:00+00:00",
        endpoint="/search/repositories",
        params={
            "q": "github language:Python",
            "sort": "stars",
            "order": "desc",
            "per_page": 30,
            "max_items": 30,
        },
    )
    (page,) = list(_hook().iter_pages(search, window))
    assert page.next_cursor is None and page.item_count == 30
    facts = _parse(search, page)
    assert facts[0].values["repo"] == "kennethreitz/legit" and facts[0].values["stars"] == 3036
    sent = next(p for p, _ in playback.requests if p.startswith("/search/"))
    assert "max_items" not in sent and "q=github+language%3APython" in sent


def test_recorded_limits_are_waited_for(playback: Playback) -> None:
    path = "/repos/PyGithub/PyGithub"
    playback.serve(path, "error_403_rate_limit_exceeded.json", status=403)
    playback.serve(path, "error_403_secondary_rate_limit.json", status=403)
    playback.serve(path, "repo.json")
    waits: list[float] = []
    stream = Stream(key="repo:PyGithub/PyGithub@2026-11-28T12:00:00+00:00", endpoint=path)
    page = _hook(waits, max_wait=5.0).fetch_page(stream, 0, {})
    assert page.item_count == 1
    # the 2013 primary-limit answer carries no reset header: its message is recognised, the backoff applies;
    # the secondary limit's retry-after (60 s) is capped by max_wait
    assert waits == [0.5, 5.0]


def test_recorded_bad_credentials_and_not_found(playback: Playback) -> None:
    playback.serve("/repos/PyGithub/PyGithub", "error_401_bad_credentials.json", status=401)
    playback.serve("/repos/o/gone", "error_404_not_found.json", status=404)
    with pytest.raises(
        SourceAuthError, match=r"'github_playback' \(HTTP 401 on /repos/PyGithub/PyGithub: Bad cred"
    ):
        _hook().fetch_page(Stream(key="repo:PyGithub/PyGithub@x", endpoint="/repos/PyGithub/PyGithub"), 0, {})
    with pytest.raises(PageFetchError, match="HTTP 404 for /repos/o/gone: Not Found"):
        _hook().fetch_page(Stream(key="repo:o/gone@x", endpoint="/repos/o/gone"), 0, {})
    assert len(playback.requests) == 2, "neither is retried"


def test_a_link_to_another_host_is_refused(playback: Playback) -> None:
    playback.serve("/repos/jacquev6/PyGithub/events", "repo_events.json", rewrite_links=False)
    stream = Stream(key="events:jacquev6/PyGithub", endpoint="/repos/jacquev6/PyGithub/events")
    with pytest.raises(PageFetchError, match="leaves the connection's base URL"):
        _hook().fetch_page(stream, 0, {})
