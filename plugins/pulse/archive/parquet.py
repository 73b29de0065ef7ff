"""Parquet archives of warehouse relations in object storage: write, verify, restore (issue 7).

Retention archives a monthly partition (or one month of ``raw.api_responses``) to one Parquet file, reads it
back and verifies it, and only then drops the partition; restore loads a month back. This module is that
engine; the DAGs, the manifest table and the drop are built on top of it.

* :func:`write_archive` streams the rows with ``COPY (SELECT ... ORDER BY <primary key>) TO STDOUT (FORMAT
  csv)`` inside one ``REPEATABLE READ READ ONLY`` transaction (rows and count are one snapshot) into
  pyarrow's streaming CSV reader with explicit column types, re-cuts the batches into row groups of exactly
  ``batch_rows`` rows and writes them with ``ParquetWriter`` (zstd, page checksums) to the destination
  :class:`~airflow.sdk.ObjectStoragePath`. Memory stays bounded by one row group. The SHA-256 and size are
  computed over the bytes as they are written (a hashing wrapper around the object's file), not re-read.
* :func:`verify_archive` downloads the object from storage once into a private temporary file (never a
  cache), checks size and SHA-256, decodes every row group, checks row counts and the schema fingerprint,
  COPYs the rows into a TEMP table and compares them with the relation both ways with ``EXCEPT ALL``.
  It never raises for a bad archive: it returns ``ok=False`` with problems that say what is wrong.
* :func:`restore_archive` downloads, checks the expected SHA-256 and row count before writing anything, maps
  columns by name and type, and COPYs the rows (CSV written by pyarrow) into the target in the caller's
  transaction. The target may have gained columns since the archive was written (a migration's ``ALTER TABLE
  ... ADD COLUMN``): see "Schema changes" below.

Schema changes between archiving and restoring (``restore_archive`` only; ``verify_archive`` runs right after
writing and compares with the table exactly as archived):

* a column the table gained since the archive is accepted when it has a default (it gets the default, as
  ``COPY`` gives any column it is not given, and as ``ADD COLUMN ... DEFAULT`` gave the rows present then) or
  is nullable (it gets NULL: "not known", e.g. the digests of migration 0012); the restore logs
  ``restored with N column(s) added since the archive: ...``;
* refused, before a row is written, with a ``ValueError`` naming every such column: a gained column that is
  NOT NULL without a default, an archived column the table no longer has (dropped or renamed), and a column
  whose PostgreSQL type differs in any way (no type change is treated as compatible: restore into a table of
  the archived type and convert with SQL);
* the integrity checks are not relaxed: object size, SHA-256, row count and the fingerprint the file carries
  (its own columns, against the manifest's record) must all still match exactly.

Why CSV COPY and not a server-side cursor: PostgreSQL formats and pyarrow parses CSV in C/C++, so no Python
object is built per value (measured in ``bench/archive.py``). The file is deterministic: the same rows
(in primary key order) and the same ``batch_rows`` give the same bytes, so archive -> restore -> archive
gives the same SHA-256 (with the same pyarrow version, whose name Parquet stores in ``created_by``).

Types (the Parquet column of each PostgreSQL type; the file keeps the PostgreSQL types in its metadata):

=================================  =============================  ============================================
PostgreSQL                         Parquet / Arrow                why
=================================  =============================  ============================================
smallint, integer, bigint          int16, int32, int64            exact
real, double precision             float32, float64               PostgreSQL prints the shortest exact text
                                                                  (``extra_float_digits = 1``); NaN/inf kept
boolean, date                      bool, date32                   exact
timestamp with time zone           timestamp[us, UTC]             PostgreSQL's precision, printed in UTC
timestamp without time zone        timestamp[us]                  exact
bytea                              binary                         exact bytes
text[], character varying[]        list<string>                   NULL list, empty list and NULL items kept;
                                                                  one dimension, lower bound 1 only
numeric                            string (PostgreSQL's text)     exact value AND scale (``1.50`` stays
                                                                  ``1.50``, ``NaN`` allowed); an unconstrained
                                                                  numeric has no fixed scale for decimal128
jsonb, json, text, varchar, other  string (PostgreSQL's text)     as PostgreSQL prints it; COPY parses it back
=================================  =============================  ============================================
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import re
import secrets
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pulse.storage import LOCAL_PROTOCOLS, HashingSink

if TYPE_CHECKING:
    import psycopg
    import pyarrow as pa
    import pyarrow.parquet as pq
    from airflow.sdk import ObjectStoragePath
    from psycopg import sql

log = logging.getLogger(__name__)

#: Written into every archive's Parquet key/value metadata.
META_TABLE = "pulse.table"
META_COLUMNS = "pulse.columns"
META_FINGERPRINT = "pulse.schema_fingerprint"
META_FORMAT = "pulse.format_version"
FORMAT_VERSION = "1"
COMPRESSION = "zstd"

_CHUNK = 8 * 1024 * 1024  # download block
_CSV_BLOCK = 1024 * 1024  # CSV parsing block: smaller blocks pipeline better with the COPY stream
#: Types without an equality operator: compared through their text form.
_NO_EQUALITY = {"json", "xml", "point", "line", "lseg", "box", "path", "polygon", "circle"}
#: Settings that make COPY's text output canonical (set for the archive's transaction only).
_OUTPUT_SETTINGS = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "extra_float_digits": "1",
    "bytea_output": "hex",
}


class ArchiveCorrupt(Exception):
    """The archive object is missing, truncated, altered or not a Pulse Parquet archive."""


@dataclass(frozen=True)
class ArchiveFile:
    """One archive object and what the manifest row records about it."""

    path: str  # str(ObjectStoragePath), e.g. file:///data/x.parquet or s3://conn_id@bucket/key
    table: str  # the source relation, schema.name
    rows: int
    bytes: int
    sha256: str  # hex digest of the object's bytes as written
    schema_fingerprint: str  # sha256 of the canonical column list (name, PostgreSQL type, nullability)
    columns: list[tuple[str, str]] = field(default_factory=list)  # (name, PostgreSQL type) in order

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (for XCom or a manifest row)."""
        d = asdict(self)
        d["columns"] = [list(c) for c in self.columns]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArchiveFile:
        """The inverse of :meth:`as_dict`."""
        return cls(**{**d, "columns": [(str(n), str(t)) for n, t in d.get("columns", [])]})


