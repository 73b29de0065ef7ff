"""Mart exports on a local folder and on S3 (moto over real HTTP), read back with pyarrow and pandas.

A scratch table in its own schema (``export_scratch``, created and dropped per test, so the data dictionary
checks never see it) holds rows with every type the marts use (date, text, bigint, numeric, numeric(12,2),
real, timestamptz, jsonb, text[], boolean) plus one without a native mapping (tstzrange), with awkward values:
commas, quotes and newlines in text, unicode, empty strings next to NULLs, integers beyond 2^53. Every format
must give back the same rows in the documented order with the documented types, the manifest must match what
storage holds, and a re-run must overwrite the same objects with the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import struct
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from psycopg.pq import TransactionStatus

from pulse.export.webhooks import storage_url
from pulse.export.writers import (
    ExportError,
    mart_columns,
    read_manifest,
    schema_version,
    verify_export,
    write_exports,
)

SCHEMA = "export_scratch"
REL = f"{SCHEMA}.mart_rows"
DAY = date(2026, 11, 27)
EMPTY_DAY = date(2026, 11, 20)
CET = timezone(timedelta(hours=1))
NAMES = ["day", "label", "n", "amount", "price", "ratio", "seen_at", "attrs", "tags", "ok", "span"]
ARROW = {
    "day": "date32[day]",
    "label": "string",
    "n": "int64",
    "amount": "double",
    "price": "decimal128(12, 2)",
    "ratio": "float",
    "seen_at": "timestamp[us, tz=UTC]",
    "attrs": "extension<arrow.json>",
    "tags": "list<element: string>",
    "ok": "bool",
    "span": "string",
}


def f32(x: float) -> float:
    """``x`` as a PostgreSQL ``real`` holds it."""
    return float(struct.unpack("f", struct.pack("f", x))[0])


# One dict per row, in the order the export must produce (label in "C" collation, NULL last).
EXPECTED: list[dict[str, Any]] = [
    {
        "label": "",
        "n": None,
        "amount": None,
        "price": None,
        "ratio": None,
        "seen_at": None,
        "attrs": None,
        "tags": None,
        "ok": None,
        "span": None,
    },
    {
        "label": 'comma, "quoted"\nnewline\r\nand CRLF',
        "n": 2,
        "amount": Decimal("-0.5"),
        "price": Decimal("0.01"),
        "ratio": -1.5,
        "seen_at": datetime(2026, 11, 27, 23, 59, 59, 999999, tzinfo=UTC),
        "attrs": {"text": 'line1\nline2 "q", x'},
        "tags": ["a,b", 'with "q"', None, ""],
        "ok": False,
        "span": None,
    },
    {
        "label": "plain",
        "n": 1,
        "amount": Decimal("66.7"),
        "price": Decimal("10.50"),
        "ratio": 0.25,
        "seen_at": datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC),
        "attrs": {"a": 1, "nested": {"b": [1, 2]}},
        "tags": ["x", "y"],
        "ok": True,
        "span": '["2026-11-27 10:00:00+00","2026-11-27 11:00:00+00")',
    },
    {
        "label": "unicode: Zürich 東京 😀",
        "n": -3,
        "amount": Decimal("12345678901234.5"),
        "price": Decimal("9999999999.99"),
        "ratio": f32(3.14159),
        "seen_at": datetime(2026, 11, 27, 0, 0, tzinfo=UTC),
        "attrs": {"emoji": "😀", "n": 1.5},
        "tags": [],
        "ok": True,
        "span": None,
    },
    {
        "label": None,
        "n": 9007199254740993,
        "amount": Decimal("100000000000000000000"),
        "price": Decimal("-1.00"),
        "ratio": 1e-05,
        "seen_at": datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
        "attrs": {},
        "tags": ["only"],
        "ok": False,
        "span": None,
    },
]
for _row in EXPECTED:
    _row["day"] = DAY
    if _row["ratio"] is not None:
        _row["ratio"] = f32(_row["ratio"])


def _insert(db: Any, rows: list[dict[str, Any]]) -> None:
    from psycopg.types.json import Jsonb

    for row in rows:
        values = dict(row)
        if values["seen_at"] is not None:
            values["seen_at"] = values["seen_at"].astimezone(CET)  # stored as an instant, exported in UTC
        if values["attrs"] is not None:
            values["attrs"] = Jsonb(values["attrs"])
        db.execute(
            f"INSERT INTO {REL} ({', '.join(NAMES)}) VALUES ({', '.join(['%s'] * len(NAMES))})",
            [values[n] for n in NAMES],
        )


@pytest.fixture
def scratch(db: Any) -> Iterator[str]:
    """The scratch mart with the rows of EXPECTED (inserted shuffled) plus one row of another day."""
    db.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    db.execute(f"CREATE SCHEMA {SCHEMA}")
    db.execute(
        f"""CREATE TABLE {REL} (
              day date NOT NULL, label text, n bigint, amount numeric, price numeric(12,2), ratio real,
              seen_at timestamptz, attrs jsonb, tags text[], ok boolean, span tstzrange)"""
    )
    db.execute(f"COMMENT ON TABLE {REL} IS 'Scratch mart for export tests.'")
    for name in NAMES:
        db.execute(f"COMMENT ON COLUMN {REL}.{name} IS 'The {name} column.'")
    rows = [dict(r) for r in EXPECTED]
    random.Random(7).shuffle(rows)
    other = dict(
        EXPECTED[2],
        day=DAY + timedelta(days=1),
        label="other day",
        seen_at=EXPECTED[2]["seen_at"] + timedelta(days=1),
    )
    _insert(db, [*rows, other])
    db.execute(
        f"UPDATE {REL} SET span = tstzrange('2026-11-27 11:00+01', '2026-11-27 12:00+01') WHERE label = 'plain'"
    )
    yield REL
    db.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


@pytest.fixture
def conn(warehouse: dict[str, Any]) -> Iterator[Any]:
    """A connection like a task's: not autocommit, and a session time zone that is not UTC on purpose."""
    import psycopg

    with psycopg.connect(**warehouse, options="-c TimeZone=Asia/Tokyo") as c:
        yield c


