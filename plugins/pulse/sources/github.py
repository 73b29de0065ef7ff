"""GitHub: what to page through per repository, and how those pages become documents and facts (pure).

Four kinds of stream, told apart by the prefix of :attr:`Stream.key`:

* ``repo:<owner/name>@<window end>``: ``GET /repos/{o}/{r}`` (one page) -> one repository snapshot fact;
* ``events:<owner/name>``: ``GET /repos/{o}/{r}/events?per_page=100`` -> ``github_event`` documents;
* ``issues:<owner/name>``: ``GET /repos/{o}/{r}/issues?state=all&since=<window start>&sort=updated&direction=asc
  &per_page=100`` -> ``issue`` / ``pull_request`` documents;
* ``search:<query>@<window end>``: ``GET /search/repositories?q=<query>&sort=stars&order=desc`` -> one
  snapshot fact per hit, at most ``search_max_items`` (in whole pages).

Snapshots are keyed by ``(repo, snapshot_at)`` with ``snapshot_at`` = the end of the run's window, so a re-run of
the same window upserts the same rows. The loader only hands the parser the stored page (no window), so the
window end travels in the stream key, after the last ``@`` (a repository name cannot hold one; a query may,
hence the *last*).

Privacy: logins go only through ``pseudonymize`` (``author_pseudonym``); summaries and issue texts have e-mail
addresses replaced by ``[email]`` and commit trailers (``Signed-off-by: Name <mail>``...) dropped; payloads keep
no login, name or e-mail. Quarantined items keep user objects reduced to their (pseudonymised) login.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pulse.config import ConfigError, int_in, mapping, str_list
from pulse.sources.base import (
    Document,
    Fact,
    ItemError,
    MalformedPageError,
    ParseOutput,
    Reason,
    StoredPage,
    Stream,
    check_int,
    check_iso,
    check_text,
    checked_pseudonymizer,
    rejected,
)
from pulse.warehouse.pgtypes import MAX_QUARANTINE_DEPTH, sane_iso_epoch

SOURCE = "github"
SNAPSHOT_TABLE = "core.github_repo_snapshots"
PER_PAGE = 100
#: How far back each stream can serve a window (``reach``): the Events API keeps at most 300 events of the
#: last 90 days; repository counters exist only "now" (a snapshot taken later than this after the window's
#: end would be labelled with a time it does not describe); issues take any ``since``.
EVENTS_REACH = timedelta(days=90)
SNAPSHOT_REACH = timedelta(hours=6)
#: Stream params the hook uses itself and never sends (the search cap).
CONTROL_PARAMS = frozenset({"max_items"})
KINDS = ("repo", "events", "issues", "search")

# owner: 1-39 alphanumerics or hyphens, not starting with a hyphen; name: 1-100 of [A-Za-z0-9._-], not . or ..
_REPO = re.compile(r"^(?!-)[A-Za-z0-9-]{1,39}/(?!\.\.?$)[A-Za-z0-9._-]{1,100}$")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_TRAILER = re.compile(
    r"^\s*(?:signed-off-by|co-authored-by|reviewed-by|acked-by|tested-by|reported-by|suggested-by)\s*:",
    re.IGNORECASE,
)
#: Keys whose string values :func:`pulse.sources.base.redact` pseudonymises in quarantined items.
PII_KEYS = frozenset({"login", "display_login", "email", "name"})


# ------------------------------------------------------------------------------------------------ config


@dataclass(frozen=True)
class GithubConfig:
    """The ``github`` entry of ``include/sources.yaml``."""

    conn_id: str
    repositories: tuple[str, ...]
    search: str | None
    search_max_items: int


def parse_config(entry: Any, where: str) -> GithubConfig:
    """Validate the ``github`` entry: ``{conn_id, repositories: [owner/name...], search, search_max_items}``."""
    entry = mapping(entry, where, {"conn_id", "repositories", "search", "search_max_items"})
    conn_id = entry.get("conn_id", "github_default")
    if not isinstance(conn_id, str) or not conn_id:
        raise ConfigError(f"{where}.conn_id: {conn_id!r} is not a connection id")
    repositories = str_list(entry, "repositories", where, pattern=None)
    seen: dict[str, int] = {}
    for i, repo in enumerate(repositories):
        if not _REPO.match(repo):
            raise ConfigError(f"{where}.repositories[{i}]: {repo!r} is not an owner/name repository")
        if repo.lower() in seen:
            raise ConfigError(
                f"{where}.repositories[{i}]: {repo!r} repeats repositories[{seen[repo.lower()]}]"
            )
        seen[repo.lower()] = i
    search = entry.get("search")
    if search is not None and (not isinstance(search, str) or not search.strip() or len(search) > 256):
        raise ConfigError(f"{where}.search: {search!r} must be a non-empty query of at most 256 characters")
    return GithubConfig(
        conn_id=conn_id,
        repositories=repositories,
        search=search.strip() if search else None,
        # GitHub search serves the first 1,000 results only.
        search_max_items=int_in(entry, "search_max_items", where, 1, 1000, 100),
    )


# ------------------------------------------------------------------------------------------------ streams


def _iso_z(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def plan_streams(config: GithubConfig, window: Any) -> list[Stream]:
    """The search first, then per repository its snapshot, events and issues.

    The search comes first so that, when a configured repository is also a search hit, its own snapshot
    (stored later, with ``watchers``, which search hits lack) is the copy the loader keeps.
    """
    end = window.end.astimezone(UTC).isoformat()
    streams: list[Stream] = []
    if config.search:
        per_page = min(PER_PAGE, config.search_max_items)
        streams.append(
            Stream(
                key=f"search:{config.search}@{end}",
                endpoint="/search/repositories",
                params={
                    "q": config.search,
                    "sort": "stars",
                    "order": "desc",
                    "per_page": per_page,
                    "max_items": config.search_max_items,
                },
            )
        )
    for repo in config.repositories:
        streams.append(Stream(key=f"repo:{repo}@{end}", endpoint=f"/repos/{repo}"))
        streams.append(
            Stream(key=f"events:{repo}", endpoint=f"/repos/{repo}/events", params={"per_page": PER_PAGE})
        )
        streams.append(
            Stream(
                key=f"issues:{repo}",
                endpoint=f"/repos/{repo}/issues",
                params={
                    "state": "all",
                    "since": _iso_z(window.start),
                    "sort": "updated",
                    "direction": "asc",
                    "per_page": PER_PAGE,
                },
            )
        )
    return streams


def stream_kind(key: str) -> str:
    """``repo``, ``events``, ``issues`` or ``search``, from a stream key."""
    kind = key.partition(":")[0]
    if kind not in KINDS:
        raise ValueError(f"not a GitHub stream key: {key!r}")
    return kind


def stream_subject(key: str) -> str:
    """The repository (or query) of a stream key, without the ``@<window end>`` suffix."""
    rest = key.partition(":")[2]
    if stream_kind(key) in ("repo", "search"):
        rest = rest.rpartition("@")[0]
    return rest


def snapshot_at(key: str) -> datetime:
    """The window end carried by a ``repo:``/``search:`` stream key."""
    text = key.rpartition("@")[2]
    try:
        ts = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"stream key {key!r} carries no window end") from exc
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def reach(stream: Stream) -> timedelta | None:
    """How far back the API can serve ``stream`` for a window (None: any window)."""
    return {"events": EVENTS_REACH, "repo": SNAPSHOT_REACH, "search": SNAPSHOT_REACH}.get(
        stream_kind(stream.key)
    )


# ------------------------------------------------------------------------------------------------ page shape


@dataclass(frozen=True)
class PageInfo:
    """What the hook needs from a page: its items and the bounds that decide when to stop paging."""

    items: list[Any]
    oldest_created: float | None = None  # events (newest first): the oldest created_at on the page
    newest_updated: float | None = None  # issues (updated ascending): the latest updated_at on the page
    total_count: int | None = None  # search


def _epoch(value: Any) -> float | None:
    """A usable ISO 8601 time as epoch seconds, else None: a hostile item's time never decides paging."""
    return sane_iso_epoch(value)