@dataclass(frozen=True)
class Verification:
    """What :func:`verify_archive` found; ``ok`` only when ``problems`` is empty."""

    ok: bool
    problems: list[str]
    rows_in_file: int | None
    rows_in_db: int | None
    seconds: float


@dataclass(frozen=True)
class _Column:
    name: str
    pg_type: str
    nullable: bool
    generated: bool = False
    default: str | None = None  # the default expression (``identity`` for identity columns); None: none

    @property
    def kind(self) -> str:
        """How the column travels: ``direct`` (CSV <-> Arrow type), ``bytea`` or ``text_array``."""
        if self.pg_type == "bytea":
            return "bytea"
        if _TEXT_ARRAY.fullmatch(self.pg_type):
            return "text_array"
        return "direct"


_TEXT_ARRAY = re.compile(r"(text|character varying(\(\d+\))?)\[\]")
_TSTZ = re.compile(r"timestamp(\(\d\))? with time zone")
_TS = re.compile(r"timestamp(\(\d\))? without time zone")


# ------------------------------------------------------------------------------------------------
# schema: columns, Arrow types, fingerprint
# ------------------------------------------------------------------------------------------------


def arrow_type(pg_type: str) -> pa.DataType:
    """The Arrow (and so Parquet) type a PostgreSQL column is archived as (see the module's table)."""
    import pyarrow as pa

    simple = {
        "smallint": pa.int16(),
        "integer": pa.int32(),
        "bigint": pa.int64(),
        "real": pa.float32(),
        "double precision": pa.float64(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "bytea": pa.binary(),
    }
    if pg_type in simple:
        return simple[pg_type]
    if _TSTZ.fullmatch(pg_type):
        return pa.timestamp("us", tz="UTC")
    if _TS.fullmatch(pg_type):
        return pa.timestamp("us")
    if _TEXT_ARRAY.fullmatch(pg_type):
        return pa.list_(pa.string())
    return pa.string()  # text, varchar, numeric, jsonb, json and every other type: PostgreSQL's text form


def schema_fingerprint(columns: Sequence[tuple[str, str, bool]]) -> str:
    """SHA-256 of the canonical column list: ``[[name, PostgreSQL type, nullable], ...]`` in order."""
    canonical = json.dumps([[n, t, bool(null)] for n, t, null in columns], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _fingerprint(cols: Sequence[_Column]) -> str:
    return schema_fingerprint([(c.name, c.pg_type, c.nullable) for c in cols])


def _arrow_schema(cols: Sequence[_Column], metadata: dict[str, str] | None = None) -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [pa.field(c.name, arrow_type(c.pg_type), nullable=c.nullable) for c in cols], metadata=metadata
    )


@dataclass(frozen=True)
class _Relation:
    oid: int
    schema: str
    name: str

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ident(self) -> sql.Identifier:
        from psycopg import sql

        return sql.Identifier(self.schema, self.name)


def _resolve(conn: psycopg.Connection[Any], relation: str) -> _Relation:
    row = conn.execute(
        "SELECT c.oid, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.oid = %s::regclass",
        (relation,),
    ).fetchone()
    assert row is not None
    return _Relation(int(row[0]), str(row[1]), str(row[2]))


def _columns(conn: psycopg.Connection[Any], rel: _Relation) -> list[_Column]:
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, a.attgenerated <> '',"
        " CASE WHEN a.attidentity <> '' THEN 'identity' ELSE pg_get_expr(d.adbin, d.adrelid) END"
        " FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (rel.oid,),
    ).fetchall()
    return [
        _Column(str(n), str(t), bool(null), bool(gen), None if dflt is None else str(dflt))
        for n, t, null, gen, dflt in rows
    ]