@pytest.fixture(params=["local", "s3"])
def dest(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """The export root: a local folder, or a fresh prefix in the moto S3 bucket."""
    from airflow.sdk import ObjectStoragePath

    if request.param == "local":
        return ObjectStoragePath(f"file://{tmp_path}/exports")
    s3 = request.getfixturevalue("s3")
    return ObjectStoragePath(f"s3://{s3['bucket']}/exports-{uuid4().hex[:8]}", conn_id=s3["conn_id"])


def _listing(root: Any) -> dict[str, bytes]:
    """Every object under ``root``: relative path -> content (straight from storage)."""
    base = str(root).rstrip("/") + "/"
    return {str(p)[len(base) :]: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _export(conn: Any, dest: Any, day: date = DAY, **kwargs: Any) -> Any:
    return write_exports(
        conn, mart="scratch", relation=REL, day=day, day_column="day", dest_root=dest, **kwargs
    )


def _parquet(data: bytes) -> Any:
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(data))


def _assert_rows(actual: list[dict[str, Any]], what: str) -> None:
    assert len(actual) == len(EXPECTED), what
    for got, want in zip(actual, EXPECTED, strict=True):
        assert list(got) == NAMES, what
        assert got == want, f"{what}: {got} != {want}"


def _values(series: Any) -> list[Any]:
    """A pandas column as a list, every kind of missing value as None."""
    import pandas as pd

    return [
        None if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v) else v
        for v in series.tolist()
    ]


def _from_parquet(table: Any) -> list[dict[str, Any]]:
    rows = table.to_pylist()
    for r in rows:
        r["amount"] = None if r["amount"] is None else Decimal(repr(r["amount"]))
        r["attrs"] = None if r["attrs"] is None else json.loads(r["attrs"])
    return rows


