"""What every source shares: pages, streams, the parsers' own checks and the record model's names.

A source is three small pieces: a hook (client, paging, limits) in ``pulse.hooks.<source>``, a parser (pure
functions: page in, records out) in ``pulse.sources.<source>``, and a DAG file ``dags/ingest_<source>.py``.
The generic operators find the first two through :data:`SOURCES`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pulse.records import (
    FACT_TABLES,
    Document,
    Fact,
    ItemError,
    Reason,
    RecordRefused,
    Rejected,
    content_key,
    document_digest,
    redact,
    rejected,
)
from pulse.warehouse import pgtypes
from pulse.warehouse.pgtypes import MAX_TEXT_BYTES

# The record model (pulse.records) re-exported: every parser imports these names from here.
__all__ = [
    "FACT_TABLES",
    "MAX_TEXT_BYTES",
    "Document",
    "Fact",
    "ItemError",
    "Reason",
    "RecordRefused",
    "Rejected",
    "content_key",
    "document_digest",
    "redact",
    "rejected",
]

FUTURE_TOLERANCE = timedelta(minutes=5)


class MalformedPageError(RuntimeError):
    """A response that is not a page of the expected shape (bad JSON, HTML, wrong envelope).

    ``page`` holds the offending response when there is one, so it can be kept as evidence.
    """

    def __init__(self, message: str, page: Page | None = None) -> None:
        super().__init__(message)
        self.page = page


class PageFetchError(RuntimeError):
    """A page could not be fetched after every attempt (throttling, 5xx, timeouts) or was refused (4xx)."""


class SourceAuthError(RuntimeError):
    """The source rejected the connection's credentials (HTTP 401/403): retrying cannot help."""


@dataclass(frozen=True)
class Stream:
    """One thing to page through for a window, e.g. Reddit ``new`` listing of r/python."""

    key: str
    endpoint: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Page:
    """One fetched page, ready for ``raw.api_responses``."""

    stream: Stream
    page_no: int
    endpoint: str
    params: dict[str, Any]
    status_code: int
    headers: dict[str, str]
    body: bytes
    is_valid: bool = True
    error: str | None = None
    item_count: int | None = None
    next_cursor: str | None = None
    oldest_created: float | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        # How far back a page reached decides paging and listing-cap gaps: only a usable event time counts
        # (a hostile item's NaN, 1e20 or year-0 time must not stop paging or crash the extract).
        if name == "oldest_created" and value is not None:
            value = pgtypes.sane_epoch(value)
        object.__setattr__(self, name, value)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass
class StoredPage:
    """A valid page read back from ``raw.api_responses`` for loading."""

    id: int
    source: str
    stream: str
    endpoint: str
    body: str


ParseOutput = Iterator[tuple[int, Document | Fact | Rejected]]


# ------------------------------------------------------------------------------------------------
# validation helpers shared by every parser
# ------------------------------------------------------------------------------------------------


# Thin wrappers over :mod:`pulse.warehouse.pgtypes`, which owns what PostgreSQL accepts; what is added here is
# what only a parser knows (how long a source's text may be; the pipeline's clock: "in the future"). The
# columns' own rules are checked again by the records themselves (pulse.records): a parser checks a value
# here when a bad one should quarantine the raw item rather than the record it would have built.


def check_text(name: str, value: Any, *, required: bool = False) -> str | None:
    """A text field: a string without NUL bytes or lone surrogates and at most :data:`MAX_TEXT_BYTES` (100 kB)
    of UTF-8 (read at call time: raising it and replaying ``text_too_large`` loads what it held back)."""
    return pgtypes.text(name, value, required=required, max_bytes=MAX_TEXT_BYTES)


def check_key(name: str, value: Any) -> str:
    """An id or key field: non-empty text short enough for an index."""
    return pgtypes.key(name, value)


def _not_future(name: str, ts: datetime, now: datetime) -> datetime:
    if ts > now + FUTURE_TOLERANCE:
        raise ItemError(Reason.FUTURE_TIMESTAMP, f"{name} {ts.isoformat()} is after {now.isoformat()}")
    return ts


def check_epoch(name: str, value: Any, now: datetime) -> datetime:
    """An epoch-seconds timestamp: a finite number within 1970-2100, not in the future beyond a tolerance."""
    return _not_future(name, pgtypes.epoch(name, value), now)


def check_iso(name: str, value: Any, now: datetime, *, required: bool = True) -> datetime | None:
    """An ISO 8601 timestamp string (``Z`` or an offset; naive means UTC), in UTC, not in the future."""
    ts = pgtypes.iso_time(name, value, required=required)
    return None if ts is None else _not_future(name, ts, now)


def check_number(name: str, value: Any, *, required: bool = False) -> float | None:
    """A finite number, also accepted as numeric text (Alpha Vantage sends "123.45"), held exactly."""
    return pgtypes.number(name, value, required=required)


def check_int(name: str, value: Any) -> int | None:
    """A count for an integer column: 12 and 12.0 pass, 12.5 is ``bad_field`` (never truncated), beyond 32
    bits ``number_out_of_range``."""
    return pgtypes.integer(name, value, kind="int4")


def checked_pseudonymizer(
    pseudonymize: Callable[[str | None], str | None], name: str = "author"
) -> Callable[[str | None], str | None]:
    """``pseudonymize`` for handles taken from items: a handle that is not storable text (a lone surrogate,
    a NUL) raises :class:`ItemError` instead of failing the HMAC's UTF-8 encoding."""

    def checked(handle: str | None) -> str | None:
        if handle is None:
            return pseudonymize(None)
        return pseudonymize(pgtypes.text(name, handle))

    return checked


# ------------------------------------------------------------------------------------------------
# registry: one declaration per source (pulse.sources.spec), re-exported for the operators
# ------------------------------------------------------------------------------------------------

from pulse.sources.spec import SOURCES, SourceSpec, get_source  # noqa: E402

__all__ += ["SOURCES", "SourceSpec", "get_source"]
