"""``ops.ingest_runs``: one row per ingest run with its window and counts (the ``make run`` summary)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

    from pulse.warehouse.loader import LoadResult
    from pulse.warehouse.raw import RunContext


def record_extract(
    conn: psycopg.Connection[Any], run: RunContext, source: str, pages: int, items: int
) -> None:
    with conn.transaction():
        conn.execute(
            """
            INSERT INTO ops.ingest_runs (dag_id, dag_run_id, source, window_start, window_end, pages, items,
                                         extracted_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, now())
            ON CONFLICT (dag_id, dag_run_id) DO UPDATE SET window_start = EXCLUDED.window_start,
                window_end = EXCLUDED.window_end, pages = EXCLUDED.pages, items = EXCLUDED.items,
                extracted_at = now()
            """,
            (run.dag_id, run.dag_run_id, source, run.window.start, run.window.end, pages, items),
        )


def record_load(conn: psycopg.Connection[Any], dag_id: str, dag_run_id: str, result: LoadResult) -> None:
    with conn.transaction():
        conn.execute(
            """
            UPDATE ops.ingest_runs SET loaded = %s, changed = %s, quarantined = %s, loaded_at = now()
            WHERE dag_id = %s AND dag_run_id = %s
            """,
            (result.loaded, result.changed, result.quarantined, dag_id, dag_run_id),
        )
