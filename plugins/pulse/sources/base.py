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
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

MAX_TEXT_BYTES = 100_000
FUTURE_TOLERANCE = timedelta(minutes=5)


class Reason(StrEnum):
    """Quarantine reason codes (``quality.quarantine.reason_code``)."""

    NOT_AN_OBJECT = "not_an_object"
    MISSING_ID = "missing_id"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    TEXT_NUL_BYTE = "text_nul_byte"
    TEXT_TOO_LARGE = "text_too_large"
    MISSING_TEXT = "missing_text"
    BAD_FIELD = "bad_field"
    NUMBER_OUT_OF_RANGE = "number_out_of_range"
    #: The item belongs to a month that retention archived and dropped; restore the month to load it.
    ARCHIVED_PERIOD = "archived_period"


class ItemError(ValueError):
    """An item that cannot be loaded; carries its quarantine reason."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


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
        from pulse.warehouse.loader import document_hash

        return document_hash(self)


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
    """Build the quarantine record of ``raw_item``: keyed by its id, or by its content hash when it has none."""
    if external_id:
        key = external_id
    else:
        canonical = json.dumps(raw_item, sort_keys=True, ensure_ascii=False, default=str)
        key = "sha256:" + hashlib.sha256(canonical.encode("utf-8", errors="surrogatepass")).hexdigest()
    return Rejected(
        index, error.reason, error.detail, external_id, redact(raw_item, pii_keys, pseudonymize), key
    )


ParseOutput = Iterator[tuple[int, Document | Fact | Rejected]]


# ------------------------------------------------------------------------------------------------
# validation helpers shared by every parser
# ------------------------------------------------------------------------------------------------


def check_text(name: str, value: Any, *, required: bool = False) -> str | None:
    """Validate a text field: a string without NUL bytes and at most 100 kB of UTF-8."""
    if value is None or value == "":
        if required:
            raise ItemError(Reason.MISSING_TEXT, f"{name} is missing or empty")
        return None if value is None else ""
    if not isinstance(value, str):
        raise ItemError(Reason.BAD_FIELD, f"{name} is {type(value).__name__}, expected text")
    if "\x00" in value:
        raise ItemError(Reason.TEXT_NUL_BYTE, f"{name} contains a NUL byte")
    size = len(value.encode("utf-8", errors="surrogatepass"))
    if size > MAX_TEXT_BYTES:
        raise ItemError(Reason.TEXT_TOO_LARGE, f"{name} is {size} bytes (limit {MAX_TEXT_BYTES})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ItemError(Reason.BAD_FIELD, f"{name} holds a lone surrogate") from exc
    return value


def check_epoch(name: str, value: Any, now: datetime) -> datetime:
    """Validate an epoch-seconds timestamp: a number, not in the future beyond a small tolerance."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ItemError(Reason.BAD_TIMESTAMP, f"{name} is {value!r}, expected epoch seconds")
    try:
        ts = datetime.fromtimestamp(float(value), tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ItemError(Reason.BAD_TIMESTAMP, f"{name} {value!r} is out of range") from exc
    if ts > now + FUTURE_TOLERANCE:
        raise ItemError(Reason.FUTURE_TIMESTAMP, f"{name} {ts.isoformat()} is after {now.isoformat()}")
    return ts


def check_iso(name: str, value: Any, now: datetime, *, required: bool = True) -> datetime | None:
    """Validate an ISO 8601 timestamp string (``Z`` or an offset; naive means UTC), not in the future."""
    if value is None or value == "":
        if required:
            raise ItemError(Reason.BAD_TIMESTAMP, f"{name} is missing")
        return None
    if not isinstance(value, str):
        raise ItemError(Reason.BAD_TIMESTAMP, f"{name} is {value!r}, expected an ISO 8601 string")
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ItemError(Reason.BAD_TIMESTAMP, f"{name} {value!r} is not ISO 8601") from exc
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    if ts > now + FUTURE_TOLERANCE:
        raise ItemError(Reason.FUTURE_TIMESTAMP, f"{name} {ts.isoformat()} is after {now.isoformat()}")
    return ts.astimezone(UTC)


def check_number(name: str, value: Any, *, required: bool = False) -> float | None:
    """A finite number, also accepted as a numeric string (Alpha Vantage sends "123.45")."""
    if value is None or value == "":
        if required:
            raise ItemError(Reason.BAD_FIELD, f"{name} is missing")
        return None
    if isinstance(value, bool):
        raise ItemError(Reason.BAD_FIELD, f"{name} is {value!r}, expected a number")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ItemError(Reason.BAD_FIELD, f"{name} is {value!r}, expected a number") from exc
    if number != number or number in (float("inf"), float("-inf")):
        raise ItemError(Reason.BAD_FIELD, f"{name} is not finite")
    return number


def check_int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ItemError(Reason.BAD_FIELD, f"{name} is {value!r}, expected a number")
    if not -(2**31) <= value < 2**31:
        raise ItemError(Reason.BAD_FIELD, f"{name} {value} does not fit an integer column")
    return int(value)


def redact(item: Any, pii_keys: frozenset[str], pseudonymize: Callable[[str | None], str | None]) -> Any:
    """A copy of ``item`` fit for quarantine: handles pseudonymised, NUL removed, long strings cut."""
    if isinstance(item, dict):
        out: dict[str, Any] = {}
        for k, v in item.items():
            if k in pii_keys and isinstance(v, str):
                out[k] = pseudonymize(v)
            else:
                out[k] = redact(v, pii_keys, pseudonymize)
        return out
    if isinstance(item, list):
        return [redact(v, pii_keys, pseudonymize) for v in item]
    if isinstance(item, str):
        cleaned = item.replace("\x00", "\ufffd").encode("utf-8", errors="replace").decode("utf-8")
        return cleaned if len(cleaned) <= 2000 else cleaned[:2000] + f"... [{len(cleaned)} chars]"
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