def relation_columns(conn: psycopg.Connection[Any], relation: str) -> list[tuple[str, str, bool]]:
    """``(name, PostgreSQL type, nullable)`` of ``relation``'s columns in order (what a fingerprint covers)."""
    return [(c.name, c.pg_type, c.nullable) for c in _columns(conn, _resolve(conn, relation))]


def _primary_key(conn: psycopg.Connection[Any], rel: _Relation) -> list[str]:
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord)"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
        " WHERE i.indrelid = %s AND i.indisprimary ORDER BY k.ord",
        (rel.oid,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def _comparable(col: _Column) -> sql.Composable:
    """The column as an expression ``EXCEPT``/``ORDER BY`` can use (text form for types without equality)."""
    from psycopg import sql

    if col.pg_type in _NO_EQUALITY:
        return sql.SQL("{}::text").format(sql.Identifier(col.name))
    return sql.Identifier(col.name)


def _where(where: str | None) -> sql.Composable:
    from psycopg import sql

    return sql.SQL(" WHERE ") + sql.SQL(where) if where else sql.SQL("")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# transactions and storage
# ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _snapshot(conn: psycopg.Connection[Any], *, read_only: bool, rollback: bool) -> Iterator[None]:
    """A REPEATABLE READ transaction of our own, with the canonical output settings."""
    import psycopg
    from psycopg.pq import TransactionStatus

    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise ValueError(
            "the archive functions open their own REPEATABLE READ transaction: "
            "pass a connection that is not inside a transaction (commit or roll back first)"
        )
    with conn.transaction() as tx:
        mode = " READ ONLY" if read_only else ""
        conn.execute(f"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ{mode}")
        conn.execute(
            "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in _OUTPUT_SETTINGS),
            [v for kv in _OUTPUT_SETTINGS.items() for v in kv],
        )
        yield
        if rollback:
            raise psycopg.Rollback(tx)


def _forget_cached(path: ObjectStoragePath) -> None:
    """Drop fsspec's cached listing of ``path`` so size and existence come from storage."""
    with contextlib.suppress(Exception):
        path.fs.invalidate_cache(path.path)


def _download(path: ObjectStoragePath, into: Path) -> tuple[str, int]:
    """Copy the object to a private local file, once; return its SHA-256 and size as read from storage."""
    _forget_cached(path)
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as src, into.open("wb") as out:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class _CopyReader(io.RawIOBase):
    """A readable stream over the data of a ``COPY ... TO STDOUT`` (one message per row)."""

    def __init__(self, copy: Any) -> None:
        self._copy = copy
        self._buf = bytearray()
        self._eof = False

    def readable(self) -> bool:
        return True

    def empty(self) -> bool:
        """True when the COPY sends no row at all (pyarrow refuses an empty CSV stream)."""
        if not self._buf and not self._eof:
            data = self._copy.read()
            if data:
                self._buf += data
            else:
                self._eof = True
        return not self._buf

    def readinto(self, b: Any) -> int:
        want = len(b)
        while len(self._buf) < want and not self._eof:
            data = self._copy.read()
            if not data:
                self._eof = True
                break
            self._buf += data
        n = min(want, len(self._buf))
        b[:n] = self._buf[:n]
        del self._buf[:n]
        return n


# ------------------------------------------------------------------------------------------------
# CSV <-> Arrow conversions
# ------------------------------------------------------------------------------------------------


def _select_expr(col: _Column) -> sql.Composable:
    from psycopg import sql

    ident = sql.Identifier(col.name)
    if col.kind == "text_array":
        return sql.SQL("array_to_json({})::text").format(ident)
    if col.kind == "bytea":
        return sql.SQL("encode({}, 'hex')").format(ident)
    return ident


def _json_lists(name: str, arr: pa.Array) -> pa.Array:
    import orjson
    import pyarrow as pa

    out: list[list[str | None] | None] = []
    for text in arr.to_pylist():
        if text is None:
            out.append(None)
            continue
        items = orjson.loads(text)
        if any(isinstance(x, list | dict) for x in items):
            raise ValueError(f"column {name}: multi-dimensional arrays cannot be archived")
        out.append(items)
    return pa.array(out, type=pa.list_(pa.string()))


def _hex_binary(arr: pa.Array) -> pa.Array:
    import pyarrow as pa

    return pa.array([None if v is None else bytes.fromhex(v) for v in arr.to_pylist()], type=pa.binary())


def _from_csv(batch: pa.RecordBatch, cols: Sequence[_Column], schema: pa.Schema) -> pa.RecordBatch:
    import pyarrow as pa

    arrays = []
    for i, col in enumerate(cols):
        arr = batch.column(i)
        if col.kind == "text_array":
            arr = _json_lists(col.name, arr)
        elif col.kind == "bytea":
            arr = _hex_binary(arr)
        arrays.append(arr)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _pg_array_literal(items: list[str | None]) -> str:
    parts = ["NULL" if x is None else '"' + x.replace("\\", "\\\\").replace('"', '\\"') + '"' for x in items]
    return "{" + ",".join(parts) + "}"


def _to_csv(batch: pa.RecordBatch, cols: Sequence[_Column]) -> pa.RecordBatch:
    """The batch with list and binary columns turned into PostgreSQL's text input forms."""
    import pyarrow as pa

    if all(c.kind == "direct" for c in cols):
        return batch
    arrays = []
    for i, col in enumerate(cols):
        arr = batch.column(i)
        if col.kind == "text_array":
            arr = pa.array(
                [None if v is None else _pg_array_literal(v) for v in arr.to_pylist()], type=pa.string()
            )
        elif col.kind == "bytea":
            arr = pa.array(
                [None if v is None else "\\x" + v.hex() for v in arr.to_pylist()], type=pa.string()
            )
        arrays.append(arr)
    return pa.RecordBatch.from_arrays(arrays, names=[c.name for c in cols])


def _name_column(message: str, cols: Sequence[_Column]) -> str:
    """pyarrow names CSV columns by position; add the name (e.g. a timestamp 'infinity' Arrow cannot hold)."""
    found = re.search(r"CSV column #(\d+)", message)
    if found and int(found.group(1)) < len(cols):
        col = cols[int(found.group(1))]
        return f"column {col.name} ({col.pg_type}): {message}"
    return message


class _DecodeError(Exception):
    """Reading the Parquet file failed part way (as opposed to a database error)."""


def _copy_in(
    conn: psycopg.Connection[Any],
    pf: pq.ParquetFile,
    cols: Sequence[_Column],
    target: sql.Composable,
    batch_rows: int,
) -> int:
    """COPY every row of ``pf`` into ``target``'s ``cols`` (one statement: all or nothing); return the count."""
    import pyarrow.csv as pacsv
    from psycopg import sql

    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, ENCODING 'UTF8')").format(
        target, sql.SQL(", ").join(sql.Identifier(c.name) for c in cols)
    )
    options = pacsv.WriteOptions(include_header=False, batch_size=4096)
    rows = 0
    with conn.cursor() as cur:
        with cur.copy(stmt) as copy:
            sink = _CopySink(copy)
            writer: pacsv.CSVWriter | None = None
            try:
                batches = pf.iter_batches(batch_size=batch_rows, columns=[c.name for c in cols])
                while True:
                    try:
                        batch = next(batches)
                    except StopIteration:
                        break
                    except Exception as exc:
                        raise _DecodeError(f"{type(exc).__name__}: {exc}") from exc
                    out = _to_csv(batch, cols)
                    if writer is None:
                        writer = pacsv.CSVWriter(sink, out.schema, write_options=options)
                    writer.write_batch(out)
                    rows += batch.num_rows
            finally:
                if writer is not None:
                    writer.close()
        return rows if cur.rowcount < 0 else int(cur.rowcount)


