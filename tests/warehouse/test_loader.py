"""The document loader against the real warehouse: bad values, dedupe, change detection, atomic batches."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from pulse.records import Document, Reason, RecordRefused, Refusal
from pulse.warehouse.loader import load_refusal, quarantine, upsert_documents

T0 = datetime(2026, 11, 28, 11, 30, tzinfo=UTC)


def doc(i: int, **changes: Any) -> Document:
    base = Document(
        source="test",
        external_id=f"t_{i}",
        kind="post",
        created_at=T0 + timedelta(seconds=i),
        channel="python",
        title=f"title {i}",
        body=f"body {i}",
        url=f"https://example.com/{i}",
        author_pseudonym="p" * 64,
        score=i,
        metrics={"comments": i},
        payload={"flair": "News", "n": i},
    )
    return replace(base, **changes)


def record(i: int, **changes: Any) -> Document | Refusal:
    """``doc(i, **changes)``, or the record model's refusal of it (what a parser hands the loader)."""
    try:
        return doc(i, **changes)
    except RecordRefused as exc:
        return exc.refusal


@pytest.fixture
def conn(warehouse: dict[str, Any]) -> Any:
    with psycopg.connect(**warehouse, autocommit=True) as c:
        c.execute("DELETE FROM core.documents WHERE source = 'test'")
        c.execute("DELETE FROM quality.quarantine WHERE source = 'test'")
        yield c
        c.execute("DELETE FROM core.documents WHERE source = 'test'")
        c.execute("DELETE FROM quality.quarantine WHERE source = 'test'")


