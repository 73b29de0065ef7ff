"""The retention and restore DAGs end to end: archive, verify, drop, restore, with no row lost.

Real PostgreSQL, real Parquet objects in a local folder and in the moto S3 server over HTTP. PULSE_NOW is
2026-11-28: with 90 hot days, June 2026 is old and September is hot; with 14 raw days, pages fetched on
2026-11-08 are old and those of 2026-11-25 are hot.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import dag_test, truncate_warehouse

pytestmark = pytest.mark.e2e

DOCS = 50
SNAPSHOT = "SELECT t::text FROM {table} t ORDER BY 1"


def _seed(db: Any) -> None:
    for table in ("core.documents", "enriched.document_features"):
        for month in ("2026-06-01", "2026-09-01"):
            db.execute("SELECT ops.ensure_month_partitions(%s::regclass, %s, %s)", (table, month, month))
    for month in ("2026-06", "2026-09"):
        db.execute(
            "INSERT INTO core.documents (source, external_id, kind, created_at, title, body, author_pseudonym,"
            " score, metrics, payload, content_sha256, raw_response_id, dag_run_id)"
            " SELECT 'reddit', %s || g, 'post', (%s || '-10 08:00+00')::timestamptz + g * interval '1 minute',"
            " 'title ' || g, 'body ✓ ' || repeat('x', g), 'p' || g, g, jsonb_build_object('c', g),"
            " '{\"k\": [1.5, null]}', md5(g::text), g, 'seed' FROM generate_series(1, %s) g",
            (f"t3_{month}_", month, DOCS),
        )
        db.execute(
            "INSERT INTO enriched.document_features (source, external_id, created_at, enrichment_version,"
            " sentiment_vader, emotions, keywords) SELECT source, external_id, created_at, 'v1', 0.25,"
            " '{\"joy\": 1}', ARRAY['a', 'b'] FROM core.documents WHERE external_id LIKE %s",
            (f"t3_{month}_%",),
        )
    for day in ("2026-11-08", "2026-11-25"):
        for i in range(3):
            db.execute(
                "INSERT INTO raw.api_responses (source, stream, endpoint, page_no, status_code, body, body_sha256,"
                " is_valid, fetched_at) VALUES ('reddit', 's', '/r/new', %s, 200, '{}', 'h', true, %s)",
                (i, f"{day} 10:0{i}+00"),
            )
    old_page = db.execute("SELECT min(id) FROM raw.api_responses").fetchone()[0]
    db.execute(
        "INSERT INTO quality.quarantine (source, item_key, raw_response_id, item_index, reason_code, dag_run_id)"
        " VALUES ('reddit', 'k', %s, 0, 'bad_timestamp', 'r')",
        (old_page,),
    )


@pytest.fixture(params=["local", "s3"])
def archive_url(
    request: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    db: Any,
    dagbag: Any,
    airflow_db: None,
    slack: Any,
) -> Iterator[str]:
    if request.param == "local":
        url = f"file://{tmp_path}/archive"
        monkeypatch.delenv("PULSE_ARCHIVE_CONN_ID", raising=False)
    else:
        s3 = request.getfixturevalue("s3")
        url = f"s3://{s3['bucket']}/archive-{tmp_path.name}"
        monkeypatch.setenv("PULSE_ARCHIVE_CONN_ID", s3["conn_id"])
    monkeypatch.setenv("PULSE_ARCHIVE_URL", url)
    truncate_warehouse(db)
    _seed(db)
    yield url
    truncate_warehouse(db)


def _exists(db: Any, relation: str) -> bool:
    return db.execute("SELECT to_regclass(%s)", (relation,)).fetchone()[0] is not None


def _retention(dagbag: Any, **conf: Any) -> Any:
    return dag_test(dagbag.dags["retention"], run_conf=conf)


def _restore(dagbag: Any, table: str, period: str) -> Any:
    return dag_test(
        dagbag.dags["restore_archive"], run_conf={"table": table, "period": period, "keep_days": 7}
    )


def test_archive_verify_drop_and_restore_lose_no_row(archive_url: str, db: Any, dagbag: Any) -> None:
    before = db.execute(SNAPSHOT.format(table="core.documents_p2026_06")).fetchall()
    features = db.execute(SNAPSHOT.format(table="enriched.document_features_p2026_06")).fetchall()
    assert len(before) == DOCS

    assert _retention(dagbag).state == "success"
    # June left PostgreSQL; September (hot) did not.
    assert not _exists(db, "core.documents_p2026_06") and not _exists(
        db, "enriched.document_features_p2026_06"
    )
    assert db.execute("SELECT count(*) FROM core.documents_p2026_09").fetchone()[0] == DOCS
    manifest = {
        r[0]: r[1:]
        for r in db.execute(
            "SELECT archived_relation, status, rows, location, sha256, schema_version FROM ops.archives"
        ).fetchall()
    }
    doc_row = manifest["core.documents_p2026_06"]
    head = db.execute("SELECT version_num FROM ops.alembic_version").fetchone()[0]
    assert doc_row[:2] == ("dropped", DOCS) and len(doc_row[3]) == 64 and doc_row[4] == head
    assert doc_row[2].endswith("/core/documents/2026/06/documents_p2026_06.parquet")
    assert "@" not in doc_row[2]  # a plain URL for people, without the Airflow connection id
    assert manifest["enriched.document_features_p2026_06"][:2] == ("dropped", DOCS)
    # Raw pages: the old day is archived and deleted, except the page an open quarantine row needs (it stays
    # hot and out of the archive until the quarantine row is resolved).
    assert manifest["raw.api_responses"][:2] == ("dropped", 2)
    kept = db.execute("SELECT fetched_at::date::text FROM raw.api_responses ORDER BY 1").fetchall()
    assert kept == [("2026-11-08",), ("2026-11-25",), ("2026-11-25",), ("2026-11-25",)]
    # Analysts see where June is.
    months = {
        (r[0], str(r[1])): r[2:]
        for r in db.execute(
            "SELECT relation, month, location, archived_rows, archive FROM analytics.data_months"
        )
    }
    assert months[("core.documents", "2026-06-01")][:2] == ("archived", DOCS)
    assert months[("core.documents", "2026-06-01")][2] == doc_row[2]
    assert months[("core.documents", "2026-09-01")][0] == "hot"
    # The archive itself holds the rows, readable with pyarrow.
    from airflow.sdk import ObjectStoragePath

    path = db.execute(
        "SELECT path FROM ops.archives WHERE archived_relation = 'core.documents_p2026_06'"
    ).fetchone()[0]
    import pyarrow.parquet as pq

    with ObjectStoragePath(path).open("rb") as fh:
        table = pq.read_table(fh)
    assert table.num_rows == DOCS and sorted(table.column("external_id").to_pylist())[0] == "t3_2026-06_1"

    # Restore June: the same rows come back, and retention leaves them hot while on hold.
    assert _restore(dagbag, "core.documents", "2026-06-01").state == "success"
    assert _restore(dagbag, "enriched.document_features", "2026-06-01").state == "success"
    assert db.execute(SNAPSHOT.format(table="core.documents_p2026_06")).fetchall() == before
    assert db.execute(SNAPSHOT.format(table="enriched.document_features_p2026_06")).fetchall() == features
    assert db.execute(
        "SELECT location FROM analytics.data_months WHERE relation = 'core.documents' AND month = '2026-06-01'"
    ).fetchone() == ("restored",)
    assert _retention(dagbag).state == "success"
    assert _exists(db, "core.documents_p2026_06")
    assert db.execute("SELECT count(*) FROM raw.api_responses").fetchone()[0] == 4  # the kept page stayed
    # Once its quarantine row is resolved, the kept page leaves too, as a second part of the same day.
    db.execute("UPDATE quality.quarantine SET resolved_at = now()")
    assert _retention(dagbag).state == "success"
    parts = db.execute(
        "SELECT rows, location FROM ops.archives WHERE relation = 'raw.api_responses' ORDER BY id"
    ).fetchall()
    assert [p[0] for p in parts] == [2, 1] and parts[1][1].endswith("api_responses_2026_11_08.part2.parquet")
    assert db.execute("SELECT count(*) FROM raw.api_responses").fetchone()[0] == 3
    # Restoring the raw day brings back both parts.
    assert _restore(dagbag, "raw.api_responses", "2026-11-08").state == "success"
    assert db.execute("SELECT count(*) FROM raw.api_responses").fetchone()[0] == 6

    # Once the hold ends, archiving again writes the identical object (same rows, same checksum).
    db.execute("UPDATE ops.archives SET keep_hot_until = '2026-11-28 12:00+00' WHERE status = 'restored'")
    assert _retention(dagbag).state == "success"
    shas = db.execute(
        "SELECT sha256 FROM ops.archives WHERE archived_relation = 'core.documents_p2026_06' ORDER BY id"
    ).fetchall()
    assert len(shas) == 2 and shas[0] == shas[1]
    paths = db.execute(
        "SELECT location FROM ops.archives WHERE archived_relation = 'core.documents_p2026_06' ORDER BY id"
    ).fetchall()
    assert paths[1][0].endswith("documents_p2026_06.part2.parquet")  # the first object is never overwritten


def test_a_corrupted_archive_blocks_the_drop(
    archive_url: str, db: Any, dagbag: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pulse.archive.parquet as parquet

    real_write = parquet.write_archive

    def write_then_truncate(conn: Any, relation: str, dest: Any, **kw: Any) -> Any:
        """Storage loses the second half of the object after the write (fault injection)."""
        archive = real_write(conn, relation, dest, **kw)
        data = dest.read_bytes()
        dest.write_bytes(data[: len(data) // 2])
        return archive

    monkeypatch.setattr(parquet, "write_archive", write_then_truncate)
    before = db.execute("SELECT count(*) FROM core.documents").fetchone()[0]
    assert _retention(dagbag).state == "failed"
    assert _exists(db, "core.documents_p2026_06")
    assert db.execute("SELECT count(*) FROM core.documents").fetchone()[0] == before
    failed = db.execute(
        "SELECT archived_relation, problems FROM ops.archives WHERE status = 'failed' ORDER BY id"
    ).fetchall()
    assert failed and all(any("truncated" in p for p in problems) for _, problems in failed)
    assert db.execute("SELECT count(*) FROM ops.archives WHERE status = 'dropped'").fetchone()[0] == 0


def test_restore_refuses_a_damaged_archive(archive_url: str, db: Any, dagbag: Any) -> None:
    from airflow.sdk import ObjectStoragePath

    assert _retention(dagbag).state == "success"
    path = db.execute(
        "SELECT path FROM ops.archives WHERE archived_relation = 'core.documents_p2026_06'"
    ).fetchone()[0]
    obj = ObjectStoragePath(path)
    data = bytearray(obj.read_bytes())
    data[len(data) // 3] ^= 0xFF
    obj.write_bytes(bytes(data))
    assert _restore(dagbag, "core.documents", "2026-06-01").state == "failed"
    assert (
        db.execute("SELECT count(*) FROM core.documents WHERE created_at < '2026-07-01'").fetchone()[0] == 0
    )
    assert db.execute(
        "SELECT status FROM ops.archives WHERE archived_relation = 'core.documents_p2026_06'"
    ).fetchone() == ("dropped",)


def test_items_of_an_archived_month_are_refused_until_it_is_restored(
    archive_url: str, db: Any, dagbag: Any
) -> None:
    """A source re-delivering old items (Alpha Vantage crypto sends its whole history daily) must not recreate
    archived partitions: those items are refused with archived_period (the load operator quarantines them)."""
    from datetime import UTC, datetime

    from pulse.sources.base import Document, Fact
    from pulse.warehouse.loader import upsert_documents, upsert_facts

    def bar(day: int, month: int = 6) -> Fact:
        values = {"source": "alphavantage", "symbol": "BTC", "market": "EUR", "asset_class": "crypto"}
        return Fact(
            "core.market_bars", {**values, "interval": "1d", "ts": datetime(2026, month, day, tzinfo=UTC)}
        )

    assert upsert_facts(db, [(bar(2), 1)], "r").rejected == []
    assert _retention(dagbag).state == "success"
    assert not _exists(db, "core.market_bars_p2026_06")
    june = Document(
        source="reddit",
        external_id="t3_late",
        kind="post",
        created_at=datetime(2026, 6, 20, tzinfo=UTC),
        channel="python",
        title="late",
        body="late",
        url=None,
        author_pseudonym="p",
        score=1,
        metrics={},
        payload={},
    )
    result = upsert_documents(db, [(june, 1)], "r")
    assert [(r.position, r.reason) for r in result.rejected] == [(0, "archived_period")]
    result = upsert_facts(db, [(bar(3), 1), (bar(3, month=10), 2)], "r")
    assert [(r.position, r.reason) for r in result.rejected] == [(0, "archived_period")]
    assert not _exists(db, "core.documents_p2026_06") and not _exists(db, "core.market_bars_p2026_06")
    assert db.execute("SELECT count(*) FROM core.market_bars WHERE ts >= '2026-10-01'").fetchone()[0] == 1
    # After a restore the month is hot again and takes the item.
    assert _restore(dagbag, "core.documents", "2026-06-01").state == "success"
    assert upsert_documents(db, [(june, 1)], "r").rejected == []
    assert db.execute("SELECT count(*) FROM core.documents_p2026_06").fetchone()[0] == DOCS + 1


def test_history_a_source_delivers_again_is_quarantined_not_reloaded(
    archive_url: str, db: Any, dagbag: Any, sim: Any
) -> None:
    """Alpha Vantage sends crypto history every run: after retention archived the old months, the next run
    quarantines those bars (archived_period) instead of recreating the partitions; every bar is accounted for."""
    from tests.conftest import WINDOW

    def ingest() -> Any:
        conf = {"window_start": WINDOW[0], "window_end": WINDOW[1]}
        return dag_test(dagbag.dags["ingest_alphavantage"], run_conf=conf)

    assert ingest().state == "success"
    before = db.execute("SELECT count(*) FROM core.market_bars").fetchone()[0]
    assert _retention(dagbag).state == "success"
    archived = db.execute(
        "SELECT coalesce(sum(rows), 0) FROM ops.archives WHERE relation = 'core.market_bars' AND status = 'dropped'"
    ).fetchone()[0]
    assert archived > 0
    hot = db.execute("SELECT count(*) FROM core.market_bars").fetchone()[0]
    assert hot + archived == before
    parts = db.execute(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'core.market_bars'::regclass"
    ).fetchone()
    assert ingest().state == "success"
    assert db.execute("SELECT count(*) FROM core.market_bars").fetchone()[0] == hot
    assert (
        db.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'core.market_bars'::regclass"
        ).fetchone()
        == parts
    )  # no archived month came back
    quarantined = db.execute(
        "SELECT count(*) FROM quality.quarantine WHERE reason_code = 'archived_period' AND resolved_at IS NULL"
    ).fetchone()[0]
    assert quarantined == archived


# ------------------------------------------------------------------------------------------------ raw days

RAW_DAY = "2026-11-08"
PAGES = "SELECT to_jsonb(t)::text FROM raw.api_responses t ORDER BY id"


def _raw_partitions(db: Any) -> list[str]:
    return [
        r[0]
        for r in db.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'raw.api_responses'::regclass ORDER BY 1"
        ).fetchall()
    ]


def _held(db: Any) -> set[int]:
    return {r[0] for r in db.execute("SELECT id FROM raw.api_responses_held").fetchall()}


def _open_refs(db: Any) -> set[int]:
    return {
        r[0]
        for r in db.execute(
            "SELECT raw_response_id FROM quality.quarantine WHERE resolved_at IS NULL"
        ).fetchall()
    }


def test_a_raw_day_is_dropped_and_its_quarantined_pages_stay_for_replay(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    db: Any,
    dagbag: Any,
    airflow_db: None,
    slack: Any,
    sim: Any,
) -> None:
    """Raw pages live in daily partitions: retention archives an old day and drops its partition; the pages open
    quarantine rows point at move to raw.api_responses_held first, so a replay after the drop still works; once
    resolved they leave as a second part of the day, and a restore brings the whole day back."""
    from tests.conftest import WINDOW

    monkeypatch.setenv("PULSE_ARCHIVE_URL", f"file://{tmp_path}/archive")
    monkeypatch.delenv("PULSE_ARCHIVE_CONN_ID", raising=False)
    truncate_warehouse(db)
    sim.configure({"reddit": {"bad_items_ratio": 0.3}})
    conf = {"window_start": WINDOW[0], "window_end": WINDOW[1]}
    assert dag_test(dagbag.dags["ingest_reddit"], run_conf=conf).state == "success"
    # The extract stored its pages in today's partition (the database's day), none in the held partition.
    today = db.execute("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM_DD')").fetchone()[0]
    where = {r[0] for r in db.execute("SELECT tableoid::regclass::text FROM raw.api_responses").fetchall()}
    assert where == {f"raw.api_responses_p{today}"}
    assert db.execute("SELECT count(*) FROM ops.default_partition_rows() WHERE rows > 0").fetchone() == (0,)
    # Make the pages old: they move into the partition of an old day.
    db.execute("SELECT ops.ensure_day_partitions('raw.api_responses', %s, %s)", (RAW_DAY, RAW_DAY))
    db.execute(
        "UPDATE raw.api_responses SET fetched_at = %s::timestamptz + id * interval '1 second'",
        (f"{RAW_DAY} 10:00+00",),
    )
    pages = db.execute(PAGES).fetchall()
    referenced = _open_refs(db)
    too_large = {
        r[0]
        for r in db.execute(
            "SELECT item_key FROM quality.quarantine WHERE reason_code = 'text_too_large'"
        ).fetchall()
    }
    assert referenced and too_large and len(referenced) < len(pages)

    assert _retention(dagbag).state == "success"
    assert f"api_responses_p{RAW_DAY.replace('-', '_')}" not in _raw_partitions(
        db
    )  # dropped, not deleted from
    assert _held(db) == referenced  # the pages open quarantine rows point at, nothing else
    archived = db.execute(
        "SELECT status, rows FROM ops.archives WHERE relation = 'raw.api_responses' ORDER BY id"
    ).fetchall()
    assert archived == [("dropped", len(pages) - len(referenced))]
    assert db.execute("SELECT count(*) FROM ops.default_partition_rows() WHERE rows > 0").fetchone() == (0,)

    # Replay after the fix still finds its pages.
    monkeypatch.setattr("pulse.sources.base.MAX_TEXT_BYTES", 10_000_000)
    replay = {"source": "reddit", "reason_codes": ["text_too_large"]}
    assert dag_test(dagbag.dags["replay_quarantine"], run_conf=replay).state == "success"
    replayed = {
        r[0]
        for r in db.execute(
            "SELECT item_key FROM quality.quarantine WHERE resolution = 'replayed'"
        ).fetchall()
    }
    assert replayed == too_large
    loaded = {r[0] for r in db.execute("SELECT external_id FROM core.documents").fetchall()}
    assert too_large <= loaded

    # Pages no open quarantine row needs any more leave as a second part of the day (one page stays held).
    kept = min(_open_refs(db))
    db.execute(
        "UPDATE quality.quarantine SET resolved_at = now() WHERE resolved_at IS NULL AND raw_response_id <> %s",
        (kept,),
    )
    assert _retention(dagbag).state == "success"
    assert _held(db) == {kept}
    parts = db.execute(
        "SELECT rows, location FROM ops.archives WHERE relation = 'raw.api_responses' ORDER BY id"
    ).fetchall()
    assert len(parts) == 2 and parts[1][0] == len(referenced) - 1
    assert parts[1][1].endswith(f"api_responses_{RAW_DAY.replace('-', '_')}.part2.parquet")

    # Restore: the day's partition comes back with every page, the held ones moved into it.
    assert _restore(dagbag, "raw.api_responses", RAW_DAY).state == "success"
    assert f"api_responses_p{RAW_DAY.replace('-', '_')}" in _raw_partitions(db)
    assert _held(db) == set()
    assert db.execute(PAGES).fetchall() == pages
