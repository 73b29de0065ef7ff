"""Parquet archives against the real warehouse, on a local folder and on S3 (moto over HTTP).

Round trips (archive -> verify -> empty the month -> restore -> archive again) must give identical rows, as
PostgreSQL prints them, and an identical SHA-256, for every column type the warehouse uses. Corruptions
(truncated object, flipped byte, changed, deleted or missing rows, missing object) must be reported by
``verify_archive`` and must stop ``restore_archive`` before it writes a row. Every test inserts its own rows in
2026-06/2026-07 and leaves the warehouse as it found it (rows truncated, partitions it created dropped).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.sdk import ObjectStoragePath

from pulse.archive.parquet import (
    META_COLUMNS,
    META_FINGERPRINT,
    META_TABLE,
    ArchiveCorrupt,
    ArchiveFile,
    relation_columns,
    restore_archive,
    verify_archive,
    write_archive,
)
from tests.conftest import truncate_warehouse

Store = Callable[[str], ObjectStoragePath]

BIG = "".join(f'line {i}: ünïcødé, "quoted", back\\slash\ttab\r\n' for i in range(2_400))[:100_000]
UNICODE = "emoji 😀🚀👩‍💻 RTL שלום مرحبا replacement \ufffd CJK 漢字 combining é"
NESTED_JSON = json.dumps(
    {"z": 1, "a": [[1, 2.5, -0.5e-7], [{"k": None}]], "f": 1e-7, "big": 12345678901234567890, "u": UNICODE}
)
DOC_COLUMNS = (
    "source, external_id, kind, channel, created_at, title, body, url, author_pseudonym, score, metrics, "
    "payload, content_sha256, raw_response_id, dag_run_id, first_loaded_at, loaded_at"
)


# ------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Store:
    """Where archives go: a local folder (file://) or the moto S3 bucket, one fresh prefix per test."""
    if request.param == "local":
        return lambda key: ObjectStoragePath(f"file://{tmp_path}/archive/{key}")
    s3 = request.getfixturevalue("s3")
    prefix = uuid.uuid4().hex
    return lambda key: ObjectStoragePath(f"s3://{s3['bucket']}/{prefix}/{key}", conn_id=s3["conn_id"])


def _partitions(db: psycopg.Connection[Any]) -> set[str]:
    rows = db.execute("SELECT inhrelid::regclass::text FROM pg_inherits").fetchall()
    return {r[0] for r in rows}


@pytest.fixture
def wh(db: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """The autocommit warehouse connection, emptied; afterwards emptied again, our partitions dropped."""
    truncate_warehouse(db)
    before = _partitions(db)
    yield db
    truncate_warehouse(db)
    db.execute("DROP TABLE IF EXISTS public.archive_types_test")
    for part in sorted(_partitions(db) - before):
        db.execute(f"DROP TABLE IF EXISTS {part}")


def month(db: psycopg.Connection[Any], table: str, first_day: str) -> str:
    db.execute("SELECT ops.ensure_month_partitions(%s::regclass, %s, %s)", (table, first_day, first_day))
    return f"{table}_p{first_day[:4]}_{first_day[5:7]}"


def rows_as_text(db: psycopg.Connection[Any], relation: str, order: str, where: str = "") -> list[str]:
    """Every row as PostgreSQL prints it (jsonb, numeric scale, floats, arrays ... exactly)."""
    return [r[0] for r in db.execute(f"SELECT t::text FROM {relation} t {where} ORDER BY {order}").fetchall()]


def count(db: psycopg.Connection[Any], relation: str) -> int:
    row = db.execute(f"SELECT count(*) FROM {relation}").fetchone()
    assert row is not None
    return int(row[0])


def insert_documents(db: psycopg.Connection[Any], n_bulk: int = 250) -> None:
    """Edge-case documents in June 2026 plus ``n_bulk`` ordinary ones."""
    month(db, "core.documents", "2026-06-01")
    special = [
        # unicode everywhere, 100 kB body, nested jsonb with tiny and huge numbers
        (
            "reddit",
            "t3_unicode",
            "post",
            UNICODE,
            "2026-06-01 00:00:00+00",
            UNICODE,
            BIG,
            "https://x/ü",
            "p" * 64,
            7,
            NESTED_JSON,
            NESTED_JSON,
        ),
        # every nullable column NULL; jsonb holding JSON null and an empty array
        (
            "reddit",
            "t3_nulls",
            "comment",
            None,
            "2026-06-15 12:34:56.123456+00",
            None,
            None,
            None,
            None,
            None,
            "null",
            "[]",
        ),
        # empty strings (not NULL), CSV and COPY troublemakers
        (
            "x",
            "t_empty",
            "tweet",
            "",
            "2026-06-30 23:59:59.999999+00",
            "",
            "",
            "",
            "",
            -2147483648,
            "{}",
            '{"s": "comma, \\"quote\\", back\\\\slash, newline\\n, \\\\."}',
        ),
        (
            "x",
            "t_copy_end",
            "tweet",
            "\\.",
            "2026-06-20 06:00:00.000001+00",
            "a\n\\.\nb",
            "\\.",
            "\r\n",
            ",",
            2147483647,
            '{"n": -0.0, "e": 1.0E+2}',
            '{"arr": [[], [[]], [null, true, false]]}',
        ),
    ]
    with db.cursor() as cur:
        cur.executemany(
            f"INSERT INTO core.documents ({DOC_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
            "%s::jsonb, %s::jsonb, md5(%s), 1, 'test-run', '2026-06-30 01:02:03.456789+00', now())",
            [(*row, row[1]) for row in special],
        )
    db.execute(
        f"INSERT INTO core.documents ({DOC_COLUMNS}) SELECT 'newsapi', 'a_' || g, 'article', 'feed ' || (g %% 7),"
        " '2026-06-02'::timestamptz + g * interval '1 hour 1.000001 second', 'title ' || g,"
        " repeat('body ' || g || ' ', 30), 'https://example.com/' || g, md5(g::text), g,"
        " jsonb_build_object('comments', g, 'ratio', g / 7.0), jsonb_build_object('n', g, 'f', g * 1e-7),"
        " md5('c' || g), g, 'test-run', now(), now() FROM generate_series(1, %s) g",
        (n_bulk,),
    )


# ------------------------------------------------------------------------------------------------
# round trips
# ------------------------------------------------------------------------------------------------


def round_trip(
    wh: psycopg.Connection[Any],
    store: Store,
    relation: str,
    order: str,
    *,
    empty: str,
    restore_into: str,
    where: str | None = None,
    params: tuple[Any, ...] = (),
    batch_rows: int = 100,
) -> tuple[ArchiveFile, ArchiveFile]:
    """Archive, verify, empty the rows, restore, check identical rows, archive again; return both archives."""
    where_sql = ""
    if where:
        where_sql = "WHERE " + psycopg.ClientCursor(wh).mogrify(where, params)
    before = rows_as_text(wh, relation, order, where_sql)
    assert before, "the test inserted no rows"
    dest = store(f"{relation.replace('.', '/')}/first.parquet")
    first = write_archive(wh, relation, dest, where=where, params=params, batch_rows=batch_rows)
    assert first.rows == len(before)
    assert first.path == str(dest)
    assert dest.exists()
    assert first.bytes == len(dest.read_bytes())
    check = verify_archive(wh, first, where=where, params=params)
    assert check.ok, check.problems
    assert check.rows_in_file == check.rows_in_db == len(before)

    wh.execute(empty)
    assert rows_as_text(wh, relation, order, where_sql) == []
    with wh.transaction():
        restored = restore_archive(wh, dest, restore_into, expected=first, batch_rows=batch_rows)
    assert restored == len(before)
    assert rows_as_text(wh, relation, order, where_sql) == before

    second = write_archive(
        wh,
        relation,
        store(f"{relation.replace('.', '/')}/second.parquet"),
        where=where,
        params=params,
        batch_rows=batch_rows,
    )
    assert (second.sha256, second.bytes, second.rows) == (first.sha256, first.bytes, first.rows)
    assert verify_archive(wh, second, where=where, params=params).ok
    return first, second


def test_documents_partition_round_trips_exactly(wh: psycopg.Connection[Any], store: Store) -> None:
    insert_documents(wh)
    first, _ = round_trip(
        wh,
        store,
        "core.documents_p2026_06",
        "source, external_id, created_at",
        empty="TRUNCATE core.documents_p2026_06",
        restore_into="core.documents",
    )
    assert first.table == "core.documents_p2026_06"
    assert [c for c, _ in first.columns][:3] == ["source", "external_id", "kind"]
    assert dict(first.columns)["metrics"] == "jsonb"
    # the 100 kB body and the unicode came back byte for byte (rows_as_text compared them; spot-check too)
    body, title = wh.execute(
        "SELECT body, title FROM core.documents WHERE external_id = 't3_unicode'"
    ).fetchone() or (None, None)
    assert (body, title) == (BIG, UNICODE)


def test_market_bars_numeric_keeps_exact_values_and_scale(wh: psycopg.Connection[Any], store: Store) -> None:
    month(wh, "core.market_bars", "2026-07-01")
    values = [
        "1.50",
        "0.00000001",
        "123456789012345678901234567890.123456789",
        "NaN",
        None,
        "-0.000",
        "1e-20",
    ]
    with wh.cursor() as cur:
        cur.executemany(
            "INSERT INTO core.market_bars (source, symbol, market, asset_class, interval, ts, open, high, low,"
            " close, volume, content_sha256, raw_response_id, dag_run_id)"
            " VALUES ('alphavantage', %s, 'USD', 'stock', '1d', %s, %s::numeric, %s::numeric, %s::numeric,"
            " %s::numeric, %s::numeric, 'h', 1, 'run')",
            [
                (f"S{i}", f"2026-07-{i + 1:02d} 00:00:00+00", v, v, "0.1", "2.000", "1000000")
                for i, v in enumerate(values)
            ],
        )
    round_trip(
        wh,
        store,
        "core.market_bars_p2026_07",
        "symbol, market, interval, ts",
        empty="DELETE FROM core.market_bars_p2026_07",
        restore_into="core.market_bars",
    )
    opens = [r[0] for r in wh.execute("SELECT open::text FROM core.market_bars ORDER BY symbol").fetchall()]
    printed = {"1e-20": "0.00000000000000000001", "-0.000": "0.000"}  # as PostgreSQL stores them
    assert opens == [printed.get(v, v) if v else v for v in values]


def test_document_features_real_text_array_jsonb_boolean(wh: psycopg.Connection[Any], store: Store) -> None:
    month(wh, "enriched.document_features", "2026-06-01")
    rows = [
        ("a", 0.1, 3.4028235e38, "{}", True, '{"joy": 2, "fear": 1}'),
        ("b", None, None, '{NULL,"","b c","q\\"uote","back\\\\slash","com,ma","{brace}",NULL}', False, "{}"),
        ("c", float("nan"), -1.0, "{😀,שלום,\ufffd}", None, '{"nested": [[1e-7], [12345678901234567890]]}'),
        ("d", float("inf"), 1e-45, "{NULL}", None, "[]"),
    ]
    with wh.cursor() as cur:
        cur.executemany(
            "INSERT INTO enriched.document_features (source, external_id, created_at, enrichment_version,"
            " language, language_confidence, sentiment_vader, sentiment_label, emotions, keywords, topic, sarcasm)"
            " VALUES ('reddit', %s, '2026-06-10 10:00:00.5+00', 'v1', NULL, %s::real, %s::real, NULL,"
            " %s::jsonb, %s::text[], NULL, %s)",
            [(eid, conf, vader, emo, kw, sarc) for eid, conf, vader, kw, sarc, emo in rows],
        )
    first, _ = round_trip(
        wh,
        store,
        "enriched.document_features_p2026_06",
        "source, external_id, created_at",
        empty="TRUNCATE enriched.document_features_p2026_06",
        restore_into="enriched.document_features",
        batch_rows=3,
    )
    table = pq.read_table(pa.BufferReader(ObjectStoragePath(first.path).read_bytes()))
    assert table.schema.field("keywords").type == pa.list_(pa.string())
    kw = dict(zip(table.column("external_id").to_pylist(), table.column("keywords").to_pylist(), strict=True))
    assert kw["a"] == []
    assert kw["b"] == [None, "", "b c", 'q"uote', "back\\slash", "com,ma", "{brace}", None]
    assert kw["d"] == [None]
    assert table.column("sarcasm").to_pylist() == [True, False, None, None]


def test_raw_api_responses_of_one_month_with_where(wh: psycopg.Connection[Any], store: Store) -> None:
    wh.execute(
        "INSERT INTO raw.api_responses (source, stream, endpoint, request_params, page_no, window_start,"
        " window_end, status_code, headers, body, body_sha256, is_valid, error, item_count, next_cursor, dag_id,"
        " dag_run_id, task_try, fetched_at)"
        " SELECT 'reddit', 'new:python', '/r/python/new', jsonb_build_object('limit', 100, 'after', 't3_' || g),"
        " g, CASE WHEN g %% 4 = 0 THEN NULL ELSE '2026-06-01'::timestamptz + g * interval '1 hour' END,"
        " '2026-06-01'::timestamptz + (g + 1) * interval '1 hour', 200,"
        ' \'{"x-ratelimit-remaining": "99.0"}\', %s || g, md5(g::text), g %% 5 <> 0,'
        " CASE WHEN g %% 5 = 0 THEN 'malformed' END, g, NULL, 'ingest_reddit', 'run ' || g, 1,"
        " '2026-06-25'::timestamptz + g * interval '3 hours 0.000001 second' FROM generate_series(1, 120) g",
        ('{"data": {"children": []}, "text": "' + UNICODE + '"} ',),
    )
    june = ("2026-06-01 00:00+00", "2026-07-01 00:00+00")
    in_july = count(wh, "raw.api_responses") - int(
        (
            wh.execute("SELECT count(*) FROM raw.api_responses WHERE fetched_at < %s", (june[1],)).fetchone()
            or [0]
        )[0]
    )
    assert in_july > 0
    round_trip(
        wh,
        store,
        "raw.api_responses",
        "id",
        where="fetched_at >= %s AND fetched_at < %s",
        params=june,
        empty="DELETE FROM raw.api_responses WHERE fetched_at < '2026-07-01 00:00+00'",
        restore_into="raw.api_responses",
        batch_rows=7,
    )
    # the July rows were neither archived nor touched; the ids (an identity column) came back as they were
    assert count(wh, "raw.api_responses") == 120
    assert wh.execute("SELECT min(id), max(id) FROM raw.api_responses").fetchone() == (1, 120)


def test_every_column_type_round_trips(wh: psycopg.Connection[Any], store: Store) -> None:
    wh.execute(
        "CREATE TABLE public.archive_types_test (id integer PRIMARY KEY, s smallint, i integer, b bigint,"
        " r real, d double precision, n numeric, n2 numeric(12,4), bo boolean, dt date, ts timestamptz,"
        " tsn timestamp, j jsonb, js json, t text, v varchar(20), arr text[], by bytea, iv interval,"
        " ia integer[])"
    )
    wh.execute(
        "INSERT INTO public.archive_types_test VALUES"
        " (1, -32768, -2147483648, 9223372036854775807, 'NaN', 5e-324, 'NaN', 1.5, true, '0001-01-01',"
        "  '1970-01-01 00:00:00.000001+00', '2099-12-31 23:59:59.999999', '{\"a\": [1, 1e-7]}',"
        "  '{\"b\":1,  \"a\":2}', '', '', '{}', '\\x', '1 year 2 mons 3 days 04:05:06.7', '{1,NULL,3}'),"
        " (2, 32767, 2147483647, -9223372036854775808, 'Infinity', '-Infinity', '-0.0001', 12345678.1234,"
        "  false, '2099-12-31', '2026-06-15 12:00:00+02', '1970-01-01 00:00:00', 'null', '[]', %s, 'varchar',"
        "  '{NULL}', '\\x00ff0a2c22', '-1 days', '{}'),"
        " (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
        "  NULL, NULL, NULL),"
        " (4, 0, 0, 0, 0.1, -0.0, 0, 0, NULL, '2026-06-01', '2026-06-01 00:00:00+00', NULL, '12345678901234567890',"
        "  '\"s\"', %s, NULL, '{\"\",\"a,b\"}', %s, '0', '{{1,2},{3,4}}')",
        (UNICODE, BIG, bytes(range(256)) * 10),
    )
    first, _ = round_trip(
        wh,
        store,
        "public.archive_types_test",
        "id",
        empty="TRUNCATE public.archive_types_test",
        restore_into="public.archive_types_test",
        batch_rows=2,
    )
    cols = dict(first.columns)
    assert (
        cols["n2"] == "numeric(12,4)"
        and cols["arr"] == "text[]"
        and cols["tsn"] == "timestamp without time zone"
    )


def test_parquet_carries_its_schema_and_reads_with_pandas(wh: psycopg.Connection[Any], tmp_path: Any) -> None:
    insert_documents(wh, n_bulk=30)
    dest = ObjectStoragePath(f"file://{tmp_path}/docs.parquet")
    archive = write_archive(wh, "core.documents_p2026_06", dest, batch_rows=10)
    pf = pq.ParquetFile(tmp_path / "docs.parquet")
    meta = {k.decode(): v.decode() for k, v in (pf.metadata.metadata or {}).items()}
    assert meta[META_TABLE] == "core.documents_p2026_06"
    assert meta[META_FINGERPRINT] == archive.schema_fingerprint
    columns = json.loads(meta[META_COLUMNS])
    assert columns[0] == ["source", "text", False] and ["title", "text", True] in columns
    assert [(n, t) for n, t, _ in columns] == archive.columns
    assert ArchiveFile.from_dict(json.loads(json.dumps(archive.as_dict()))) == archive  # XCom / manifest form
    # row groups of exactly batch_rows rows (34 rows: 10, 10, 10, 4), compressed with zstd
    assert [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)] == [10, 10, 10, 4]
    assert pf.metadata.row_group(0).column(0).compression == "ZSTD"
    schema = pf.schema_arrow
    assert schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("score").type == pa.int32() and schema.field("raw_response_id").type == pa.int64()
    assert not schema.field("source").nullable and schema.field("title").nullable
    frame = pd_read(tmp_path / "docs.parquet")
    assert len(frame) == 34
    assert (
        json.loads(frame.set_index("external_id").loc["t3_unicode", "payload"])["big"] == 12345678901234567890
    )
    # primary key order
    keys = list(zip(frame["source"], frame["external_id"], strict=True))
    assert keys == sorted(keys)


def pd_read(path: Any) -> Any:
    import pandas as pd

    return pd.read_parquet(path)


# ------------------------------------------------------------------------------------------------
# corruption and drift: verify says what is wrong, restore refuses before writing
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def archived(wh: psycopg.Connection[Any], store: Store) -> tuple[ArchiveFile, ObjectStoragePath]:
    insert_documents(wh, n_bulk=300)
    dest = store("core/documents/2026/06/documents_p2026_06.parquet")
    archive = write_archive(wh, "core.documents_p2026_06", dest, batch_rows=64)
    assert verify_archive(wh, archive).ok
    return archive, dest


def flip_data_byte(dest: ObjectStoragePath) -> None:
    """Flip one byte in the middle of the compressed pages of the largest column chunk (the body)."""
    data = bytearray(dest.read_bytes())
    local = dest.parent / "probe.parquet"
    local.write_bytes(bytes(data))
    with local.open("rb") as fh:
        meta = pq.ParquetFile(fh).metadata
    chunk = max(
        (meta.row_group(0).column(i) for i in range(meta.num_columns)), key=lambda c: c.total_compressed_size
    )
    offset = chunk.data_page_offset + chunk.total_compressed_size // 2
    data[offset] ^= 0xFF
    local.unlink()
    dest.write_bytes(bytes(data))


def test_truncated_object_is_detected(wh: psycopg.Connection[Any], archived: Any) -> None:
    archive, dest = archived
    data = dest.read_bytes()
    dest.write_bytes(data[: len(data) // 2])
    check = verify_archive(wh, archive)
    assert not check.ok
    assert f"object truncated: {len(data) // 2:,} of {len(data):,} bytes" in check.problems
    assert any(p.startswith("sha256 mismatch") for p in check.problems)
    assert check.rows_in_file is None and check.rows_in_db == archive.rows


def test_flipped_byte_is_detected(wh: psycopg.Connection[Any], archived: Any) -> None:
    archive, dest = archived
    flip_data_byte(dest)
    check = verify_archive(wh, archive)
    assert not check.ok
    assert any(p.startswith("sha256 mismatch: expected " + archive.sha256[:12]) for p in check.problems)
    assert any("decode failed" in p for p in check.problems), check.problems


def test_row_changed_after_archiving_is_detected(wh: psycopg.Connection[Any], archived: Any) -> None:
    archive, _ = archived
    wh.execute("UPDATE core.documents SET body = body || '!' WHERE external_id = 'a_17'")
    check = verify_archive(wh, archive)
    assert not check.ok
    assert check.problems == ["content differs: 1 rows only in the database, 1 only in the archive"]


def test_row_deleted_after_archiving_is_detected(wh: psycopg.Connection[Any], archived: Any) -> None:
    archive, _ = archived
    wh.execute("DELETE FROM core.documents WHERE external_id = 't3_nulls'")
    check = verify_archive(wh, archive)
    assert not check.ok
    assert check.rows_in_db == archive.rows - 1 and check.rows_in_file == archive.rows
    assert (
        f"rows in the database: {archive.rows - 1:,}, the archive record says {archive.rows:,}"
        in check.problems
    )
    assert "content differs: 0 rows only in the database, 1 only in the archive" in check.problems


def test_missing_object_is_detected(wh: psycopg.Connection[Any], archived: Any) -> None:
    archive, dest = archived
    dest.unlink()
    check = verify_archive(wh, archive)
    assert not check.ok
    assert check.problems == [f"object missing: {archive.path}"]


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_restore_of_a_corrupted_archive_writes_nothing(
    wh: psycopg.Connection[Any], archived: Any, damage: str
) -> None:
    archive, dest = archived
    if damage == "truncate":
        dest.write_bytes(dest.read_bytes()[:-100])
    else:
        flip_data_byte(dest)
    wh.execute("TRUNCATE core.documents_p2026_06")
    with pytest.raises(ArchiveCorrupt, match="truncated" if damage == "truncate" else "sha256 mismatch"):
        restore_archive(wh, dest, "core.documents", expected=archive)
    assert count(wh, "core.documents") == 0
    # without the record to compare with, the damage is still caught (footer or page checksum) mid-COPY
    with pytest.raises(ArchiveCorrupt):
        restore_archive(wh, dest, "core.documents")
    assert count(wh, "core.documents") == 0


def test_restore_maps_columns_by_name_and_refuses_mismatches(
    wh: psycopg.Connection[Any], archived: Any
) -> None:
    archive, dest = archived
    wh.execute("CREATE TABLE public.archive_types_test AS SELECT * FROM core.documents_p2026_06 WITH NO DATA")
    wh.execute("ALTER TABLE public.archive_types_test DROP COLUMN url")
    with pytest.raises(
        ValueError, match=r"the archive has column\(s\) url that public.archive_types_test no"
    ):
        restore_archive(wh, dest, "public.archive_types_test", expected=archive)
    wh.execute("ALTER TABLE public.archive_types_test ADD COLUMN url varchar(300), ADD COLUMN extra int")
    with pytest.raises(
        ValueError, match=r"column url: character varying\(300\) in public.archive_types_test"
    ):
        restore_archive(wh, dest, "public.archive_types_test", expected=archive)
    wh.execute(
        "ALTER TABLE public.archive_types_test ALTER COLUMN url TYPE text, ALTER COLUMN extra SET NOT NULL"
    )
    with pytest.raises(
        ValueError, match=r"lacks column\(s\) extra of public.archive_types_test, which are NOT"
    ):
        restore_archive(wh, dest, "public.archive_types_test", expected=archive)
    assert count(wh, "public.archive_types_test") == 0
    wh.execute("ALTER TABLE public.archive_types_test DROP COLUMN extra")
    # other column order than the archive: mapped by name
    assert restore_archive(wh, dest, "public.archive_types_test", expected=archive) == archive.rows
    assert rows_as_text(
        wh,
        "(SELECT " + ", ".join(c for c, _ in archive.columns) + " FROM public.archive_types_test)",
        "source, external_id",
    ) == rows_as_text(wh, "core.documents_p2026_06", "source, external_id")


# ------------------------------------------------------------------------------------------------
# the table changed since the archive: added nullable columns are fine, other changes are refused
# ------------------------------------------------------------------------------------------------

SCRATCH = "public.archive_types_test"  # dropped by the wh fixture; no other test's table is altered
SCRATCH_COLUMNS = "id, title, score, tags, seen"


def scratch_archive(wh: psycopg.Connection[Any], store: Store) -> tuple[ArchiveFile, ObjectStoragePath]:
    """A scratch table of 40 rows (NULLs, numeric scale, text[]), archived and verified as it is now."""
    wh.execute(
        f"CREATE TABLE {SCRATCH} (id integer PRIMARY KEY, title text, score numeric(8,2), tags text[],"
        " seen timestamptz NOT NULL)"
    )
    wh.execute(
        f"INSERT INTO {SCRATCH} SELECT g, CASE WHEN g % 5 <> 0 THEN 'title ' || g || ', \"q\"' END,"
        " round(g / 3.0, 2), ARRAY['a', NULL, g::text], '2026-06-01'::timestamptz + g * interval '61.5 s'"
        " FROM generate_series(1, 40) g"
    )
    dest = store("public/archive_types_test/2026/06/scratch.parquet")
    archive = write_archive(wh, SCRATCH, dest, batch_rows=16)
    assert archive.rows == 40
    check = verify_archive(wh, archive)
    assert check.ok, check.problems
    return archive, dest


def test_restore_fills_columns_added_since_the_archive(
    wh: psycopg.Connection[Any], store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    archive, dest = scratch_archive(wh, store)
    before = rows_as_text(wh, f"(SELECT {SCRATCH_COLUMNS} FROM {SCRATCH})", "id")
    # a migration adds a nullable column without a default and a NOT NULL one with a default
    wh.execute(
        f"ALTER TABLE {SCRATCH} ADD COLUMN digest text, ADD COLUMN checked boolean NOT NULL DEFAULT false"
    )
    # verify_archive is not relaxed: it compares with the table as it was archived (right after writing)
    assert verify_archive(wh, archive).problems == [f"the columns of {SCRATCH} differ from the archive's"]
    wh.execute(f"TRUNCATE {SCRATCH}")

    # the integrity checks are as strict as before, whatever the columns: nothing is written
    current = {"schema_fingerprint": write_archive(wh, SCRATCH, store("now.parquet")).schema_fingerprint}
    for bad, message in (
        (current, "schema fingerprint in the file differs"),
        ({"rows": archive.rows + 1}, "rows in the file: 40, expected 41"),
        ({"sha256": "0" * 64}, "sha256 mismatch"),
        ({"bytes": archive.bytes - 1}, "larger than recorded"),
    ):
        with pytest.raises(ArchiveCorrupt, match=message):
            restore_archive(wh, dest, SCRATCH, expected=dataclasses.replace(archive, **bad))
        assert count(wh, SCRATCH) == 0

    added: list[str] = []
    with caplog.at_level(logging.INFO, logger="pulse.archive.parquet"), wh.transaction():
        assert restore_archive(wh, dest, SCRATCH, expected=archive, batch_rows=16, added=added) == 40
    assert rows_as_text(wh, f"(SELECT {SCRATCH_COLUMNS} FROM {SCRATCH})", "id") == before
    assert wh.execute(
        f"SELECT count(*), count(digest), count(*) FILTER (WHERE NOT checked) FROM {SCRATCH}"
    ).fetchone() == (40, 0, 40)
    assert added == ["digest", "checked"]
    assert (
        "restored with 2 column(s) added since the archive: digest (NULL), checked (default false)"
        in caplog.text
    )
    # archived again, the rows carry the new columns and verify against today's table
    again = write_archive(wh, SCRATCH, store("again.parquet"))
    assert [c for c, _ in again.columns][-2:] == ["digest", "checked"]
    assert verify_archive(wh, again).ok


def test_restore_of_document_features_archived_before_migration_0012(
    wh: psycopg.Connection[Any], store: Store
) -> None:
    """The case that broke: a June features partition archived before 0012 added the two digest columns."""
    assert {"content_sha256", "text_sha256"} <= {
        n for n, _, _ in relation_columns(wh, "enriched.document_features")
    }
    # the partition as it was before 0012 (LIKE keeps the column order, types, NOT NULL and collations)
    wh.execute(f"CREATE TABLE {SCRATCH} (LIKE enriched.document_features INCLUDING DEFAULTS)")
    wh.execute(f"ALTER TABLE {SCRATCH} DROP COLUMN content_sha256, DROP COLUMN text_sha256")
    wh.execute(
        f"INSERT INTO {SCRATCH} (source, external_id, created_at, enrichment_version, language,"
        " language_confidence, sentiment_vader, emotions, keywords, sarcasm)"
        " SELECT 'reddit', 't3_' || g, '2026-06-10 10:00:00.5+00'::timestamptz + g * interval '1 hour', 'v1',"
        " 'en', g / 7.0, -g / 9.0, jsonb_build_object('joy', g), ARRAY['k' || g, NULL], g % 2 = 0"
        " FROM generate_series(1, 25) g"
    )
    dest = store("enriched/document_features/2026/06/document_features_p2026_06.parquet")
    archive = write_archive(wh, SCRATCH, dest)
    old = [c for c, _ in archive.columns]
    assert "content_sha256" not in old and "text_sha256" not in old
    month(wh, "enriched.document_features", "2026-06-01")  # recreated empty, as restore_period does
    with wh.transaction():
        assert restore_archive(wh, dest, "enriched.document_features", expected=archive) == 25
    listed = ", ".join(old)
    restored = rows_as_text(wh, f"(SELECT {listed} FROM enriched.document_features_p2026_06)", "external_id")
    assert restored == rows_as_text(wh, f"(SELECT {listed} FROM {SCRATCH})", "external_id")
    assert wh.execute(
        "SELECT count(*), count(content_sha256), count(text_sha256) FROM enriched.document_features"
    ).fetchone() == (25, 0, 0)


def test_restore_refuses_a_not_null_column_added_without_default(
    wh: psycopg.Connection[Any], store: Store
) -> None:
    archive, dest = scratch_archive(wh, store)
    wh.execute(f"TRUNCATE {SCRATCH}")
    wh.execute(f"ALTER TABLE {SCRATCH} ADD COLUMN digest text, ADD COLUMN required_n integer NOT NULL")
    with pytest.raises(ValueError, match="NOT NULL without a default") as refused:
        restore_archive(wh, dest, SCRATCH, expected=archive)
    assert str(refused.value) == (
        f"cannot restore {dest} into {SCRATCH}: the archive lacks column(s) required_n of {SCRATCH}, which are"
        " NOT NULL without a default (added since the archive: give them a default or make them nullable)"
    )
    assert count(wh, SCRATCH) == 0
    # with a default the same column is accepted and takes it
    wh.execute(f"ALTER TABLE {SCRATCH} ALTER COLUMN required_n SET DEFAULT 7")
    assert restore_archive(wh, dest, SCRATCH, expected=archive) == 40
    assert wh.execute(
        f"SELECT count(digest), min(required_n), max(required_n) FROM {SCRATCH}"
    ).fetchone() == (
        0,
        7,
        7,
    )


def test_restore_refuses_a_dropped_column_and_a_changed_type(
    wh: psycopg.Connection[Any], store: Store
) -> None:
    archive, dest = scratch_archive(wh, store)
    wh.execute(f"TRUNCATE {SCRATCH}")
    wh.execute(f"ALTER TABLE {SCRATCH} DROP COLUMN title")
    with pytest.raises(ValueError, match=rf"the archive has column\(s\) title that {SCRATCH} no longer has"):
        restore_archive(wh, dest, SCRATCH, expected=archive)
    assert count(wh, SCRATCH) == 0
    # every reason at once, each naming its column
    wh.execute(
        f"ALTER TABLE {SCRATCH} ALTER COLUMN score TYPE numeric(10,2), DROP COLUMN tags,"
        " ADD COLUMN must integer NOT NULL, ADD COLUMN fine text"
    )
    with pytest.raises(ValueError, match=f"cannot restore {dest} into {SCRATCH}: ") as refused:
        restore_archive(wh, dest, SCRATCH, expected=archive)
    message = str(refused.value)
    assert f"the archive has column(s) title, tags that {SCRATCH} no longer has" in message
    assert f"column score: numeric(10,2) in {SCRATCH}, numeric(8,2) in the archive" in message
    assert f"the archive lacks column(s) must of {SCRATCH}, which are NOT NULL without a default" in message
    assert "fine" not in message
    assert count(wh, SCRATCH) == 0


def test_archive_needs_a_connection_outside_a_transaction(wh: psycopg.Connection[Any], tmp_path: Any) -> None:
    insert_documents(wh, n_bulk=1)
    with wh.transaction(), pytest.raises(ValueError, match="not inside a transaction"):
        write_archive(wh, "core.documents_p2026_06", ObjectStoragePath(f"file://{tmp_path}/x.parquet"))
    assert not (tmp_path / "x.parquet").exists()


def test_failed_write_leaves_no_object(wh: psycopg.Connection[Any], store: Store) -> None:
    wh.execute("CREATE TABLE public.archive_types_test (id integer PRIMARY KEY, arr text[])")
    wh.execute("INSERT INTO public.archive_types_test VALUES (1, '{a}'), (2, '{{a,b},{c,d}}')")
    dest = store("bad.parquet")
    with pytest.raises(ValueError, match="multi-dimensional"):
        write_archive(wh, "public.archive_types_test", dest)
    assert not dest.exists()


def test_value_arrow_cannot_hold_is_refused_naming_the_column(
    wh: psycopg.Connection[Any], tmp_path: Any
) -> None:
    wh.execute("CREATE TABLE public.archive_types_test (id integer PRIMARY KEY, ts timestamptz)")
    wh.execute("INSERT INTO public.archive_types_test VALUES (1, now()), (2, 'infinity')")
    dest = ObjectStoragePath(f"file://{tmp_path}/inf.parquet")
    with pytest.raises(ValueError, match=r"column ts \(timestamp with time zone\).*'infinity'"):
        write_archive(wh, "public.archive_types_test", dest)
    assert not dest.exists()
    assert wh.execute("SELECT 1").fetchone() == (1,)  # the connection is usable afterwards


def test_empty_month_on_a_non_autocommit_connection(
    wh: psycopg.Connection[Any], warehouse: dict[str, Any], store: Store
) -> None:
    part = month(wh, "core.documents", "2026-07-01")
    with psycopg.connect(**warehouse) as conn:  # a DAG task's usual connection: autocommit off
        archive = write_archive(conn, part, store("empty.parquet"))
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert archive.rows == 0
        check = verify_archive(conn, archive)
        assert check.ok, check.problems
        assert (check.rows_in_file, check.rows_in_db) == (0, 0)
        assert restore_archive(conn, store("empty.parquet"), "core.documents", expected=archive) == 0
        conn.commit()
        wh.execute(
            f"INSERT INTO core.documents ({DOC_COLUMNS}) VALUES ('x', '1', 'tweet', NULL, '2026-07-02 00:00+00',"
            " NULL, NULL, NULL, NULL, NULL, '{}', '{}', 'h', 1, 'r', now(), now())"
        )
        check = verify_archive(conn, archive)
        assert not check.ok
        assert "content differs: 1 rows only in the database, 0 only in the archive" in check.problems
