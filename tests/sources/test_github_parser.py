"""The GitHub parser on real recorded payloads (from ../shared) and on constructed bad items."""

from __future__ import annotations

import copy
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pulse.config import ConfigError
from pulse.privacy import make_pseudonymizer
from pulse.sources.base import Document, Fact, MalformedPageError, Reason, Rejected, StoredPage, Stream
from pulse.sources.github import (
    page_info,
    parse_config,
    parse_page,
    plan_streams,
    reach,
    snapshot_at,
    stream_kind,
    stream_subject,
)
from pulse.windows import Window

SHARED = Path(os.environ.get("PULSE_SHARED_DIR") or Path(__file__).resolve().parents[3] / "shared")
PAYLOADS = SHARED / "payloads" / "github"
NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
END = "2026-11-28T12:00:00+00:00"
PSEUDO = make_pseudonymizer("github", key=b"k")
needs_payloads = pytest.mark.skipif(not PAYLOADS.is_dir(), reason=f"{PAYLOADS} is not present")


def _page(stream: str, body: Any) -> StoredPage:
    text = body if isinstance(body, str) else json.dumps(body)
    return StoredPage(id=1, source="github", stream=stream, endpoint="/", body=text)


def _parse(stream: str, body: Any, now: datetime = NOW) -> list[Any]:
    return [out for _, out in parse_page(_page(stream, body), PSEUDO, now)]


def _load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------------ real payloads


@needs_payloads
def test_real_repository_becomes_a_snapshot_at_the_window_end() -> None:
    (fact,) = _parse(f"repo:PyGithub/PyGithub@{END}", _load("repo.json"))
    assert isinstance(fact, Fact) and fact.table == "core.github_repo_snapshots"
    assert fact.values == {
        "source": "github",
        "repo": "PyGithub/PyGithub",
        "snapshot_at": NOW,
        "stars": 7701,
        "forks": 1874,
        "watchers": 110,  # subscribers_count, not watchers_count (= stars)
        "open_issues": 393,
        "size_kb": 21449,
        "language": "Python",
        "pushed_at": datetime(2026, 4, 14, 7, 25, 38, tzinfo=UTC),
    }


@needs_payloads
def test_real_search_hits_become_snapshots() -> None:
    body = _load("search_repositories.json")
    facts = _parse(f"search:github language:Python@{END}", body)
    assert len(facts) == len(body["items"]) == 30 and all(isinstance(f, Fact) for f in facts)
    first = facts[0].values
    assert (first["repo"], first["stars"], first["forks"], first["watchers"]) == (
        "kennethreitz/legit",
        3036,
        118,
        None,
    )
    assert {f.values["snapshot_at"] for f in facts} == {NOW}
    assert _parse(f"search:doesnotexist@{END}", _load("search_repositories_empty.json")) == []


@needs_payloads
@pytest.mark.parametrize("name", ["repo_events.json", "public_events.json"])
def test_real_events_parse_completely_without_logins(name: str) -> None:
    body = _load(name)
    docs = _parse("events:jacquev6/PyGithub", body, datetime(2026, 12, 1, tzinfo=UTC))
    assert len(docs) == len(body) == 30
    assert all(isinstance(d, Document) for d in docs), [d for d in docs if isinstance(d, Rejected)]
    assert [d.external_id for d in docs] == [f"event:{e['id']}" for e in body]
    assert [d.author_pseudonym for d in docs] == [PSEUDO(e["actor"]["login"]) for e in body]
    logins = {e["actor"]["login"] for e in body}
    emails = {c["author"]["email"] for e in body for c in e["payload"].get("commits", [])}
    text = json.dumps([[d.title, d.body, d.url, d.payload, d.metrics] for d in docs], ensure_ascii=False)
    assert not [x for x in logins | emails if f'"{x}"' in text or f" {x} " in text or f"<{x}>" in text]


