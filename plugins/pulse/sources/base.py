"""What every source shares: pages, streams, parsed records, quarantine reasons and validation.

A source is three small pieces: a hook (client, paging, limits) in ``pulse.hooks.<source>``, a parser (pure
functions: page in, records out) in ``pulse.sources.<source>``, and a DAG file ``dags/ingest_<source>.py``.
The generic operators find the first two through :data:`SOURCES`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from pulse.warehouse import pgtypes
from pulse.warehouse.pgtypes import MAX_TEXT_BYTES, ItemError, Reason

__all__ = ["MAX_TEXT_BYTES", "ItemError", "Reason"]  # re-exported: every parser imports them from here

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


@dataclass
class Document:
    """A row of ``core.documents``."""

    source: str
    external_id: str
    kind: str
    created_at: datetime
    channel: str | None = None
    title: str | None = None
    body: str | None = None
    url: str | None = None
    author_pseudonym: str | None = None
    score: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)

    def content_hash(self) -> str:
        """Hash of everything loaded except lineage: unchanged content means no rewrite (the loader's
        ``content_sha256``)."""
        return document_digest(self)


def document_digest(doc: Document, created_at: datetime | None = None) -> str:
    """``content_sha256`` of a document: SHA-256 of its loaded fields (not key or lineage) as one JSON array.

    Computed from the values as parsed, before any checking, so that deciding "unchanged" needs no validation;
    never raises (a value no JSON encoder takes, nested too deep, hashes by its text; such a row is refused
    anyway).
    ``created_at`` overrides the document's own (the loader keeps an item's first-seen creation time).
    """
    parts = (
        doc.kind,
        doc.channel,
        doc.created_at if created_at is None else created_at,
        doc.title,
        doc.body,
        doc.url,
        doc.author_pseudonym,
        doc.score,
        doc.metrics,
        doc.payload,
    )
    try:
        blob = orjson.dumps(parts, default=str, option=orjson.OPT_NON_STR_KEYS)
    except (orjson.JSONEncodeError, TypeError):  # lone surrogates, integers beyond 64 bits, deep nesting
        try:
            blob = json.dumps(parts, default=str, ensure_ascii=False).encode("utf-8", "surrogatepass")
        except (RecursionError, ValueError, TypeError):
            blob = pgtypes.storable_json([str(p)[:10_000] for p in parts]).encode()
    return hashlib.sha256(blob).hexdigest()


#: Fact tables, their key columns and value columns (lineage columns are added by the loader).
FACT_TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "core.market_bars": (
        ("symbol", "market", "interval", "ts"),
        ("source", "asset_class", "open", "high", "low", "close", "volume"),
    ),
    "core.weather_observations": (
        ("city", "kind", "valid_at"),
        (
            "source",
            "country",
            "lat",
            "lon",
            "issued_at",
            "temp_c",
            "feels_like_c",
            "pressure_hpa",
            "humidity_pct",
            "wind_speed_ms",
            "wind_deg",
            "clouds_pct",
            "rain_mm",
            "condition",
            "description",
        ),
    ),
    "core.github_repo_snapshots": (
        ("repo", "snapshot_at"),
        ("source", "stars", "forks", "watchers", "open_issues", "size_kb", "language", "pushed_at"),
    ),
}


@dataclass
class Fact:
    """A row of one of the numeric fact tables in :data:`FACT_TABLES`.

    ``values`` holds every key and value column of the table (``None`` where the source has no value).
    """

    table: str
    values: dict[str, Any]

    def __post_init__(self) -> None:
        keys, cols = FACT_TABLES[self.table]
        missing = set(keys) - {k for k, v in self.values.items() if v is not None}
        if missing:
            raise ValueError(f"{self.table} row lacks key columns {sorted(missing)}")
        unknown = set(self.values) - set(keys) - set(cols)
        if unknown:
            raise ValueError(f"{self.table} has no columns {sorted(unknown)}")

    def key(self) -> tuple[Any, ...]:
        return (self.table, *(self.values[k] for k in FACT_TABLES[self.table][0]))

    def content_hash(self) -> str:
        blob = json.dumps(self.values, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class Rejected:
    """An item that goes to ``quality.quarantine``."""

    item_index: int
    reason: Reason
    detail: str
    external_id: str | None
    item: Any
    item_key: str


def rejected(
    index: int,
    error: ItemError,
    external_id: str | None,
    raw_item: Any,
    pii_keys: frozenset[str],
    pseudonymize: Callable[[str | None], str | None],
) -> Rejected:
    """Build the quarantine record of ``raw_item``: keyed by its id, or by its content hash when it has none.

    The record holds what a quarantine row can store (:func:`redact`); the key is made storable when the row
    is written (``pulse.warehouse.loader.quarantine``).
    """
    item = redact(raw_item, pii_keys, pseudonymize)
    key = external_id or "sha256:" + content_key(raw_item, item)
    return Rejected(index, error.reason, error.detail, external_id, item, key)


def content_key(raw_item: Any, storable: Any = None) -> str:
    """SHA-256 of an item without an id (its canonical JSON); never raises."""
    try:
        canonical = json.dumps(raw_item, sort_keys=True, ensure_ascii=False, default=str)
        data = canonical.encode("utf-8", errors="surrogatepass")
    except (RecursionError, ValueError, TypeError):  # nested too deep for the encoder, a huge integer
        fallback = storable if storable is not None else pgtypes.storable_value(raw_item)
        data = json.dumps(fallback, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


ParseOutput = Iterator[tuple[int, Document | Fact | Rejected]]


# ------------------------------------------------------------------------------------------------
# validation helpers shared by every parser
# ------------------------------------------------------------------------------------------------


# Thin wrappers over :mod:`pulse.warehouse.pgtypes`, which owns what PostgreSQL accepts; what is added here is
# what only a parser knows (the pipeline's clock: "in the future").


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


def redact(item: Any, pii_keys: frozenset[str], pseudonymize: Callable[[str | None], str | None]) -> Any:
    """A copy of ``item`` fit for quarantine: handles pseudonymised, then made storable
    (:func:`pulse.warehouse.pgtypes.storable_value`: escaped, long strings cut, deep nesting cut)."""
    return pgtypes.storable_value(_pseudonymised(item, pii_keys, pseudonymize, 0))


def _pseudonymised(
    item: Any, pii_keys: frozenset[str], pseudonymize: Callable[[str | None], str | None], depth: int
) -> Any:
    if depth > pgtypes.MAX_QUARANTINE_DEPTH:
        return item  # storable_value cuts it off here anyway
    if isinstance(item, dict):
        out: dict[Any, Any] = {}
        for k, v in item.items():
            if k in pii_keys and isinstance(v, str):
                out[k] = pseudonymize(pgtypes.storable_text(v))  # escaped first: the HMAC needs UTF-8
            else:
                out[k] = _pseudonymised(v, pii_keys, pseudonymize, depth + 1)
        return out
    if isinstance(item, list):
        return [_pseudonymised(v, pii_keys, pseudonymize, depth + 1) for v in item]
    return item


# ------------------------------------------------------------------------------------------------
# registry
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceSpec:
    """Where the generic operators find a source's pieces (imported lazily, never at DAG parse time)."""

    name: str
    hook: str  # "module:Class"
    parser: str  # module with parse_config(entry, where), plan_streams(config, window), parse_page(...)
    default_conn_id: str
    default_window: timedelta

    def hook_class(self) -> type:
        module, _, cls = self.hook.partition(":")
        return getattr(importlib.import_module(module), cls)

    def parser_module(self) -> Any:
        return importlib.import_module(self.parser)


def _spec(name: str, hook: str, window: timedelta) -> SourceSpec:
    return SourceSpec(
        name=name,
        hook=f"pulse.hooks.{name}:{hook}",
        parser=f"pulse.sources.{name}",
        default_conn_id=f"{name}_default",
        default_window=window,
    )


#: Every source: hook in ``pulse/hooks/<name>.py``, parser in ``pulse/sources/<name>.py``, DAG
#: ``dags/ingest_<name>.py``, connection ``<name>_default``, pool ``<name>_api``.
SOURCES: dict[str, SourceSpec] = {
    spec.name: spec
    for spec in (
        _spec("reddit", "RedditHook", timedelta(hours=1)),
        _spec("x", "XHook", timedelta(hours=1)),
        _spec("newsapi", "NewsApiHook", timedelta(hours=1)),
        _spec("alphavantage", "AlphaVantageHook", timedelta(days=1)),
        _spec("openweathermap", "OpenWeatherMapHook", timedelta(hours=1)),
        _spec("github", "GithubSourceHook", timedelta(hours=1)),
    )
}


def get_source(name: str) -> SourceSpec:
    try:
        return SOURCES[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(sorted(SOURCES))}") from None
