"""The records Pulse stores, and every rule a record must meet: a record that exists is storable.

Three kinds of record leave a parser:

* :class:`Document`, a row of ``core.documents``;
* :class:`Fact`, a row of one of the numeric fact tables (:data:`FACT_TABLES`);
* :class:`Rejected`, a row of ``quality.quarantine``: an item that is not loaded, with its reason.

Constructing a :class:`Document` or a :class:`Fact` checks every value against its column's type
(:data:`COLUMN_TYPES`, checked by :mod:`pulse.warehouse.pgtypes`, which owns what PostgreSQL accepts: NUL
bytes, lone surrogates, timestamps outside 1970-2100, fractions and overflows in integer columns, NaN in JSON,
keys too long for an index ...). A value PostgreSQL would refuse or change raises :class:`RecordRefused`, an
:class:`ItemError` with the quarantine reason, so a record that exists needs no second look: the loader
(:mod:`pulse.warehouse.loader`) only ensures partitions, copies and upserts.

A refused record is not simply dropped: it keeps the values it was given (:class:`Refusal`), so that the
loader weighs it like any other copy of the item (the newest copy of an item wins; when that copy is refused,
the item is quarantined and nothing of it is loaded) and its quarantine row holds the record as parsed
(:func:`refusal_record`).

What only a parser knows (how long a source's text may be, "in the future" by the pipeline's clock) stays with
the parsers (:mod:`pulse.sources.base`). This module imports nothing of Pulse but
:mod:`pulse.warehouse.pgtypes`, so parsers and loader both use it without importing each other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from pulse.warehouse import pgtypes
from pulse.warehouse.pgtypes import MAX_EVENT_TIME, MAX_TEXT_BYTES, MIN_EVENT_TIME, ItemError, Reason

__all__ = [
    "COLUMN_TYPES",
    "CONTENT_FIELDS",
    "DOCUMENT_FIELDS",
    "FACT_TABLES",
    "MAX_TEXT_BYTES",
    "NOT_NULL",
    "Document",
    "Fact",
    "ItemError",
    "Reason",
    "RecordRefused",
    "Refusal",
    "Rejected",
    "content_key",
    "document_digest",
    "redact",
    "refusal_record",
    "rejected",
]

#: What each loaded column holds, as :func:`pulse.warehouse.pgtypes.column_value` checks it (a test compares
#: this with the database's catalog). ``event_time``: a timestamptz that partitions or keys the table.
COLUMN_TYPES: dict[str, dict[str, str]] = {
    "core.documents": {
        "source": "key",
        "external_id": "key",
        "kind": "text",
        "channel": "text",
        "created_at": "event_time",
        "title": "text",
        "body": "text",
        "url": "text",
        "author_pseudonym": "text",
        "score": "int4",
        "metrics": "jsonb",
        "payload": "jsonb",
    },
    "core.market_bars": {
        "symbol": "key",
        "market": "key",
        "interval": "key",
        "ts": "event_time",
        "source": "text",
        "asset_class": "text",
        "open": "numeric",
        "high": "numeric",
        "low": "numeric",
        "close": "numeric",
        "volume": "numeric",
    },
    "core.weather_observations": {
        "city": "key",
        "kind": "key",
        "valid_at": "event_time",
        "source": "text",
        "country": "text",
        "lat": "float8",
        "lon": "float8",
        "issued_at": "timestamptz",
        "temp_c": "float8",
        "feels_like_c": "float8",
        "pressure_hpa": "float8",
        "humidity_pct": "float8",
        "wind_speed_ms": "float8",
        "wind_deg": "float8",
        "clouds_pct": "float8",
        "rain_mm": "float8",
        "condition": "text",
        "description": "text",
    },
    "core.github_repo_snapshots": {
        "repo": "key",
        "snapshot_at": "event_time",
        "source": "text",
        "stars": "int4",
        "forks": "int4",
        "watchers": "int4",
        "open_issues": "int4",
        "size_kb": "int4",
        "language": "text",
        "pushed_at": "timestamptz",
    },
}

#: Columns besides the key columns that PostgreSQL holds NOT NULL (a test compares this with the catalog):
#: a document's kind is required text (``missing_text``), its metrics and payload are ``{}`` when absent; a
#: fact without one of these is refused with ``missing_text``.
NOT_NULL: dict[str, frozenset[str]] = {
    "core.documents": frozenset({"kind", "metrics", "payload"}),
    "core.market_bars": frozenset({"source", "asset_class"}),
    "core.weather_observations": frozenset({"source"}),
    "core.github_repo_snapshots": frozenset({"source"}),
}

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

#: Text columns take what PostgreSQL takes; how long a source's text may be is the parsers' policy.
PG_TEXT = pgtypes.PG_MAX_TEXT_BYTES

#: The fields of a :class:`Document`, in declaration order (the item of a refused document's quarantine row).
DOCUMENT_FIELDS = (
    "source",
    "external_id",
    "kind",
    "created_at",
    "channel",
    "title",
    "body",
    "url",
    "author_pseudonym",
    "score",
    "metrics",
    "payload",
)


# ------------------------------------------------------------------------------------------------
# refusals
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Refusal:
    """A document or fact the model refused: the values it was given (unchecked) and why.

    ``key`` is the document's checked ``(source, external_id, created_at)`` when those passed (the loader
    weighs the refused copy against the item's other copies by it), else None; facts have none.
    """

    table: str
    values: dict[str, Any]
    reason: Reason
    detail: str
    key: tuple[str, str, datetime] | None = None

    @property
    def external_id(self) -> str | None:
        """The document's id as given (None for a fact)."""
        if self.table != "core.documents":
            return None
        return self.values.get("external_id")

    def digest(self, created_at: datetime | None = None) -> str:
        """The ``content_sha256`` the document would have (see :func:`document_digest`)."""
        return _content_digest(self.values, created_at)


