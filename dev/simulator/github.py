"""GitHub REST v3 source of the simulator: repositories, repository events and issues, repository search.

Everything is a pure function of ``(seed, repository, hour)`` and of the clock (``now``):

* **Repositories** exist for any ``owner/name`` asked for (except ``missing_repos``). Their id, creation date,
  language... come from the seed and the lower-cased name; their counters grow with the clock (stars per day,
  forks and watchers in proportion), so snapshots an hour apart differ a little. An owner is an organisation
  for most names (and always for a few well-known ones), which adds the ``organization`` object.
* **Events**: ``events_per_hour`` per repository and UTC hour, timestamps spread inside the hour; types drawn
  from a realistic mix (pushes, comments, issues, pull requests, stars, forks, branches, releases). Listed
  newest first, only those of the last ``events_max_age_days`` and at most ``events_cap`` (GitHub: 300 events,
  90 days); past that a page is refused with GitHub's 422.
* **Issues**: ``issues_per_hour`` per repository and hour over the last ``issue_history_days`` (about a third
  are pull requests). Each has its comment times and maybe a closing time; ``comments``, ``state`` and
  ``updated_at`` are what they are at ``now``. ``since``/``state``/``sort``/``direction`` filter and order as
  GitHub does.
* **Search** (``/search/repositories``): ``search_total`` repositories per query (none for a query holding
  ``doesnotexist``), ordered by stars; only the first 1,000 results can be paged, like GitHub.

Paging is by ``page``/``per_page`` with a ``Link`` header (``next``/``last``/``first``/``prev``); as on
GitHub, next links of events and issues point at ``/repositories/{id}/...``, which is served too. Every
``https://api.github.com`` URL, in bodies and in ``Link``, is written with the simulator's own base URL (from
the request's ``Host``), as PyGithub requires. ``x-ratelimit-reset`` is an epoch of the **wall clock** (the
simulated clock only drives content), so a client can wait for it.

Faults: the generic switches, with ``rate_limit.kind`` ``primary`` (403, ``x-ratelimit-remaining: 0``,
``x-ratelimit-reset``), ``primary_429`` (the same as a 429) or ``secondary`` (403 "abuse detection" with
``retry-after``); ``reject_auth`` (401 Bad credentials), ``forbidden`` (403 without rate-limit signs),
``html_pages`` (200 with an HTML body), ``duplicate_across_pages`` (a page repeats the previous page's last
item) and ``bad_items_ratio`` (items missing their id, with unparseable or future timestamps, NUL bytes or
100 kB+ texts, missing titles/types, non-numeric star counts); the core adds ``drift`` and playback.
Served items are counted as ``repo:<full name>``, ``event:<id>`` and ``issue:<id>``, the parser's keys.
"""

from __future__ import annotations

import base64
import hashlib
import random
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlencode

from dev.simulator import text as _text
from dev.simulator.core import (
    Request,
    Response,
    Route,
    ServedItem,
    Source,
    Window,
    format_time,
    json_bytes,
    register_source,
    stable_fraction,
    stable_hash,
)

HOUR = 3600
DAY = 86400
H0 = 438288  # the hour of 2020-01-01T00:00Z: issue numbers count from there
API = "https://api.github.com"
WEB = "https://github.com"
GH_JSON = "application/json; charset=utf-8"
FUTURE_SECONDS = 400 * DAY
HUGE_TEXT_CHARS = 110_000
SEARCH_WINDOW = 1000
COMMON_HEADERS = {
    "x-github-media-type": "github.v3; format=json",
    "x-github-api-version-selected": "2022-11-28",
}
KNOWN_ORGS = frozenset({"apache", "pygithub", "python", "pandas-dev", "kubernetes", "microsoft", "google"})

BAD_CREDENTIALS = {
    "message": "Bad credentials",
    "documentation_url": "https://docs.github.com/rest",
    "status": "401",
}
FORBIDDEN = {
    "message": "Resource not accessible by personal access token",
    "documentation_url": "https://docs.github.com/rest/repos/repos#get-a-repository",
    "status": "403",
}
PRIMARY_LIMIT = {
    "message": "API rate limit exceeded for 127.0.0.1.",
    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
}
SECONDARY_LIMIT = {
    "documentation_url": "https://developer.github.com/v3/#abuse-rate-limits",
    "message": "You have triggered an abuse detection mechanism. Please wait a few minutes before you try again.",
}

# --------------------------------------------------------------------------------------------------
# vocabulary
# --------------------------------------------------------------------------------------------------

FIRST = (
    "ada",
    "bruno",
    "chen",
    "dana",
    "emeka",
    "farah",
    "goran",
    "hana",
    "ivan",
    "jules",
    "kofi",
    "lena",
    "mateo",
    "nadia",
    "oskar",
    "priya",
    "quinn",
    "rosa",
    "sami",
    "tomas",
    "uma",
    "viktor",
    "wen",
    "yara",
)
LAST = (
    "silva",
    "novak",
    "okafor",
    "ito",
    "berg",
    "khan",
    "moreau",
    "rossi",
    "kowalski",
    "haddad",
    "lund",
    "garcia",
    "tanaka",
    "schmidt",
    "nguyen",
    "petrov",
)
LANGUAGES = ("Python", "Python", "Python", "TypeScript", "Go", "Rust", "Java", "JavaScript", "C++", None)
LICENSES = (
    ("apache-2.0", "Apache License 2.0", "Apache-2.0", "MDc6TGljZW5zZTI="),
    ("mit", "MIT License", "MIT", "MDc6TGljZW5zZTEz"),
    ("bsd-3-clause", 'BSD 3-Clause "New" or "Revised" License', "BSD-3-Clause", "MDc6TGljZW5zZTU="),
    ("lgpl-3.0", "GNU Lesser General Public License v3.0", "LGPL-3.0", "MDc6TGljZW5zZTEy"),
)
TOPICS = (
    "data-engineering",
    "python",
    "etl",
    "workflow",
    "orchestration",
    "api",
    "cli",
    "analytics",
    "streaming",
    "machine-learning",
    "database",
    "observability",
    "automation",
    "devtools",
)
DESCRIPTIONS = (
    "A platform to programmatically author, schedule and monitor workflows",
    "Typed interactions with a REST API",
    "Fast, columnar data processing for analytics",
    "Declarative pipelines for moving data between systems",
    "Lightweight metrics and tracing for services",
    "Command-line tools for everyday data work",
    "A small, dependency-free HTTP client",
    "Schema validation and data contracts",
)
SEARCH_OWNERS = ("datafoundry-labs", "streamworks", "quarry-oss", "tidewater-data", "lakehouse-collective")
SEARCH_WORDS = (
    "pipe",
    "flow",
    "lake",
    "stream",
    "batch",
    "query",
    "ingest",
    "schema",
    "frame",
    "cast",
    "sync",
    "relay",
    "spark",
    "delta",
    "ledger",
    "beacon",
    "harbor",
    "vault",
)
ISSUE_TITLES = (
    "Scheduler stops picking up tasks after a restart",
    "Add retry with exponential backoff to the HTTP client",
    "Docs: the quick start example fails on Windows",
    "Memory grows steadily when paging large result sets",
    "Support Python 3.13",
    "Deprecation warning from the datetime module",
    "Allow configuring the request timeout per call",
    "Flaky test in the integration suite",
    "Rate limit responses are not retried",
    "Feature request: export results as Parquet",
    "Typo in the configuration reference",
    "Crash when the API returns an empty page",
    "Bump the minimum supported version of the SQL driver",
    "Improve the error message for missing credentials",
    "Pagination skips items when new ones arrive",
    "Add type hints to the public API",
)
SENTENCES = (
    "Steps to reproduce are in the attached log.",
    "I can reproduce this on the latest release as well.",
    "This looks related to the change in the last minor version.",
    "Happy to open a pull request if the approach sounds right.",
    "A workaround for now is to pin the previous version.",
    "Thanks for the report! Could you share the full traceback?",
    "The test suite passes locally with this change.",
    "I added a regression test that fails without the fix.",
    "Closing as fixed in the main branch.",
    "This would be a breaking change, so it needs a deprecation period first.",
    "LGTM, merging once CI is green.",
    "See the discussion in the design document for background.",
    "Could we make this configurable instead of changing the default?",
    "Confirmed on Linux and macOS; Windows not tested yet.",
    "Benchmarks show a 20% speed-up on large inputs.",
    "Rebased on main to pick up the CI fix.",
)
COMMIT_MESSAGES = (
    "Fix off-by-one error in page handling",
    "Add retry with backoff for 5xx responses",
    "Update dependencies",
    "Refactor the scheduler loop for clarity",
    "Document the configuration options",
    "Handle empty responses gracefully",
    "Speed up JSON decoding of large pages",
    "Add tests for the rate limit handling",
    "Bump version to the next patch release",
    "Remove deprecated helper functions",
    "Merge pull request from a feature branch",
    "Improve logging around connection errors",
)
LABELS = (
    "bug",
    "enhancement",
    "documentation",
    "good first issue",
    "question",
    "dependencies",
    "performance",
)
LABEL_COLORS = ("d73a4a", "a2eeef", "0075ca", "7057ff", "d876e3", "0366d6", "fbca04")
BRANCHES = ("main", "main", "main", "develop", "fix/paging", "feature/export", "docs/quickstart")
ASSOCIATIONS = ("NONE", "CONTRIBUTOR", "MEMBER", "COLLABORATOR", "FIRST_TIME_CONTRIBUTOR", "OWNER")
EVENT_MIX = (
    ("PushEvent", 30),
    ("IssueCommentEvent", 20),
    ("IssuesEvent", 10),
    ("PullRequestEvent", 10),
    ("WatchEvent", 10),
    ("CreateEvent", 6),
    ("DeleteEvent", 4),
    ("ForkEvent", 4),
    ("PullRequestReviewCommentEvent", 4),
    ("ReleaseEvent", 2),
)
#: Bad-item kinds per item family; events without text cannot carry the text kinds.
BAD_REPO = ("missing_id", "bad_timestamp", "future_timestamp", "bad_number")
BAD_ISSUE = ("missing_id", "bad_timestamp", "future_timestamp", "nul_byte", "huge_text", "missing_text")
BAD_EVENT = ("missing_id", "bad_timestamp", "future_timestamp", "missing_text")
BAD_TEXT_EVENT = (*BAD_EVENT, "nul_byte", "huge_text")
TEXT_EVENTS = frozenset(
    {"PushEvent", "IssueCommentEvent", "IssuesEvent", "PullRequestEvent", "PullRequestReviewCommentEvent",
     "ReleaseEvent"}
)  # fmt: skip


