"""The rollups behind the analytics views over published data (migration 0014 holds their SQL).

``analytics.daily_volume``, ``daily_sentiment``, ``entity_mentions_daily``, ``duplicates_per_source`` and
``duplicate_clusters`` read per-hour aggregates (``ops.rollup_*``) instead of aggregating every published row.
Triggers on the tables the ``published`` views read mark each source hour a statement changes (loads, edits,
late rows, enrichment, dedup, audits, horizon moves, deletions) in ``ops.rollup_dirty_hours``; the views
aggregate those hours live and read the rollups for every other one, so they are exact at any moment.

:func:`refresh` folds the marked hours into the rollups: the ``quality`` DAG calls it after publication (the
moment most hours change), so the marked set stays a few hours and a view query reads rollups only. Its cost is
proportional to the hours that changed, never to the warehouse. :func:`mark_period` is for what fires no
trigger: retention calls it when it drops a partition, in the dropping transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

#: Schemas whose partitions feed the published views (a dropped partition elsewhere changes no rollup).
ROLLED_UP_SCHEMAS = ("core", "enriched")


def refresh(conn: Any) -> int:
    """Fold every marked hour and cluster into the rollups, in one transaction; return how many keys.

    Safe to call concurrently (an advisory lock serialises refreshes) and at any time: marks written by
    transactions that commit meanwhile stay for the next call, and the views stay exact throughout.
    """
    with conn.transaction():
        row = conn.execute("SELECT ops.refresh_rollups()").fetchone()
    return int(row[0]) if row else 0


def mark_period(conn: Any, relation: str, start: datetime, end: datetime) -> None:
    """Mark the rolled-up hours of [start, end) dirty after ``relation`` lost them without a trigger firing
    (a dropped partition). Call it in the transaction that drops it."""
    if relation.split(".", 1)[0] in ROLLED_UP_SCHEMAS:
        conn.execute("SELECT ops.rollup_mark_period(%s, %s)", (start, end))


def pending(conn: Any) -> int:
    """Marked hours not folded in yet (each is aggregated live by every query of the views)."""
    row = conn.execute("SELECT count(*) FROM ops.rollup_dirty_hours").fetchone()
    return int(row[0]) if row else 0
