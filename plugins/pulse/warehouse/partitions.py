"""Monthly and daily partitions: keep them ahead of time, and watch the default partitions.

The SQL lives in the warehouse (``ops.ensure_month_partitions``, ``ops.default_partition_rows``, migration
0004; ``ops.ensure_day_partitions``, migration 0013); this module is what the ``warehouse_maintenance`` DAG
calls. ``raw.api_responses`` is partitioned by UTC day of ``fetched_at``; its default partition
``raw.api_responses_held`` keeps the pages open quarantine rows point at after retention dropped their day, so
``ops.default_partition_rows`` leaves it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

#: Partitioned tables and their partition column (the loader uses the same map).
PARTITIONED = {
    "core.documents": "created_at",
    "core.market_bars": "ts",
    "enriched.document_features": "created_at",
    "enriched.entity_mentions": "created_at",
    "enriched.places": "created_at",
}
MONTHS_AHEAD = 3
#: Tables partitioned by UTC day, and their partition column.
DAILY = {"raw.api_responses": "fetched_at"}
DAYS_AHEAD = 7


@dataclass(frozen=True)
class DefaultRows:
    """Rows found in a default partition, with the range of their partition key."""

    table: str
    partition: str
    rows: int
    min_key: str | None
    max_key: str | None


def ensure_ahead(
    conn: psycopg.Connection[Any],
    now: datetime,
    months_ahead: int = MONTHS_AHEAD,
    days_ahead: int = DAYS_AHEAD,
) -> dict[str, int]:
    """Create the partitions of every partitioned table from this month to ``months_ahead`` months ahead (daily
    tables: from today to ``days_ahead`` days ahead)."""
    created = {}
    with conn.transaction():
        for table in PARTITIONED:
            row = conn.execute(
                "SELECT ops.ensure_month_partitions(%s::regclass, %s, %s + make_interval(months => %s))",
                (table, now, now, months_ahead),
            ).fetchone()
            created[table] = int(row[0]) if row else 0
        for table in DAILY:
            row = conn.execute(
                "SELECT ops.ensure_day_partitions(%s::regclass, %s, %s + make_interval(days => %s))",
                (table, now, now, days_ahead),
            ).fetchone()
            created[table] = int(row[0]) if row else 0
    return created


def default_rows(conn: psycopg.Connection[Any]) -> list[DefaultRows]:
    """What the default partitions hold (normally nothing)."""
    rows = conn.execute(
        "SELECT parent::text, default_partition::text, rows, min_key, max_key FROM ops.default_partition_rows()"
    ).fetchall()
    return [DefaultRows(*r) for r in rows]


def rehome(conn: psycopg.Connection[Any], found: DefaultRows) -> int:
    """Move ``found``'s rows into monthly partitions (created as needed); return how many partitions were made.

    Only the months that hold rows get a partition. Keys outside 1970-2100 are left where they are (the loader
    refuses those times; such rows need a person).
    """
    from psycopg import sql

    key = PARTITIONED[found.table]
    created = 0
    with conn.transaction():
        months = conn.execute(
            sql.SQL(
                "SELECT DISTINCT date_trunc('month', {key} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' FROM {part}"
                " WHERE {key} >= '1970-01-01 00:00+00' AND {key} < '2100-01-01 00:00+00' ORDER BY 1"
            ).format(key=sql.Identifier(key), part=sql.SQL(found.partition))
        ).fetchall()
        for (month,) in months:
            row = conn.execute(
                "SELECT ops.ensure_month_partitions(%s::regclass, %s, %s)", (found.table, month, month)
            ).fetchone()
            created += int(row[0]) if row else 0
    return created
