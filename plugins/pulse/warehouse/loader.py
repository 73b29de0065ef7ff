"""Load parsed records into ``core`` and ``quality.quarantine``.

The path of a batch of documents (``upsert_documents``):

1. **Prepare** each row in Python: values PostgreSQL would reject are cleaned (lone surrogates become U+FFFD)
   or the row is rejected with a reason (NUL bytes, timestamps outside 1970-2100, integers that do not fit,
   keys too long for an index), so one bad row never fails a batch. Rejections go back to the caller, who
   quarantines them.
2. **Deduplicate** by ``(source, external_id)`` keeping the copy from the newest raw page
   (``ON CONFLICT DO UPDATE`` refuses a batch that holds a key twice).
3. Make sure the **monthly partitions** the batch needs exist (``ops.ensure_month_partitions``).
4. **Binary COPY** into a session temp table, then **one** ``INSERT ... SELECT ... ON CONFLICT DO UPDATE``
   that skips rows whose ``content_sha256`` is unchanged (an anti-join, so unchanged rows are neither rewritten
   nor locked) and rewrites only the changed ones. Steps 3-4 are one transaction per batch: a killed task
   leaves no partial batch.

Fact tables go the same way with text COPY (their volumes are small; their columns vary per table).
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from psycopg.adapt import Dumper
from psycopg.pq import Format

from pulse.sources.base import FACT_TABLES, Reason
from pulse.warehouse.partitions import PARTITIONED

if TYPE_CHECKING:
    import psycopg

    from pulse.sources.base import Document, Fact, Rejected

DOC_COLUMNS = (
    "source",
    "external_id",
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
    "content_sha256",
    "raw_response_id",
    "dag_run_id",
)
#: Binary COPY types of the stage columns (jsonb travels as text and is cast by the INSERT).
_STAGE_TYPES = (
    "text",
    "text",
    "text",
    "text",
    "timestamptz",
    "text",
    "text",
    "text",
    "text",
    "int4",
    "text",
    "text",
    "text",
    "int8",
    "text",
)
_KEY = ("source", "external_id", "created_at")
_UPDATE = ", ".join(f"{c} = EXCLUDED.{c}" for c in DOC_COLUMNS if c not in _KEY)
_SELECT = ", ".join(f"s.{c}::jsonb" if c in ("metrics", "payload") else f"s.{c}" for c in DOC_COLUMNS)

#: Event times outside this range are rejected (they would create absurd partitions or are unit errors).
MIN_EVENT_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_EVENT_TIME = datetime(2100, 1, 1, tzinfo=UTC)
#: A B-tree entry is limited to about 2,700 bytes; keys longer than this cannot be indexed.
MAX_KEY_BYTES = 1_000
INT4 = (-(2**31), 2**31 - 1)
_JSON_OPTS = orjson.OPT_NON_STR_KEYS


class RowRejected(ValueError):
    """A row PostgreSQL would refuse; carries the quarantine reason."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class RowRejection:
    """A row the loader refused: ``position`` is its index in the input sequence."""

    position: int
    reason: Reason
    detail: str


@dataclass
class LoadResult:
    loaded: int = 0
    changed: int = 0
    quarantined: int = 0
    rejected: list[RowRejection] = field(default_factory=list)


