"""Load parsed records into ``core`` and ``quality.quarantine``.

The path of a batch of documents (``upsert_documents``):

1. **Take** the records as they are: a :class:`~pulse.records.Document` or :class:`~pulse.records.Fact` that
   exists holds values PostgreSQL accepts (the record model, :mod:`pulse.records`, checked them when it was
   built). A record the model refused comes as its :class:`~pulse.records.Refusal` and is weighed like any
   copy of its item (step 2); when it wins, the item is refused with the model's reason. A row in a month that
   retention archived is refused with ``archived_period`` (the database's state, not a value). Refusals go
   back to the caller, who quarantines them: one bad row never fails a batch.
2. **Deduplicate** by ``(source, external_id)`` keeping the copy from the newest raw page
   (``ON CONFLICT DO UPDATE`` refuses a batch that holds a key twice).
   **One item, one row:** the key of ``core.documents`` holds ``created_at`` (the partition column), yet a
   source may re-deliver an item with another creation time (NewsAPI moves ``publishedAt``). The row keeps
   the creation time the warehouse saw *first* (the oldest raw page of the batch, or the row already
   stored); the re-delivery updates the row's other fields like any edit, and every other creation time a
   source reported is recorded in ``quality.created_at_changes`` (never dropped silently). Keeping the first
   time keeps the row in its partition and its enrichment rows attached.
3. Make sure the **monthly partitions** the batch needs exist (``ops.ensure_month_partitions``).
4. **Binary COPY** into a session temp table, then **one** ``INSERT ... SELECT ... ON CONFLICT DO UPDATE``
   that skips rows whose ``content_sha256`` is unchanged (an anti-join, so unchanged rows are neither rewritten
   nor locked) and rewrites only the changed ones. Steps 3-4 are one transaction per batch: a killed task
   leaves no partial batch.

Fact tables go the same way with text COPY (their volumes are small; their columns vary per table).
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from psycopg.adapt import Dumper
from psycopg.pq import Format

from pulse.records import (
    COLUMN_TYPES,
    CONTENT_FIELDS,
    FACT_TABLES,
    Document,
    Fact,
    Refusal,
    Rejected,
    document_digest,
    record_refusal,
    refusal_record,
)
from pulse.warehouse import pgtypes
from pulse.warehouse.partitions import PARTITIONED
from pulse.warehouse.pgtypes import ItemError, Reason

if TYPE_CHECKING:
    import psycopg

__all__ = ["COLUMN_TYPES", "FACT_TABLES", "RowRejected"]

DOC_COLUMNS = ("source", "external_id", *CONTENT_FIELDS, "content_sha256", "raw_response_id", "dag_run_id")
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

#: A row the load refuses: the same exception the record model raises, with its quarantine reason.
RowRejected = ItemError


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
    #: Documents whose source reported another creation time than the one their row keeps
    #: (``quality.created_at_changes``).
    time_changes: int = 0


def _batches(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# ------------------------------------------------------------------------------------------------
# rows: the records' checked values, nothing checked again
# ------------------------------------------------------------------------------------------------


def document_key(doc: Document | Refusal) -> tuple[str, str, datetime]:
    """``(source, external_id, created_at)`` of a document; a refused one whose key is bad raises its
    :class:`ItemError` (such a copy is refused on its own, before deduplication)."""
    if isinstance(doc, Refusal):
        if doc.key is None:
            raise RowRejected(doc.reason, doc.detail)
        return doc.key
    return doc.key()


def document_row(
    doc: Document | Refusal,
    raw_id: int,
    dag_run_id: str,
    digest: str | None = None,
    created_at: datetime | None = None,
) -> tuple[Any, ...]:
    """The row of ``doc`` in ``DOC_COLUMNS`` order (jsonb as text); a refused document raises its
    :class:`ItemError`. ``created_at`` overrides the document's (its first-seen time, a checked key's)."""
    if isinstance(doc, Refusal):
        raise RowRejected(doc.reason, doc.detail)
    columns = doc.columns()
    if created_at is not None:
        columns = (*columns[:4], created_at, *columns[5:])
    return (*columns, digest or document_digest(doc, created_at), raw_id, dag_run_id)


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
    docs: Sequence[tuple[Document | Refusal, int]],
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
    conn: psycopg.Connection[Any],
    docs: Sequence[tuple[Document | Refusal, int]],
    dag_run_id: str,
    batch_size: int,
) -> LoadResult:
    result = LoadResult()
    cold = archived_months(conn, "core.documents")
    # Pass 1: keys only. The newest copy (highest raw page id) of each item gives its content; the oldest
    # copy its creation time (the first one seen). Copies that report other creation times are kept aside
    # to be recorded.
    latest: dict[tuple[str, str], _Entry] = {}
    for position, (doc, raw_id) in enumerate(docs):  # Documents, and Refusals of documents
        try:
            source, external_id, created_at = document_key(doc)
            if cold and _month(created_at) in cold:
                raise RowRejected(Reason.ARCHIVED_PERIOD, f"{created_at:%Y-%m} of core.documents is archived")
        except RowRejected as exc:
            result.rejected.append(RowRejection(position, exc.reason, exc.detail))
            continue
        seen = latest.get((source, external_id))
        if seen is None:
            latest[(source, external_id)] = _Entry(position, raw_id, created_at, raw_id)
        else:
            seen.add(position, raw_id, created_at)
    if not latest:
        return result
    partitions = PartitionCache(conn)
    _ensure_stages(conn)
    # Input order: memory and index locality.
    winners = [(key, e.position, e.raw_id, e.created_at, e.reported) for key, e in latest.items()]
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


class _Entry:
    """Pass 1's view of one item: the copy that wins (newest page), the creation time it keeps (that of the
    oldest page) and the other creation times its copies reported (``{time: newest page reporting it}``)."""

    __slots__ = ("created_at", "first_raw", "position", "raw_id", "reported")

    def __init__(self, position: int, raw_id: int, created_at: datetime, first_raw: int) -> None:
        self.position = position
        self.raw_id = raw_id
        self.created_at = created_at
        self.first_raw = first_raw
        self.reported: dict[datetime, int] | None = None

    def add(self, position: int, raw_id: int, created_at: datetime) -> None:
        if self.raw_id <= raw_id:
            self.position, self.raw_id = position, raw_id
        if created_at == self.created_at:
            if raw_id < self.first_raw:
                self.first_raw = raw_id
            return
        reported = self.reported if self.reported is not None else {}
        if (
            raw_id < self.first_raw
        ):  # an older page: its time is the first seen, the kept one becomes reported
            reported[self.created_at] = max(reported.get(self.created_at, 0), self.first_raw)
            reported.pop(created_at, None)
            self.created_at, self.first_raw = created_at, raw_id
        else:
            reported[created_at] = max(reported.get(created_at, 0), raw_id)
        self.reported = reported


#: Keys are probed in chunks of this size, so that hashing one chunk overlaps probing the next.
PROBE_CHUNK = 25_000


def _digests(
    docs: Sequence[tuple[Document | Refusal, int]], batch: Sequence[Any], start: int, size: int
) -> list[str]:
    return [
        _digest_at(docs[position][0], created_at)
        for _, position, _, created_at, _ in batch[start : start + size]
    ]


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
    docs: Sequence[tuple[Document | Refusal, int]],
    batch: Sequence[Any],
    digests: _Digests,
    dag_run_id: str,
    partitions: PartitionCache,
    result: LoadResult,
) -> None:
    """One batch, one transaction (see :func:`upsert_documents`)."""
    refused: set[int] = set()
    #: Rows whose item is already stored under another creation time: that time, and the row's hash.
    kept: dict[int, tuple[datetime, str]] = {}

    def build(i: int) -> tuple[Any, ...] | None:
        _, position, raw_id, created_at, _ = batch[i]
        doc = docs[position][0]
        try:
            if i in kept:
                return document_row(doc, raw_id, dag_run_id, _digest_at(doc, kept[i][0]), kept[i][0])
            return document_row(doc, raw_id, dag_run_id, digests.all()[i], created_at)
        except RowRejected as exc:
            result.rejected.append(RowRejection(position, exc.reason, exc.detail))
            refused.add(i)
            return None

    with conn.transaction(), conn.cursor() as cur:
        sources = sorted({key[0] for key, *_ in batch})
        _lock_sources(conn, sources)
        times = [entry[3] for entry in batch]
        occupied = cur.execute(
            "SELECT EXISTS (SELECT 1 FROM core.documents WHERE source = ANY(%s) AND created_at BETWEEN %s AND %s)",
            (sources, min(times), max(times)),
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
                (sources, min(times), max(times), 2 * len(batch) + 1),
            ).fetchall()
            if len(in_range) > 2 * len(batch):
                in_range = None
        # The stage has no statistics; keep the planner from sort-merging or hashing the whole table.
        cur.execute("SET LOCAL enable_mergejoin = off")
        cur.execute("SET LOCAL enable_hashjoin = off")
        if in_range is not None:
            held = {(s, e, c): h for s, e, c, h in in_range}
            fresh_all = digests.all()
            for i, ((source, external_id), _, _, created_at, _) in enumerate(batch):
                old = held.get((source, external_id, created_at))
                if old is not None:
                    stored[i] = old
                    if fresh_all[i] != old:
                        changed_keys.append(i)
        elif occupied and occupied[0]:
            # Which keys exist, with their stored hash: one primary-key probe per key, pruned to the key's
            # partition.
            for start in range(0, len(batch), PROBE_CHUNK):
                found = _probe(cur, batch, range(start, min(start + PROBE_CHUNK, len(batch))), _PROBE_EXACT)
                # Unchanged rows need nothing more; the next chunk's hashes are computed meanwhile.
                fresh = digests.chunk(start)
                stored.update((i, old) for i, _, old in found)
                changed_keys += [i for i, _, old in found if fresh[i - start] != old]
        # Keys not stored as they are may be stored under another creation time (a source moved it): the row
        # keeps its time. Asked only when the table holds anything of these sources.
        new = [i for i in range(len(batch)) if i not in stored]
        if new and (
            (occupied and occupied[0])
            or cur.execute(
                "SELECT EXISTS (SELECT 1 FROM core.documents WHERE source = ANY(%s))", (sources,)
            ).fetchone()[0]
        ):
            for start in range(0, len(new), PROBE_CHUNK):
                for i, created_at, old in _probe(cur, batch, new[start : start + PROBE_CHUNK], _PROBE_MOVED):
                    kept[i] = (created_at, old)
                    stored[i] = old
                    position = batch[i][1]
                    if _digest_at(docs[position][0], created_at) != old:
                        changed_keys.append(i)
        times = [kept[i][0] if i in kept else entry[3] for i, entry in enumerate(batch)]
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
        result.time_changes += _record_time_changes(cur, batch, kept, refused, times, dag_run_id)
        result.loaded += len(batch) - len(refused)


def _digest_at(doc: Document | Refusal, created_at: datetime | None) -> str:
    if isinstance(doc, Refusal):
        return doc.digest(created_at)
    return document_digest(doc, created_at)


_PROBE_EXACT = """
    SELECT k.i, k.created_at, e.content_sha256 FROM pg_temp.pulse_stage_keys k
      JOIN core.documents e
        ON e.source = k.source AND e.external_id = k.external_id AND e.created_at = k.created_at