def stored(conn: Any) -> dict[str, tuple[Any, ...]]:
    rows = conn.execute(
        "SELECT external_id, body, score, payload, content_sha256, loaded_at, raw_response_id, xmin::text, xmax::text "
        "FROM core.documents WHERE source = 'test'"
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_bad_values_are_refused_never_changed_and_the_rest_of_the_batch_loads(conn: Any) -> None:
    docs = [
        record(0),
        record(1, body="before\x00after"),  # NUL: PostgreSQL text cannot hold it
        record(2, title="lone \ud800 surrogate"),  # not a character: refused, not replaced by U+FFFD
        record(3, created_at=datetime(1900, 1, 1, tzinfo=UTC)),  # out of the sane range
        record(4, score=2**40),  # does not fit integer
        record(5, payload={"big": 2**80}),  # big integer kept exactly (jsonb numbers are numeric)
        record(6, payload={"x": "nul\x00inside"}),  # jsonb refuses \u0000
        record(7, external_id="k" * 5000),  # too long for a B-tree index entry
        record(8, created_at=datetime(2026, 11, 28, 11, 30)),  # naive: unknown time zone
        record(9, metrics={"ratio": float("inf")}),  # JSON has no infinity: refused, not nulled
        record(10, payload={"x": float("nan")}),  # nor NaN
        record(11, score=12.5),  # a fraction in an integer column: refused, not truncated
        record(12, score=12.0),  # an integral float is the integer 12: no change of value
    ]
    # The record model refuses them when they are built; the load refuses them with the same reasons.
    built = {i: d.reason for i, d in enumerate(docs) if isinstance(d, Refusal)}
    result = upsert_documents(conn, [(d, 100 + i) for i, d in enumerate(docs)], "run_bad")
    refused = {r.position: r.reason for r in result.rejected}
    assert refused == built
    assert refused == {
        1: Reason.TEXT_NUL_BYTE,
        2: Reason.BAD_FIELD,
        3: Reason.BAD_TIMESTAMP,
        4: Reason.NUMBER_OUT_OF_RANGE,
        6: Reason.TEXT_NUL_BYTE,
        7: Reason.BAD_FIELD,
        8: Reason.BAD_TIMESTAMP,
        9: Reason.NUMBER_OUT_OF_RANGE,
        10: Reason.BAD_FIELD,
        11: Reason.BAD_FIELD,
    }
    rows = stored(conn)
    assert sorted(rows) == ["t_0", "t_12", "t_5"]
    assert result.loaded == result.changed == 3
    assert rows["t_5"][2]["big"] == 2**80
    assert rows["t_12"][1] == 12
    # Every refusal becomes a quarantine row with its reason; quarantine itself never chokes on the values
    # and keeps them as evidence, escaped.
    rejected = [(load_refusal(r.position, r, docs[r.position]), 100 + r.position) for r in result.rejected]
    assert quarantine(conn, "test", rejected, "run_bad") == len(refused)
    reasons = dict(
        conn.execute(
            "SELECT item_index, reason_code FROM quality.quarantine WHERE source = 'test'"
        ).fetchall()
    )
    assert reasons == {p: str(r) for p, r in refused.items()}
    items = dict(
        conn.execute("SELECT item_index, item FROM quality.quarantine WHERE source = 'test'").fetchall()
    )
    assert items[2]["title"] == "lone \\ud800 surrogate"
    assert items[1]["body"] == "before\\u0000after"
    assert items[10]["payload"] == {"x": "NaN"}


def test_duplicates_in_a_batch_keep_the_copy_from_the_newest_page(conn: Any) -> None:
    docs = [(doc(1, body="old"), 5), (doc(1, body="newest"), 9), (doc(1, body="middle"), 7)]
    result = upsert_documents(conn, docs, "run_dup")
    assert (result.loaded, result.changed) == (1, 1)
    assert stored(conn)["t_1"][0] == "newest"


def test_unchanged_rows_are_not_rewritten_and_changed_rows_are(conn: Any) -> None:
    docs = [(doc(i), 1) for i in range(50)]
    first = upsert_documents(conn, docs, "run_1")
    assert (first.loaded, first.changed) == (50, 50)
    before = stored(conn)
    again = upsert_documents(conn, [(d, 2) for d, _ in docs], "run_2")
    assert (again.loaded, again.changed) == (50, 0)
    assert stored(conn) == before  # same xmin and xmax: not rewritten, not even locked
    edited = [(doc(i, body="edited") if i < 5 else doc(i), 3) for i in range(50)]
    third = upsert_documents(conn, edited, "run_3")
    assert (third.loaded, third.changed) == (50, 5)
    after = stored(conn)
    assert {k for k in after if after[k] != before[k]} == {f"t_{i}" for i in range(5)}
    assert all(after[f"t_{i}"][5] == 3 for i in range(5))  # lineage points at the newer page
    first_loaded = conn.execute(
        "SELECT count(DISTINCT first_loaded_at) FROM core.documents WHERE source = 'test'"
    ).fetchone()[0]
    assert first_loaded == 1


def test_each_batch_is_one_transaction(conn: Any) -> None:
    """A failure inside a batch leaves none of that batch; earlier batches stay."""
    conn.execute(
        """
        CREATE FUNCTION pg_temp.boom() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.external_id = 't_3' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$
        """
    )
    conn.execute("SELECT ops.ensure_month_partitions('core.documents', %s, %s)", (T0, T0))
    part = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'core.documents'::regclass AND c.relname = 'documents_p2026_11'"
    ).fetchone()[0]
    conn.execute(
        f"CREATE TRIGGER boom BEFORE INSERT ON core.{part} FOR EACH ROW EXECUTE FUNCTION pg_temp.boom()"
    )
    try:
        with pytest.raises(psycopg.errors.RaiseException):
            upsert_documents(conn, [(doc(i), 1) for i in range(6)], "run_boom", batch_size=2)
    finally:
        conn.execute(f"DROP TRIGGER boom ON core.{part}")
    assert sorted(stored(conn)) == ["t_0", "t_1"]  # batch 1 committed; batch 2 (t_2, t_3) rolled back