def _batches(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# ------------------------------------------------------------------------------------------------
# value checks: clean what can be cleaned, reject what cannot
# ------------------------------------------------------------------------------------------------


def clean_text(name: str, value: Any) -> str | None:
    """A text value PostgreSQL accepts: no NUL byte (rejected), lone surrogates replaced by U+FFFD."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise RowRejected(Reason.BAD_FIELD, f"{name} is {type(value).__name__}, expected text")
    if "\x00" in value:
        raise RowRejected(Reason.TEXT_NUL_BYTE, f"{name} contains a NUL byte")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # Pairs of surrogates become their character, lone ones U+FFFD.
            value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def check_key(name: str, value: Any) -> str:
    text = clean_text(name, value)
    if not text:
        raise RowRejected(Reason.MISSING_ID, f"{name} is empty")
    if len(text) > MAX_KEY_BYTES // 4 and len(text.encode("utf-8")) > MAX_KEY_BYTES:
        raise RowRejected(Reason.BAD_FIELD, f"{name} is longer than {MAX_KEY_BYTES} bytes")
    return text


def check_time(name: str, value: Any, *, required: bool) -> datetime | None:
    if value is None:
        if required:
            raise RowRejected(Reason.BAD_TIMESTAMP, f"{name} is missing")
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise RowRejected(Reason.BAD_TIMESTAMP, f"{name} is {value!r}, expected an aware datetime")
    if not MIN_EVENT_TIME <= value < MAX_EVENT_TIME:
        raise RowRejected(Reason.BAD_TIMESTAMP, f"{name} {value.isoformat()} is outside 1970-2100")
    return value


def check_int4(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise RowRejected(Reason.BAD_FIELD, f"{name} is {value!r}, expected an integer")
    if not INT4[0] <= value <= INT4[1]:
        raise RowRejected(Reason.NUMBER_OUT_OF_RANGE, f"{name} {value} does not fit a 32-bit integer")
    return value


def _scrub(value: Any) -> Any:
    """Copy of a JSON-like value: lone surrogates replaced, NaN and infinities null, NUL characters refused."""
    if isinstance(value, str):
        if "\x00" in value:
            raise RowRejected(Reason.TEXT_NUL_BYTE, "a JSON string contains a NUL character")
        return clean_text("json", value)
    if isinstance(value, dict):
        return {_scrub(str(k)): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # as orjson does on the fast path: JSON has no NaN or infinity
    return value


def to_json(name: str, value: Any) -> str:
    """Serialise a jsonb value. JSON has no NaN or infinity: those become ``null``. jsonb refuses ``\\u0000``:
    such values are rejected. Lone surrogates become U+FFFD; integers beyond 64 bits stay exact."""
    try:
        data = orjson.dumps(value, default=str, option=_JSON_OPTS)
    except (orjson.JSONEncodeError, TypeError):
        data = b""  # lone surrogates or integers beyond 64 bits: take the careful path below
    else:
        if b"\\u0000" not in data:
            return data.decode()
    # Careful path (rare): a NUL character (jsonb refuses \u0000), a lone surrogate or a big integer.
    try:
        return json.dumps(_scrub(value), ensure_ascii=False, default=str, allow_nan=False)
    except RowRejected as exc:
        raise RowRejected(exc.reason, f"{name}: {exc.detail}") from None
    except ValueError as exc:
        raise RowRejected(Reason.NUMBER_OUT_OF_RANGE, f"{name}: {exc}") from None


def content_digest(doc: Document) -> str:
    """``content_sha256`` of a document: SHA-256 of its loaded fields (not key or lineage) as one JSON array.

    Computed from the values as parsed, before any cleaning, so that deciding "unchanged" needs no validation.
    """
    parts = (
        doc.kind,
        doc.channel,
        doc.created_at,
        doc.title,
        doc.body,
        doc.url,
        doc.author_pseudonym,
        doc.score,
        doc.metrics,
        doc.payload,
    )
    try:
        blob = orjson.dumps(parts, default=str, option=_JSON_OPTS)
    except (orjson.JSONEncodeError, TypeError):  # lone surrogates, integers beyond 64 bits
        blob = json.dumps(parts, default=str, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return hashlib.sha256(blob).hexdigest()


def document_key(doc: Document) -> tuple[str, str, datetime]:
    """``(source, external_id, created_at)`` checked; raises :class:`RowRejected`."""
    source, external_id, created_at = doc.source, doc.external_id, doc.created_at
    # Fast path (nearly every row): short ASCII ids, an aware datetime in range.
    if (
        type(source) is str
        and type(external_id) is str
        and 0 < len(external_id) <= 250
        and source
        and external_id.isascii()
        and source.isascii()
        and "\x00" not in external_id
        and "\x00" not in source
        and type(created_at) is datetime
        and created_at.tzinfo is not None
        and MIN_EVENT_TIME <= created_at < MAX_EVENT_TIME
    ):
        return source, external_id, created_at
    checked = check_time("created_at", created_at, required=True)
    assert checked is not None
    return check_key("source", source), check_key("external_id", external_id), checked


def document_row(doc: Document, raw_id: int, dag_run_id: str, digest: str | None = None) -> tuple[Any, ...]:
    """The row of ``doc`` in ``DOC_COLUMNS`` order (jsonb as text); raises :class:`RowRejected` for values
    PostgreSQL would refuse."""
    source, external_id, created_at = document_key(doc)
    return (
        source,
        external_id,
        clean_text("kind", doc.kind) or "",
        clean_text("channel", doc.channel),
        created_at,
        clean_text("title", doc.title),
        clean_text("body", doc.body),
        clean_text("url", doc.url),
        clean_text("author_pseudonym", doc.author_pseudonym),
        check_int4("score", doc.score),
        to_json("metrics", doc.metrics or {}),
        to_json("payload", doc.payload or {}),
        digest or content_digest(doc),
        raw_id,
        dag_run_id,
    )


def document_hash(doc: Document) -> str:
    """The ``content_sha256`` the loader stores for ``doc``."""
    return content_digest(doc)


# ------------------------------------------------------------------------------------------------
# partitions
# ------------------------------------------------------------------------------------------------


def _month(ts: datetime) -> tuple[int, int]:
    ts = ts.astimezone(UTC)
    return (ts.year, ts.month)


def archived_months(conn: psycopg.Connection[Any], table: str) -> set[tuple[int, int]]:
    """Months of ``table`` whose partition retention archived and dropped (and nobody restored since).

    Sources that re-deliver history (Alpha Vantage crypto returns every day since the listing) would
    otherwise recreate those partitions each run and retention would archive them again; such rows are
    refused with ``archived_period`` instead, so they land in quarantine, where ``replay_quarantine`` loads
    them after a restore.
    """
    rows = conn.execute(
        """
        SELECT DISTINCT ON (period_start) period_start, status FROM ops.archives
         WHERE relation = %s AND status IN ('dropped', 'restored')
         ORDER BY period_start, id DESC
        """,
        (table,),
    ).fetchall()
    return {_month(start) for start, status in rows if status == "dropped"}


class PartitionCache:
    """Months that have a partition, per partitioned table, read once per load from the catalog."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.known: dict[str, set[tuple[int, int]]] = {}

    def _load(self, table: str) -> set[tuple[int, int]]:
        if table not in self.known:
            name = table.split(".")[1]
            rows = self.conn.execute(
                """
                SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = %s::regclass
                """,
                (table,),
            ).fetchall()
            months: set[tuple[int, int]] = set()
            prefix = f"{name}_p"
            for (relname,) in rows:
                tail = relname[len(prefix) :] if relname.startswith(prefix) else ""
                if len(tail) == 7 and tail[4] == "_" and tail.replace("_", "").isdigit():
                    months.add((int(tail[:4]), int(tail[5:])))
            self.known[table] = months
        return self.known[table]

    def ensure(self, table: str, times: Iterable[datetime]) -> int:
        """Create the partitions ``times`` need (inside the caller's transaction); return how many."""
        known = self._load(table)
        missing = sorted({_month(t) for t in times} - known)
        created = 0
        for year, month in missing:
            start = datetime(year, month, 1, tzinfo=UTC)
            row = self.conn.execute(
                "SELECT ops.ensure_month_partitions(%s::regclass, %s, %s)", (table, start, start)
            ).fetchone()
            created += int(row[0]) if row else 0
            known.add((year, month))
        return created


# ------------------------------------------------------------------------------------------------
# documents
# ------------------------------------------------------------------------------------------------


class _JsonText(str):
    """Marker: a str that already holds JSON text, written to jsonb columns in binary COPY as is."""


class _JsonTextBinaryDumper(Dumper):
    format = Format.BINARY
    oid = 3802  # jsonb; set_types() picks dumpers by oid

    def dump(self, obj: str) -> bytes:  # type: ignore[override]
        return b"\x01" + obj.encode()  # jsonb binary format: version 1, then the JSON text


#: Binary COPY types of ``core.documents`` itself.
_TARGET_TYPES = [
    "jsonb" if c in ("metrics", "payload") else t for c, t in zip(DOC_COLUMNS, _STAGE_TYPES, strict=True)
]


def _lock_sources(conn: psycopg.Connection[Any], sources: Iterable[str]) -> None:
    """Serialise writers of the same source's documents for this transaction (sorted: no deadlocks).

    New rows are copied straight into ``core.documents`` after checking which keys exist; the lock keeps a
    concurrent load of the same source from inserting one of those keys in between.
    """
    for source in sorted(set(sources)):
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('pulse.documents'), hashtext(%s))", (source,))