@needs_payloads
def test_real_event_summaries() -> None:
    body = _load("repo_events.json")
    docs = {d.external_id: d for d in _parse("events:jacquev6/PyGithub", body)}
    first = docs["event:1823555573"]
    assert (first.kind, first.channel, first.title, first.body) == (
        "github_event",
        "jacquev6/PyGithub",
        "DeleteEvent",
        "deleted branch topic/ImproveDocumentation",
    )
    assert first.created_at == datetime(2013, 9, 6, 12, 41, 5, tzinfo=UTC)
    assert first.payload == {"type": "DeleteEvent", "ref": "topic/ImproveDocumentation"}
    push = next(e for e in body if e["type"] == "PushEvent")
    doc = docs[f"event:{push['id']}"]
    assert doc.body.startswith(f"Pushed {push['payload']['size']} commits to develop\n- ")
    assert f"- {push['payload']['commits'][0]['message'].splitlines()[0]}" in doc.body
    assert doc.payload == {"type": "PushEvent", "ref": "refs/heads/develop"}
    issue_event = next(e for e in body if e["type"] == "IssuesEvent")
    doc = docs[f"event:{issue_event['id']}"]
    issue = issue_event["payload"]["issue"]
    assert doc.body == f"{issue_event['payload']['action']} issue #{issue['number']}: {issue['title']}"
    assert doc.url == issue["html_url"]
    comment_event = next(e for e in body if e["type"] == "IssueCommentEvent")
    doc = docs[f"event:{comment_event['id']}"]
    assert doc.body == comment_event["payload"]["comment"]["body"].strip()
    assert doc.url == comment_event["payload"]["comment"]["html_url"]


@needs_payloads
def test_real_issues_and_pull_requests() -> None:
    body = _load("repo_issues.json")
    docs = _parse("issues:PyGithub/PyGithub", body, datetime(2026, 12, 1, tzinfo=UTC))
    assert all(isinstance(d, Document) for d in docs) and len(docs) == 30
    kinds = [d.kind for d in docs]
    assert kinds.count("pull_request") == sum("pull_request" in i for i in body) == 9
    assert kinds.count("issue") == 21
    first, raw = docs[0], body[0]
    assert first.external_id == "issue:2528623106" and first.kind == "pull_request"
    assert (first.title, first.url, first.channel) == (raw["title"], raw["html_url"], "PyGithub/PyGithub")
    assert first.author_pseudonym == PSEUDO("bmwiedemann")
    assert (first.score, first.metrics) == (0, {"comments": 0, "reactions": 0})
    assert first.payload == {
        "number": 3045,
        "state": "open",
        "labels": [],
        "closed_at": None,
        "updated_at": "2024-09-16T14:19:35+00:00",
    }
    commented = max(body, key=lambda i: i["comments"])
    doc = next(d for d in docs if d.external_id == f"issue:{commented['id']}")
    assert doc.score == commented["comments"] > 0


# ------------------------------------------------------------------------------------------------ constructed


def _issue(**over: Any) -> dict[str, Any]:
    item = {
        "id": 11,
        "number": 7,
        "title": "Crash on empty page",
        "body": "Steps: run it.\nContact me at jane.doe@example.com\nSigned-off-by: Jane Doe <jane@example.com>",
        "user": {"login": "janedoe", "id": 5, "avatar_url": "https://avatars.githubusercontent.com/u/5"},
        "labels": [{"name": "bug", "color": "d73a4a"}, "triage"],
        "state": "closed",
        "comments": 3,
        "reactions": {"total_count": 4, "+1": 4},
        "created_at": "2026-11-27T10:00:00Z",
        "updated_at": "2026-11-28T11:30:00Z",
        "closed_at": "2026-11-28T11:30:00Z",
        "html_url": "https://github.com/o/r/issues/7",
    }
    item.update(over)
    return {k: v for k, v in item.items() if v is not ...}


def _event(**over: Any) -> dict[str, Any]:
    item = {
        "id": "501",
        "type": "IssueCommentEvent",
        "actor": {"id": 5, "login": "janedoe", "display_login": "janedoe"},
        "repo": {"id": 1, "name": "o/r", "url": "https://api.github.com/repos/o/r"},
        "payload": {
            "action": "created",
            "issue": {"number": 7, "title": "Crash", "user": {"login": "bob"}},
            "comment": {"body": "Fixed in main.", "html_url": "https://github.com/o/r/issues/7#c1"},
        },
        "public": True,
        "created_at": "2026-11-28T11:15:00Z",
    }
    item.update(over)
    return {k: v for k, v in item.items() if v is not ...}


def _repo(**over: Any) -> dict[str, Any]:
    item = {
        "id": 1,
        "full_name": "o/r",
        "owner": {"login": "o"},
        "stargazers_count": 10,
        "watchers_count": 10,
        "subscribers_count": 2,
        "forks_count": 3,
        "open_issues_count": 4,
        "size": 50,
        "language": None,
        "pushed_at": "2026-11-28T10:00:00Z",
    }
    item.update(over)
    return {k: v for k, v in item.items() if v is not ...}