def _bound(items: list[Any], key: str, pick: Callable[[list[float]], float]) -> float | None:
    values = [e for e in (_epoch(i.get(key)) for i in items if isinstance(i, dict)) if e is not None]
    return pick(values) if values else None


def page_info(kind: str, body: bytes | str) -> PageInfo:
    """Check that ``body`` is a page of ``kind`` and return its items and paging bounds.

    :raises MalformedPageError: not JSON (an HTML page, a cut body), or JSON of the wrong shape.
    """
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raw = body if isinstance(body, str) else body[:80].decode("utf-8", "replace")
        raise MalformedPageError(f"body is not JSON ({exc}); starts with {raw[:80].strip()!r}") from None
    if kind == "repo":
        if not isinstance(doc, dict) or ("message" in doc and "id" not in doc and "full_name" not in doc):
            raise MalformedPageError("body is JSON but not a repository object")
        return PageInfo(items=[doc])
    if kind in ("events", "issues"):
        if not isinstance(doc, list):
            raise MalformedPageError(f"body is JSON but not a list of {kind}")
        if kind == "events":
            return PageInfo(items=doc, oldest_created=_bound(doc, "created_at", min))
        return PageInfo(items=doc, newest_updated=_bound(doc, "updated_at", max))
    if kind == "search":
        if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
            raise MalformedPageError("body is JSON but not a search result (no items list)")
        total = doc.get("total_count")
        if isinstance(total, bool) or not isinstance(total, int):
            raise MalformedPageError(f"search result total_count is {total!r}, expected an integer")
        return PageInfo(items=doc["items"], total_count=total)
    raise ValueError(f"unknown GitHub page kind {kind!r}")