def upsert_documents(
    conn: psycopg.Connection[Any],
    docs: Sequence[tuple[Document, int]],
    dag_run_id: str,
    batch_size: int = 200_000,
) -> LoadResult:
    """Upsert ``(document, raw_response_id)`` pairs; only new and changed rows are written.

    Per batch (up to ``batch_size`` documents; the COPY data is streamed, what stays in memory per batch is the
    keys and hashes), in one transaction: unless the table holds nothing of the batch's sources in its time
    range, COPY the keys into a stage and fetch the stored hash of those that exist;
    COPY the new rows straight into ``core.documents`` (as fast as a plain COPY); COPY the changed ones into
    a stage and apply them with one ``INSERT ... ON CONFLICT DO UPDATE`` that rewrites only rows whose hash
    differs. Unchanged rows cost a hash and an index probe, and are neither rewritten nor locked.

    Returns the distinct keys loaded, the rows changed (inserted or rewritten) and the rows refused, each with
    its position in ``docs`` and a reason, for the caller to quarantine.
    """
    # The cyclic garbage collector would walk every live object (all documents of the run) again and again
    # while this allocates millions of short-lived ones; nothing here makes reference cycles.
    paused = gc.isenabled()
    gc.disable()
    # The hashing thread holds the GIL between the main thread's database calls; a shorter switch interval
    # hands it back sooner when a result arrives.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, 0.001))
    try:
        return _upsert_documents(conn, docs, dag_run_id, batch_size)
    finally:
        sys.setswitchinterval(interval)
        if paused:
            gc.enable()