def test_issue_fields_and_privacy() -> None:
    (doc,) = _parse("issues:o/r", [_issue()])
    assert isinstance(doc, Document)
    assert (doc.external_id, doc.kind, doc.channel, doc.score) == ("issue:11", "issue", "o/r", 3)
    assert doc.body == "Steps: run it.\nContact me at [email]", "e-mails and trailers stay in raw"
    assert doc.author_pseudonym == PSEUDO("janedoe") != "janedoe"
    assert doc.metrics == {"comments": 3, "reactions": 4}
    assert (
        doc.payload["labels"] == ["bug", "triage"] and doc.payload["closed_at"] == "2026-11-28T11:30:00+00:00"
    )
    pr = _issue(pull_request={"url": "https://api.github.com/repos/o/r/pulls/7", "html_url": "h"})
    old_style_issue = _issue(pull_request={"html_url": None, "diff_url": None, "patch_url": None})
    renamed = _issue(repository_url="https://api.github.com/repos/Owner/Repo")
    assert _parse("issues:owner/repo", [renamed])[0].channel == "Owner/Repo", (
        "GitHub's spelling, as in events"
    )
    assert [d.kind for d in _parse("issues:o/r", [pr, old_style_issue])] == ["pull_request", "issue"]


def test_event_fields_and_push_summary() -> None:
    (doc,) = _parse("events:o/r", [_event()])
    assert (doc.external_id, doc.title, doc.body, doc.url) == (
        "event:501",
        "IssueCommentEvent",
        "Fixed in main.",
        "https://github.com/o/r/issues/7#c1",
    )
    assert doc.author_pseudonym == PSEUDO("janedoe") and doc.payload == {
        "type": "IssueCommentEvent",
        "action": "created",
    }
    push = _event(
        type="PushEvent",
        payload={
            "ref": "refs/heads/main",
            "size": 2,
            "commits": [
                {
                    "message": "Fix paging\n\nSigned-off-by: Jane Doe <jane@example.com>",
                    "author": {"name": "Jane"},
                },
                {"message": "Mail alice@example.org about it", "author": {"email": "jane@example.com"}},
            ],
        },
    )
    (doc,) = _parse("events:o/r", [push])
    assert doc.body == "Pushed 2 commits to main\n- Fix paging\n- Mail [email] about it"
    modern = _event(type="PushEvent", payload={"ref": "refs/heads/main", "head": "abc"})  # 2025+: no commits
    assert _parse("events:o/r", [modern])[0].body == "Pushed to main"
    fork = _event(
        type="ForkEvent", payload={"forkee": {"full_name": "janedoe/r", "owner": {"login": "janedoe"}}}
    )
    assert _parse("events:o/r", [fork])[0].body == "forked the repository"


