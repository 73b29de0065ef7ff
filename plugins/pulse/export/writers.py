"""Write one analyst mart for one UTC day to CSV, JSON Lines and Parquet in object storage, manifest last.

``write_exports`` is what the ``export`` DAG calls per mart and day. Why it is built this way:

* **One snapshot.** The rows are read in one ``REPEATABLE READ READ ONLY`` transaction, so the three formats
  hold exactly the same rows even while loads run.
* **Same paths, same bytes.** Files live at ``<root>/<mart>/day=YYYY-MM-DD/<mart>.<ext>``; a re-run overwrites
  them (never a second copy). Rows are ordered by every column (text in the "C" collation) and data files
  carry no timestamps, so a re-run over unchanged data writes byte-identical files: partners can compare
  checksums instead of data.
* **The manifest is the commit point.** The files are first written to a local staging folder, so a
  database or encoding failure leaves an earlier export of the day untouched. Then the old ``manifest.json``
  is deleted, the data files are copied over the old ones, each is read back from storage to check its
  size, SHA-256 (and the Parquet row count), and only then is the new manifest written. A reader that sees a
  manifest sees complete files that match it; files without a manifest are an export in progress (or a
  failed one) and are to be ignored.
* **Typed, documented columns.** Each PostgreSQL type maps to one Arrow type (the Parquet schema, also listed
  in the manifest) and to one representation in CSV and JSON Lines (``docs/exports.md``). Nothing is rounded
  silently: ``numeric`` without precision is exported as a double and a value a double cannot hold exactly
  fails the export; types without a faithful mapping are exported as PostgreSQL's own text (``::text``).
* **A day without data is an answer**: files with the header or schema only and a manifest with ``rows: 0``.

pyarrow and psycopg are imported inside the functions: DAG files may import this module at parse time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from json.encoder import encode_basestring
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pulse.storage import HashingSink

if TYPE_CHECKING:
    import psycopg
    import pyarrow as pa
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

#: Formats, in the order files are listed in a manifest; each is also its file's extension.
FORMATS: tuple[str, ...] = ("csv", "jsonl", "parquet")
MANIFEST_NAME = "manifest.json"
#: Rows fetched from the server-side cursor at a time (one Parquet row group each).
BATCH_ROWS = 50_000
#: ``numeric(p, s)`` with ``p`` up to this many digits is a JSON number; wider ones are JSON strings
#: (an IEEE-754 double, what most JSON parsers produce, holds 15 significant decimal digits exactly).
JSON_NUMBER_MAX_PRECISION = 15
#: Manifest keys written by the exporter; ``extra_manifest`` may not replace them.
MANIFEST_KEYS = frozenset(
    {"mart", "day", "relation", "generated_at", "rows", "schema", "files", "schema_version"}
)

_NO_EXTRA: Mapping[str, Any] = MappingProxyType({})
_MART_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_NEEDS_QUOTES = re.compile(r'[",\r\n]')
_SESSION = (
    "SET LOCAL TIME ZONE 'UTC'",
    "SET LOCAL datestyle = 'ISO, YMD'",
    "SET LOCAL intervalstyle = 'iso_8601'",
    "SET LOCAL extra_float_digits = 1",
)


class ExportError(RuntimeError):
    """The export cannot be written faithfully; no new manifest was written.

    Raised before storage is touched (bad arguments, a value without a faithful type), the day's earlier
    export, if any, is left as it was; raised while publishing (a file read back differs), the day's folder
    has no manifest and readers ignore it.
    """


@dataclass(frozen=True)
class Column:
    """A documented column of a mart: PostgreSQL type, the Arrow type it is exported as, its COMMENT."""

    name: str
    pg_type: str
    arrow_type: str
    description: str


@dataclass(frozen=True)
class ExportFile:
    """One written data file. ``path`` is ``str()`` of its ``ObjectStoragePath``: ``file:///...``, or for S3
    Airflow's ``s3://<conn_id>@bucket/key``, which ``ObjectStoragePath(path)`` opens with that connection
    (``pulse.storage.storage_url`` gives the plain URL for people)."""

    format: str
    path: str
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class ExportResult:
    """One mart and day exported: the folder, its data files and the manifest (paths as in ExportFile)."""

    mart: str
    day: date
    directory: str
    files: list[ExportFile]
    manifest_path: str
    rows: int


# --- PostgreSQL type -> export plan ----------------------------------------------------------------------

#: PostgreSQL base types exported natively, by ``pg_type.typname``, and their kind.
_NATIVE = {
    "bool": "bool",
    "int2": "int16",
    "int4": "int32",
    "int8": "int64",
    "float4": "float32",
    "float8": "float64",
    "numeric": "numeric",
    "text": "text",
    "varchar": "text",
    "bpchar": "text",
    "name": "text",
    "date": "date",
    "timestamptz": "timestamptz",
    "timestamp": "timestamp",
    "time": "time",
    "jsonb": "json",
    "json": "json",
}


@dataclass(frozen=True)
class _Plan:
    """How one column is selected and encoded."""

    column: Column
    kind: str  # bool, int16/32/64, float32/64, double_numeric, decimal, text, date, timestamp(tz), time, json
    is_array: bool
    select: str  # SQL template around {col}
    collatable: bool
    precision: int | None = None
    scale: int | None = None


def _arrow_type(kind: str, is_array: bool, precision: int | None, scale: int | None) -> pa.DataType:
    import pyarrow as pa

    scalar: pa.DataType
    if kind == "decimal":
        assert precision is not None and scale is not None
        scalar = pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
    else:
        scalar = {
            "bool": pa.bool_(),
            "int16": pa.int16(),
            "int32": pa.int32(),
            "int64": pa.int64(),
            "float32": pa.float32(),
            "float64": pa.float64(),
            "double_numeric": pa.float64(),
            "text": pa.string(),
            "date": pa.date32(),
            "timestamptz": pa.timestamp("us", tz="UTC"),
            "timestamp": pa.timestamp("us"),
            "time": pa.time64("us"),
            "json": pa.json_(pa.string()),
        }[kind]
    # "element" is the Parquet name of list items: the type reads back from Parquet exactly as written.
    return pa.list_(pa.field("element", scalar)) if is_array else scalar


def _plan_column(
    name: str, pg_type: str, description: str, typname: str, elem: str | None, typmod: int
) -> _Plan:
    is_array = elem is not None
    base = elem if elem is not None else typname
    kind = _NATIVE.get(base)
    precision = scale = None
    select = "{col}"
    if kind == "numeric":
        if typmod < 0:
            kind = "double_numeric"
        else:
            precision, scale = ((typmod - 4) >> 16) & 0xFFFF, ((typmod - 4) & 0xFFFF)
            if scale > 0x7FFF:  # PostgreSQL 15 allows negative scales
                scale -= 0x10000
            kind = "decimal" if 0 <= scale <= precision <= 76 else None
    if kind == "json":
        if is_array:
            kind = None
        elif base == "json":
            select = "{col}::jsonb::text"  # one line of normalised JSON, like jsonb
        else:
            select = "{col}::text"
    if kind is None:  # no faithful native mapping: PostgreSQL's own text form
        kind, precision, scale = "text", None, None
        select = "{col}::text[]" if is_array else "{col}::text"
    arrow = _arrow_type(kind, is_array, precision, scale)
    collatable = kind in ("text", "json")
    return _Plan(
        Column(name, pg_type, str(arrow), description), kind, is_array, select, collatable, precision, scale
    )


_COLUMNS_SQL = """
SELECT a.attname,
       format_type(a.atttypid, a.atttypmod),
       coalesce(col_description(a.attrelid, a.attnum), ''),
       t.typname,
       e.typname,
       CASE WHEN t0.typtype = 'd' THEN t0.typtypmod ELSE a.atttypmod END
  FROM pg_attribute a
  JOIN pg_type t0 ON t0.oid = a.atttypid
  JOIN pg_type t ON t.oid = CASE WHEN t0.typtype = 'd' THEN t0.typbasetype ELSE t0.oid END
  LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
 WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