class _CopySink:
    """A write-only file whose bytes go to a ``COPY ... FROM STDIN``."""

    def __init__(self, copy: Any) -> None:
        self._copy = copy
        self.closed = False

    def write(self, data: bytes) -> int:
        self._copy.write(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True


# ------------------------------------------------------------------------------------------------
# Parquet file metadata
# ------------------------------------------------------------------------------------------------


def _open_parquet(local: Path) -> tuple[pq.ParquetFile, list[_Column], dict[str, str]]:
    """Open an archive and check it describes itself consistently; :class:`ArchiveCorrupt` otherwise."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(local, page_checksum_verification=True)
        raw = pf.metadata.metadata or {}
    except Exception as exc:
        raise ArchiveCorrupt(f"not a readable Parquet file: {type(exc).__name__}: {exc}") from exc
    meta = {k.decode(): v.decode() for k, v in raw.items() if k.decode().startswith("pulse.")}
    missing = [k for k in (META_TABLE, META_COLUMNS, META_FINGERPRINT) if k not in meta]
    if missing:
        raise ArchiveCorrupt(f"not a Pulse archive: metadata {', '.join(missing)} missing")
    try:
        cols = [_Column(str(n), str(t), bool(null)) for n, t, null in json.loads(meta[META_COLUMNS])]
    except (ValueError, TypeError) as exc:
        raise ArchiveCorrupt(f"metadata {META_COLUMNS} unreadable: {exc}") from exc
    if _fingerprint(cols) != meta[META_FINGERPRINT]:
        raise ArchiveCorrupt(f"metadata {META_FINGERPRINT} does not match {META_COLUMNS}")
    expected = _arrow_schema(cols)
    actual = pf.schema_arrow
    for want in expected:
        idx = actual.get_field_index(want.name)
        if idx < 0:
            raise ArchiveCorrupt(f"column {want.name} missing from the Parquet schema")
        if actual.field(idx).type != want.type:
            raise ArchiveCorrupt(
                f"column {want.name}: Parquet type {actual.field(idx).type}, expected {want.type}"
            )
    return pf, cols, meta


# ------------------------------------------------------------------------------------------------
# the API
# ------------------------------------------------------------------------------------------------


def write_archive(
    conn: psycopg.Connection[Any],
    relation: str,
    dest: ObjectStoragePath,
    *,
    order_by: Sequence[str] | None = None,
    batch_rows: int = 100_000,
    where: str | None = None,
    params: Sequence[Any] = (),
) -> ArchiveFile:
    """Write every row of ``relation`` (optionally only those matching ``where``) to one Parquet file at ``dest``.

    ``where`` is trusted SQL written by the pipeline (``"fetched_at >= %s AND fetched_at < %s"``), with
    ``params`` bound by psycopg. Rows come in ``order_by`` order (default: the primary key; all columns when
    there is none), so the file is deterministic. ``conn`` must not be inside a transaction: this opens a
    ``REPEATABLE READ READ ONLY`` one (and ends it). On failure the partial object is removed.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from psycopg import sql

    if batch_rows < 1:
        raise ValueError("batch_rows must be positive")
    with _snapshot(conn, read_only=True, rollback=False):
        rel = _resolve(conn, relation)
        cols = _columns(conn, rel)
        by_name = {c.name: c for c in cols}
        keys = list(order_by) if order_by else _primary_key(conn, rel)
        unknown = [k for k in keys if k not in by_name]
        if unknown:
            raise ValueError(f"order_by: {', '.join(unknown)} not a column of {rel.qualified}")
        order = [_comparable(by_name[k]) for k in keys] if keys else [_comparable(c) for c in cols]
        query = sql.SQL(
            "COPY (SELECT {} FROM {}{} ORDER BY {}) TO STDOUT (FORMAT csv, ENCODING 'UTF8')"
        ).format(
            sql.SQL(", ").join(_select_expr(c) for c in cols),
            rel.ident,
            _where(where),
            sql.SQL(", ").join(order),
        )
        fingerprint = _fingerprint(cols)
        metadata = {
            META_TABLE: rel.qualified,
            META_COLUMNS: json.dumps([[c.name, c.pg_type, c.nullable] for c in cols]),
            META_FINGERPRINT: fingerprint,
            META_FORMAT: FORMAT_VERSION,
        }
        schema = _arrow_schema(cols, metadata)
        csv_types = {c.name: (pa.string() if c.kind != "direct" else arrow_type(c.pg_type)) for c in cols}
        read_options = pacsv.ReadOptions(column_names=[c.name for c in cols], block_size=_CSV_BLOCK)
        parse_options = pacsv.ParseOptions(newlines_in_values=True)
        convert_options = pacsv.ConvertOptions(
            column_types=csv_types,
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        )
        if dest.protocol in LOCAL_PROTOCOLS:
            dest.parent.mkdir(parents=True, exist_ok=True)
        rows = 0
        raw = dest.open("wb")
        sink = HashingSink(raw)
        try:
            with conn.cursor() as cur, cur.copy(query, params or None) as copy:
                stream = _CopyReader(copy)
                reader: Iterator[pa.RecordBatch] = iter(())
                if not stream.empty():
                    reader = pacsv.open_csv(
                        stream,
                        read_options=read_options,
                        parse_options=parse_options,
                        convert_options=convert_options,
                    )
                with pq.ParquetWriter(
                    pa.PythonFile(sink, mode="w"),
                    schema,
                    compression=COMPRESSION,
                    write_page_checksum=True,
                ) as writer:
                    pending: list[pa.RecordBatch] = []
                    pending_rows = 0
                    for batch in reader:
                        pending.append(_from_csv(batch, cols, schema))
                        pending_rows += batch.num_rows
                        while pending_rows >= batch_rows:
                            # One row group of exactly batch_rows rows, in one contiguous chunk per column,
                            # so the bytes depend on the rows only (not on how the CSV was cut into blocks).
                            # The pending batches are released before the row group is encoded.
                            table = pa.Table.from_batches(pending, schema=schema)
                            group = table.slice(0, batch_rows).combine_chunks()
                            pending = table.slice(batch_rows).to_batches()
                            pending_rows -= batch_rows
                            del table
                            writer.write_table(group, row_group_size=batch_rows)
                            rows += group.num_rows
                            del group
                    if pending_rows or rows == 0:
                        group = pa.Table.from_batches(pending, schema=schema).combine_chunks()
                        writer.write_table(group, row_group_size=batch_rows)
                        rows += group.num_rows
            raw.close()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                getattr(raw, "discard", lambda: None)()
            with contextlib.suppress(Exception):
                raw.close()
            with contextlib.suppress(Exception):
                dest.unlink(missing_ok=True)
            if isinstance(exc, pa.ArrowInvalid):
                raise ValueError(f"{rel.qualified}: cannot archive: {_name_column(str(exc), cols)}") from exc
            raise
    return ArchiveFile(
        path=str(dest),
        table=rel.qualified,
        rows=rows,
        bytes=sink.size,
        sha256=sink.sha256,
        schema_fingerprint=fingerprint,
        columns=[(c.name, c.pg_type) for c in cols],
    )


def verify_archive(
    conn: psycopg.Connection[Any],
    archive: ArchiveFile,
    *,
    relation: str | None = None,
    where: str | None = None,
    params: Sequence[Any] = (),
    batch_rows: int = 100_000,
) -> Verification:
    """Read ``archive`` back from storage and check it against ``relation`` (default: the archived table).

    Checks: the object exists; its size and SHA-256 equal the record's; the Parquet decodes completely and
    describes itself consistently; rows in the file == ``archive.rows`` == ``count(*)`` of the relation (with
    ``where``/``params`` as archived); schema fingerprints agree; and the rows equal the relation's, compared
    both ways with ``EXCEPT ALL`` after a COPY into a TEMP table. ``conn`` must not be inside a transaction
    (a REPEATABLE READ one is opened and rolled back). Never raises for a bad archive: ``ok=False`` and the
    problems say what is wrong. Database connection failures do raise.
    """
    import psycopg
    from airflow.sdk import ObjectStoragePath
    from psycopg import sql

    started = time.perf_counter()
    problems: list[str] = []
    rows_in_file: int | None = None
    rows_in_db: int | None = None
    relation = relation or archive.table
    with tempfile.TemporaryDirectory(prefix="pulse-verify-") as tmp:
        local = Path(tmp) / "archive.parquet"
        pf: pq.ParquetFile | None = None
        file_cols: list[_Column] = []
        try:
            sha, size = _download(ObjectStoragePath(archive.path), local)
        except FileNotFoundError:
            problems.append(f"object missing: {archive.path}")
        except Exception as exc:
            problems.append(f"object unreadable: {archive.path}: {type(exc).__name__}: {exc}")
        else:
            if size < archive.bytes:
                problems.append(f"object truncated: {size:,} of {archive.bytes:,} bytes")
            elif size > archive.bytes:
                problems.append(f"object size differs: {size:,} bytes, expected {archive.bytes:,}")
            if sha != archive.sha256:
                problems.append(f"sha256 mismatch: expected {archive.sha256[:12]}.., got {sha[:12]}..")
            try:
                pf, file_cols, meta = _open_parquet(local)
            except ArchiveCorrupt as exc:
                problems.append(str(exc))
            else:
                rows_in_file = int(pf.metadata.num_rows)
                if rows_in_file != archive.rows:
                    problems.append(
                        f"rows in the file: {rows_in_file:,}, the archive record says {archive.rows:,}"
                    )
                if meta[META_FINGERPRINT] != archive.schema_fingerprint:
                    problems.append(
                        f"schema fingerprint in the file {meta[META_FINGERPRINT][:12]}.. differs from the "
                        f"record's {archive.schema_fingerprint[:12]}.."
                    )
        try:
            with _snapshot(conn, read_only=False, rollback=True):
                rel = _resolve(conn, relation)
                rel_cols = {c.name: c for c in _columns(conn, rel)}
                count = conn.execute(
                    sql.SQL("SELECT count(*) FROM {}{}").format(rel.ident, _where(where)), params or None
                ).fetchone()
                rows_in_db = int(count[0]) if count else 0
                if rows_in_db != archive.rows:
                    problems.append(
                        f"rows in the database: {rows_in_db:,}, the archive record says {archive.rows:,}"
                    )
                if _fingerprint(list(rel_cols.values())) != archive.schema_fingerprint:
                    problems.append(f"the columns of {rel.qualified} differ from the archive's")
                mismatched = [
                    c.name
                    for c in file_cols
                    if c.name not in rel_cols or rel_cols[c.name].pg_type != c.pg_type
                ]
                if mismatched:
                    problems.append(
                        f"archive columns not in {rel.qualified} as archived: {', '.join(mismatched)}"
                    )
                elif pf is not None:
                    problems.extend(_compare(conn, pf, file_cols, rel, where, params, batch_rows))
        except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as exc:
            problems.append(f"database check failed: {type(exc).__name__}: {exc}".strip())
    return Verification(
        ok=not problems,
        problems=problems,
        rows_in_file=rows_in_file,
        rows_in_db=rows_in_db,
        seconds=time.perf_counter() - started,
    )


def _compare(
    conn: psycopg.Connection[Any],
    pf: pq.ParquetFile,
    cols: Sequence[_Column],
    rel: _Relation,
    where: str | None,
    params: Sequence[Any],
    batch_rows: int,
) -> list[str]:
    """Load the file into a TEMP table and count the rows only on one side, both ways (EXCEPT ALL)."""
    from psycopg import sql

    temp = sql.Identifier(f"pulse_verify_{secrets.token_hex(6)}")
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {} AS SELECT {} FROM {} WITH NO DATA").format(
            temp, sql.SQL(", ").join(sql.Identifier(c.name) for c in cols), rel.ident
        )
    )
    try:
        with conn.transaction():  # a savepoint: a decode error leaves the snapshot usable
            _copy_in(conn, pf, cols, temp, batch_rows)
    except _DecodeError as exc:
        return [f"Parquet decode failed: {exc}"]
    # Two big sorts: more memory than the default 4 MB, and no JIT compilation (it costs more than it saves).
    conn.execute("SELECT set_config('work_mem', '256MB', true), set_config('jit', 'off', true)")
    listed = sql.SQL(", ").join(_comparable(c) for c in cols)
    in_db = sql.SQL("SELECT {} FROM {}{}").format(listed, rel.ident, _where(where))
    in_file = sql.SQL("SELECT {} FROM {}").format(listed, temp)
    counts = []
    for first, second, args in ((in_db, in_file, params), (in_file, in_db, params)):
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM ({} EXCEPT ALL {}) d").format(first, second), args or None
        ).fetchone()
        counts.append(int(row[0]) if row else 0)
    if counts[0] or counts[1]:
        return [
            f"content differs: {counts[0]:,} rows only in the database, {counts[1]:,} only in the archive"
        ]
    return []