class RecordRefused(ItemError):
    """Raised by :class:`Document` and :class:`Fact` for a value their column cannot hold as it is.

    ``refusal`` keeps the record's values and the reason (:func:`rejected` turns it into a quarantine record).
    """

    def __init__(self, error: ItemError, refusal: Refusal) -> None:
        ValueError.__init__(self, str(error))  # the detail is already short and storable
        self.reason = error.reason
        self.detail = error.detail
        self.refusal = refusal


# ------------------------------------------------------------------------------------------------
# documents
# ------------------------------------------------------------------------------------------------


def document_key(source: Any, external_id: Any, created_at: Any) -> tuple[str, str, datetime]:
    """``(source, external_id, created_at)`` of a document, checked; raises :class:`ItemError`."""
    # Fast path (nearly every row): short ASCII ids, a UTC datetime in range.
    if (
        type(source) is str
        and type(external_id) is str
        and 0 < len(external_id) <= 250
        and 0 < len(source) <= 250
        and external_id.isascii()
        and source.isascii()
        and "\x00" not in external_id
        and "\x00" not in source
        and type(created_at) is datetime
        and created_at.tzinfo is UTC
        and MIN_EVENT_TIME <= created_at < MAX_EVENT_TIME
    ):
        return source, external_id, created_at
    return (
        pgtypes.key("source", source),
        pgtypes.key("external_id", external_id),
        pgtypes.event_time("created_at", created_at),
    )