# --------------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Repo:
    """What does not change about a simulated repository."""

    full_name: str
    owner: str
    name: str
    id: int
    owner_id: int
    org: bool
    created: int
    language: str | None
    description: str
    topics: tuple[str, ...]
    license: tuple[str, str, str, str] | None
    homepage: str | None
    stars0: int
    star_rate: float  # stars per day
    fork_ratio: float
    watch_ratio: float
    size0: int
    base_open: int
    number0: int
    default_branch: str

    @property
    def key(self) -> str:
        return self.full_name.lower()

    def stars(self, t: float) -> int:
        return self.stars0 + int(max(0.0, t - self.created) / DAY * self.star_rate)


@dataclass(frozen=True)
class Issue:
    """A simulated issue or pull request; ``state_at(t)`` gives its counters at a time."""

    repo: str
    hour: int
    idx: int
    number: int
    id: int
    created: int
    is_pr: bool
    login: str
    association: str
    title: str
    body: str
    labels: tuple[str, ...]
    comment_times: tuple[int, ...]
    closed: int | None
    merged: bool
    reactions: tuple[int, ...]  # +1, -1, laugh, hooray, confused, heart, rocket, eyes

    def comments_at(self, t: float) -> int:
        return sum(1 for c in self.comment_times if c <= t)

    def closed_at(self, t: float) -> int | None:
        return self.closed if self.closed is not None and self.closed <= t else None

    def updated_at(self, t: float) -> int:
        times = [self.created, *(c for c in self.comment_times if c <= t)]
        closed = self.closed_at(t)
        if closed is not None:
            times.append(closed)
        return max(times)


@dataclass(frozen=True)
class EventSlot:
    repo: str
    hour: int
    idx: int
    created: int
    id: str
    type: str


class _LRU:
    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        value = self.data.get(key)
        if value is not None:
            self.data.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> Any:
        self.data[key] = value
        self.data.move_to_end(key)
        while len(self.data) > self.size:
            self.data.popitem(last=False)
        return value


# --------------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------------


def _sha(*parts: object) -> str:
    return hashlib.sha1(":".join(str(p) for p in parts).encode()).hexdigest()


def _node_id(prefix: str, ident: int) -> str:
    return base64.b64encode(f"{prefix}{ident}".encode()).decode().rstrip("=")


def _iso(epoch: float | None) -> str | None:
    return format_time(int(epoch)) if epoch is not None else None


def _user_id(login: str) -> int:
    return 100_000 + stable_hash("user", login.lower()) % 90_000_000


def _login(rng: random.Random) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    style = rng.randrange(4)
    if style == 0:
        return f"{first}-{last}"
    if style == 1:
        return f"{first}{last[0]}{rng.randint(1, 99)}"
    if style == 2:
        return f"{first[0]}{last}"
    return f"{first}{last}"


def _person(login: str) -> tuple[str, str]:
    """A display name and commit e-mail for a login (they only ever appear in commit authors)."""
    first, _, rest = login.partition("-")
    name = f"{first.capitalize()} {rest.capitalize()}".strip() if rest else login.capitalize()
    return name, f"{_user_id(login)}+{login}@users.noreply.github.com"


def _huge(text: str) -> str:
    filler = " ".join(SENTENCES)
    return f"{text} {' '.join([filler] * (HUGE_TEXT_CHARS // len(filler) + 1))}".strip()


def _nul(text: str) -> str:
    text = text or "nothing to see here"
    half = len(text) // 2
    return f"{text[:half]}\u0000{text[half:]}"


def _int_param(raw: str | None, default: int, low: int, high: int) -> int:
    try:
        value = int(raw) if raw not in (None, "") else default
    except ValueError:
        value = default
    if value < low:
        value = default
    return min(value, high)


def _pick(rng: random.Random, mix: tuple[tuple[str, int], ...]) -> str:
    total = sum(w for _, w in mix)
    roll = rng.randrange(total)
    for name, weight in mix:
        if roll < weight:
            return name
        roll -= weight
    return mix[-1][0]


# --------------------------------------------------------------------------------------------------
# the source
# --------------------------------------------------------------------------------------------------