def _upsert_documents(
    conn: psycopg.Connection[Any], docs: Sequence[tuple[Document, int]], dag_run_id: str, batch_size: int
) -> LoadResult:
    result = LoadResult()
    cold = archived_months(conn, "core.documents")
    # Pass 1: keys only; the newest copy (highest raw page id) of each key wins.
    latest: dict[tuple[str, str], tuple[int, int, datetime]] = {}
    for position, (doc, raw_id) in enumerate(docs):
        try:
            source, external_id, created_at = document_key(doc)
            if cold and _month(created_at) in cold:
                raise RowRejected(Reason.ARCHIVED_PERIOD, f"{created_at:%Y-%m} of core.documents is archived")
        except RowRejected as exc:
            result.rejected.append(RowRejection(position, exc.reason, exc.detail))
            continue
        seen = latest.get((source, external_id))
        if seen is None or seen[1] <= raw_id:
            latest[(source, external_id)] = (position, raw_id, created_at)
    if not latest:
        return result
    partitions = PartitionCache(conn)
    _ensure_stages(conn)
    winners = [(key, *value) for key, value in latest.items()]  # input order: memory and index locality
    batches = list(_batches(winners, batch_size))
    # Content hashes are computed on a helper thread, batch by batch, while this thread waits for the
    # database (the GIL is free then): on a re-load of unchanged rows that halves the wall time.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pulse-digest") as pool:
        for batch in batches:
            chunks = [
                pool.submit(_digests, docs, batch, start, PROBE_CHUNK)
                for start in range(0, len(batch), PROBE_CHUNK)
            ]
            _load_batch(conn, docs, batch, _Digests(chunks), dag_run_id, partitions, result)
    return result


#: Keys are probed in chunks of this size, so that hashing one chunk overlaps probing the next.
PROBE_CHUNK = 25_000