@dataclass(frozen=True)
class Document:
    """A row of ``core.documents``; constructing one checks every value (raises :class:`RecordRefused`).

    The fields keep the values as given (the content hash is computed from them); :meth:`columns` holds them
    as they are written (the creation time in UTC, integral floats as integers, JSON as text).
    """

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

    def __post_init__(self) -> None:
        key = None
        try:
            key = document_key(self.source, self.external_id, self.created_at)
            # Checked in this order (the first bad value gives the reason); held in the table's column order.
            kind = pgtypes.text("kind", self.kind, required=True, max_bytes=PG_TEXT)
            columns = (
                key[0],
                key[1],
                kind,
                pgtypes.text("channel", self.channel, max_bytes=PG_TEXT),
                key[2],
                pgtypes.text("title", self.title, max_bytes=PG_TEXT),
                pgtypes.text("body", self.body, max_bytes=PG_TEXT),
                pgtypes.text("url", self.url, max_bytes=PG_TEXT),
                pgtypes.text("author_pseudonym", self.author_pseudonym, max_bytes=PG_TEXT),
                pgtypes.integer("score", self.score),
                pgtypes.json_text("metrics", self.metrics or {}),
                pgtypes.json_text("payload", self.payload or {}),
            )
        except ItemError as exc:
            values = {name: getattr(self, name) for name in DOCUMENT_FIELDS}
            raise RecordRefused(exc, Refusal("core.documents", values, exc.reason, exc.detail, key)) from None
        object.__setattr__(self, "_columns", columns)
        object.__setattr__(self, "_key", key)

    def columns(self) -> tuple[Any, ...]:
        """The checked values in the table's order: source, external_id, kind, channel, created_at, title,
        body, url, author_pseudonym, score, metrics and payload (the last two as JSON text)."""
        return self._columns  # type: ignore[attr-defined, no-any-return]

    def key(self) -> tuple[str, str, datetime]:
        """The checked ``(source, external_id, created_at)``."""
        return self._key  # type: ignore[attr-defined, no-any-return]

    def content_hash(self) -> str:
        """Hash of everything loaded except lineage: unchanged content means no rewrite (the loader's
        ``content_sha256``)."""
        return document_digest(self)


#: What ``content_sha256`` hashes, in this order: every loaded field of a document but its key and lineage (the
#: loader's column list is the key, these, then the digest and lineage).
CONTENT_FIELDS = (
    "kind",
    "channel",
    "created_at",
    "title",
    "body",
    "url",
    "author_pseudonym",
    "score",
    "metrics",
    "payload",
)


def document_digest(doc: Document, created_at: datetime | None = None) -> str:
    """``content_sha256`` of a document: SHA-256 of its loaded fields (not key or lineage) as one JSON array.

    Computed from the values as given, never raises (a value no JSON encoder takes, nested too deep, hashes by
    its text). ``created_at`` overrides the document's own (the loader keeps an item's first-seen creation
    time).
    """
    return _content_digest({name: getattr(doc, name) for name in CONTENT_FIELDS}, created_at)


def _content_digest(values: dict[str, Any], created_at: datetime | None) -> str:
    if created_at is not None:
        values = {**values, "created_at": created_at}
    return _digest(tuple(values[name] for name in CONTENT_FIELDS))


def _digest(parts: tuple[Any, ...]) -> str:
    try:
        blob = orjson.dumps(parts, default=str, option=orjson.OPT_NON_STR_KEYS)
    except (orjson.JSONEncodeError, TypeError):  # lone surrogates, integers beyond 64 bits, deep nesting
        try:
            blob = json.dumps(parts, default=str, ensure_ascii=False).encode("utf-8", "surrogatepass")
        except (RecursionError, ValueError, TypeError):
            blob = pgtypes.storable_json([_cut_text(p) for p in parts]).encode()
    return hashlib.sha256(blob).hexdigest()


def _cut_text(value: Any) -> str:
    try:
        return str(value)[:10_000]
    except (RecursionError, ValueError):  # an integer too long to print (sys.int_info), deep nesting
        return pgtypes.show(value)