"""
#: The row of an item stored under another creation time (at most one: the loader keeps one row per item;
#: migration 0011 removed older duplicates). Probes every partition's primary key by its (source, external_id)
#: prefix.
_PROBE_MOVED = """
    SELECT k.i, e.created_at, e.content_sha256 FROM pg_temp.pulse_stage_keys k
      JOIN core.documents e ON e.source = k.source AND e.external_id = k.external_id
"""


def _probe(
    cur: Any, batch: Sequence[Any], rows: Sequence[int], query: str
) -> list[tuple[int, datetime, str]]:
    """Put the keys of ``rows`` of ``batch`` (alone) into the key stage and run ``query`` on them."""
    cur.execute("TRUNCATE pg_temp.pulse_stage_keys")
    with cur.copy("COPY pg_temp.pulse_stage_keys FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "text", "text", "timestamptz"])
        for i in rows:
            (source, external_id), _, _, created_at, _ = batch[i]
            copy.write_row((i, source, external_id, created_at))
    return cur.execute(query).fetchall()


def _record_time_changes(
    cur: Any,
    batch: Sequence[Any],
    kept: dict[int, tuple[datetime, str]],
    refused: set[int],
    times: Sequence[datetime],
    dag_run_id: str,
) -> int:
    """Record in ``quality.created_at_changes`` every creation time a source reported for an item other than
    the one its row keeps; returns how many items had one."""
    rows = []
    items = 0
    for i, ((source, external_id), _, raw_id, created_at, reported) in enumerate(batch):
        if i in refused or (i not in kept and not reported):
            continue
        keep = times[i]
        others = dict(reported or {})
        if i in kept:
            others[created_at] = max(others.get(created_at, 0), raw_id)
        others.pop(keep, None)
        if others:
            items += 1
            rows += [(source, external_id, keep, t, page, dag_run_id) for t, page in others.items()]
    if rows:
        cur.executemany(
            """
            INSERT INTO quality.created_at_changes AS c
                (source, external_id, kept_created_at, reported_created_at, raw_response_id, dag_run_id)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (source, external_id, reported_created_at) DO UPDATE SET
                kept_created_at = EXCLUDED.kept_created_at, raw_response_id = EXCLUDED.raw_response_id,
                dag_run_id = EXCLUDED.dag_run_id, last_reported_at = now()
             WHERE (c.kept_created_at, c.raw_response_id)
                   IS DISTINCT FROM (EXCLUDED.kept_created_at, EXCLUDED.raw_response_id)
            """,
            rows,
        )
    return items


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


def fact_row(fact: Fact | Refusal, raw_id: int, dag_run_id: str) -> tuple[Any, ...]:
    """The row of ``fact`` (key columns, value columns, hash, lineage); a refused fact raises its
    :class:`ItemError`."""
    if isinstance(fact, Refusal):
        raise RowRejected(fact.reason, fact.detail)
    return (*fact.columns(), fact.content_hash(), raw_id, dag_run_id)


def upsert_facts(
    conn: psycopg.Connection[Any],
    facts: Sequence[tuple[Fact | Refusal, int]],
    dag_run_id: str,
    batch_size: int = 20_000,
) -> LoadResult:
    """Upsert ``(fact, raw_response_id)`` pairs into their fact tables, the same way as documents: stage,
    keep the latest copy of each key, rewrite only rows whose content changed. Refused rows (a Refusal in
    ``facts``, a row of an archived month) come back in ``rejected`` with their position in ``facts``."""
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
    (the load uses the item's index in its page, a replay the quarantine row id).

    ``docs`` and ``facts`` hold records (storable), ``rejected`` the items the parser rejected, ``refused``
    the records the model refused (:class:`~pulse.records.Refusal`): those go to the loader with the records,
    in the order they came, so that an item's copies are weighed alike whether or not they were refused.
    """

    docs: list[tuple[Document, int]] = field(default_factory=list)
    doc_refs: list[Any] = field(default_factory=list)
    facts: list[tuple[Fact, int]] = field(default_factory=list)
    fact_refs: list[Any] = field(default_factory=list)
    rejected: list[tuple[Rejected, int]] = field(default_factory=list)
    rejected_refs: list[Any] = field(default_factory=list)
    refused: list[tuple[Refusal, int]] = field(default_factory=list)
    refused_refs: list[Any] = field(default_factory=list)
    #: Documents and refused documents in input order (what ``upsert_documents`` is given), and their refs.
    _doc_rows: list[tuple[Document | Refusal, int]] = field(default_factory=list, repr=False)
    _doc_row_refs: list[Any] = field(default_factory=list, repr=False)
    _fact_rows: list[tuple[Fact | Refusal, int]] = field(default_factory=list, repr=False)
    _fact_row_refs: list[Any] = field(default_factory=list, repr=False)
    #: How often each content key (items without an id) was seen per raw page.
    _content_keys: dict[tuple[int, str], int] = field(default_factory=dict, repr=False)

    def add(self, out: Document | Fact | Rejected, raw_id: int, ref: Any) -> None:
        if isinstance(out, Document):
            self.docs.append((out, raw_id))
            self.doc_refs.append(ref)
            self._doc_rows.append((out, raw_id))
            self._doc_row_refs.append(ref)
        elif isinstance(out, Fact):
            self.facts.append((out, raw_id))
            self.fact_refs.append(ref)
            self._fact_rows.append((out, raw_id))
            self._fact_row_refs.append(ref)
        elif out.refusal is not None:
            self.refused.append((out.refusal, raw_id))
            self.refused_refs.append(ref)
            if out.refusal.table == "core.documents":
                self._doc_rows.append((out.refusal, raw_id))
                self._doc_row_refs.append(ref)
            else:
                self._fact_rows.append((out.refusal, raw_id))
                self._fact_row_refs.append(ref)
        else:
            if not out.external_id and out.item_key.startswith("sha256:"):
                # Items without an id are keyed by their content; two equal ones in one page are two items
                # (two quarantine rows), the same one on two pages (a repeat across pages) is one.
                seen = self._content_keys.get((raw_id, out.item_key), 0) + 1
                self._content_keys[(raw_id, out.item_key)] = seen
                if seen > 1:
                    out = replace(out, item_key=f"{out.item_key}#{seen}")
            self.rejected.append((out, raw_id))
            self.rejected_refs.append(ref)

    def upsert(
        self, conn: psycopg.Connection[Any], dag_run_id: str
    ) -> tuple[LoadResult, list[tuple[Any, Any, int]]]:
        """Upsert the documents and facts; return the combined result and, for every row refused at the load
        (a refused record that won over its item's other copies, a row of an archived month),
        ``(ref, quarantine record, raw_response_id)``."""
        result = upsert_documents(conn, self._doc_rows, dag_run_id)
        fact_result = upsert_facts(conn, self._fact_rows, dag_run_id)
        refused = []
        for rows, refs, refusals in (
            (self._doc_rows, self._doc_row_refs, result.rejected),
            (self._fact_rows, self._fact_row_refs, fact_result.rejected),
        ):
            for refusal in refusals:
                record, raw_id = rows[refusal.position]
                ref = refs[refusal.position]
                refused.append((ref, load_refusal(ref, refusal, record), raw_id))
        result.loaded += fact_result.loaded
        result.changed += fact_result.changed
        return result, refused