@register_source
class GithubSource(Source):
    """Simulated GitHub REST v3 (what PyGithub 2.x calls for repositories, events, issues and search)."""

    name: ClassVar[str] = "github"
    defaults: ClassVar[dict[str, Any]] = {
        "token": "sim-github-token",
        "events_per_hour": 12,
        "issues_per_hour": 2,
        "events_cap": 300,
        "events_max_age_days": 90,
        "issue_history_days": 30,
        "search_total": 57,
        "missing_repos": [],
        "ratelimit_budget": 5000,
        "ratelimit_window": 3600,
        "reject_auth": False,
        "forbidden": False,
        "rate_limit": {"count": 0, "retry_after": 1, "kind": "primary"},
        "server_errors": {"count": 0, "status": 502},
        "latency_ms": 0,
        "malformed": {"count": 0, "always": False, "skip": 0},
        "html_pages": {"count": 0},
        "bad_items_ratio": 0.0,
        "duplicate_across_pages": False,
    }
    fault_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "reject_auth",
            "forbidden",
            "rate_limit",
            "server_errors",
            "latency_ms",
            "malformed",
            "html_pages",
            "bad_items_ratio",
            "duplicate_across_pages",
        }
    )

    def __init__(self, sim: Any) -> None:
        super().__init__(sim)
        self._repos: dict[tuple[int, str], Repo] = {}
        self._by_id: dict[tuple[int, int], str] = {}
        self._events = _LRU(8192)
        self._issues = _LRU(65536)
        self._search = _LRU(64)

    # -- framework hooks -----------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        """Repository, events, issues (by name and by numeric id), search, rate limit; JSON 404 for the rest."""
        name = r"(?P<owner>[^/]+)/(?P<repo>[^/]+)"
        rid = r"(?P<rid>\d+)"
        return [
            Route("GET", rf"/repos/{name}", self.get_repo),
            Route("GET", rf"/repos/{name}/events", self.repo_events),
            Route("GET", rf"/repos/{name}/issues", self.repo_issues),
            Route("GET", rf"/repositories/{rid}", self.get_repo),
            Route("GET", rf"/repositories/{rid}/events", self.repo_events),
            Route("GET", rf"/repositories/{rid}/issues", self.repo_issues),
            Route("GET", r"/search/repositories", self.search_repositories),
            Route("GET", r"/rate_limit", self.rate_limit_status),
            Route("*", r"/(?:repos|repositories)(?:/.*)?", self.not_found),
        ]

    def check_config(self, config: Any) -> None:
        """Range checks on top of the core's type checks."""
        bounds = {
            "events_per_hour": (0, 999),
            "issues_per_hour": (0, 100),
            "events_cap": (0, 100_000),
            "events_max_age_days": (1, 3650),
            "issue_history_days": (1, 365),
            "search_total": (0, 100_000),
            "ratelimit_window": (1, 86400),
        }
        for key, (low, high) in bounds.items():
            if not low <= config[key] <= high:
                raise ValueError(f"github.{key} must be in [{low}, {high}]")
        if not 0.0 <= config["bad_items_ratio"] <= 1.0:
            raise ValueError("github.bad_items_ratio must be in [0, 1]")
        if not 400 <= config["server_errors"]["status"] <= 599:
            raise ValueError("github.server_errors.status must be a 4xx/5xx code")
        if config["rate_limit"]["kind"] not in ("primary", "primary_429", "secondary"):
            raise ValueError("github.rate_limit.kind must be primary, primary_429 or secondary")
        if not all(isinstance(r, str) for r in config["missing_repos"]):
            raise ValueError("github.missing_repos must be a list of owner/name strings")

    def authorize(self, request: Request) -> Response | None:
        """A token, when sent (``token X`` or ``Bearer X``), must be the configured one; anonymous is allowed
        as on GitHub. ``reject_auth`` refuses every call, ``forbidden`` answers a plain 403."""
        header = request.header("Authorization").strip()
        if self.config["reject_auth"]:
            return _json(401, BAD_CREDENTIALS)
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() not in ("token", "bearer") or token.strip() != self.config["token"]:
                return _json(401, BAD_CREDENTIALS)
        if self.config["forbidden"]:
            return _json(403, FORBIDDEN)
        return None

    def rate_limited(self, retry_after: int) -> Response:
        """Primary limit (403 or 429 with remaining 0) or secondary limit (403 with retry-after)."""
        kind = self.config["rate_limit"]["kind"]
        if kind == "secondary":
            return _json(403, SECONDARY_LIMIT, {"retry-after": str(retry_after)})
        return _json(429 if kind == "primary_429" else 403, PRIMARY_LIMIT)

    def not_found(self, request: Request, match: Any = None) -> Response:
        """GitHub's JSON 404."""
        return _json(
            404,
            {"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"},
        )

    def api_headers(self, window: Window, throttled: bool) -> dict[str, str]:
        """``x-ratelimit-*`` like api.github.com (reset: a wall-clock epoch)."""
        cfg = self.config["rate_limit"]
        primary = throttled and cfg["kind"] != "secondary"
        retry_after = int(cfg.get("retry_after", 1))
        remaining = 0 if primary else window.remaining
        reset_in = retry_after if primary else window.reset
        headers = {
            "x-ratelimit-limit": str(self.config["ratelimit_budget"]),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(int(time.time()) + reset_in),
            "x-ratelimit-used": str(min(window.used, self.config["ratelimit_budget"])),
            **COMMON_HEADERS,
        }
        if throttled and not primary:
            headers["retry-after"] = str(retry_after)
        return headers

    # -- entry points --------------------------------------------------------------------------------
    def _fault(self) -> Response | None:
        html = self.config["html_pages"]
        if html.get("count", 0) > 0:
            html["count"] -= 1
            return Response(
                status=200,
                body=b"<!DOCTYPE html><html><body><h1>Unicorn!</h1><p>This page is taking too long to load.</p>"
                b"</body></html>",
                content_type="text/html; charset=utf-8",
            )
        return None

    def _resolve(self, match: Any) -> Repo | None:
        groups = match.groupdict()
        if groups.get("rid"):
            full_name = self._by_id.get((self.sim.seed, int(groups["rid"])))
            if full_name is None:
                return None
        else:
            full_name = f"{groups['owner']}/{groups['repo']}"
        if full_name.lower() in {m.lower() for m in self.config["missing_repos"]}:
            return None
        return self._repo(full_name)

    def get_repo(self, request: Request, match: Any) -> Response:
        """``GET /repos/{owner}/{repo}``: the repository as of now."""
        fault = self._fault()
        if fault is not None:
            return fault
        repo = self._resolve(match)
        if repo is None:
            return self.not_found(request)
        api = _base(request, self.sim)
        body = self._repo_object(api, repo, request.now, "full")
        modified = _http_date(_parse_iso(body["updated_at"]))
        identity = f"repo:{repo.full_name}"
        bad = self._bad(identity, BAD_REPO)
        if bad:
            _break_repo(body, bad, request.now)
        return _page(
            api,
            body,
            {
                "cache-control": "private, max-age=60, s-maxage=60",
                "last-modified": modified,
                "x-ratelimit-resource": "core",
            },
            [ServedItem(identity, f"/repos/{repo.full_name}", bad)],
        )

    def repo_events(self, request: Request, match: Any) -> Response:
        """``GET /repos/{owner}/{repo}/events``: newest first, at most ``events_cap`` of the last 90 days."""
        fault = self._fault()
        if fault is not None:
            return fault
        repo = self._resolve(match)
        if repo is None:
            return self.not_found(request)
        api = _base(request, self.sim)
        now = request.now
        per_page = _int_param(request.query.get("per_page"), 30, 1, 100)
        page = _int_param(request.query.get("page"), 1, 1, 10**6)
        timeline = self._event_timeline(repo, now)
        first = (page - 1) * per_page
        if first >= self.config["events_cap"] and first > 0:
            return _json(
                422,
                {
                    "message": "In order to keep the API fast for everyone, pagination is limited for this "
                    "resource.",
                    "documentation_url": "https://docs.github.com/v3/#pagination",
                    "status": "422",
                },
            )
        chosen = self._slice(timeline, page, per_page)
        items, served = [], []
        endpoint = f"/repos/{repo.full_name}/events"
        for slot in chosen:
            event = self._event(api, repo, slot)
            identity = f"event:{slot.id}"
            bad = self._bad(identity, BAD_TEXT_EVENT if event["type"] in TEXT_EVENTS else BAD_EVENT)
            if bad:
                _break_event(event, bad, now)
            items.append(event)
            served.append(ServedItem(identity, endpoint, bad))
        link = _link(api, f"/repositories/{repo.id}/events", request.query, page, per_page, len(timeline))
        headers = {
            "cache-control": "private, max-age=60, s-maxage=60",
            "x-poll-interval": "60",
            "x-ratelimit-resource": "core",
            **({"last-modified": _http_date(chosen[0].created)} if chosen else {}),
            **link,
        }
        return _page(api, items, headers, served)

    def repo_issues(self, request: Request, match: Any) -> Response:
        """``GET /repos/{owner}/{repo}/issues`` with ``state``, ``since``, ``sort``, ``direction``, paging."""
        fault = self._fault()
        if fault is not None:
            return fault
        repo = self._resolve(match)
        if repo is None:
            return self.not_found(request)
        api = _base(request, self.sim)
        now = request.now
        q = request.query
        state = q.get("state", "open")
        if state not in ("open", "closed", "all"):
            return _validation_failed("state")
        since = None
        if q.get("since"):
            try:
                since = _parse_iso(q["since"])
            except ValueError:
                return _validation_failed("since")
        sort = q.get("sort", "created")
        if sort not in ("created", "updated", "comments"):
            return _validation_failed("sort")
        descending = q.get("direction", "desc") != "asc"
        per_page = _int_param(q.get("per_page"), 30, 1, 100)
        page = _int_param(q.get("page"), 1, 1, 10**6)
        issues = []
        for issue in self._issue_history(repo, now):
            closed = issue.closed_at(now) is not None
            if (state == "open" and closed) or (state == "closed" and not closed):
                continue
            if since is not None and issue.updated_at(now) < since:
                continue
            issues.append(issue)
        keys = {
            "created": lambda i: (i.created, i.number),
            "updated": lambda i: (i.updated_at(now), i.number),
            "comments": lambda i: (i.comments_at(now), i.number),
        }
        issues.sort(key=keys[sort], reverse=descending)
        chosen = self._slice(issues, page, per_page)
        items, served = [], []
        endpoint = f"/repos/{repo.full_name}/issues"
        for issue in chosen:
            body = self._issue_object(api, repo, issue, now)
            identity = f"issue:{issue.id}"
            bad = self._bad(identity, BAD_ISSUE)
            if bad:
                _break_issue(body, bad, now)
            items.append(body)
            served.append(ServedItem(identity, endpoint, bad))
        link = _link(api, f"/repositories/{repo.id}/issues", q, page, per_page, len(issues))
        headers = {
            "cache-control": "private, max-age=60, s-maxage=60",
            "x-ratelimit-resource": "core",
            **link,
        }
        return _page(api, items, headers, served)

    def search_repositories(self, request: Request, match: Any) -> Response:
        """``GET /search/repositories?q=...``: repositories by stars (or by the requested order)."""
        fault = self._fault()
        if fault is not None:
            return fault
        api = _base(request, self.sim)
        q = request.query
        query = q.get("q", "").strip()
        if not query:
            return _validation_failed("q", resource="Search", code="missing")
        per_page = _int_param(q.get("per_page"), 30, 1, 100)
        page = _int_param(q.get("page"), 1, 1, 10**6)
        if (page - 1) * per_page >= SEARCH_WINDOW:
            return _json(
                422,
                {
                    "message": "Only the first 1000 search results are available",
                    "documentation_url": "https://docs.github.com/v3/search/",
                    "status": "422",
                },
            )
        now = request.now
        repos = self._search_hits(query)
        if q.get("sort") in ("stars", "forks"):
            repos = sorted(repos, key=lambda r: (r.stars(now), r.id), reverse=q.get("order", "desc") != "asc")
        reachable = repos[:SEARCH_WINDOW]
        chosen = self._slice(reachable, page, per_page)
        items, served = [], []
        for repo in chosen:
            body = self._repo_object(api, repo, now, "search")
            identity = f"repo:{repo.full_name}"
            bad = self._bad(identity, BAD_REPO)
            if bad:
                _break_repo(body, bad, now)
            items.append(body)
            served.append(ServedItem(identity, "/search/repositories", bad))
        link = _link(api, "/search/repositories", q, page, per_page, len(reachable))
        headers = {"cache-control": "no-cache", "x-ratelimit-resource": "search", **link}
        payload = {"total_count": len(repos), "incomplete_results": False, "items": items}
        return _page(api, payload, headers, served)

    def rate_limit_status(self, request: Request, match: Any) -> Response:
        """``GET /rate_limit``: the core window as on GitHub (other resources with their usual limits)."""
        stats = self.sim.stats()[self.name]
        budget = self.config["ratelimit_budget"]
        used = min(int(stats["requests"]), budget)
        reset = int(time.time()) + int(self.config["ratelimit_window"])
        core = {"limit": budget, "used": used, "remaining": budget - used, "reset": reset}
        limits = {
            "search": 30,
            "graphql": 5000,
            "integration_manifest": 5000,
            "source_import": 100,
            "code_scanning_upload": 1000,
            "code_scanning_autofix": 10,
            "actions_runner_registration": 10000,
            "scim": 15000,
            "dependency_snapshots": 100,
            "audit_log": 1750,
            "audit_log_streaming": 15,
            "code_search": 10,
        }
        resources = {"core": core}
        for name, limit in limits.items():
            resources[name] = {"limit": limit, "used": 0, "remaining": limit, "reset": int(time.time()) + 60}
        headers = {"cache-control": "no-cache", "x-ratelimit-resource": "core"}
        return _json(200, {"resources": resources, "rate": dict(core)}, headers)

    def _slice(self, seq: list[Any], page: int, per_page: int) -> list[Any]:
        """One page of ``seq``; with ``duplicate_across_pages`` a later page repeats the previous page's last
        item first (as when new items shift a page-numbered list between two requests)."""
        first = (page - 1) * per_page
        chosen = seq[first : first + per_page]
        if self.config["duplicate_across_pages"] and page > 1 and chosen:
            chosen = [seq[first - 1], *chosen[:-1]] if len(chosen) == per_page else [seq[first - 1], *chosen]
        return chosen

    # -- bad items -----------------------------------------------------------------------------------
    def _bad(self, identity: str, kinds: tuple[str, ...]) -> str | None:
        ratio = self.config["bad_items_ratio"]
        if ratio <= 0 or stable_fraction(self.sim.seed, "bad", identity) >= ratio:
            return None
        return kinds[stable_hash(self.sim.seed, "bad-kind", identity) % len(kinds)]

    # -- repositories --------------------------------------------------------------------------------
    def _repo(self, full_name: str) -> Repo:
        seed = self.sim.seed
        key = (seed, full_name.lower())
        repo = self._repos.get(key)
        if repo is not None:
            return repo
        owner, _, name = full_name.partition("/")
        rng = random.Random(stable_hash(seed, "repo", full_name.lower()))
        created = 1_325_376_000 + rng.randrange(10 * 365 * DAY)  # 2012..2021
        license_ = rng.choice(LICENSES) if rng.random() < 0.9 else None
        repo = Repo(
            full_name=full_name,
            owner=owner,
            name=name,
            id=10_000_000 + stable_hash(seed, "repo-id", full_name.lower()) % 90_000_000,
            owner_id=_user_id(owner),
            org=owner.lower() in KNOWN_ORGS or stable_fraction(seed, "org", owner.lower()) < 0.7,
            created=created,
            language=rng.choice(LANGUAGES),
            description=rng.choice(DESCRIPTIONS),
            topics=tuple(sorted(rng.sample(TOPICS, rng.randint(0, 5)))),
            license=license_,
            homepage=f"https://{name.lower()}.readthedocs.io/" if rng.random() < 0.5 else None,
            stars0=rng.randrange(500),
            star_rate=round(rng.uniform(0.5, 40.0), 3),
            fork_ratio=rng.uniform(0.05, 0.3),
            watch_ratio=rng.uniform(0.01, 0.04),
            size0=rng.randrange(500, 50_000),
            base_open=rng.randrange(20, 400),
            number0=rng.randrange(1, 5000),
            default_branch="main" if rng.random() < 0.8 else "master",
        )
        self._repos[key] = repo
        self._by_id[(seed, repo.id)] = full_name
        return repo

    def _pushed_at(self, repo: Repo, now: float) -> int:
        if self.config["events_per_hour"] <= 0:
            return repo.created + DAY
        hour = int(now // HOUR)
        for h in range(hour, hour - 24 * 90, -1):
            pushes = [
                s.created for s in self._event_bucket(repo, h) if s.type == "PushEvent" and s.created <= now
            ]
            if pushes:
                return max(pushes)
        return repo.created + DAY

    def _open_issues(self, repo: Repo, now: float) -> int:
        return repo.base_open + sum(1 for i in self._issue_history(repo, now) if i.closed_at(now) is None)

    def _repo_object(self, api: str, repo: Repo, now: float, variant: str) -> dict[str, Any]:
        """A repository object: ``full`` (``/repos``), ``search`` (a hit) or ``embedded`` (in event payloads)."""
        full, owner, name = repo.full_name, repo.owner, repo.name
        stars = repo.stars(now)
        forks = int(stars * repo.fork_ratio)
        pushed = self._pushed_at(repo, now) if variant != "embedded" else int(now) - HOUR
        updated = max(pushed, int(now) - stable_hash(self.sim.seed, full, int(now // HOUR)) % HOUR)
        # counting the simulated open issues is for /repos only (search pages hold many repositories)
        open_issues = self._open_issues(repo, now) if variant == "full" else repo.base_open + stars // 200
        url = f"{api}/repos/{full}"
        body: dict[str, Any] = {
            "id": repo.id,
            "node_id": _node_id("010:Repository", repo.id),
            "name": name,
            "full_name": full,
            "private": False,
            "owner": _user(api, owner, "Organization" if repo.org else "User"),
            "html_url": f"{WEB}/{full}",
            "description": repo.description,
            "fork": False,
            "url": url,
            "forks_url": f"{url}/forks",
            "keys_url": f"{url}/keys{{/key_id}}",
            "collaborators_url": f"{url}/collaborators{{/collaborator}}",
            "teams_url": f"{url}/teams",
            "hooks_url": f"{url}/hooks",
            "issue_events_url": f"{url}/issues/events{{/number}}",
            "events_url": f"{url}/events",
            "assignees_url": f"{url}/assignees{{/user}}",
            "branches_url": f"{url}/branches{{/branch}}",
            "tags_url": f"{url}/tags",
            "blobs_url": f"{url}/git/blobs{{/sha}}",
            "git_tags_url": f"{url}/git/tags{{/sha}}",
            "git_refs_url": f"{url}/git/refs{{/sha}}",
            "trees_url": f"{url}/git/trees{{/sha}}",
            "statuses_url": f"{url}/statuses/{{sha}}",
            "languages_url": f"{url}/languages",
            "stargazers_url": f"{url}/stargazers",
            "contributors_url": f"{url}/contributors",
            "subscribers_url": f"{url}/subscribers",
            "subscription_url": f"{url}/subscription",
            "commits_url": f"{url}/commits{{/sha}}",
            "git_commits_url": f"{url}/git/commits{{/sha}}",
            "comments_url": f"{url}/comments{{/number}}",
            "issue_comment_url": f"{url}/issues/comments{{/number}}",
            "contents_url": f"{url}/contents/{{+path}}",
            "compare_url": f"{url}/compare/{{base}}...{{head}}",
            "merges_url": f"{url}/merges",
            "archive_url": f"{url}/{{archive_format}}{{/ref}}",
            "downloads_url": f"{url}/downloads",
            "issues_url": f"{url}/issues{{/number}}",
            "pulls_url": f"{url}/pulls{{/number}}",
            "milestones_url": f"{url}/milestones{{/number}}",
            "notifications_url": f"{url}/notifications{{?since,all,participating}}",
            "labels_url": f"{url}/labels{{/name}}",
            "releases_url": f"{url}/releases{{/id}}",
            "deployments_url": f"{url}/deployments",
            "created_at": _iso(repo.created),
            "updated_at": _iso(updated),
            "pushed_at": _iso(pushed),
            "git_url": f"git://github.com/{full}.git",
            "ssh_url": f"git@github.com:{full}.git",
            "clone_url": f"{WEB}/{full}.git",
            "svn_url": f"{WEB}/{full}",
            "homepage": repo.homepage,
            "size": repo.size0 + int(max(0.0, now - repo.created) / DAY * 0.5),
            "stargazers_count": stars,
            "watchers_count": stars,
            "language": repo.language,
            "has_issues": True,
            "has_projects": True,
            "has_downloads": True,
            "has_wiki": repo.id % 3 != 0,
            "has_pages": repo.id % 5 == 0,
            "has_discussions": repo.id % 2 == 0,
            "forks_count": forks,
            "mirror_url": None,
            "archived": False,
            "disabled": False,
            "open_issues_count": open_issues,
            "license": _license(api, repo.license),
            "allow_forking": True,
            "is_template": False,
            "web_commit_signoff_required": False,
            "has_pull_requests": True,
            "pull_request_creation_policy": "all",
            "topics": list(repo.topics),
            "visibility": "public",
            "forks": forks,
            "open_issues": open_issues,
            "watchers": stars,
            "default_branch": repo.default_branch,
        }
        if variant == "full":
            body["temp_clone_token"] = None
            body["custom_properties"] = {}
            if repo.org:
                body["organization"] = _user(api, owner, "Organization")
            body["network_count"] = forks
            body["subscribers_count"] = max(1, int(stars * repo.watch_ratio))
        else:
            body["master_branch"] = repo.default_branch  # the older shape recorded for hits and payloads
        if variant == "search":
            body["score"] = 1.0
        return body

    def _search_hits(self, query: str) -> list[Repo]:
        seed = self.sim.seed
        total = 0 if "doesnotexist" in query.lower() else self.config["search_total"]
        key = (seed, query, total)
        cached = self._search.get(key)
        if cached is not None:
            return cached
        names: set[str] = set()
        out = []
        for i in range(total):
            rng = random.Random(stable_hash(seed, "search", query, i))
            owner = rng.choice(SEARCH_OWNERS)
            name = f"{rng.choice(SEARCH_WORDS)}{rng.choice(SEARCH_WORDS)}"
            full = f"{owner}/{name}"
            if full.lower() in names:
                full = f"{full}-{i}"
            names.add(full.lower())
            out.append(self._repo(full))
        return self._search.put(key, out)

    # -- events --------------------------------------------------------------------------------------
    def _event_bucket(self, repo: Repo, hour: int) -> list[EventSlot]:
        count = self.config["events_per_hour"]
        seed = self.sim.seed
        key = (seed, repo.key, hour, count)
        cached = self._events.get(key)
        if cached is not None:
            return cached
        rng = random.Random(stable_hash(seed, repo.key, "events", hour))
        times = sorted(hour * HOUR + rng.randrange(HOUR) for _ in range(count))
        bucket = [
            EventSlot(
                repo.key,
                hour,
                i,
                times[i],
                str(hour * 10**11 + (repo.id % 10**8) * 1000 + i),
                _pick(random.Random(stable_hash(seed, repo.key, "event-type", hour, i)), EVENT_MIX),
            )
            for i in range(count)
        ]
        return self._events.put(key, bucket)

    def _event_timeline(self, repo: Repo, now: float) -> list[EventSlot]:
        """What GitHub would list: newest first, created in the last ``events_max_age_days``, capped."""
        cap = self.config["events_cap"]
        if cap <= 0 or self.config["events_per_hour"] <= 0:
            return []
        oldest = now - self.config["events_max_age_days"] * DAY
        out: list[EventSlot] = []
        hour = int(now // HOUR)
        while len(out) < cap and (hour + 1) * HOUR > oldest:
            visible = [s for s in self._event_bucket(repo, hour) if oldest <= s.created <= now]
            out.extend(sorted(visible, key=lambda s: (s.created, s.idx), reverse=True))
            hour -= 1
        return out[:cap]

    def _event(self, api: str, repo: Repo, slot: EventSlot) -> dict[str, Any]:
        rng = random.Random(stable_hash(self.sim.seed, repo.key, "event", slot.hour, slot.idx))
        actor = _login(rng)
        etype, payload = self._event_payload(api, repo, slot, rng, actor)
        event: dict[str, Any] = {
            "id": slot.id,
            "type": etype,
            "actor": {
                "id": _user_id(actor),
                "login": actor,
                "display_login": actor,
                "gravatar_id": "",
                "url": f"{api}/users/{actor}",
                "avatar_url": f"https://avatars.githubusercontent.com/u/{_user_id(actor)}?",
            },
            "repo": {"id": repo.id, "name": repo.full_name, "url": f"{api}/repos/{repo.full_name}"},
            "payload": payload,
            "public": True,
            "created_at": _iso(slot.created),
        }
        if repo.org:
            event["org"] = {
                "id": repo.owner_id,
                "login": repo.owner,
                "gravatar_id": "",
                "url": f"{api}/orgs/{repo.owner}",
                "avatar_url": f"https://avatars.githubusercontent.com/u/{repo.owner_id}?",
            }
        return event

    def _event_issue(self, repo: Repo, slot: EventSlot, rng: random.Random, want_pr: bool) -> Issue | None:
        """An issue (or pull request) of the repository created before the event, within the last week."""
        if self.config["issues_per_hour"] <= 0:
            return None
        for _ in range(12):
            hour = slot.hour - rng.randrange(7 * 24)
            bucket = self._issue_bucket(repo, hour)
            if not bucket:
                continue
            issue = bucket[rng.randrange(len(bucket))]
            if issue.created <= slot.created and issue.is_pr == want_pr:
                return issue
        return None

    def _event_payload(
        self, api: str, repo: Repo, slot: EventSlot, rng: random.Random, actor: str
    ) -> tuple[str, dict[str, Any]]:
        t = slot.created
        etype = slot.type
        url = f"{api}/repos/{repo.full_name}"
        if etype in ("IssuesEvent", "IssueCommentEvent", "PullRequestEvent", "PullRequestReviewCommentEvent"):
            issue = self._event_issue(repo, slot, rng, want_pr=etype.startswith("PullRequest"))
            if issue is None:
                etype = "WatchEvent"
            elif etype == "IssuesEvent":
                action = (
                    "opened" if t - issue.created < HOUR else rng.choice(("closed", "reopened", "labeled"))
                )
                return etype, {"action": action, "issue": self._issue_object(api, repo, issue, t, event=True)}
            elif etype == "IssueCommentEvent":
                return etype, {
                    "action": "created",
                    "issue": self._issue_object(api, repo, issue, t, event=True),
                    "comment": self._comment(api, repo, issue, slot, rng, actor),
                }
            elif etype == "PullRequestEvent":
                action = (
                    "opened" if t - issue.created < HOUR else rng.choice(("closed", "synchronize", "edited"))
                )
                return etype, {
                    "action": action,
                    "number": issue.number,
                    "pull_request": self._pull_request(api, repo, issue, t),
                }
            else:
                return etype, {
                    "action": "created",
                    "comment": self._review_comment(api, repo, issue, slot, rng, actor),
                    "pull_request": self._pull_request(api, repo, issue, t),
                }
        if etype == "PushEvent":
            branch = rng.choice(BRANCHES)
            size = rng.randint(1, 4)
            commits = []
            for i in range(size):
                name, email = _person(actor)
                message = rng.choice(COMMIT_MESSAGES)
                if rng.random() < 0.3:
                    message += f"\n\n{rng.choice(SENTENCES)}\n\nSigned-off-by: {name} <{email}>"
                sha = _sha(self.sim.seed, slot.id, i)
                commits.append(
                    {
                        "sha": sha,
                        "author": {"email": email, "name": name},
                        "message": message,
                        "distinct": True,
                        "url": f"{url}/commits/{sha}",
                    }
                )
            return etype, {
                "repository_id": repo.id,
                "push_id": int(slot.id) // 1000,
                "size": size,
                "distinct_size": size,
                "ref": f"refs/heads/{branch}",
                "head": commits[-1]["sha"],
                "before": _sha(self.sim.seed, slot.id, "before"),
                "commits": commits,
            }
        if etype == "CreateEvent":
            return etype, {
                "ref": rng.choice(BRANCHES[3:]),
                "ref_type": "branch",
                "master_branch": repo.default_branch,
                "description": repo.description,
                "pusher_type": "user",
            }
        if etype == "DeleteEvent":
            return etype, {"ref": rng.choice(BRANCHES[3:]), "ref_type": "branch", "pusher_type": "user"}
        if etype == "ForkEvent":
            fork = self._repo(f"{actor}/{repo.name}")
            forkee = self._repo_object(api, fork, t, "embedded")
            forkee.update(fork=True, stargazers_count=0, watchers_count=0, watchers=0, forks_count=0, forks=0)
            forkee["public"] = True
            return etype, {"forkee": forkee}
        if etype == "ReleaseEvent":
            tag = f"v{1 + repo.id % 4}.{slot.hour % 20}.{slot.idx}"
            rid = int(slot.id) // 1000
            return etype, {
                "action": "published",
                "release": {
                    "url": f"{url}/releases/{rid}",
                    "assets_url": f"{url}/releases/{rid}/assets",
                    "upload_url": f"https://uploads.github.com/repos/{repo.full_name}/releases/{rid}/assets"
                    "{?name,label}",
                    "html_url": f"{WEB}/{repo.full_name}/releases/tag/{tag}",
                    "id": rid,
                    "author": _user(api, actor),
                    "node_id": _node_id("07:Release", rid),
                    "tag_name": tag,
                    "target_commitish": repo.default_branch,
                    "name": f"Release {tag}",
                    "draft": False,
                    "prerelease": False,
                    "created_at": _iso(t - 600),
                    "published_at": _iso(t),
                    "assets": [],
                    "tarball_url": f"{url}/tarball/{tag}",
                    "zipball_url": f"{url}/zipball/{tag}",
                    "body": " ".join(rng.sample(SENTENCES, 3)),
                },
            }
        return "WatchEvent", {"action": "started"}

    def _comment(
        self, api: str, repo: Repo, issue: Issue, slot: EventSlot, rng: random.Random, actor: str
    ) -> dict[str, Any]:
        cid = int(slot.id) // 100
        url = f"{api}/repos/{repo.full_name}"
        return {
            "url": f"{url}/issues/comments/{cid}",
            "html_url": f"{WEB}/{repo.full_name}/issues/{issue.number}#issuecomment-{cid}",
            "issue_url": f"{url}/issues/{issue.number}",
            "id": cid,
            "node_id": _node_id("012:IssueComment", cid),
            "user": _user(api, actor),
            "created_at": _iso(slot.created),
            "updated_at": _iso(slot.created),
            "author_association": rng.choice(ASSOCIATIONS),
            "body": _comment_entry(self.sim.seed, repo.key, cid).body,
            "reactions": _reactions(f"{url}/issues/comments/{cid}", (0,) * 8),
            "performed_via_github_app": None,
        }

    def _review_comment(
        self, api: str, repo: Repo, issue: Issue, slot: EventSlot, rng: random.Random, actor: str
    ) -> dict[str, Any]:
        cid = int(slot.id) // 100
        url = f"{api}/repos/{repo.full_name}"
        sha = _sha(self.sim.seed, "pr-head", issue.id)
        position = rng.randint(1, 80)
        return {
            "url": f"{url}/pulls/comments/{cid}",
            "pull_request_review_id": cid + 1,
            "id": cid,
            "node_id": _node_id("024:PullRequestReviewComment", cid),
            "diff_hunk": "@@ -10,6 +10,8 @@ def fetch_page(self, page):\n-        return self.get(page)\n"
            "+        response = self.get(page)\n+        return response",
            "path": "src/client.py",
            "position": position,
            "original_position": position,
            "commit_id": sha,
            "original_commit_id": sha,
            "user": _user(api, actor),
            "body": _comment_entry(self.sim.seed, repo.key, cid).body,
            "created_at": _iso(slot.created),
            "updated_at": _iso(slot.created),
            "html_url": f"{WEB}/{repo.full_name}/pull/{issue.number}#discussion_r{cid}",
            "pull_request_url": f"{url}/pulls/{issue.number}",
            "author_association": rng.choice(ASSOCIATIONS),
            "_links": {
                "self": {"href": f"{url}/pulls/comments/{cid}"},
                "html": {"href": f"{WEB}/{repo.full_name}/pull/{issue.number}#discussion_r{cid}"},
                "pull_request": {"href": f"{url}/pulls/{issue.number}"},
            },
            "reactions": _reactions(f"{url}/pulls/comments/{cid}", (0,) * 8),
            "line": position,
            "original_line": position,
            "side": "RIGHT",
        }

    def _pull_request(self, api: str, repo: Repo, issue: Issue, t: float) -> dict[str, Any]:
        url = f"{api}/repos/{repo.full_name}"
        web = f"{WEB}/{repo.full_name}"
        n = issue.number
        closed = issue.closed_at(t)
        merged = closed is not None and issue.merged
        head_sha = _sha(self.sim.seed, "pr-head", issue.id)
        rng = random.Random(stable_hash(self.sim.seed, "pr", issue.id))
        embedded = self._repo_object(api, repo, t, "embedded")
        branch = f"fix/issue-{n}"
        return {
            "url": f"{url}/pulls/{n}",
            "id": issue.id // 10 + 7,
            "node_id": _node_id("011:PullRequest", issue.id),
            "html_url": f"{web}/pull/{n}",
            "diff_url": f"{web}/pull/{n}.diff",
            "patch_url": f"{web}/pull/{n}.patch",
            "issue_url": f"{url}/issues/{n}",
            "number": n,
            "state": "closed" if closed else "open",
            "locked": False,
            "title": issue.title,
            "user": _user(api, issue.login),
            "body": issue.body,
            "created_at": _iso(issue.created),
            "updated_at": _iso(issue.updated_at(t)),
            "closed_at": _iso(closed),
            "merged_at": _iso(closed) if merged else None,
            "merge_commit_sha": _sha(self.sim.seed, "merge", issue.id),
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "labels": [_label(api, repo, label) for label in issue.labels],
            "milestone": None,
            "draft": False,
            "commits_url": f"{url}/pulls/{n}/commits",
            "review_comments_url": f"{url}/pulls/{n}/comments",
            "review_comment_url": f"{url}/pulls/comments{{/number}}",
            "comments_url": f"{url}/issues/{n}/comments",
            "statuses_url": f"{url}/statuses/{head_sha}",
            "head": {
                "label": f"{repo.owner}:{branch}",
                "ref": branch,
                "sha": head_sha,
                "user": _user(api, repo.owner, "Organization" if repo.org else "User"),
                "repo": embedded,
            },
            "base": {
                "label": f"{repo.owner}:{repo.default_branch}",
                "ref": repo.default_branch,
                "sha": _sha(self.sim.seed, "pr-base", issue.id),
                "user": _user(api, repo.owner, "Organization" if repo.org else "User"),
                "repo": embedded,
            },
            "_links": {
                "self": {"href": f"{url}/pulls/{n}"},
                "html": {"href": f"{web}/pull/{n}"},
                "issue": {"href": f"{url}/issues/{n}"},
                "comments": {"href": f"{url}/issues/{n}/comments"},
                "review_comments": {"href": f"{url}/pulls/{n}/comments"},
                "review_comment": {"href": f"{url}/pulls/comments{{/number}}"},
                "commits": {"href": f"{url}/pulls/{n}/commits"},
                "statuses": {"href": f"{url}/statuses/{head_sha}"},
            },
            "author_association": issue.association,
            "auto_merge": None,
            "active_lock_reason": None,
            "merged": merged,
            "mergeable": None if closed else True,
            "rebaseable": None if closed else True,
            "mergeable_state": "unknown" if closed else "clean",
            "merged_by": _user(api, repo.owner) if merged else None,
            "comments": issue.comments_at(t),
            "review_comments": rng.randint(0, 6),
            "maintainer_can_modify": False,
            "commits": rng.randint(1, 12),
            "additions": rng.randint(1, 400),
            "deletions": rng.randint(0, 200),
            "changed_files": rng.randint(1, 15),
        }

    # -- issues --------------------------------------------------------------------------------------
    def _issue_bucket(self, repo: Repo, hour: int) -> list[Issue]:
        count = self.config["issues_per_hour"]
        seed = self.sim.seed
        key = (seed, repo.key, hour, count)
        cached = self._issues.get(key)
        if cached is not None:
            return cached
        bucket = []
        for idx in range(count):
            rng = random.Random(stable_hash(seed, repo.key, "issue", hour, idx))
            created = hour * HOUR + rng.randrange(HOUR)
            number = repo.number0 + (hour - H0) * count + idx
            times: list[int] = []
            t = float(created)
            for _ in range(rng.choice((0, 0, 1, 1, 2, 3, 4, 6, 8))):
                t += rng.expovariate(1 / (5 * HOUR))
                times.append(int(t))
            closed = int(created + rng.expovariate(1 / (30 * HOUR))) if rng.random() < 0.6 else None
            reactions = tuple(rng.choice((0, 0, 0, 1, 2)) for _ in range(8))
            bucket.append(
                Issue(
                    repo=repo.key,
                    hour=hour,
                    idx=idx,
                    number=number,
                    id=repo.id * 10**7 + number,
                    created=created,
                    is_pr=rng.random() < 0.35,
                    login=_login(rng),
                    association=rng.choice(ASSOCIATIONS),
                    title=(entry := _issue_entry(seed, repo.key, hour * max(count, 1) + idx)).title,
                    body=entry.body,
                    labels=tuple(sorted(rng.sample(LABELS, rng.choice((0, 0, 1, 1, 2))))),
                    comment_times=tuple(times),
                    closed=closed,
                    merged=rng.random() < 0.7,
                    reactions=reactions,
                )
            )
        return self._issues.put(key, bucket)

    def origin(self, issue: Issue) -> str:
        """The corpus id of an issue's title and body (equal origins = the same text)."""
        n = issue.hour * max(self.config["issues_per_hour"], 1) + issue.idx
        return _issue_entry(self.sim.seed, issue.repo, n).id

    def _issue_history(self, repo: Repo, now: float) -> list[Issue]:
        """Every simulated issue created in the last ``issue_history_days`` up to ``now``."""
        hour = int(now // HOUR)
        first = hour - self.config["issue_history_days"] * 24
        return [i for h in range(first, hour + 1) for i in self._issue_bucket(repo, h) if i.created <= now]

    def _issue_object(
        self, api: str, repo: Repo, issue: Issue, t: float, *, event: bool = False
    ) -> dict[str, Any]:
        """An issue as ``/issues`` lists it at ``t``; in event payloads with the older ``pull_request`` stub."""
        url = f"{api}/repos/{repo.full_name}"
        n = issue.number
        closed = issue.closed_at(t)
        kind = "pull" if issue.is_pr else "issues"
        body: dict[str, Any] = {
            "url": f"{url}/issues/{n}",
            "repository_url": url,
            "labels_url": f"{url}/issues/{n}/labels{{/name}}",
            "comments_url": f"{url}/issues/{n}/comments",
            "events_url": f"{url}/issues/{n}/events",
            "html_url": f"{WEB}/{repo.full_name}/{kind}/{n}",
            "id": issue.id,
            "node_id": _node_id("05:Issue" if not issue.is_pr else "011:PullRequest", issue.id),
            "number": n,
            "title": issue.title,
            "user": _user(api, issue.login),
            "labels": [_label(api, repo, label) for label in issue.labels],
            "state": "closed" if closed else "open",
            "locked": False,
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "comments": issue.comments_at(t),
            "created_at": _iso(issue.created),
            "updated_at": _iso(issue.updated_at(t)),
            "closed_at": _iso(closed),
            "author_association": issue.association,
            "active_lock_reason": None,
        }
        if issue.is_pr:
            body["draft"] = False
            body["pull_request"] = {
                "url": f"{url}/pulls/{n}",
                "html_url": f"{WEB}/{repo.full_name}/pull/{n}",
                "diff_url": f"{WEB}/{repo.full_name}/pull/{n}.diff",
                "patch_url": f"{WEB}/{repo.full_name}/pull/{n}.patch",
                "merged_at": _iso(closed) if closed and issue.merged else None,
            }
        elif event:
            body["pull_request"] = {"html_url": None, "diff_url": None, "patch_url": None}
        body.update(
            {
                "body": issue.body,
                "closed_by": _user(api, repo.owner) if closed else None,
                "reactions": _reactions(f"{url}/issues/{n}/reactions", issue.reactions),
                "timeline_url": f"{url}/issues/{n}/timeline",
                "performed_via_github_app": None,
                "state_reason": ("completed" if closed else None),
            }
        )
        return body


# --------------------------------------------------------------------------------------------------
# objects and responses
# --------------------------------------------------------------------------------------------------


def _issue_entry(seed: int, repo: str, n: int) -> _text.Entry:
    """A real issue or pull request (title, body) from PyGithub's ReplayData for issue ``n`` of ``repo``."""
    return _text.pick(_text.pool("github_issue"), seed, f"github:{repo}", n)


def _comment_entry(seed: int, repo: str, comment_id: int) -> _text.Entry:
    """A real issue comment for a comment id (the corpus holds few, so they repeat across repositories)."""
    return _text.pick(_text.pool("github_comment"), seed, f"github-comment:{repo}", comment_id)


def _user(api: str, login: str, kind: str = "User") -> dict[str, Any]:
    uid = _user_id(login)
    url = f"{api}/users/{login}"
    return {
        "login": login,
        "id": uid,
        "node_id": _node_id("04:User" if kind == "User" else "012:Organization", uid),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4",
        "gravatar_id": "",
        "url": url,
        "html_url": f"{WEB}/{login}",
        "followers_url": f"{url}/followers",
        "following_url": f"{url}/following{{/other_user}}",
        "gists_url": f"{url}/gists{{/gist_id}}",
        "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{url}/subscriptions",
        "organizations_url": f"{url}/orgs",
        "repos_url": f"{url}/repos",
        "events_url": f"{url}/events{{/privacy}}",
        "received_events_url": f"{url}/received_events",
        "type": kind,
        "user_view_type": "public",
        "site_admin": False,
    }


def _label(api: str, repo: Repo, name: str) -> dict[str, Any]:
    lid = 1_000_000 + stable_hash("label", repo.key, name) % 9_000_000
    return {
        "id": lid,
        "node_id": _node_id("05:Label", lid),
        "url": f"{api}/repos/{repo.full_name}/labels/{name.replace(' ', '%20')}",
        "name": name,
        "color": LABEL_COLORS[LABELS.index(name) % len(LABEL_COLORS)],
        "default": name in ("bug", "enhancement", "documentation", "question"),
        "description": None,
    }


def _license(api: str, lic: tuple[str, str, str, str] | None) -> dict[str, Any] | None:
    if lic is None:
        return None
    key, name, spdx, node = lic
    return {"key": key, "name": name, "spdx_id": spdx, "url": f"{api}/licenses/{key}", "node_id": node}


def _reactions(url: str, counts: tuple[int, ...]) -> dict[str, Any]:
    names = ("+1", "-1", "laugh", "hooray", "confused", "heart", "rocket", "eyes")
    return {"url": url, "total_count": sum(counts), **dict(zip(names, counts, strict=True))}


def _base(request: Request, sim: Any) -> str:
    """The simulator's base URL as the client reached it (what replaces https://api.github.com)."""
    host = request.header("Host").strip()
    return f"http://{host}" if host else sim.url


def _json(status: int, obj: Any, headers: dict[str, str] | None = None, **kw: Any) -> Response:
    return Response(
        status=status, body=json_bytes(obj), content_type=GH_JSON, headers=dict(headers or {}), **kw
    )


def _page(api: str, obj: Any, headers: dict[str, str], served: list[ServedItem]) -> Response:
    body = json_bytes(obj)
    etag = 'W/"' + hashlib.sha256(body).hexdigest() + '"'
    return Response(
        status=200,
        body=body,
        content_type=GH_JSON,
        headers={"etag": etag, **headers},
        served=served,
        malformable=True,
    )


def _validation_failed(field: str, resource: str = "Issue", code: str = "invalid") -> Response:
    return _json(
        422,
        {
            "message": "Validation Failed",
            "errors": [{"resource": resource, "field": field, "code": code}],
            "documentation_url": "https://docs.github.com/rest",
            "status": "422",
        },
    )


def _link(api: str, path: str, query: dict[str, str], page: int, per_page: int, total: int) -> dict[str, str]:
    """GitHub's ``Link`` header for page-numbered lists (empty when everything fits on one page)."""
    last = max(1, -(-total // per_page))
    if last == 1 and page == 1:
        return {}
    keep = {k: v for k, v in query.items() if k != "page"}

    def url(n: int) -> str:
        return f"{api}{path}?{urlencode({**keep, 'page': n})}"

    rels = []
    if page > 1:
        rels += [f'<{url(page - 1)}>; rel="prev"', f'<{url(1)}>; rel="first"']
    if page < last:
        rels += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
    return {"link": ", ".join(rels)} if rels else {}


def _http_date(epoch: float) -> str:
    from email.utils import formatdate

    return formatdate(epoch, usegmt=True)


def _parse_iso(text: str) -> float:
    from datetime import UTC, datetime

    ts = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()


# --------------------------------------------------------------------------------------------------
# bad items
# --------------------------------------------------------------------------------------------------


def _break_repo(body: dict[str, Any], bad: str, now: float) -> None:
    if bad == "missing_id":
        for key in ("id", "node_id", "name", "full_name"):
            body.pop(key, None)
    elif bad == "bad_timestamp":
        body["pushed_at"] = "not-a-date"
    elif bad == "future_timestamp":
        body["pushed_at"] = _iso(now + FUTURE_SECONDS)
    elif bad == "bad_number":
        body["stargazers_count"] = "lots"


def _break_issue(body: dict[str, Any], bad: str, now: float) -> None:
    if bad == "missing_id":
        body.pop("id", None)
        body.pop("node_id", None)
    elif bad == "bad_timestamp":
        body["created_at"] = "not-a-date"
    elif bad == "future_timestamp":
        body["created_at"] = _iso(now + FUTURE_SECONDS)
    elif bad == "nul_byte":
        body["body"] = _nul(body.get("body") or "")
    elif bad == "huge_text":
        body["body"] = _huge(body.get("body") or "")
    elif bad == "missing_text":
        body.pop("title", None)


def _break_event(event: dict[str, Any], bad: str, now: float) -> None:
    if bad == "missing_id":
        event.pop("id", None)
    elif bad == "bad_timestamp":
        event["created_at"] = "not-a-date"
    elif bad == "future_timestamp":
        event["created_at"] = _iso(now + FUTURE_SECONDS)
    elif bad == "missing_text":
        event.pop("type", None)
    elif bad in ("nul_byte", "huge_text"):
        damage = _nul if bad == "nul_byte" else _huge
        payload = event["payload"]
        if event["type"] == "PushEvent":
            commit = payload["commits"][0]
            commit["message"] = damage(commit["message"])
        elif "comment" in payload:
            payload["comment"]["body"] = damage(payload["comment"]["body"])
        elif "issue" in payload:
            payload["issue"]["title"] = damage(payload["issue"]["title"])
        elif "pull_request" in payload:
            payload["pull_request"]["title"] = damage(payload["pull_request"]["title"])
        elif "release" in payload:
            payload["release"]["name"] = damage(payload["release"]["name"])