def restore_archive(
    conn: psycopg.Connection[Any],
    archive_path: ObjectStoragePath,
    target: str,
    *,
    expected: ArchiveFile | None = None,
    batch_rows: int = 100_000,
    added: list[str] | None = None,
) -> int:
    """Load the rows of the archive at ``archive_path`` into ``target`` with COPY; return how many.

    Runs in the caller's transaction (one COPY statement: all rows or none). With ``expected``, size, SHA-256,
    row count and schema fingerprint (the file's against the record's) are checked before anything is
    written; a mismatch, a missing object or an unreadable file raises :class:`ArchiveCorrupt`. Columns map by
    name (any order). ``target`` may be a partitioned parent (the matching partition must exist).

    The target may have columns the archive predates (added by a migration since): each gets its default if
    it has one, else NULL; the restore logs ``restored with N column(s) added since the archive: ...`` and,
    when ``added`` is given, appends their names to it (for the caller's manifest). Raises ``ValueError``
    naming the columns, before writing a row, when such a column is NOT NULL without a default, when the
    archive has a column the target lacks, or when a column's type differs. Generated columns are never
    loaded: PostgreSQL computes them again.
    """
    with tempfile.TemporaryDirectory(prefix="pulse-restore-") as tmp:
        local = Path(tmp) / "archive.parquet"
        try:
            sha, size = _download(archive_path, local)
        except FileNotFoundError as exc:
            raise ArchiveCorrupt(f"object missing: {archive_path}") from exc
        if expected is not None:
            if size != expected.bytes:
                what = "truncated" if size < expected.bytes else "larger than recorded"
                raise ArchiveCorrupt(f"object {what}: {size:,} of {expected.bytes:,} bytes: {archive_path}")
            if sha != expected.sha256:
                raise ArchiveCorrupt(
                    f"sha256 mismatch: expected {expected.sha256[:12]}.., got {sha[:12]}..: {archive_path}"
                )
        pf, file_cols, meta = _open_parquet(local)
        if expected is not None:
            if pf.metadata.num_rows != expected.rows:
                raise ArchiveCorrupt(
                    f"rows in the file: {pf.metadata.num_rows:,}, expected {expected.rows:,}"
                )
            if meta[META_FINGERPRINT] != expected.schema_fingerprint:
                raise ArchiveCorrupt("schema fingerprint in the file differs from the expected archive's")
        rel = _resolve(conn, target)
        target_cols = {c.name: c for c in _columns(conn, rel)}
        new_cols = _check_restorable(file_cols, target_cols, rel, archive_path)
        # Generated columns are computed again by PostgreSQL from the restored values.
        copied = [c for c in file_cols if not target_cols[c.name].generated]
        try:
            rows = _copy_in(conn, pf, copied, rel.ident, batch_rows)
        except _DecodeError as exc:
            raise ArchiveCorrupt(f"Parquet decode failed: {exc}: {archive_path}") from exc
        if new_cols:
            log.info("%s from %s: %s", rel.qualified, archive_path, _added_note(new_cols))
            if added is not None:
                added.extend(c.name for c in new_cols)
        return rows