def _from_arrow_csv(data: bytes) -> tuple[Any, list[dict[str, Any]]]:
    """The documented pyarrow recipe: types from the schema, only an unquoted empty field is NULL."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = {
        "day": pa.date32(),
        "n": pa.int64(),
        "amount": pa.float64(),
        "price": pa.decimal128(12, 2),
        "ratio": pa.float32(),
        "seen_at": pa.timestamp("us", tz="UTC"),
        "ok": pa.bool_(),
        "label": pa.string(),
        "attrs": pa.string(),
        "tags": pa.string(),
        "span": pa.string(),
    }
    table = pacsv.read_csv(
        io.BytesIO(data),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["true"],
            false_values=["false"],
        ),
    )
    rows = table.to_pylist()
    for r in rows:
        r["amount"] = None if r["amount"] is None else Decimal(repr(r["amount"]))
        r["attrs"] = None if r["attrs"] is None else json.loads(r["attrs"])
        r["tags"] = None if r["tags"] is None else json.loads(r["tags"])
    return table, rows


def _from_json_lines(data: bytes) -> list[dict[str, Any]]:
    """Plain ``json``, numbers parsed exactly: proves key order and the JSON type of every value."""
    rows = []
    for line in data.decode().splitlines():
        r = json.loads(line, parse_float=Decimal)
        r["attrs"] = json.loads(line)["attrs"]
        r["day"] = date.fromisoformat(r["day"])
        if r["seen_at"] is not None:
            assert r["seen_at"].endswith("Z")
            r["seen_at"] = datetime.fromisoformat(r["seen_at"])
        for key in ("amount", "price"):
            assert r[key] is None or isinstance(r[key], (int, Decimal)), f"{key} is a JSON number"
            r[key] = None if r[key] is None else Decimal(r[key])
        if r["ratio"] is not None:
            r["ratio"] = f32(float(r["ratio"]))
        rows.append(r)
    return rows


# --- schema -----------------------------------------------------------------------------------------------


def test_mart_columns_give_types_and_comments(scratch: str, db: Any) -> None:
    columns = mart_columns(db, scratch)
    assert [c.name for c in columns] == NAMES
    assert {c.name: c.arrow_type for c in columns} == ARROW
    assert {c.name: c.pg_type for c in columns}["price"] == "numeric(12,2)"
    assert {c.name: c.pg_type for c in columns}["tags"] == "text[]"
    assert all(c.description == f"The {c.name} column." for c in columns)


def test_mart_columns_of_a_real_analytics_view(db: Any) -> None:
    columns = mart_columns(db, "analytics.daily_volume")
    assert [(c.name, c.arrow_type) for c in columns] == [
        ("day", "date32[day]"),
        ("source", "string"),
        ("dataset", "string"),
        ("kind", "string"),
        ("items", "int64"),
        ("last_loaded_at", "timestamp[us, tz=UTC]"),
    ]
    assert {c.name: c.description for c in columns}["source"] == "Source system."


# --- round trips ------------------------------------------------------------------------------------------


def test_every_format_reads_back_the_same_rows_with_the_documented_types(
    scratch: str, conn: Any, dest: Any
) -> None:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.json as pajson

    result = _export(conn, dest)
    assert result.rows == len(EXPECTED)
    assert [f.format for f in result.files] == ["csv", "jsonl", "parquet"]
    files = _listing(dest)
    assert sorted(files) == [
        "scratch/day=2026-11-27/manifest.json",
        "scratch/day=2026-11-27/scratch.csv",
        "scratch/day=2026-11-27/scratch.jsonl",
        "scratch/day=2026-11-27/scratch.parquet",
    ]
    prefix = "scratch/day=2026-11-27/scratch"

    # Parquet: the Arrow schema of mart_columns, every value back.
    table = _parquet(files[f"{prefix}.parquet"])
    assert {f.name: str(f.type) for f in table.schema} == ARROW
    _assert_rows(_from_parquet(table), "parquet")
    assert table.schema.field("seen_at").type.tz == "UTC"

    # CSV with pyarrow: RFC 4180 quoting, NULL vs empty string, ISO 8601 'Z' timestamps.
    csv_bytes = files[f"{prefix}.csv"]
    assert csv_bytes.startswith(b"day,label,n,amount,price,ratio,seen_at,attrs,tags,ok,span\r\n")
    assert b'2026-11-27,"",,,,,,,,,\r\n' in csv_bytes  # empty string quoted, NULLs empty
    assert b'"comma, ""quoted""\nnewline\r\nand CRLF"' in csv_bytes
    assert b"2026-11-27T10:00:00.123456Z" in csv_bytes
    assert "Zürich 東京 😀".encode() in csv_bytes  # UTF-8, no escapes
    _, csv_rows = _from_arrow_csv(csv_bytes)
    _assert_rows(csv_rows, "csv via pyarrow")

    # CSV with pandas (the documented recipe): same values; pandas cannot tell "" from NULL.
    frame = pd.read_csv(
        io.BytesIO(csv_bytes),
        keep_default_na=False,
        na_values=[""],
        dtype_backend="pyarrow",
        parse_dates=["seen_at"],
    )
    assert list(frame.columns) == NAMES
    assert _values(frame["n"]) == [r["n"] for r in EXPECTED]  # int64 beyond 2^53 kept exact
    assert str(frame["n"].dtype) == "int64[pyarrow]"
    assert _values(frame["label"]) == [r["label"] or None for r in EXPECTED]
    assert _values(frame["seen_at"]) == [r["seen_at"] for r in EXPECTED]
    assert _values(frame["ok"]) == [r["ok"] for r in EXPECTED]
    assert _values(frame["price"]) == [None if r["price"] is None else float(r["price"]) for r in EXPECTED]

    # JSON Lines: key order, JSON types, exact numbers.
    jsonl = files[f"{prefix}.jsonl"]
    assert jsonl.count(b"\n") == len(EXPECTED) and jsonl.endswith(b"}\n")
    _assert_rows(_from_json_lines(jsonl), "jsonl via json")
    assert b'"amount":12345678901234.5,' in jsonl and b'"price":10.50,' in jsonl
    assert b'"n":9007199254740993,' in jsonl

    # JSON Lines with pyarrow (explicit schema for the typed columns; dates arrive as strings).
    schema = pa.schema(
        [
            ("day", pa.string()),
            ("label", pa.string()),
            ("n", pa.int64()),
            ("amount", pa.float64()),
            ("price", pa.decimal128(12, 2)),
            ("ratio", pa.float32()),
            ("seen_at", pa.timestamp("us", tz="UTC")),
            ("tags", pa.list_(pa.field("element", pa.string()))),
            ("ok", pa.bool_()),
            ("span", pa.string()),
        ]
    )
    jtable = pajson.read_json(io.BytesIO(jsonl), parse_options=pajson.ParseOptions(explicit_schema=schema))
    assert jtable.column("n").to_pylist() == [r["n"] for r in EXPECTED]
    assert jtable.column("price").to_pylist() == [r["price"] for r in EXPECTED]
    assert jtable.column("seen_at").to_pylist() == [r["seen_at"] for r in EXPECTED]
    assert jtable.column("tags").to_pylist() == [r["tags"] for r in EXPECTED]
    assert jtable.column("ratio").to_pylist() == [r["ratio"] for r in EXPECTED]

    # JSON Lines with pandas.
    jframe = pd.read_json(io.BytesIO(jsonl), lines=True, dtype=False, convert_dates=False)
    assert list(jframe.columns) == NAMES
    assert _values(jframe["label"]) == [r["label"] for r in EXPECTED]
    assert _values(jframe["attrs"]) == [r["attrs"] for r in EXPECTED]
    assert _values(jframe["tags"]) == [r["tags"] for r in EXPECTED]
    assert _values(pd.to_datetime(jframe["seen_at"], utc=True)) == [r["seen_at"] for r in EXPECTED]
    assert _values(jframe["amount"]) == [
        None if r["amount"] is None else float(r["amount"]) for r in EXPECTED
    ]


def test_manifest_matches_what_storage_holds(scratch: str, conn: Any, dest: Any) -> None:
    result = _export(conn, dest, extra_manifest={"window_checks": "passed", "dag_run_id": "manual__1"})
    files = _listing(dest)
    manifest = json.loads(files["scratch/day=2026-11-27/manifest.json"])
    assert manifest == read_manifest(dest / "scratch" / "day=2026-11-27" / "manifest.json")
    assert list(manifest)[:8] == [
        "mart",
        "day",
        "relation",
        "generated_at",
        "rows",
        "schema",
        "files",
        "schema_version",
    ]
    assert manifest["mart"] == "scratch" and manifest["day"] == "2026-11-27" and manifest["relation"] == REL
    assert manifest["generated_at"] == "2026-11-28T12:05:00Z"  # the pipeline clock (PULSE_NOW in tests)
    assert manifest["rows"] == len(EXPECTED)
    assert manifest["window_checks"] == "passed" and manifest["dag_run_id"] == "manual__1"
    assert manifest["schema"] == [asdict(c) for c in mart_columns(conn, REL)]
    canonical = json.dumps(manifest["schema"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert manifest["schema_version"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert manifest["schema_version"] == schema_version(mart_columns(conn, REL))
    for entry, exported in zip(manifest["files"], result.files, strict=True):
        data = files[f"scratch/day=2026-11-27/{entry['path']}"]
        assert entry["bytes"] == len(data) == exported.bytes
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() == exported.sha256
        assert entry["rows"] == len(EXPECTED)
        assert exported.path == str(dest / "scratch" / "day=2026-11-27" / entry["path"])
    assert verify_export(dest / "scratch" / "day=2026-11-27" / "manifest.json") == []
    assert result.manifest_path == str(dest / "scratch" / "day=2026-11-27" / "manifest.json")
    clean = storage_url(result.manifest_path)
    assert clean == storage_url(dest / "scratch" / "day=2026-11-27" / "manifest.json")
    assert "@" not in clean and clean.endswith("/scratch/day=2026-11-27/manifest.json")


def test_verify_export_detects_a_changed_file(scratch: str, conn: Any, dest: Any) -> None:
    result = _export(conn, dest)
    folder = dest / "scratch" / "day=2026-11-27"
    csv = folder / "scratch.csv"
    csv.write_bytes(csv.read_bytes().replace(b"plain", b"plaiN"))
    problems = verify_export(folder / "manifest.json")
    assert len(problems) == 1 and problems[0].startswith("scratch.csv: sha256"), problems
    (folder / "scratch.parquet").unlink()
    assert "scratch.parquet: missing" in verify_export(folder / "manifest.json")
    assert result.rows == len(EXPECTED)


def test_rerun_overwrites_the_same_objects_with_identical_bytes(
    scratch: str, conn: Any, dest: Any, db: Any
) -> None:
    first = _export(conn, dest)
    before = _listing(dest)
    second = _export(conn, dest)
    after = _listing(dest)
    assert sorted(after) == sorted(before)  # no second copy, no leftovers
    assert after == before  # data files and (same clock) manifest byte-identical
    assert second == first

    # Changed data: same paths, new bytes, a manifest that matches the new files.
    db.execute(f"UPDATE {REL} SET n = 42 WHERE label = 'plain'")
    third = _export(conn, dest)
    changed = _listing(dest)
    assert sorted(changed) == sorted(before)
    assert changed["scratch/day=2026-11-27/scratch.csv"] != before["scratch/day=2026-11-27/scratch.csv"]
    assert b"plain,42," in changed["scratch/day=2026-11-27/scratch.csv"]
    assert [f.sha256 for f in third.files] != [f.sha256 for f in first.files]
    assert verify_export(dest / "scratch" / "day=2026-11-27" / "manifest.json") == []

    # Fewer formats on a re-run: the dropped format's file goes, the folder holds what the manifest lists.
    _export(conn, dest, formats=("csv",))
    assert sorted(_listing(dest)) == [
        "scratch/day=2026-11-27/manifest.json",
        "scratch/day=2026-11-27/scratch.csv",
    ]


def test_a_day_without_rows_is_an_export_with_zero_rows(scratch: str, conn: Any, dest: Any) -> None:
    result = _export(conn, dest, day=EMPTY_DAY)
    assert result.rows == 0
    files = _listing(dest)
    folder = "scratch/day=2026-11-20"
    assert files[f"{folder}/scratch.csv"] == b"day,label,n,amount,price,ratio,seen_at,attrs,tags,ok,span\r\n"
    assert files[f"{folder}/scratch.jsonl"] == b""
    table = _parquet(files[f"{folder}/scratch.parquet"])
    assert table.num_rows == 0
    assert {f.name: str(f.type) for f in table.schema} == ARROW
    manifest = json.loads(files[f"{folder}/manifest.json"])
    assert manifest["rows"] == 0 and [f["rows"] for f in manifest["files"]] == [0, 0, 0]
    assert verify_export(dest / "scratch" / "day=2026-11-20" / "manifest.json") == []


def test_a_real_analytics_view_exports_with_its_schema(conn: Any, tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    dest = ObjectStoragePath(f"file://{tmp_path}/out")
    result = write_exports(
        conn,
        mart="daily_volume",
        relation="analytics.daily_volume",
        day=date(1999, 1, 1),
        day_column="day",
        dest_root=dest,
        where="source = %s",
        params=["reddit"],
    )
    assert result.rows == 0
    table = _parquet((dest / "daily_volume" / "day=1999-01-01" / "daily_volume.parquet").read_bytes())
    assert table.schema.names == ["day", "source", "dataset", "kind", "items", "last_loaded_at"]
    assert conn.info.transaction_status == TransactionStatus.IDLE  # the snapshot was committed


def test_extra_predicate_and_a_timestamp_day_column(scratch: str, conn: Any, tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    dest = ObjectStoragePath(f"file://{tmp_path}/out")
    result = write_exports(
        conn,
        mart="by_ts",
        relation=REL,
        day=DAY,
        day_column="seen_at",
        dest_root=dest,
        where="ok = %s",
        params=[True],
    )
    jsonl = (dest / "by_ts" / "day=2026-11-27" / "by_ts.jsonl").read_bytes()
    assert [json.loads(line)["label"] for line in jsonl.splitlines()] == ["plain", "unicode: Zürich 東京 😀"]
    assert result.rows == 2


def test_special_numbers(db: Any, conn: Any, tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    db.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    db.execute(f"CREATE SCHEMA {SCHEMA}")
    try:
        db.execute(
            f"CREATE TABLE {SCHEMA}.special (day date, k int, r real, d double precision, x numeric, w numeric(20,2))"
        )
        db.execute(
            f"""INSERT INTO {SCHEMA}.special VALUES
                ('2026-11-27', 1, 'NaN', 'Infinity', 'NaN', 123456789012345678.90),
                ('2026-11-27', 2, '-Infinity', 0.1, 'Infinity', 1.50),
                ('2026-11-27', 3, 0.0000001, 1e300, 0.0000001, NULL)"""
        )
        dest = ObjectStoragePath(f"file://{tmp_path}/out")
        write_exports(
            conn, mart="special", relation=f"{SCHEMA}.special", day=DAY, day_column="day", dest_root=dest
        )
        folder = dest / "special" / "day=2026-11-27"
        csv = (folder / "special.csv").read_bytes().decode().split("\r\n")
        assert csv[1:4] == [
            "2026-11-27,1,NaN,Infinity,NaN,123456789012345678.90",
            "2026-11-27,2,-Infinity,0.1,Infinity,1.50",
            "2026-11-27,3,1e-07,1e+300,1e-07,",
        ]
        lines = (folder / "special.jsonl").read_bytes().decode().splitlines()
        assert (
            lines[0]
            == '{"day":"2026-11-27","k":1,"r":"NaN","d":"Infinity","x":"NaN","w":"123456789012345678.90"}'
        )
        assert lines[1] == '{"day":"2026-11-27","k":2,"r":"-Infinity","d":0.1,"x":"Infinity","w":"1.50"}'
        assert lines[2] == '{"day":"2026-11-27","k":3,"r":1e-07,"d":1e+300,"x":1e-07,"w":null}'
        table = _parquet((folder / "special.parquet").read_bytes())
        assert str(table.schema.field("w").type) == "decimal128(20, 2)"
        assert table.column("w").to_pylist() == [Decimal("123456789012345678.90"), Decimal("1.50"), None]
        x = table.column("x").to_pylist()
        assert x[0] != x[0] and x[1] == float("inf") and x[2] == 1e-07
    finally:
        db.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def test_a_value_a_double_would_round_fails_and_keeps_the_earlier_export(
    scratch: str, conn: Any, dest: Any, db: Any
) -> None:
    _export(conn, dest)
    before = _listing(dest)
    db.execute(f"UPDATE {REL} SET amount = 0.12345678901234567 WHERE label = 'plain'")
    with pytest.raises(ExportError, match=r"0\.12345678901234567 has no exact double.*numeric\(p,s\)"):
        _export(conn, dest)
    assert _listing(dest) == before  # nothing touched: the earlier export is still complete and vouched for
    assert verify_export(dest / "scratch" / "day=2026-11-27" / "manifest.json") == []
    assert conn.info.transaction_status == TransactionStatus.IDLE


def test_bad_arguments_are_refused_before_anything_is_written(conn: Any, tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    dest = ObjectStoragePath(f"file://{tmp_path}/out")
    common: dict[str, Any] = {"relation": "analytics.daily_volume", "day_column": "day", "dest_root": dest}
    with pytest.raises(ValueError, match="safe path component"):
        write_exports(conn, mart="../x", day=DAY, **common)
    with pytest.raises(ValueError, match="formats"):
        write_exports(conn, mart="m", day=DAY, formats=("xlsx",), **common)
    with pytest.raises(ValueError, match="may not replace"):
        write_exports(conn, mart="m", day=DAY, extra_manifest={"rows": 1}, **common)
    with pytest.raises(TypeError, match="date"):
        write_exports(conn, mart="m", day=datetime(2026, 11, 27, tzinfo=UTC), **common)
    conn.execute("SELECT 1")  # now inside a transaction
    with pytest.raises(ExportError, match="outside any transaction"):
        write_exports(conn, mart="m", day=DAY, **common)
    conn.rollback()
    with pytest.raises(ExportError, match="no column 'nope'"):
        write_exports(conn, mart="m", day=DAY, **{**common, "day_column": "nope"})
    assert not (tmp_path / "out").exists()