def test_a_month_without_partition_gets_one_and_nothing_lands_in_default(conn: Any) -> None:
    old = doc(1, created_at=datetime(2019, 5, 17, 8, tzinfo=UTC))
    result = upsert_documents(conn, [(old, 1)], "run_old")
    assert result.changed == 1
    where = conn.execute(
        "SELECT tableoid::regclass::text FROM core.documents WHERE source = 'test'"
    ).fetchone()[0]
    assert where == "core.documents_p2019_05"
    assert conn.execute("SELECT count(*) FROM core.documents_default").fetchone()[0] == 0


def test_the_loaders_column_types_are_the_tables(conn: Any) -> None:
    """The value rules the records apply per column (pulse.records.COLUMN_TYPES, checked by
    pulse.warehouse.pgtypes) describe the real tables: every loaded column, with its PostgreSQL type."""
    from pulse.records import COLUMN_TYPES, NOT_NULL

    pg_type = {
        "key": "text",
        "text": "text",
        "int4": "integer",
        "numeric": "numeric",
        "float8": "double precision",
        "timestamptz": "timestamp with time zone",
        "event_time": "timestamp with time zone",
        "jsonb": "jsonb",
    }
    lineage = {"content_sha256", "raw_response_id", "dag_run_id", "first_loaded_at", "loaded_at"}
    for table, columns in COLUMN_TYPES.items():
        schema, name = table.split(".")
        actual = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = %s",
                (schema, name),
            ).fetchall()
        )
        assert set(columns) == set(actual) - lineage, table
        assert {c: pg_type[k] for c, k in columns.items()} == {c: actual[c] for c in columns}, table
        # Columns PostgreSQL holds NOT NULL: the key and event-time columns, and those in NOT_NULL.
        not_null = {
            c
            for (c,) in conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = %s AND is_nullable = 'NO'",
                (schema, name),
            ).fetchall()
        }
        keyed = {c for c, k in columns.items() if k in ("key", "event_time")}
        assert not_null - lineage == keyed | NOT_NULL[table], table


def test_a_refused_copy_is_weighed_like_any_copy_of_its_item(conn: Any) -> None:
    """The newest copy of an item wins, refused or not: a refused newest copy quarantines the item and loads
    nothing of it; a refused older copy loses to the newer one but its creation time still counts as first
    seen (the loader's behaviour from before the record model, when it refused such rows itself)."""
    from pulse.records import rejected
    from pulse.warehouse.loader import ParsedBatch

    def parsed(i: int, **changes: Any) -> Document | Any:
        try:
            return doc(i, **changes)
        except RecordRefused as exc:
            return rejected(0, exc, None, None, frozenset(), lambda h: h)

    batch = ParsedBatch()
    batch.add(parsed(1, body="older, fine"), 10, "a1")
    batch.add(parsed(1, payload={"x": float("nan")}), 20, "a2")  # newest copy refused
    batch.add(parsed(2, created_at=T0 - timedelta(hours=1), title="x\x00"), 10, "b1")  # oldest copy refused
    batch.add(parsed(2, body="newest, fine"), 20, "b2")
    assert [r for r, _ in batch.refused] and len(batch.docs) == 2 and not batch.rejected
    result, refused = batch.upsert(conn, "run_weigh")
    assert [(ref, rej.reason, rej.item_key, raw_id) for ref, rej, raw_id in refused] == [
        ("a2", Reason.BAD_FIELD, "t_1", 20)
    ]
    assert refused[0][1].item["external_id"] == "t_1" and refused[0][1].external_id == "t_1"
    assert sorted(stored(conn)) == ["t_2"]
    assert stored(conn)["t_2"][0] == "newest, fine"
    kept = conn.execute("SELECT created_at FROM core.documents WHERE source = 'test'").fetchone()[0]
    assert kept == T0 - timedelta(hours=1)  # the refused older copy's time
    assert (result.loaded, result.changed, result.time_changes) == (1, 1, 1)
    conn.execute("DELETE FROM quality.created_at_changes WHERE source = 'test'")