def _digests(docs: Sequence[tuple[Document, int]], batch: Sequence[Any], start: int, size: int) -> list[str]:
    return [content_digest(docs[position][0]) for _, position, _, _ in batch[start : start + size]]


class _Digests:
    """The content hashes of a batch, computed chunk by chunk on the helper thread."""

    def __init__(self, chunks: list[Future[list[str]]]) -> None:
        self.chunks = chunks
        self.flat: list[str] | None = None

    def chunk(self, start: int) -> list[str]:
        """The hashes of rows ``start`` to ``start + PROBE_CHUNK`` (waits for them)."""
        return self.chunks[start // PROBE_CHUNK].result()

    def all(self) -> list[str]:
        if self.flat is None:
            self.flat = [digest for chunk in self.chunks for digest in chunk.result()]
        return self.flat


def _load_batch(
    conn: psycopg.Connection[Any],
    docs: Sequence[tuple[Document, int]],
    batch: Sequence[Any],
    digests: _Digests,
    dag_run_id: str,
    partitions: PartitionCache,
    result: LoadResult,
) -> None:
    """One batch, one transaction (see :func:`upsert_documents`)."""
    refused = 0

    def build(i: int) -> tuple[Any, ...] | None:
        nonlocal refused
        _, position, raw_id, _ = batch[i]
        try:
            return document_row(docs[position][0], raw_id, dag_run_id, digests.all()[i])
        except RowRejected as exc:
            result.rejected.append(RowRejection(position, exc.reason, exc.detail))
            refused += 1
            return None

    with conn.transaction(), conn.cursor() as cur:
        _lock_sources(conn, (key[0] for key, *_ in batch))
        times = [created_at for *_, created_at in batch]
        occupied = cur.execute(
            "SELECT EXISTS (SELECT 1 FROM core.documents WHERE source = ANY(%s) AND created_at BETWEEN %s AND %s)",
            (sorted({key[0] for key, *_ in batch}), min(times), max(times)),
        ).fetchone()
        stored: dict[int, str] = {}
        changed_keys: list[int] = []
        in_range = None
        if occupied and occupied[0]:
            # When the batch's time range holds few rows besides the batch's own (a re-load, an overlapping
            # window), reading that range once is cheaper than probing key by key.
            in_range = cur.execute(
                "SELECT source, external_id, created_at, content_sha256 FROM core.documents"
                " WHERE source = ANY(%s) AND created_at BETWEEN %s AND %s LIMIT %s",
                (sorted({key[0] for key, *_ in batch}), min(times), max(times), 2 * len(batch) + 1),
            ).fetchall()
            if len(in_range) > 2 * len(batch):
                in_range = None
        if in_range is not None:
            held = {(s, e, c): h for s, e, c, h in in_range}
            fresh_all = digests.all()
            for i, ((source, external_id), _, _, created_at) in enumerate(batch):
                old = held.get((source, external_id, created_at))
                if old is not None:
                    stored[i] = old
                    if fresh_all[i] != old:
                        changed_keys.append(i)
        elif occupied and occupied[0]:
            # Which keys exist, with their stored hash: one primary-key probe per key, pruned to the key's
            # partition. The stage has no statistics; keep the planner from sort-merging the whole table.
            cur.execute("SET LOCAL enable_mergejoin = off")
            cur.execute("SET LOCAL enable_hashjoin = off")
            for start in range(0, len(batch), PROBE_CHUNK):
                with cur.copy("COPY pg_temp.pulse_stage_keys FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["int4", "text", "text", "timestamptz"])
                    for i in range(start, min(start + PROBE_CHUNK, len(batch))):
                        (source, external_id), _, _, created_at = batch[i]
                        copy.write_row((i, source, external_id, created_at))
                found = cur.execute(
                    """
                    SELECT k.i, e.content_sha256 FROM pg_temp.pulse_stage_keys k
                      JOIN core.documents e
                        ON e.source = k.source AND e.external_id = k.external_id AND e.created_at = k.created_at
                     WHERE k.i >= %s
                    """,
                    (start,),
                ).fetchall()
                # Unchanged rows need nothing more; the next chunk's hashes are computed meanwhile.
                fresh = digests.chunk(start)
                stored.update(found)
                changed_keys += [i for i, old in found if fresh[i - start] != old]
        # (Otherwise the table holds nothing of these sources in the batch's time range: every key is new.)
        partitions.ensure("core.documents", times)
        if len(stored) < len(batch):
            # New keys: straight into the table with a binary COPY.
            cur.adapters.register_dumper(_JsonText, _JsonTextBinaryDumper)
            with cur.copy(_COPY_TARGET) as copy:
                copy.set_types(_TARGET_TYPES)
                for i in range(len(batch)):
                    if i not in stored and (row := build(i)) is not None:
                        copy.write_row(row)
                        result.changed += 1
        # Existing keys whose content changed: stage them, then rewrite exactly those rows.
        changed = [row for i in changed_keys if (row := build(i)) is not None]
        if changed:
            with cur.copy("COPY pg_temp.pulse_stage_documents FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(_STAGE_TYPES)
                for row in changed:
                    copy.write_row(row)
            cur.execute(_APPLY_CHANGED)
            result.changed += max(cur.rowcount, 0)
        result.loaded += len(batch) - refused


_COPY_TARGET = f"COPY core.documents ({', '.join(DOC_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_APPLY_CHANGED = f"""
    INSERT INTO core.documents AS d ({", ".join(DOC_COLUMNS)})
    SELECT {_SELECT} FROM pg_temp.pulse_stage_documents s
    ON CONFLICT (source, external_id, created_at) DO UPDATE SET {_UPDATE}, loaded_at = now()
    WHERE d.content_sha256 IS DISTINCT FROM EXCLUDED.content_sha256
"""


def _ensure_stages(conn: psycopg.Connection[Any]) -> None:
    """The session's stage tables; ``ON COMMIT DELETE ROWS`` empties them at the end of every batch."""
    cols = ", ".join(f"{c} {t}" for c, t in zip(DOC_COLUMNS, _STAGE_TYPES, strict=True))
    with conn.transaction():
        conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS pulse_stage_documents ({cols}) ON COMMIT DELETE ROWS")
        conn.execute(
            'CREATE TEMP TABLE IF NOT EXISTS pulse_stage_keys (i int4, source text COLLATE "C", '
            'external_id text COLLATE "C", created_at timestamptz) ON COMMIT DELETE ROWS'
        )


# ------------------------------------------------------------------------------------------------
# facts
# ------------------------------------------------------------------------------------------------


def _fact_value(table: str, column: str, value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(column, value)
    if isinstance(value, datetime):
        return check_time(column, value, required=False)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if column in _INT_COLUMNS.get(table, ()):
            return check_int4(column, value)
        return value
    if isinstance(value, float | Decimal):
        if not math.isfinite(value):
            raise RowRejected(Reason.NUMBER_OUT_OF_RANGE, f"{column} is {value}")
        return value
    return value


#: Integer (int4) columns of the fact tables; the rest of the numbers are numeric or double precision.
_INT_COLUMNS: dict[str, frozenset[str]] = {
    "core.github_repo_snapshots": frozenset({"stars", "forks", "watchers", "open_issues", "size_kb"}),
}


def fact_row(fact: Fact, raw_id: int, dag_run_id: str) -> tuple[Any, ...]:
    keys, values = FACT_TABLES[fact.table]
    out = []
    for column in (*keys, *values):
        value = _fact_value(fact.table, column, fact.values.get(column))
        if column in keys and isinstance(value, str):
            value = check_key(column, value)
        out.append(value)
    return (*out, fact.content_hash(), raw_id, dag_run_id)


def upsert_facts(
    conn: psycopg.Connection[Any],
    facts: Sequence[tuple[Fact, int]],
    dag_run_id: str,
    batch_size: int = 20_000,
) -> LoadResult:
    """Upsert ``(fact, raw_response_id)`` pairs into their fact tables, the same way as documents: stage,
    keep the latest copy of each key, rewrite only rows whose content changed. Refused rows come back in
    ``rejected`` with their position in ``facts``."""
    result = LoadResult()
    by_table: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]] = {}
    # Per partitioned fact table: its archived months and where the partition column sits in a row.
    cold: dict[str, tuple[set[tuple[int, int]], int]] = {}
    for position, (fact, raw_id) in enumerate(facts):
        try:
            row = fact_row(fact, raw_id, dag_run_id)
            part_col = PARTITIONED.get(fact.table)
            if part_col:
                if fact.table not in cold:
                    keys, values = FACT_TABLES[fact.table]
                    cold[fact.table] = (archived_months(conn, fact.table), (*keys, *values).index(part_col))
                months, ts_index = cold[fact.table]
                ts = row[ts_index]
                if months and _month(ts) in months:
                    raise RowRejected(Reason.ARCHIVED_PERIOD, f"{ts:%Y-%m} of {fact.table} is archived")
        except RowRejected as exc:
            result.rejected.append(RowRejection(position, exc.reason, exc.detail))
            continue
        nkeys = len(FACT_TABLES[fact.table][0])
        latest = by_table.setdefault(fact.table, {})
        seen = latest.get(row[:nkeys])
        if seen is None or seen[-2] <= raw_id:
            latest[row[:nkeys]] = row
    partitions = PartitionCache(conn)
    for table, latest in by_table.items():
        keys, values = FACT_TABLES[table]
        cols = (*keys, *values, "content_sha256", "raw_response_id", "dag_run_id")
        col_sql = ", ".join(cols)
        key_sql = ", ".join(keys)
        update = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c not in keys)
        part_col = PARTITIONED.get(table)
        part_idx = cols.index(part_col) if part_col else -1
        for batch in _batches(list(latest.values()), batch_size):
            with conn.transaction():
                if part_col:
                    partitions.ensure(table, (r[part_idx] for r in batch))
                conn.execute(
                    f"CREATE TEMP TABLE stage_facts (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP"
                )
                with conn.cursor() as cur:
                    with cur.copy(f"COPY stage_facts ({col_sql}) FROM STDIN") as copy:
                        for row in batch:
                            copy.write_row(row)
                    cur.execute(
                        f"""
                        INSERT INTO {table} AS t ({col_sql})
                        SELECT {col_sql} FROM stage_facts
                        ON CONFLICT ({key_sql}) DO UPDATE SET {update}, loaded_at = now()
                        WHERE t.content_sha256 IS DISTINCT FROM EXCLUDED.content_sha256
                        """
                    )
                    result.changed += max(cur.rowcount, 0)
                result.loaded += len(batch)
    return result


# ------------------------------------------------------------------------------------------------
# parser output, sorted for loading
# ------------------------------------------------------------------------------------------------


@dataclass
class ParsedBatch:
    """What a parser made of some raw pages, sorted for the loaders; each item carries a caller's reference
    (the load uses the item's index in its page, a replay the quarantine row id)."""

    docs: list[tuple[Document, int]] = field(default_factory=list)
    doc_refs: list[Any] = field(default_factory=list)
    facts: list[tuple[Fact, int]] = field(default_factory=list)
    fact_refs: list[Any] = field(default_factory=list)
    rejected: list[tuple[Rejected, int]] = field(default_factory=list)
    rejected_refs: list[Any] = field(default_factory=list)

    def add(self, out: Any, raw_id: int, ref: Any) -> None:
        from pulse.sources.base import Document, Fact

        if isinstance(out, Document):
            self.docs.append((out, raw_id))
            self.doc_refs.append(ref)
        elif isinstance(out, Fact):
            self.facts.append((out, raw_id))
            self.fact_refs.append(ref)
        else:
            self.rejected.append((out, raw_id))
            self.rejected_refs.append(ref)

    def upsert(
        self, conn: psycopg.Connection[Any], dag_run_id: str
    ) -> tuple[LoadResult, list[tuple[Any, Any, int]]]:
        """Upsert the documents and facts; return the combined result and, for every row the loader refused,
        ``(ref, quarantine record, raw_response_id)``."""
        result = upsert_documents(conn, self.docs, dag_run_id)
        fact_result = upsert_facts(conn, self.facts, dag_run_id)
        refused = []
        for refusal in result.rejected:
            doc, raw_id = self.docs[refusal.position]
            ref = self.doc_refs[refusal.position]
            refused.append((ref, load_refusal(ref, refusal, doc.external_id, doc), raw_id))
        for refusal in fact_result.rejected:
            fact, raw_id = self.facts[refusal.position]
            ref = self.fact_refs[refusal.position]
            refused.append((ref, load_refusal(ref, refusal, None, fact), raw_id))
        result.loaded += fact_result.loaded
        result.changed += fact_result.changed
        return result, refused


# ------------------------------------------------------------------------------------------------
# quarantine
# ------------------------------------------------------------------------------------------------


def load_refusal(item_index: int, refusal: RowRejection, external_id: str | None, record: Any) -> Rejected:
    """The quarantine record of a parsed row the loader refused (``record``: its Document or Fact)."""
    from dataclasses import asdict

    from pulse.sources.base import Rejected

    item = asdict(record)
    key = external_id
    if not key or len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        canonical = json.dumps(item, sort_keys=True, ensure_ascii=False, default=str)
        key = "sha256:" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    return Rejected(item_index, refusal.reason, refusal.detail, external_id, item, key)


def quarantine(
    conn: psycopg.Connection[Any],
    source: str,
    rejected: Sequence[tuple[Rejected, int]],
    dag_run_id: str,
) -> int:
    """Record ``(rejected item, raw_response_id)`` pairs, one row per item however often it is fetched.

    Returns the number of distinct items quarantined by this call.
    """
    if not rejected:
        return 0
    latest: dict[str, tuple[Rejected, int]] = {}
    for rej, raw_id in rejected:
        latest[rej.item_key] = (rej, raw_id)
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO quality.quarantine
                (source, item_key, external_id, raw_response_id, item_index, reason_code, reason_detail, item,
                 dag_run_id)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (source, item_key) DO UPDATE SET
                raw_response_id = EXCLUDED.raw_response_id, item_index = EXCLUDED.item_index,
                reason_code = EXCLUDED.reason_code, reason_detail = EXCLUDED.reason_detail,
                item = EXCLUDED.item, dag_run_id = EXCLUDED.dag_run_id, quarantined_at = now(),
                resolved_at = NULL, resolution = NULL
            """,
            [
                (
                    source,
                    _safe_key(key),
                    _safe_key(rej.external_id) if rej.external_id else None,
                    raw_id,
                    rej.item_index,
                    str(rej.reason),
                    _safe_text(rej.detail),
                    _safe_json(rej.item),
                    dag_run_id,
                )
                for key, (rej, raw_id) in latest.items()
            ],
        )
    return len(latest)


def _safe_text(value: str | None) -> str | None:
    """Quarantine must never fail on the values it exists to hold: NUL removed, surrogates replaced."""
    if value is None:
        return None
    return clean_text("text", value.replace("\x00", "\\0"))


def _safe_key(value: str) -> str:
    text = _safe_text(value) or ""
    if len(text.encode("utf-8")) > MAX_KEY_BYTES:
        return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
    return text


def _safe_json(item: Any) -> str:
    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            return _safe_text(value)
        if isinstance(value, dict):
            return {scrub(str(k)): scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [scrub(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            return str(value)
        return value

    return json.dumps(scrub(item), ensure_ascii=False, default=str, allow_nan=False)


def resolve_quarantined(conn: psycopg.Connection[Any], source: str, external_ids: Sequence[str]) -> int:
    """Mark open quarantine rows of items that have now loaded into core as resolved."""
    if not external_ids:
        return 0
    with conn.transaction():
        cur = conn.execute(
            """
            UPDATE quality.quarantine SET resolved_at = now(), resolution = 'loaded_later'
            WHERE source = %s AND item_key = ANY(%s) AND resolved_at IS NULL
            """,
            (source, list(external_ids)),
        )
    return cur.rowcount
