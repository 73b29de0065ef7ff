"""``ops.coverage``: which windows each stream holds, and the gaps it cannot hold, with the reason."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

BEYOND_REACH = "beyond_reach"
BUDGET_EXHAUSTED = "budget_exhausted"
LISTING_CAP = "listing_cap"
NOT_YET_AVAILABLE = "not_yet_available"


def record(
    conn: psycopg.Connection[Any],
    source: str,
    stream: str,
    start: datetime,
    end: datetime,
    status: str,
    dag_run_id: str,
    reason: str | None = None,
) -> None:
    """Upsert one coverage row (a re-run of the same window replaces its row)."""
    if start >= end:
        return
    with conn.transaction():
        conn.execute(
            """
            INSERT INTO ops.coverage (source, stream, window_start, window_end, status, reason, dag_run_id)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (source, stream, window_start, window_end, status) DO UPDATE SET
                reason = EXCLUDED.reason, dag_run_id = EXCLUDED.dag_run_id, recorded_at = now()
            """,
            (source, stream, start, end, status, reason, dag_run_id),
        )
