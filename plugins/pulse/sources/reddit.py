"""Reddit: which listings to page through, and how a listing page becomes documents (pure functions)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pulse.config import int_in, mapping, str_list
from pulse.sources.base import (
    Document,
    ItemError,
    MalformedPageError,
    ParseOutput,
    Reason,
    StoredPage,
    Stream,
    check_epoch,
    check_int,
    check_key,
    check_text,
    checked_pseudonymizer,
    rejected,
)
from pulse.warehouse.pgtypes import sane_epoch, show

SOURCE = "reddit"
_SUBREDDIT = re.compile(r"^[A-Za-z0-9_]{2,50}$")


@dataclass(frozen=True)
class RedditConfig:
    conn_id: str
    subreddits: tuple[str, ...]
    listings: tuple[str, ...]
    page_size: int


def parse_config(entry: Any, where: str) -> RedditConfig:
    """Validate the ``reddit`` entry of ``include/sources.yaml``."""
    entry = mapping(entry, where, {"conn_id", "subreddits", "listings", "page_size"})
    return RedditConfig(
        conn_id=str(entry.get("conn_id", "reddit_default")),
        subreddits=str_list(entry, "subreddits", where, pattern=_SUBREDDIT),
        listings=str_list(entry, "listings", where, choices={"new", "comments"}, default=["new"]),
        page_size=int_in(entry, "page_size", where, 1, 100, 100),
    )


PII_KEYS = frozenset({"author", "author_fullname", "author_flair_text", "author_flair_richtext"})
_KINDS = {"t3": "post", "t1": "comment"}


def plan_streams(config: RedditConfig, window: Any) -> list[Stream]:
    """One stream per configured subreddit and listing (``new`` posts, newest ``comments``)."""
    return [
        Stream(key=f"{listing}:{sub}", endpoint=f"/r/{sub}/{listing}", params={"limit": config.page_size})
        for sub in config.subreddits
        for listing in config.listings
    ]


@dataclass(frozen=True)
class ListingInfo:
    children: list[Any]
    after: str | None
    oldest_created: float | None


def listing_info(body: bytes | str) -> ListingInfo:
    """Check that ``body`` is a Reddit Listing and return its children, cursor and oldest timestamp.

    :raises MalformedPageError: bad JSON, an HTML page, or not a Listing envelope.
    """
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        snippet = (body[:80] if isinstance(body, str) else body[:80].decode("utf-8", "replace")).strip()
        raise MalformedPageError(f"body is not JSON ({exc}); starts with {snippet!r}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "Listing" or not isinstance(doc.get("data"), dict):
        raise MalformedPageError("body is JSON but not a Reddit Listing (no kind=Listing with data)")
    children = doc["data"].get("children")
    if not isinstance(children, list):
        raise MalformedPageError("Listing has no data.children list")
    after = doc["data"].get("after")
    if after is not None and not isinstance(after, str):
        raise MalformedPageError(f"Listing data.after is {show(after)}, expected a string or null")
    if after is not None:
        try:
            check_key("data.after", after)  # stored as the page's cursor
        except ItemError as exc:
            raise MalformedPageError(f"Listing data.after cannot be stored as a cursor: {exc}") from None
    # Only usable times decide how far back the listing reached: an item's NaN, 1e20 or string is skipped
    # here (the item itself is quarantined by the load), never trusted for paging.
    created = [
        epoch
        for c in children
        if isinstance(c, dict)
        and isinstance(c.get("data"), dict)
        and (epoch := sane_epoch(c["data"].get("created_utc"))) is not None
    ]
    return ListingInfo(children=children, after=after, oldest_created=min(created) if created else None)


def _external_id(kind: str, data: dict[str, Any]) -> str:
    name, ident = data.get("name"), data.get("id")
    if isinstance(name, str) and name.startswith(f"{kind}_") and len(name) > 3:
        return name
    if isinstance(ident, str) and ident:
        return f"{kind}_{ident}"
    raise ItemError(Reason.MISSING_ID, "neither name nor id is present")


def parse_item(child: Any, pseudonymize: Callable[[str | None], str | None], now: datetime) -> Document:
    """Turn one listing child into a document, or raise :class:`ItemError` with a reason."""
    if not isinstance(child, dict) or not isinstance(child.get("data"), dict):
        raise ItemError(Reason.NOT_AN_OBJECT, "listing child is not an object with data")
    kind_code = child.get("kind")
    if not isinstance(kind_code, str) or kind_code not in _KINDS:  # (a dict is no key of _KINDS: unhashable)
        raise ItemError(Reason.BAD_FIELD, f"unsupported kind {show(kind_code)}")
    data = child["data"]
    external_id = _external_id(kind_code, data)
    created_at = check_epoch("created_utc", data.get("created_utc"), now)
    is_post = kind_code == "t3"
    title = check_text("title", data.get("title"), required=is_post) if is_post else None
    body = check_text(
        "selftext" if is_post else "body", data.get("selftext" if is_post else "body"), required=not is_post
    )
    permalink = check_text("permalink", data.get("permalink"))
    author = data.get("author")
    author_pseudonym = pseudonymize(author) if isinstance(author, str) and author != "[deleted]" else None
    metrics = {
        k: data[k]
        for k in ("num_comments", "upvote_ratio", "ups", "downs")
        if isinstance(data.get(k), int | float)
    }
    payload = {
        k: data.get(k)
        for k in (
            "subreddit_id",
            "permalink",
            "over_18",
            "is_self",
            "domain",
            "link_id",
            "parent_id",
            "stickied",
        )
        if data.get(k) is not None
    }
    if is_post and isinstance(data.get("url"), str):
        payload["link_url"] = check_text("url", data["url"])
    return Document(
        source=SOURCE,
        external_id=external_id,
        kind=_KINDS[kind_code],
        created_at=created_at,
        channel=check_text("subreddit", data.get("subreddit")),
        title=title,
        body=body,
        url=f"https://www.reddit.com{permalink}" if permalink else None,
        author_pseudonym=author_pseudonym,
        score=check_int("score", data.get("score")),
        metrics=metrics,
        payload=payload,
    )


def parse_page(
    page: StoredPage, pseudonymize: Callable[[str | None], str | None], now: datetime
) -> ParseOutput:
    """Yield ``(item_index, Document | Rejected)`` for every child of a stored listing page."""
    info = listing_info(page.body)
    checked = checked_pseudonymizer(pseudonymize)
    for index, child in enumerate(info.children):
        try:
            yield index, parse_item(child, checked, now)
        except ItemError as exc:
            yield index, rejected(index, exc, _known_id(child), child, PII_KEYS, pseudonymize)


def _known_id(child: Any) -> str | None:
    """The item's fullname when it can be told, for keying its quarantine row."""
    if (
        not isinstance(child, dict)
        or not isinstance(child.get("data"), dict)
        or not isinstance(child.get("kind"), str)
        or child.get("kind") not in _KINDS
    ):
        return None
    try:
        return _external_id(child["kind"], child["data"])
    except ItemError:
        return None


# ------------------------------------------------------------------------------------------------
# the declaration: everything else about this source derives from it (pulse.sources.spec,
# docs/adding-a-source.md)
# ------------------------------------------------------------------------------------------------

from datetime import timedelta  # noqa: E402

from pulse.sources.spec import Freshness, SourceSpec  # noqa: E402

SPEC = SourceSpec(
    name="reddit",
    title="Reddit API",
    hook="pulse.hooks.reddit:RedditHook",
    schedule="0 * * * *",
    default_window=timedelta(hours=1),
    pool_slots=2,
    budgets=((60, 100),),
    budget_note="100 requests/min per OAuth client",
    tables=("core.documents",),
    freshness=Freshness("core.documents", max_age_minutes=180, severity="critical"),
    conn_defaults={"host": "", "login": "", "extra": {"user_agent": "pulse/0.1 (by u/your_reddit_user)"}},
    local_conn={
        "login": "sim-client-id",
        "password": "sim-client-secret",
        "extra": {"user_agent": "pulse/0.1 (local stack)", "timeout": 10},
    },
)