# ------------------------------------------------------------------------------------------------
# facts
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    """A row of one of the numeric fact tables in :data:`FACT_TABLES`; constructing one checks every value
    by its column's type (:data:`COLUMN_TYPES`; raises :class:`RecordRefused`).

    ``values`` holds every key and value column of the table (``None`` where the source has no value).
    A table unknown, a key column missing or a column the table lacks is a programming error
    (``ValueError``).
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
        types = COLUMN_TYPES[self.table]
        required = NOT_NULL[self.table]
        get = self.values.get
        try:
            columns = tuple(_fact_value(types[c], c, get(c), c in required) for c in (*keys, *cols))
        except ItemError as exc:
            raise RecordRefused(exc, Refusal(self.table, dict(self.values), exc.reason, exc.detail)) from None
        object.__setattr__(self, "_columns", columns)

    def columns(self) -> tuple[Any, ...]:
        """The checked values of the table's key columns, then its value columns."""
        return self._columns  # type: ignore[attr-defined, no-any-return]

    def key(self) -> tuple[Any, ...]:
        return (self.table, *(self.values[k] for k in FACT_TABLES[self.table][0]))

    def content_hash(self) -> str:
        blob = json.dumps(self.values, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


def _fact_value(kind: str, name: str, value: Any, required: bool) -> Any:
    if value is None and required:
        raise ItemError(Reason.MISSING_TEXT, f"{name} is missing")
    return pgtypes.column_value(kind, name, value)


# ------------------------------------------------------------------------------------------------
# quarantine rows
# ------------------------------------------------------------------------------------------------


@dataclass
class Rejected:
    """An item that goes to ``quality.quarantine``.

    ``refusal`` is set when the item parsed but its record was refused (:class:`RecordRefused`): the loader
    then weighs it against the item's other copies before quarantining it (:func:`refusal_record`).
    """

    item_index: int
    reason: Reason
    detail: str
    external_id: str | None
    item: Any
    item_key: str
    refusal: Refusal | None = field(default=None, repr=False, compare=False)


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
    is written (``pulse.warehouse.loader.quarantine``). When the parser built a record the model refused
    (:class:`RecordRefused`), the quarantine record holds that record, not the raw item
    (:func:`refusal_record`).
    """
    if isinstance(error, RecordRefused):
        return refusal_record(index, error.refusal)
    item = redact(raw_item, pii_keys, pseudonymize)
    key = external_id or "sha256:" + content_key(raw_item, item)
    return Rejected(index, error.reason, error.detail, external_id, item, key)


def refusal_record(
    item_index: int, refusal: Refusal, reason: Reason | None = None, detail: str | None = None
) -> Rejected:
    """The quarantine record of a refused document or fact: the record as given (escaped when written),
    keyed by the document's id or the fact's table key (each snapshot, bar or observation its own row).
    ``reason`` and ``detail`` override the refusal's (a load may refuse a valid record: ``archived_period``).
    """
    item = dict(refusal.values) if refusal.table == "core.documents" else refusal_fact_item(refusal)
    external_id = refusal.external_id
    if refusal.table != "core.documents":
        keys = FACT_TABLES[refusal.table][0]
        parts = (refusal.table, *(refusal.values[k] for k in keys))
        key = "|".join(v.isoformat() if isinstance(v, datetime) else str(v) for v in parts)
    elif isinstance(external_id, str) and external_id:
        key = external_id
    else:
        key = "sha256:" + content_key(item)
    return Rejected(
        item_index,
        refusal.reason if reason is None else reason,
        refusal.detail if detail is None else detail,
        external_id,
        item,
        key,
        refusal,
    )


def refusal_fact_item(refusal: Refusal) -> dict[str, Any]:
    """A refused fact as its quarantine row holds it: ``{"table": ..., "values": {...}}``."""
    return {"table": refusal.table, "values": refusal.values}


def record_refusal(record: Document | Fact, reason: Reason, detail: str) -> Refusal:
    """A :class:`Refusal` of a valid record (the load refuses what the database's state forbids)."""
    if isinstance(record, Fact):
        return Refusal(record.table, record.values, reason, detail)
    values = {name: getattr(record, name) for name in DOCUMENT_FIELDS}
    return Refusal("core.documents", values, reason, detail, record.key())


def content_key(raw_item: Any, storable: Any = None) -> str:
    """SHA-256 of an item without an id (its canonical JSON); never raises."""
    try:
        canonical = json.dumps(raw_item, sort_keys=True, ensure_ascii=False, default=str)
        data = canonical.encode("utf-8", errors="surrogatepass")
    except (RecursionError, ValueError, TypeError):  # nested too deep for the encoder, a huge integer
        fallback = storable if storable is not None else pgtypes.storable_value(raw_item)
        data = json.dumps(fallback, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


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
