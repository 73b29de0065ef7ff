"""raw.api_responses partitioned by UTC day (migration 0013): partitions made on demand and ahead, the held
default partition, and what a lookup by page id costs. Retention and replay after a drop: tests/archive/
test_retention.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import truncate_warehouse


@pytest.fixture
def conn(warehouse: dict[str, Any]) -> Iterator[Any]:
    import psycopg

    with psycopg.connect(**warehouse, autocommit=True) as c:
        truncate_warehouse(c)
        yield c
        truncate_warehouse(c)


def _day_partitions(conn: Any) -> set[str]:
    return {
        r[0]
        for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'raw.api_responses'::regclass AND c.relname <> 'api_responses_held'"
        ).fetchall()
    }


def _days(conn: Any, offsets: range) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT 'api_responses_p' || to_char((now() AT TIME ZONE 'UTC') + o * interval '1 day', 'YYYY_MM_DD')"
            " FROM unnest(%s::int[]) o",
            (list(offsets),),
        ).fetchall()
    ]


def _page() -> Any:
    from pulse.sources.base import Page, Stream

    return Page(
        stream=Stream("new:python", "/r/python/new"),
        page_no=0,
        endpoint="/r/python/new",
        params={"limit": 100, "token": "secret"},
        status_code=200,
        headers={"Authorization": "x", "X-Ratelimit-Remaining": "9"},
        body=b'{"data": {"children": []}}',
        item_count=0,
    )


def test_raw_store_creates_its_day_partitions_on_demand(conn: Any) -> None:
    from pulse.warehouse.raw import RawStore, RunContext
    from pulse.windows import Window

    today, tomorrow = _days(conn, range(2))
    for part in (today, tomorrow):
        conn.execute(f"DROP TABLE IF EXISTS raw.{part}")
    assert not {today, tomorrow} & _day_partitions(conn)
    run = RunContext(
        "ingest_reddit",
        "r1",
        1,
        Window(datetime(2026, 11, 28, 11, tzinfo=UTC), datetime(2026, 11, 28, 12, tzinfo=UTC)),
    )
    page_id = RawStore(conn).store("reddit", _page(), run)
    assert {today, tomorrow} <= _day_partitions(conn)
    where = conn.execute("SELECT tableoid::regclass::text FROM raw.api_responses WHERE id = %s", (page_id,))
    assert where.fetchone() == (f"raw.{today}",)  # its day, not the held partition
    assert conn.execute("SELECT count(*) FROM raw.api_responses_held").fetchone() == (0,)


def test_maintenance_keeps_days_ahead_and_a_stray_page_moves_out_of_held(conn: Any) -> None:
    from pulse.warehouse.partitions import DAYS_AHEAD, default_rows, ensure_ahead

    ahead = _days(conn, range(DAYS_AHEAD + 1))
    conn.execute(f"DROP TABLE IF EXISTS raw.{ahead[-1]}")
    now = conn.execute("SELECT now()").fetchone()[0]
    assert ensure_ahead(conn, now)["raw.api_responses"] == 1
    assert set(ahead) <= _day_partitions(conn)
    # A page of a day without a partition lands in the held partition, which the default-partition watch
    # leaves alone; creating its day's partition moves it there.
    conn.execute(
        "INSERT INTO raw.api_responses (source, stream, endpoint, page_no, status_code, body, body_sha256,"
        " is_valid, fetched_at) VALUES ('reddit', 's', '/e', 0, 200, '{}', 'h', true, '2001-02-03 04:05+00')"
    )
    assert conn.execute("SELECT count(*) FROM raw.api_responses_held").fetchone() == (1,)
    assert all(d.table != "raw.api_responses" for d in default_rows(conn))
    conn.execute("SELECT ops.ensure_day_partitions('raw.api_responses', '2001-02-03', '2001-02-03')")
    assert conn.execute("SELECT count(*) FROM raw.api_responses_held").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM raw.api_responses_p2001_02_03").fetchone() == (1,)
    conn.execute("DROP TABLE raw.api_responses_p2001_02_03")


def test_a_lookup_by_page_id_probes_each_day_by_index(conn: Any) -> None:
    """Quarantine rows, replay and lineage point at a page by id alone: no partition pruning, one primary-key
    probe per partition (about 20 with 14 hot days), never a scan."""
    import json

    conn.execute("SELECT ops.ensure_day_partitions('raw.api_responses', now() - interval '14 days', now())")
    conn.execute(
        "INSERT INTO raw.api_responses (source, stream, endpoint, page_no, status_code, body, body_sha256,"
        " is_valid, fetched_at) SELECT 'reddit', 's', '/e', g, 200, repeat('x', 500), 'h', true,"
        " now() - (g % 14) * interval '1 day' FROM generate_series(1, 20000) g"
    )
    conn.execute("ANALYZE raw.api_responses")
    plan = conn.execute(
        "EXPLAIN (FORMAT JSON) SELECT id, body FROM raw.api_responses WHERE id = ANY(%s)", ([5, 500, 5000],)
    ).fetchone()[0]
    plan = plan if isinstance(plan, list) else json.loads(plan)
    scans: list[tuple[str, str]] = []

    def walk(node: dict[str, Any]) -> None:
        if "Relation Name" in node:
            scans.append((node["Node Type"], node["Relation Name"]))
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    full = {r[0] for r in conn.execute("SELECT DISTINCT tableoid::regclass::text FROM raw.api_responses")}
    assert len(full) == 14
    probed = {
        f"raw.{rel}" for kind, rel in scans if kind in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")
    }
    assert full <= probed and not [rel for kind, rel in scans if kind == "Seq Scan" and f"raw.{rel}" in full]
    rows = conn.execute("SELECT id FROM raw.api_responses WHERE id = ANY(%s) ORDER BY id", ([5, 500, 5000],))
    assert [r[0] for r in rows] == [5, 500, 5000]