def _rejected(stream: str, good: Any, bad: Any) -> Rejected:
    body: Any = [good, bad]
    if stream.startswith("search:"):
        body = {"total_count": 2, "incomplete_results": False, "items": body}
    out = _parse(stream, body)
    assert isinstance(out[0], Document | Fact), out[0]
    assert isinstance(out[1], Rejected), out[1]
    return out[1]


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"id": ...}, Reason.MISSING_ID),
        ({"id": True}, Reason.MISSING_ID),
        ({"created_at": "not-a-date"}, Reason.BAD_TIMESTAMP),
        ({"created_at": (NOW + timedelta(days=400)).isoformat()}, Reason.FUTURE_TIMESTAMP),
        ({"body": "a\x00b"}, Reason.TEXT_NUL_BYTE),
        ({"body": "x" * 100_001}, Reason.TEXT_TOO_LARGE),
        ({"title": ...}, Reason.MISSING_TEXT),
        ({"comments": "lots"}, Reason.BAD_FIELD),
    ],
)
def test_bad_issues_are_rejected_with_a_reason(override: dict[str, Any], reason: Reason) -> None:
    rej = _rejected("issues:o/r", _issue(), _issue(**{"id": 12, **override}))
    assert rej.reason == reason
    if reason == Reason.MISSING_ID:
        assert rej.external_id is None and rej.item_key.startswith("sha256:")
    else:
        assert rej.item_key == "issue:12"
    assert rej.item["user"] == {"login": PSEUDO("janedoe")}, "quarantine keeps no handle, id or avatar"


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"id": ...}, Reason.MISSING_ID),
        ({"created_at": "yesterday"}, Reason.BAD_TIMESTAMP),
        ({"created_at": "2099-01-01T00:00:00Z"}, Reason.FUTURE_TIMESTAMP),
        ({"type": ...}, Reason.MISSING_TEXT),
        ({"payload": {"comment": {"body": "bad\x00byte"}}}, Reason.TEXT_NUL_BYTE),
        ({"payload": {"comment": {"body": "y" * 120_000}}}, Reason.TEXT_TOO_LARGE),
        ({"type": "PushEvent", "payload": {"commits": [{"message": "a\x00"}]}}, Reason.TEXT_NUL_BYTE),
        ({"type": "IssuesEvent", "payload": {"issue": {"title": "z" * 100_001}}}, Reason.TEXT_TOO_LARGE),
        ({"payload": "not an object"}, Reason.BAD_FIELD),
    ],
)
def test_bad_events_are_rejected_with_a_reason(override: dict[str, Any], reason: Reason) -> None:
    rej = _rejected("events:o/r", _event(), _event(**{"id": "502", **override}))
    assert rej.reason == reason
    assert rej.item_key == "event:502" if reason != Reason.MISSING_ID else rej.item_key.startswith("sha256:")
    assert rej.item["actor"] == {"login": PSEUDO("janedoe")}


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"full_name": ...}, Reason.MISSING_ID),
        ({"stargazers_count": "lots"}, Reason.BAD_FIELD),
        ({"stargazers_count": ...}, Reason.BAD_FIELD),
        ({"pushed_at": "not-a-date"}, Reason.BAD_TIMESTAMP),
        ({"pushed_at": "2099-01-01T00:00:00Z"}, Reason.FUTURE_TIMESTAMP),
    ],
)
def test_bad_repositories_are_rejected_with_a_reason(override: dict[str, Any], reason: Reason) -> None:
    rej = _rejected(f"search:q@{END}", _repo(), _repo(**{"full_name": "o/s", **override}))
    assert rej.reason == reason
    if reason == Reason.MISSING_ID:
        assert rej.external_id is None and rej.item_key.startswith("sha256:")
    else:
        # A snapshot is the repository at the window end: each window's bad snapshot keeps its own row.
        assert rej.item_key == rej.external_id == f"repo:o/s@{END}"


def test_non_object_items_are_rejected_not_crashing() -> None:
    out = _parse("issues:o/r", ["oops", _issue()])
    assert isinstance(out[0], Rejected) and out[0].reason == Reason.NOT_AN_OBJECT
    assert isinstance(out[1], Document)
    assert _parse(f"repo:o/r@{END}", {"id": 1, "full_name": "o/r", "stargazers_count": None})[0].reason == (
        Reason.BAD_FIELD
    )


@pytest.mark.parametrize(
    ("stream", "body"),
    [
        ("events:o/r", "<!DOCTYPE html><html><body>Unicorn!</body></html>"),
        ("events:o/r", '[{"id": "1", "type": "Push'),
        ("events:o/r", '{"message": "Not Found"}'),
        ("issues:o/r", '{"items": []}'),
        (f"search:q@{END}", "[]"),
        (f"search:q@{END}", '{"items": [], "total_count": "many"}'),
        (f"repo:o/r@{END}", '{"message": "Moved Permanently", "url": "x"}'),
        (f"repo:o/r@{END}", "[]"),
    ],
)
def test_malformed_pages_are_refused(stream: str, body: str) -> None:
    with pytest.raises(MalformedPageError):
        _parse(stream, body)


def test_page_info_reports_paging_bounds() -> None:
    events = [_event(created_at="2026-11-28T11:50:00Z"), _event(created_at="2026-11-28T10:10:00Z"), "junk"]
    info = page_info("events", json.dumps(events))
    assert len(info.items) == 3
    assert info.oldest_created == datetime(2026, 11, 28, 10, 10, tzinfo=UTC).timestamp()
    issues = [_issue(updated_at="2026-11-28T11:00:00Z"), _issue(updated_at="2026-11-28T12:30:00Z")]
    assert (
        page_info("issues", json.dumps(issues)).newest_updated
        == datetime(2026, 11, 28, 12, 30, tzinfo=UTC).timestamp()
    )
    assert page_info("search", '{"total_count": 3, "items": [1, 2]}').total_count == 3