# ------------------------------------------------------------------------------------------------ items


def _clean(text: str | None) -> str | None:
    """Drop commit trailers and replace e-mail addresses (people's names and mail stay in raw only)."""
    if text is None:
        return None
    kept = "\n".join(line for line in text.splitlines() if not _TRAILER.match(line))
    return _EMAIL.sub("[email]", kept).strip() or None


def _obj(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ItemError(Reason.BAD_FIELD, f"{name} is {type(value).__name__}, expected an object")
    return value


def _login(user: Any) -> str | None:
    if isinstance(user, dict) and isinstance(user.get("login"), str) and user["login"]:
        return user["login"]
    return None


def _numeric_id(prefix: str, value: Any) -> str:
    if isinstance(value, bool) or value is None or value == "":
        raise ItemError(Reason.MISSING_ID, "id is missing")
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return f"{prefix}:{value}"
    raise ItemError(Reason.MISSING_ID, f"id {value!r} is not a GitHub id")


def _summary(etype: str, payload: dict[str, Any], channel: str | None) -> tuple[str | None, str | None]:
    """A short text for an event and its html link, validating every text it uses."""
    action = payload.get("action") if isinstance(payload.get("action"), str) else None
    if etype == "PushEvent":
        ref = payload.get("ref") if isinstance(payload.get("ref"), str) else ""
        branch = ref.removeprefix("refs/heads/")
        commits = payload.get("commits")
        lines: list[str] = []
        if isinstance(commits, list):
            for i, commit in enumerate(commits):
                message = check_text(f"payload.commits[{i}].message", _obj(commit, "commit").get("message"))
                first = _clean(message.splitlines()[0] if message else None)
                if first:
                    lines.append(f"- {first}")
        size = check_int("payload.size", payload.get("size"))
        count = size if size is not None else len(lines)
        head = (
            f"Pushed {count} commit{'s' if count != 1 else ''} to {branch}"
            if lines
            else f"Pushed to {branch}"
        )
        return "\n".join([head, *lines[:20]]), None
    if etype in ("IssuesEvent", "PullRequestEvent"):
        key = "issue" if etype == "IssuesEvent" else "pull_request"
        thing = _obj(payload.get(key), f"payload.{key}")
        title = check_text(f"payload.{key}.title", thing.get("title"))
        number = check_int(f"payload.{key}.number", thing.get("number", payload.get("number")))
        noun = "issue" if key == "issue" else "pull request"
        text = f"{action or 'updated'} {noun}" + (f" #{number}" if number is not None else "")
        return (f"{text}: {_clean(title)}" if title else text), check_text(
            f"payload.{key}.html_url", thing.get("html_url")
        )
    if etype in ("IssueCommentEvent", "PullRequestReviewCommentEvent", "CommitCommentEvent"):
        comment = _obj(payload.get("comment"), "payload.comment")
        body = check_text("payload.comment.body", comment.get("body"))
        return _clean(body), check_text("payload.comment.html_url", comment.get("html_url"))
    if etype == "PullRequestReviewEvent":
        review = _obj(payload.get("review"), "payload.review")
        body = _clean(check_text("payload.review.body", review.get("body")))
        state = review.get("state") if isinstance(review.get("state"), str) else "submitted"
        return body or f"review {state.lower()}", check_text(
            "payload.review.html_url", review.get("html_url")
        )
    if etype == "ReleaseEvent":
        release = _obj(payload.get("release"), "payload.release")
        name = check_text("payload.release.name", release.get("name")) or check_text(
            "payload.release.tag_name", release.get("tag_name")
        )
        return f"{action or 'published'} release {_clean(name) or ''}".strip(), check_text(
            "payload.release.html_url", release.get("html_url")
        )
    if etype in ("CreateEvent", "DeleteEvent"):
        verb = "created" if etype == "CreateEvent" else "deleted"
        ref_type = payload.get("ref_type") if isinstance(payload.get("ref_type"), str) else "ref"
        ref = check_text("payload.ref", payload.get("ref"))
        return f"{verb} {ref_type}" + (f" {ref}" if ref else ""), None
    simple = {
        "WatchEvent": "starred the repository",
        "ForkEvent": "forked the repository",
        "PublicEvent": "made the repository public",
        "MemberEvent": f"{action or 'changed'} a collaborator",
        "GollumEvent": "updated the wiki",
    }
    return simple.get(etype), None


def parse_event(
    item: Any, channel: str, pseudonymize: Callable[[str | None], str | None], now: datetime
) -> Document:
    """One ``/repos/{o}/{r}/events`` item as a ``github_event`` document."""
    if not isinstance(item, dict):
        raise ItemError(Reason.NOT_AN_OBJECT, "event is not an object")
    external_id = _numeric_id("event", item.get("id"))
    etype = check_text("type", item.get("type"), required=True)
    assert etype is not None
    created_at = check_iso("created_at", item.get("created_at"), now)
    assert created_at is not None
    payload = _obj(item.get("payload"), "payload")
    repo = _obj(item.get("repo"), "repo")
    repo_name = repo.get("name") if isinstance(repo.get("name"), str) and repo.get("name") else channel
    body, url = _summary(etype, payload, repo_name)
    body = check_text("summary", body)
    kept = {"type": etype}
    for key in ("action", "ref"):
        if isinstance(payload.get(key), str):
            kept[key] = payload[key]
    return Document(
        source=SOURCE,
        external_id=external_id,
        kind="github_event",
        created_at=created_at,
        channel=repo_name,
        title=etype,
        body=body,
        url=url,
        author_pseudonym=pseudonymize(_login(item.get("actor"))),
        payload=kept,
    )


def _is_pull_request(item: dict[str, Any]) -> bool:
    pr = item.get("pull_request")
    return isinstance(pr, dict) and any(isinstance(pr.get(k), str) and pr.get(k) for k in ("url", "html_url"))


def parse_issue(
    item: Any, channel: str, pseudonymize: Callable[[str | None], str | None], now: datetime
) -> Document:
    """One ``/repos/{o}/{r}/issues`` item (an issue or a pull request) as a document."""
    if not isinstance(item, dict):
        raise ItemError(Reason.NOT_AN_OBJECT, "issue is not an object")
    external_id = _numeric_id("issue", item.get("id"))
    created_at = check_iso("created_at", item.get("created_at"), now)
    assert created_at is not None
    updated_at = check_iso("updated_at", item.get("updated_at"), now, required=False)
    closed_at = check_iso("closed_at", item.get("closed_at"), now, required=False)
    title = check_text("title", item.get("title"), required=True)
    body = check_text("body", item.get("body"))
    comments = check_int("comments", item.get("comments"))
    reactions = check_int(
        "reactions.total_count", _obj(item.get("reactions"), "reactions").get("total_count")
    )
    labels = item.get("labels") or []
    if not isinstance(labels, list):
        raise ItemError(Reason.BAD_FIELD, "labels is not a list")
    names = [
        label["name"] if isinstance(label, dict) else label
        for label in labels
        if isinstance(label, str) or (isinstance(label, dict) and isinstance(label.get("name"), str))
    ]
    repo_url = item.get("repository_url")
    if isinstance(repo_url, str) and "/repos/" in repo_url:
        channel = repo_url.split("/repos/", 1)[1].strip("/") or channel  # GitHub's spelling of the name
    return Document(
        source=SOURCE,
        external_id=external_id,
        kind="pull_request" if _is_pull_request(item) else "issue",
        created_at=created_at,
        channel=channel,
        title=_clean(title),
        body=_clean(body),
        url=check_text("html_url", item.get("html_url")),
        author_pseudonym=pseudonymize(_login(item.get("user"))),
        score=comments,
        metrics={k: v for k, v in (("comments", comments), ("reactions", reactions)) if v is not None},
        payload={
            "number": check_int("number", item.get("number")),
            "state": check_text("state", item.get("state")),
            "labels": names,
            "closed_at": closed_at.isoformat() if closed_at else None,
            "updated_at": updated_at.isoformat() if updated_at else None,
        },
    )


def parse_repo(item: Any, at: datetime, now: datetime) -> Fact:
    """A repository object (``/repos/{o}/{r}`` or a search hit) as a snapshot as of ``at``.

    ``watchers`` is ``subscribers_count`` (people watching); ``watchers_count`` is a legacy alias of stars.
    Search hits carry no ``subscribers_count``, so their ``watchers`` is NULL.
    """
    if not isinstance(item, dict):
        raise ItemError(Reason.NOT_AN_OBJECT, "repository is not an object")
    full_name = item.get("full_name")
    if not isinstance(full_name, str) or "/" not in full_name:
        raise ItemError(Reason.MISSING_ID, "full_name is missing")
    stars = check_int("stargazers_count", item.get("stargazers_count"))
    if stars is None:
        raise ItemError(Reason.BAD_FIELD, "stargazers_count is missing")
    return Fact(
        SNAPSHOT_TABLE,
        {
            "source": SOURCE,
            "repo": full_name,
            "snapshot_at": at,
            "stars": stars,
            "forks": check_int("forks_count", item.get("forks_count")),
            "watchers": check_int("subscribers_count", item.get("subscribers_count")),
            "open_issues": check_int("open_issues_count", item.get("open_issues_count")),
            "size_kb": check_int("size", item.get("size")),
            "language": check_text("language", item.get("language")),
            "pushed_at": check_iso("pushed_at", item.get("pushed_at"), now, required=False),
        },
    )


def known_id(kind: str, item: Any, at: datetime | None = None) -> str | None:
    """The item's identity when it can be told, for keying its quarantine row.

    A repository snapshot is the repository *at* the window end (``repo:<owner/name>@<at>``): each window's
    bad snapshot of one repository is its own item and keeps its own quarantine row.
    """
    if not isinstance(item, dict):
        return None
    if kind in ("repo", "search"):
        name = item.get("full_name")
        if not isinstance(name, str) or "/" not in name:
            return None
        return f"repo:{name}@{at.astimezone(UTC).isoformat()}" if at is not None else f"repo:{name}"
    try:
        return _numeric_id("event" if kind == "events" else "issue", item.get("id"))
    except ItemError:
        return None


def quarantine_view(item: Any, depth: int = 0) -> Any:
    """``item`` with every user object reduced to its login (ids, avatars and profile URLs dropped), so that
    :func:`~pulse.sources.base.redact` leaves no login, name or e-mail in clear. Parts nested deeper than a
    quarantine row keeps are not walked (they are cut there)."""
    if depth > MAX_QUARANTINE_DEPTH:
        return "[nested too deep; see raw]"
    if isinstance(item, dict):
        if isinstance(item.get("login"), str):
            return {"login": item["login"]}
        return {k: quarantine_view(v, depth + 1) for k, v in item.items()}
    if isinstance(item, list):
        return [quarantine_view(v, depth + 1) for v in item]
    return item


def parse_page(
    page: StoredPage, pseudonymize: Callable[[str | None], str | None], now: datetime
) -> ParseOutput:
    """Yield ``(item_index, Document | Fact | Rejected)`` for every item of a stored GitHub page."""
    kind = stream_kind(page.stream)
    info = page_info(kind, page.body)
    subject = stream_subject(page.stream)
    at = snapshot_at(page.stream) if kind in ("repo", "search") else None
    checked = checked_pseudonymizer(pseudonymize, "login")
    for index, item in enumerate(info.items):
        try:
            if kind == "events":
                yield index, parse_event(item, subject, checked, now)
            elif kind == "issues":
                yield index, parse_issue(item, subject, checked, now)
            else:
                assert at is not None
                yield index, parse_repo(item, at, now)
        except ItemError as exc:
            yield (
                index,
                rejected(index, exc, known_id(kind, item, at), quarantine_view(item), PII_KEYS, pseudonymize),
            )


# ------------------------------------------------------------------------------------------------
# the declaration: everything else about this source derives from it (pulse.sources.spec,
# docs/adding-a-source.md)
# ------------------------------------------------------------------------------------------------

from datetime import timedelta  # noqa: E402

from pulse.sources.spec import Freshness, SourceSpec  # noqa: E402

SPEC = SourceSpec(
    name="github",
    title="GitHub REST",
    hook="pulse.hooks.github:GithubSourceHook",
    schedule="40 * * * *",
    default_window=timedelta(hours=1),
    pool_slots=2,
    budgets=((3600, 5000),),
    budget_note="5,000 requests/hour with a token",
    tables=("core.documents", "core.github_repo_snapshots"),
    freshness=Freshness("core.documents", max_age_minutes=180),
    conn_defaults={"host": "https://api.github.com"},
    local_conn={"password": "sim-github-token"},
)