# ------------------------------------------------------------------------------------------------
# quarantine
# ------------------------------------------------------------------------------------------------


def load_refusal(item_index: int, refusal: RowRejection, record: Document | Fact | Refusal) -> Rejected:
    """The quarantine record of a row the load refused (``record``: its Document, Fact or Refusal), keyed by
    the document's id or the fact's table key (:func:`pulse.records.refusal_record`)."""
    if not isinstance(record, Refusal):
        record = record_refusal(record, refusal.reason, refusal.detail)
    return refusal_record(item_index, record, refusal.reason, refusal.detail)


def quarantine(
    conn: psycopg.Connection[Any],
    source: str,
    rejected: Sequence[tuple[Rejected, int]],
    dag_run_id: str,
) -> int:
    """Record ``(rejected item, raw_response_id)`` pairs, one row per item however often it is fetched.

    Whatever an item holds, its row is written: key, id, detail and item are escaped where PostgreSQL cannot
    hold a value (:func:`pulse.warehouse.pgtypes.storable_key` and friends), never dropped.
    Returns the number of distinct items quarantined by this call.
    """
    if not rejected:
        return 0
    latest: dict[str, tuple[Rejected, int]] = {}
    for rej, raw_id in rejected:
        latest[pgtypes.storable_key(rej.item_key)] = (rej, raw_id)
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
                    key,
                    pgtypes.storable_key(rej.external_id) if isinstance(rej.external_id, str) else None,
                    raw_id,
                    rej.item_index,
                    str(rej.reason),
                    pgtypes.storable_text(rej.detail),
                    pgtypes.storable_json(rej.item),
                    dag_run_id,
                )
                for key, (rej, raw_id) in latest.items()
            ],
        )
    return len(latest)


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
            (source, [pgtypes.storable_key(i) for i in external_ids if isinstance(i, str) and i]),
        )
    return cur.rowcount