# ------------------------------------------------------------------------------------------------ config, streams


def test_config_and_streams() -> None:
    config = parse_config(
        {
            "conn_id": "gh",
            "repositories": ["apache/airflow", "PyGithub/PyGithub"],
            "search": " topic:x ",
            "search_max_items": 250,
        },
        "github",
    )
    assert (config.conn_id, config.search, config.search_max_items) == ("gh", "topic:x", 250)
    window = Window(datetime(2026, 11, 28, 11, tzinfo=UTC), NOW)
    streams = plan_streams(config, window)
    assert [s.key for s in streams] == [
        f"search:topic:x@{END}",
        f"repo:apache/airflow@{END}",
        "events:apache/airflow",
        "issues:apache/airflow",
        f"repo:PyGithub/PyGithub@{END}",
        "events:PyGithub/PyGithub",
        "issues:PyGithub/PyGithub",
    ]
    assert streams[0].params == {
        "q": "topic:x",
        "sort": "stars",
        "order": "desc",
        "per_page": 100,
        "max_items": 250,
    }
    assert streams[2].endpoint == "/repos/apache/airflow/events" and streams[2].params == {"per_page": 100}
    assert streams[3].params == {
        "state": "all",
        "since": "2026-11-28T11:00:00Z",
        "sort": "updated",
        "direction": "asc",
        "per_page": 100,
    }
    assert [stream_kind(s.key) for s in streams[:4]] == ["search", "repo", "events", "issues"]
    assert [stream_subject(s.key) for s in streams[:4]] == [
        "topic:x",
        "apache/airflow",
        "apache/airflow",
        "apache/airflow",
    ]
    assert snapshot_at("search:user@example stars:>1@2026-11-28T12:00:00+00:00") == NOW
    assert [reach(s) for s in streams[:4]] == [
        timedelta(hours=6),
        timedelta(hours=6),
        timedelta(days=90),
        None,
    ]
    small = parse_config({"repositories": ["o/r"], "search_max_items": 20, "search": "q"}, "github")
    assert plan_streams(small, window)[0].params["per_page"] == 20
    assert [
        s.key.partition(":")[0] for s in plan_streams(parse_config({"repositories": ["o/r"]}, "g"), window)
    ] == [
        "repo",
        "events",
        "issues",
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"repositories": ["apache/airflow", "nope"]},
            r"github\.repositories\[1\]: 'nope' is not an owner/name",
        ),
        ({"repositories": ["-bad/name"]}, r"github\.repositories\[0\]: '-bad/name' is not an owner/name"),
        ({"repositories": ["o/.."]}, r"github\.repositories\[0\]"),
        ({"repositories": ["o/r", "O/R"]}, r"github\.repositories\[1\]: 'O/R' repeats repositories\[0\]"),
        ({"repositories": []}, r"github\.repositories: expected a non-empty list"),
        ({"repositories": ["o/r"], "search": ""}, r"github\.search"),
        ({"repositories": ["o/r"], "search_max_items": 1001}, r"github\.search_max_items: 1001 must be"),
        ({"repositories": ["o/r"], "branches": ["main"]}, r"github: unknown keys \['branches'\]"),
        ("apache/airflow", r"github: expected a mapping"),
    ],
)
def test_config_errors_name_the_bad_entry(entry: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(entry, "github")


def test_the_shipped_config_files_parse() -> None:
    from pulse.config import load_source_config

    root = Path(__file__).resolve().parents[2]
    for path in (root / "include" / "sources.yaml", root / "tests" / "data" / "sources.yaml"):
        config = load_source_config("github", path)
        assert config.repositories and config.search and config.conn_id == "github_default"


def test_stream_keys_are_stable_and_unique() -> None:
    config = parse_config({"repositories": ["a/b", "c/d"], "search": "s"}, "github")
    window = Window(datetime(2026, 11, 28, 11, tzinfo=UTC), NOW)
    keys = [s.key for s in plan_streams(config, window)]
    assert len(set(keys)) == len(keys) and keys == [
        s.key for s in plan_streams(copy.deepcopy(config), window)
    ]
    assert isinstance(plan_streams(config, window)[0], Stream)