"""


def _plans(conn: psycopg.Connection[Any], relation: str) -> list[_Plan]:
    rows = conn.execute(_COLUMNS_SQL, (relation,)).fetchall()
    if not rows:
        raise ExportError(f"{relation} has no columns")
    return [_plan_column(*row) for row in rows]


def mart_columns(conn: psycopg.Connection[Any], relation: str) -> list[Column]:
    """The columns of a view or table in order: PostgreSQL type, exported Arrow type, ``COMMENT ON COLUMN``.

    Runs in its own transaction block (a savepoint if the caller has one open), so a connection that was idle
    stays idle and can be handed to :func:`write_exports` afterwards.
    """
    with conn.transaction():
        return [p.column for p in _plans(conn, relation)]


def schema_version(columns: Sequence[Column]) -> str:
    """SHA-256 (hex) of the manifest's ``schema`` list as canonical JSON: changes when any column does."""
    canonical = json.dumps(
        [asdict(c) for c in columns], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- values -> text ---------------------------------------------------------------------------------------


def _float_text(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return repr(v)  # the shortest text that reads back as the same double


def _float_token(v: float) -> str:
    """A JSON number, or a JSON string for NaN and the infinities (JSON has no such numbers)."""
    return repr(v) if math.isfinite(v) else _json_string(_float_text(v))


def _decimal_text(v: Decimal) -> str:
    if v.is_nan():
        return "NaN"
    if v.is_infinite():
        return "Infinity" if v > 0 else "-Infinity"
    return format(v, "f")  # plain notation, scale kept: 66.70, 0.0000001


def _ts_text(v: datetime) -> str:
    return v.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def _json_string(s: str) -> str:
    """A JSON string, UTF-8 kept (the C encoder behind ``json.dumps(s, ensure_ascii=False)``)."""
    return encode_basestring(s)


def _scalar_encoders(plan: _Plan) -> tuple[Callable[[Any], str], Callable[[Any], str]]:
    """(CSV text, JSON token) of a non-null scalar of ``plan``'s kind."""
    kind = plan.kind
    if kind == "bool":
        return (lambda v: "true" if v else "false"), (lambda v: "true" if v else "false")
    if kind in ("int16", "int32", "int64"):
        return str, str
    if kind in ("float32", "float64"):
        return _float_text, _float_token
    if kind == "double_numeric":  # exported as the double it equals (checked): the same text as a float8
        return (lambda v: _float_text(float(v))), (lambda v: _float_token(float(v)))
    if kind == "decimal":
        as_number = (plan.precision or 0) <= JSON_NUMBER_MAX_PRECISION

        def decimal_token(v: Decimal) -> str:
            text = _decimal_text(v)
            return text if as_number and v.is_finite() else _json_string(text)

        return _decimal_text, decimal_token
    if kind == "text":
        return (lambda v: v), _json_string
    if kind == "date":
        return (lambda v: v.isoformat()), (lambda v: f'"{v.isoformat()}"')
    if kind == "timestamptz":
        return _ts_text, (lambda v: f'"{_ts_text(v)}"')
    if kind in ("timestamp", "time"):
        return (lambda v: v.isoformat(timespec="microseconds")), (
            lambda v: f'"{v.isoformat(timespec="microseconds")}"'
        )
    if kind == "json":
        return (lambda v: v), (lambda v: v)  # PostgreSQL's jsonb text: valid JSON on one line
    raise AssertionError(kind)


def _encoders(plan: _Plan) -> tuple[Callable[[Any], str], Callable[[Any], str]]:
    csv_enc, json_enc = _scalar_encoders(plan)
    if not plan.is_array:
        return csv_enc, json_enc

    def array_token(values: list[Any]) -> str:
        parts = []
        for v in values:
            if isinstance(v, list):
                raise ExportError(f"column {plan.column.name}: multi-dimensional arrays are not supported")
            parts.append("null" if v is None else json_enc(v))
        return "[" + ",".join(parts) + "]"

    return array_token, array_token  # arrays are JSON arrays in CSV too


def _csv_field(text: str | None) -> str:
    """RFC 4180 field: NULL is an empty field, an empty string is ``""``; quotes doubled when quoted."""
    if text is None:
        return ""
    if text == "" or _NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def _exact_double(v: Decimal, where: str) -> float:
    """``v`` as a double, refusing a value the double would round (unconstrained ``numeric``)."""
    if not v.is_finite():
        return float(v)
    f = float(v)
    if not math.isfinite(f) or Decimal(repr(f)) != v:
        raise ExportError(
            f"{where}: {v} has no exact double; give the column a precision and scale in the view "
            "(::numeric(p,s)) so it is exported as a decimal"
        )
    return f


# --- storage ----------------------------------------------------------------------------------------------


def _digest(path: ObjectStoragePath) -> tuple[int, str]:
    """(size, SHA-256) of what storage holds at ``path``."""
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest()


def _unlink(path: ObjectStoragePath) -> None:
    if path.exists():
        path.unlink()


def _count_rows(path: ObjectStoragePath, fmt: str, columns: Sequence[Column]) -> int:
    """Rows in a data file as a reader sees them (CSV parsed with quotes and embedded newlines)."""
    import pyarrow as pa

    if fmt == "parquet":
        import pyarrow.parquet as pq

        with path.open("rb") as fh:
            return int(pq.ParquetFile(fh).metadata.num_rows)
    data = path.read_bytes()
    if fmt == "jsonl":
        return data.count(b"\n")  # JSON strings cannot hold a raw newline
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(
        pa.BufferReader(data),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types={c.name: pa.string() for c in columns}),
    )
    return int(table.num_rows)


def read_manifest(manifest_path: ObjectStoragePath) -> dict[str, Any]:
    """The manifest at ``manifest_path`` as a dict."""
    return dict(json.loads(manifest_path.read_bytes()))


def verify_export(manifest_path: ObjectStoragePath) -> list[str]:
    """Check every file a manifest lists against storage (size, SHA-256, rows); return the problems found.

    An empty list means the export is complete and intact; this is what a partner's check does too.
    """
    manifest = read_manifest(manifest_path)
    columns = [Column(**c) for c in manifest["schema"]]
    problems = []
    if schema_version(columns) != manifest.get("schema_version"):
        problems.append("schema_version does not match the schema")
    for entry in manifest["files"]:
        path = manifest_path.parent / entry["path"]
        if not path.exists():
            problems.append(f"{entry['path']}: missing")
            continue
        size, sha = _digest(path)
        if size != entry["bytes"]:
            problems.append(f"{entry['path']}: {size} bytes, manifest says {entry['bytes']}")
        if sha != entry["sha256"]:
            problems.append(f"{entry['path']}: sha256 {sha}, manifest says {entry['sha256']}")
        rows = _count_rows(path, entry["format"], columns)
        if rows != entry["rows"] or rows != manifest["rows"]:
            problems.append(f"{entry['path']}: {rows} rows, manifest says {entry['rows']}")
    return problems


# --- the export -------------------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _ts_text(value) if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable in a manifest: {value!r}")


def _check_args(mart: str, day: date, formats: Sequence[str], extra_manifest: Mapping[str, Any]) -> list[str]:
    if not _MART_NAME.match(mart) or ".." in mart:
        raise ValueError(f"mart name {mart!r} is not a safe path component (letters, digits, _ . -)")
    if isinstance(day, datetime) or not isinstance(day, date):
        raise TypeError(f"day must be a date, not {type(day).__name__}")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats or len(set(formats)) != len(formats):
        raise ValueError(f"formats must be distinct values among {FORMATS}, got {list(formats)}")
    clash = MANIFEST_KEYS & set(extra_manifest)
    if clash:
        raise ValueError(f"extra_manifest may not replace {sorted(clash)}")
    return [f for f in FORMATS if f in formats]


def _query(
    conn: psycopg.Connection[Any],
    relation: str,
    plans: Sequence[_Plan],
    day: date,
    day_column: str,
    where: str | None,
    params: Sequence[Any],
) -> tuple[Any, list[Any]]:
    from psycopg import sql

    row = conn.execute("SELECT %s::regclass::text", (relation,)).fetchone()
    assert row is not None
    rel = sql.SQL(row[0])  # PostgreSQL's own quoting of the resolved name
    by_name = {p.column.name: p for p in plans}
    if day_column not in by_name:
        raise ExportError(f"{relation} has no column {day_column!r}")
    day_col = sql.Identifier(day_column)
    start = datetime(day.year, day.month, day.day)
    kind = by_name[day_column].kind
    if by_name[day_column].is_array:
        kind = "array"
    if kind == "date":
        predicate = sql.SQL("{c} = %s").format(c=day_col)
        args: list[Any] = [day]
    elif kind in ("timestamptz", "timestamp"):
        predicate = sql.SQL("{c} >= %s AND {c} < %s").format(c=day_col)
        if kind == "timestamptz":
            start = start.replace(tzinfo=UTC)
        args = [start, start + timedelta(days=1)]
    else:
        raise ExportError(
            f"{relation}.{day_column} is {by_name[day_column].column.pg_type}, not a date or time"
        )
    if where:
        predicate = sql.SQL("{p} AND ({w})").format(p=predicate, w=sql.SQL(where))  # type: ignore[arg-type]
        args += list(params)
    exprs = [sql.SQL(p.select).format(col=sql.Identifier(p.column.name)) for p in plans]  # type: ignore[arg-type]
    select = sql.SQL(", ").join(
        sql.SQL("{e} AS {n}").format(e=e, n=sql.Identifier(p.column.name))
        for e, p in zip(exprs, plans, strict=True)
    )
    order = sql.SQL(", ").join(
        sql.SQL('({e}) COLLATE "C"').format(e=e) if p.collatable else sql.SQL("({e})").format(e=e)
        for e, p in zip(exprs, plans, strict=True)
    )
    query = sql.SQL("SELECT {s} FROM {r} WHERE {p} ORDER BY {o}").format(
        s=select, r=rel, p=predicate, o=order
    )
    return query, args


def _stage_files(
    conn: psycopg.Connection[Any],
    query: Any,
    args: Sequence[Any],
    plans: Sequence[_Plan],
    staged: Mapping[str, Path],
    where: str,
) -> tuple[int, dict[str, HashingSink]]:
    """Stream the query's rows into every format at once, into local files; return (rows, sink per format)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [pa.field(p.column.name, _arrow_type(p.kind, p.is_array, p.precision, p.scale)) for p in plans]
    )
    encoders = [_encoders(p) for p in plans]
    csv_encs = [e[0] for e in encoders]
    json_encs = [e[1] for e in encoders]
    keys = [_json_string(p.column.name) + ":" for p in plans]
    doubles = [i for i, p in enumerate(plans) if p.kind == "double_numeric"]
    rows = 0
    sinks: dict[str, HashingSink] = {}
    with ExitStack() as stack:
        for fmt, local in staged.items():
            sinks[fmt] = HashingSink(stack.enter_context(local.open("wb")))
        parquet = None
        if "parquet" in sinks:
            parquet = stack.enter_context(pq.ParquetWriter(sinks["parquet"], schema, compression="zstd"))
        if "csv" in sinks:
            sinks["csv"].write((",".join(_csv_field(p.column.name) for p in plans) + "\r\n").encode())
        with conn.cursor(name="pulse_export") as cur:
            cur.execute(query, args)
            while batch := cur.fetchmany(BATCH_ROWS):
                rows += len(batch)
                columns = [list(c) for c in zip(*batch, strict=True)]
                for i in doubles:
                    label = f"{where}.{plans[i].column.name}"
                    columns[i] = [
                        None
                        if v is None
                        else [None if x is None else _exact_double(x, label) for x in v]
                        if plans[i].is_array
                        else _exact_double(v, label)
                        for v in columns[i]
                    ]
                if "csv" in sinks:
                    lines = [
                        ",".join(
                            _csv_field(None if v is None else enc(v))
                            for enc, v in zip(csv_encs, row, strict=True)
                        )
                        for row in batch
                    ]
                    sinks["csv"].write(("\r\n".join(lines) + "\r\n").encode())
                if "jsonl" in sinks:
                    lines = [
                        "{"
                        + ",".join(
                            k + ("null" if v is None else enc(v))
                            for k, enc, v in zip(keys, json_encs, row, strict=True)
                        )
                        + "}"
                        for row in batch
                    ]
                    sinks["jsonl"].write(("\n".join(lines) + "\n").encode())
                if parquet is not None:
                    try:
                        arrays = [pa.array(col, type=f.type) for col, f in zip(columns, schema, strict=True)]
                    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                        raise ExportError(f"{where}: a value does not fit its Arrow type: {exc}") from exc
                    parquet.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
    return rows, sinks


def _publish(local: Path, path: ObjectStoragePath, sink: HashingSink, rows: int, fmt: str) -> ExportFile:
    """Copy a staged file to storage, read it back and check size, SHA-256 and (Parquet) row count."""
    with local.open("rb") as src, path.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    size, sha = _digest(path)
    if (size, sha) != (sink.size, sink.sha256):
        raise ExportError(
            f"{path}: storage holds {size} bytes sha256 {sha}, {sink.size} bytes sha256 {sink.sha256} were written"
        )
    if fmt == "parquet" and _count_rows(path, fmt, []) != rows:
        raise ExportError(f"{path}: the row count read back differs from the {rows} rows written")
    return ExportFile(fmt, str(path), rows, size, sha)


def write_exports(
    conn: psycopg.Connection[Any],
    *,
    mart: str,
    relation: str,
    day: date,
    day_column: str,
    dest_root: ObjectStoragePath,
    formats: Sequence[str] = FORMATS,
    extra_manifest: Mapping[str, Any] = _NO_EXTRA,
    where: str | None = None,
    params: Sequence[Any] = (),
) -> ExportResult:
    """Export the rows of ``relation`` whose ``day_column`` is ``day`` (UTC) to ``dest_root``; manifest last.

    ``day_column`` may be a ``date`` (equal to ``day``) or a timestamp (within the UTC day). ``where`` is an
    extra SQL predicate written by the DAG (never user input), with ``%s`` placeholders filled from
    ``params``. ``conn`` must not be inside a transaction: the export opens its own snapshot.

    The files are first written to a local staging folder; only when every row has been encoded does the
    export touch storage, so a database or encoding failure leaves an earlier export of the day intact.
    Raises :class:`ExportError` when the rows cannot be exported faithfully; then no manifest vouches for
    any new file.
    """
    from psycopg.pq import TransactionStatus

    from pulse.windows import utcnow

    ordered = _check_args(mart, day, formats, extra_manifest)
    if params and not where:
        raise ValueError("params fill the placeholders of where: pass where too")
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise ExportError(
            "write_exports needs a connection outside any transaction (it opens its own REPEATABLE READ "
            "READ ONLY snapshot): commit or roll back first"
        )
    label = f"{mart} {day:%Y-%m-%d}"
    directory = dest_root / mart / f"day={day:%Y-%m-%d}"
    manifest_path = directory / MANIFEST_NAME
    paths = {fmt: directory / f"{mart}.{fmt}" for fmt in ordered}
    with tempfile.TemporaryDirectory(prefix="pulse-export-") as tmp:
        staged = {fmt: Path(tmp) / f"{mart}.{fmt}" for fmt in ordered}
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            for stmt in _SESSION:
                conn.execute(stmt)  # type: ignore[arg-type]
            plans = _plans(conn, relation)
            query, args = _query(conn, relation, plans, day, day_column, where, params)
            rows, sinks = _stage_files(conn, query, args, plans, staged, f"{relation} ({label})")
        if directory.protocol in ("file", "local"):
            directory.mkdir(parents=True, exist_ok=True)
        # From here until the new manifest is written, no manifest vouches for the files being rewritten.
        _unlink(manifest_path)
        for fmt in FORMATS:
            if (
                fmt not in paths
            ):  # a format dropped since an earlier run: the folder holds what the manifest lists
                _unlink(directory / f"{mart}.{fmt}")
        try:
            files = [_publish(staged[fmt], path, sinks[fmt], rows, fmt) for fmt, path in paths.items()]
        except BaseException:
            for path in paths.values():  # leave no unvouched files behind (best effort)
                try:
                    _unlink(path)
                except Exception:  # the original error matters more
                    log.warning("could not remove %s after a failed export", path)
            raise
    columns = [p.column for p in plans]
    manifest = {
        "mart": mart,
        "day": f"{day:%Y-%m-%d}",
        "relation": relation,
        "generated_at": utcnow().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "rows": rows,
        "schema": [asdict(c) for c in columns],
        "files": [{**asdict(f), "path": f"{mart}.{f.format}"} for f in files],
        "schema_version": schema_version(columns),
        **extra_manifest,
    }
    text = json.dumps(manifest, indent=2, ensure_ascii=False, default=_json_default) + "\n"
    manifest_path.write_bytes(text.encode())
    log.info("exported %s from %s: %d rows, %s to %s", label, relation, rows, ", ".join(paths), directory)
    return ExportResult(mart, day, str(directory), files, str(manifest_path), rows)