def _added_note(columns: Sequence[_Column]) -> str:
    """``restored with N column(s) added since the archive: a (NULL), b (default 0)``."""
    shown = [f"{c.name} ({'NULL' if c.default is None else 'default ' + c.default})" for c in columns]
    return f"restored with {len(shown)} column(s) added since the archive: {', '.join(shown)}"


def _check_restorable(
    file_cols: Sequence[_Column],
    target_cols: dict[str, _Column],
    rel: _Relation,
    archive_path: ObjectStoragePath,
) -> list[_Column]:
    """Which target columns the archive predates; ``ValueError`` naming every column that stops the restore."""
    problems: list[str] = []
    gone = [c.name for c in file_cols if c.name not in target_cols]
    if gone:
        problems.append(
            f"the archive has column(s) {', '.join(gone)} that {rel.qualified} no longer has"
            " (dropped or renamed since the archive)"
        )
    for col in file_cols:
        have = target_cols.get(col.name)
        if have is not None and have.pg_type != col.pg_type:
            problems.append(
                f"column {col.name}: {have.pg_type} in {rel.qualified}, {col.pg_type} in the archive"
            )
    names = {c.name for c in file_cols}
    new_cols = [c for c in target_cols.values() if c.name not in names and not c.generated]
    required = [c.name for c in new_cols if not c.nullable and c.default is None]
    if required:
        problems.append(
            f"the archive lacks column(s) {', '.join(required)} of {rel.qualified}, which are NOT NULL"
            " without a default (added since the archive: give them a default or make them nullable)"
        )
    if problems:
        raise ValueError(f"cannot restore {archive_path} into {rel.qualified}: {'; '.join(problems)}")
    return new_cols
