"""Write-audit-publish: audit each source's data hour by hour, publish only what passed, row by row.

Loaders *write* to the core and enriched tables at any time. The ``quality`` DAG *audits* each source hour by
hour (the window checks of ``include/quality/checks.yaml``) and records the verdict in
``quality.window_audits``. It *publishes* in two ways:

* the source's **horizon** (``quality.publish_state``) moves forward across consecutive windows that passed
  (or were released); a window that fails is *held*: the horizon stops at its start, the coverage views flag
  it, on-call is alerted, and later runs audit it again until it passes (after a replay or backfill fixed the
  data) or someone releases it (DAG params ``release``, ``released_by``, ``reason``);
* per **hour with data** (``quality.hour_audits``): when it was last audited (``audited_at``) and when it last
  passed or was released (``published_at``). A row is published when its hour is before the horizon *and* it
  was written (``loaded_at``; ``enriched_at`` for features) at or before its hour's ``published_at``. The
  ``published`` schema and the analytics views apply exactly that; they are all analysts can read.

So rows loaded into an hour after its audit (a backfill, a late bar, a re-delivered item) stay out of the
published relations until that hour is audited again, and so does the new content of an **edited** row (the
loader sets ``loaded_at`` when content changes): the row leaves them until the next run audits its hour (at
most about an hour), rather than show content nobody audited. A re-audit that fails holds the hour again but
withdraws nothing: rows that were published stay published, the late ones wait (on-call sees the hour in
``analytics.source_health`` and can release it).

Which windows a run audits, per source (:func:`plan`):

* only windows the source has finished ingesting (the latest ``ops.coverage`` window end) and that are closed;
* the first audit of a source covers its whole backlog (earliest event time to the last ready hour) as one
  window, then hour by hour from the horizon on, at most :data:`MAX_WINDOWS_PER_RUN` per run;
* windows after the horizon that passed before are audited again when their source recorded coverage after
  that audit (a re-load may have changed them);
* **late hours** (:func:`late_hours`), before or after the horizon: hours holding rows written after the
  hour's last audit, or holding rows and never audited (a backfill older than the first audit), at most
  :data:`MAX_LATE_WINDOWS_PER_RUN` per run, oldest first. Only rows written since the previous look are read
  (``quality.publish_state.late_checked_until``, BRIN indexes on the written times), so the look stays cheap.

Audit times are taken *before* the checks read the data, and no later than the start of the oldest
transaction still open then (:func:`audit_clock`): a row whose transaction began before an audit but committed
after its checks ran carries a ``loaded_at`` after that time, so it waits for the next audit instead of being
published unaudited.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pulse.quality.checks import TIME_COLUMNS, CheckResult, is_window_check, run_check
from pulse.windows import floor_hour

if TYPE_CHECKING:
    import psycopg

HOUR = timedelta(hours=1)
MAX_WINDOWS_PER_RUN = 24
#: Late hours re-audited per source and run (a week of hours): a larger backfill publishes over several runs.
MAX_LATE_WINDOWS_PER_RUN = 168

#: Core tables and their event-time column: where a source's data lives.
SOURCE_TABLES = {t: c for t, c in TIME_COLUMNS.items() if t.startswith("core.")}

#: Every table the publication gate covers: its event-time expression (whose hour is the audited hour) and the
#: column saying when the row was last written. Entity mentions and places are written with their document's
#: features and published with them; duplicate clusters follow their document.
WRITTEN: dict[str, tuple[str, str]] = {
    "core.documents": ("created_at", "loaded_at"),
    "core.market_bars": ("ts", "loaded_at"),
    "core.weather_observations": ("coalesce(issued_at, valid_at)", "loaded_at"),
    "core.github_repo_snapshots": ("snapshot_at", "loaded_at"),
    "enriched.document_features": ("created_at", "enriched_at"),
}

#: The hour of an event time, in UTC whatever the session's time zone (date_bin works in absolute time and
#: costs next to nothing; date_trunc with a zone costs as much as reading the row).
_HOUR_SQL = "date_bin('1 hour', {t}, timestamptz '2000-01-01 00:00+00')"


def _written(where: str) -> str:
    """``(hour, written_at)`` of the rows of every gated table matching ``where`` (``{t}``: the event time,
    ``{w}``: the written time; parameters ``%(source)s`` and whatever ``where`` names)."""
    parts = [
        f"SELECT {_HOUR_SQL.format(t=t)} AS hour, {w} AS written_at FROM {table}"
        f" WHERE source = %(source)s AND {where.format(t=t, w=w)}"
        for table, (t, w) in WRITTEN.items()
    ]
    return "\n UNION ALL ".join(parts)


@dataclass(frozen=True)
class WindowAudit:
    source: str
    start: datetime
    end: datetime
    status: str  # passed | held | released
    results: tuple[CheckResult, ...]

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status != "pass"]


def hours(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The whole hours from ``start`` (floored) up to ``end``."""
    out, t = [], floor_hour(start)
    while t + HOUR <= end:
        out.append((t, t + HOUR))
        t += HOUR
    return out


def horizons(
    conn: psycopg.Connection[Any], sources: Sequence[str] | None = None
) -> dict[str, datetime | None]:
    """Each source's publication horizon (all sources in ``quality.publish_state``, or those of ``sources``);
    ``None`` stands for ``infinity`` (everything released), which Python's datetime cannot hold."""
    rows = conn.execute(
        "SELECT source, CASE WHEN isfinite(published_until) THEN published_until END FROM quality.publish_state"
        " WHERE %s::text[] IS NULL OR source = ANY(%s) ORDER BY source",
        (None if sources is None else list(sources), None if sources is None else list(sources)),
    ).fetchall()
    return dict(rows)


def horizon(conn: psycopg.Connection[Any], source: str) -> datetime | None:
    row = conn.execute(
        "SELECT published_until FROM quality.publish_state WHERE source = %s", (source,)
    ).fetchone()
    return row[0] if row else None


def audit_clock(conn: psycopg.Connection[Any]) -> datetime:
    """The time an audit that starts now may call its own: now, or just before the start of the oldest
    transaction still open in this database (a loader batch in flight), whichever is earlier.

    ``loaded_at`` is the loader's transaction start, which comes before its commit. A row with ``loaded_at``
    at or before this time was committed before the checks that follow read the data; a row of a transaction
    still open has a later ``loaded_at`` and waits for the next audit. (Sessions of other roles show no
    transaction start to a non-superuser; the pipeline writes as one role.)
    """
    row = conn.execute(
        """
        SELECT least(statement_timestamp(),
                     (SELECT min(xact_start) - interval '1 microsecond' FROM pg_stat_activity
                       WHERE datname = current_database() AND pid <> pg_backend_pid()
                         AND backend_type = 'client backend' AND xact_start IS NOT NULL))
        """
    ).fetchone()
    assert row is not None
    return row[0]


def _ready_until(conn: Any, source: str, now: datetime) -> datetime | None:
    """The end of the hours the source has ingested and that are closed."""
    row = conn.execute("SELECT max(window_end) FROM ops.coverage WHERE source = %s", (source,)).fetchone()
    if not row or row[0] is None:
        return None
    return floor_hour(min(row[0], now))


def _earliest(conn: Any, source: str) -> datetime | None:
    found = []
    for table, col in SOURCE_TABLES.items():
        value = conn.execute(f"SELECT min({col}) FROM {table} WHERE source = %s", (source,)).fetchone()[0]
        if value is not None:
            found.append(value)
    return min(found) if found else None


def plan(conn: psycopg.Connection[Any], source: str, now: datetime) -> list[tuple[datetime, datetime]]:
    """The windows this run should audit for ``source`` (see the module docstring), oldest first.

    Also records how far late rows were looked for (``quality.publish_state.late_checked_until``), in the
    caller's transaction: a run that fails before committing looks again next time.
    """
    ready = _ready_until(conn, source, now)
    if ready is None:
        return []
    start = horizon(conn, source)
    if start is None:
        earliest = _earliest(conn, source)
        if earliest is None or earliest >= ready:
            return []
        first = floor_hour(earliest)
        if first + HOUR >= ready:
            return [(first, ready)]
        return [(first, ready - HOUR), (ready - HOUR, ready)]
    todo = set(_horizon_windows(conn, source, start, ready))
    late, checked_until = late_hours(conn, source, ready)
    todo.update(late)
    conn.execute(
        "UPDATE quality.publish_state SET late_checked_until = %s WHERE source = %s", (checked_until, source)
    )
    return sorted(todo)


def _horizon_windows(
    conn: psycopg.Connection[Any], source: str, start: datetime, ready: datetime
) -> list[tuple[datetime, datetime]]:
    """Hours from the horizon to ``ready`` that need an audit (the one at the horizon always does)."""
    windows = hours(start, ready)
    if not windows:
        return []
    audited = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT window_start, status, audited_at FROM quality.window_audits"
            " WHERE source = %s AND window_start >= %s",
            (source, start),
        ).fetchall()
    }
    last_coverage = conn.execute(
        "SELECT max(recorded_at) FROM ops.coverage WHERE source = %s", (source,)
    ).fetchone()[0]
    todo = []
    for i, (ws, we) in enumerate(windows):
        seen = audited.get(ws)
        stale = seen is None or seen[0] == "held" or (last_coverage is not None and last_coverage > seen[1])
        if i == 0 or stale:  # the window at the horizon is always audited: it is what holds publication
            todo.append((ws, we))
        if len(todo) >= MAX_WINDOWS_PER_RUN:
            break
    return todo


def late_hours(
    conn: psycopg.Connection[Any], source: str, ready: datetime, limit: int = MAX_LATE_WINDOWS_PER_RUN
) -> tuple[list[tuple[datetime, datetime]], datetime]:
    """Closed hours (before ``ready``) holding rows written after the hour's last audit, or holding rows and
    never audited; oldest first, at most ``limit``. Also returns how far this looked: the time from which
    the next look must read rows again (its own start, or the oldest row of an hour left for later).

    Reads only rows written since the previous look (``late_checked_until``; the source's first hour audit
    when there was none), through the BRIN indexes on the written times.
    """
    clock = audit_clock(conn)
    row = conn.execute(
        "SELECT coalesce(p.late_checked_until, (SELECT min(audited_at) FROM quality.hour_audits h"
        " WHERE h.source = p.source)) FROM quality.publish_state p WHERE p.source = %s",
        (source,),
    ).fetchone()
    since = row[0] if row else None
    if since is None:
        return [], clock
    written = _written("{w} >= %(since)s")
    found = conn.execute(
        f"""
        SELECT w.hour, min(w.written_at)
          FROM ({written}) w
          LEFT JOIN quality.hour_audits h ON h.source = %(source)s AND h.hour = w.hour
         WHERE w.hour < %(ready)s AND (h.audited_at IS NULL OR w.written_at > h.audited_at)
         GROUP BY w.hour
         ORDER BY w.hour
        """,
        {"source": source, "since": since, "ready": ready},
    ).fetchall()
    taken, left = found[:limit], found[limit:]
    checked_until = min([clock, *(first for _, first in left)])
    return [(hour, hour + HOUR) for hour, _ in taken], checked_until


def _hours_with_data(
    conn: psycopg.Connection[Any], source: str, window: tuple[datetime, datetime]
) -> list[tuple[datetime, datetime, datetime | None]]:
    """``(hour, latest write, published_at)`` of every hour of ``window`` that holds rows of ``source``."""
    written = _written("{t} >= %(start)s AND {t} < %(end)s")
    return conn.execute(
        f"""
        SELECT w.hour, max(w.written_at), h.published_at
          FROM ({written}) w
          LEFT JOIN quality.hour_audits h ON h.source = %(source)s AND h.hour = w.hour
         GROUP BY w.hour, h.published_at
         ORDER BY w.hour
        """,
        {"source": source, "start": window[0], "end": window[1]},
    ).fetchall()


def _mark_hours(
    conn: psycopg.Connection[Any],
    source: str,
    hours_: Sequence[datetime],
    audited_at: datetime,
    published_at: datetime | None,
    dag_run_id: str,
) -> None:
    """Record an audit (and, with ``published_at``, a publication) of ``hours_``; a failed audit keeps each
    hour's earlier ``published_at``."""
    conn.execute(
        """
        INSERT INTO quality.hour_audits AS h (source, hour, audited_at, published_at, dag_run_id)
        SELECT %s, hour, %s, %s, %s FROM unnest(%s::timestamptz[]) AS hour
        ON CONFLICT (source, hour) DO UPDATE
           SET audited_at = greatest(h.audited_at, EXCLUDED.audited_at),
               published_at = greatest(h.published_at, EXCLUDED.published_at),  -- NULL: unchanged
               dag_run_id = EXCLUDED.dag_run_id
        """,
        (source, audited_at, published_at, dag_run_id, list(hours_)),
    )


def audit(
    conn: psycopg.Connection[Any],
    source: str,
    window: tuple[datetime, datetime],
    checks: Iterable[dict[str, Any]],
    now: datetime,
    dag_run_id: str,
) -> WindowAudit:
    """Run the window checks that apply to ``source`` on ``window`` and record the verdict, for the window
    and for each hour of it that holds data.

    A window that passes publishes every row written up to the audit's clock (:func:`audit_clock`). One that
    fails is held, unless on-call released it and nothing was written to it since (then it stays released);
    either way what was published before stays published.
    """
    clock = audit_clock(conn)
    applicable = [c for c in checks if is_window_check(c) and c.get("source") in (None, source)]
    results = tuple(run_check(conn, c, now, window=window, source=source) for c in applicable)
    failed = [r.name for r in results if r.status != "pass"]
    with conn.transaction():
        previous = conn.execute(
            "SELECT status, window_end FROM quality.window_audits WHERE source = %s AND window_start = %s",
            (source, window[0]),
        ).fetchone()
        data = _hours_with_data(conn, source, window)
        unpublished = any(pub is None or latest > pub for _, latest, pub in data)
        if not failed:
            status = "passed"
        elif previous and previous[0] == "released" and not unpublished:
            status = "released"
        else:
            status = "held"
        if previous and previous[1] > window[1]:
            # An hour re-audited at the start of a longer window (a source's first audit): the rest of that
            # window keeps its verdict under its own start.
            conn.execute(
                """
                INSERT INTO quality.window_audits (source, window_start, window_end, status, checks, failed,
                       failed_checks, dag_run_id, audited_at, released_by, release_reason, released_at)
                SELECT source, %s, window_end, status, checks, failed, failed_checks, dag_run_id, audited_at,
                       released_by, release_reason, released_at
                  FROM quality.window_audits WHERE source = %s AND window_start = %s
                ON CONFLICT (source, window_start) DO NOTHING
                """,
                (window[1], source, window[0]),
            )
        conn.execute(
            """
            INSERT INTO quality.window_audits (source, window_start, window_end, status, checks, failed,
                                               failed_checks, dag_run_id, audited_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (source, window_start) DO UPDATE
               SET window_end = EXCLUDED.window_end, status = EXCLUDED.status, checks = EXCLUDED.checks,
                   failed = EXCLUDED.failed, failed_checks = EXCLUDED.failed_checks,
                   dag_run_id = EXCLUDED.dag_run_id, audited_at = EXCLUDED.audited_at
            """,
            (source, window[0], window[1], status, len(results), len(failed), failed, dag_run_id, clock),
        )
        _mark_hours(
            conn, source, [h for h, _, _ in data], clock, clock if status == "passed" else None, dag_run_id
        )
    return WindowAudit(source, window[0], window[1], status, results)


def advance(conn: psycopg.Connection[Any], source: str, dag_run_id: str) -> datetime | None:
    """Move the source's horizon across consecutive windows that passed or were released; return it."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('pulse.publish'), hashtext(%s))", (source,))
        current = horizon(conn, source)
        rows = conn.execute(
            "SELECT window_start, window_end, status FROM quality.window_audits"
            " WHERE source = %s AND (%s::timestamptz IS NULL OR window_end > %s) ORDER BY window_start",
            (source, current, current),
        ).fetchall()
        new = current
        for ws, we, status in rows:
            if new is not None and ws > new:
                break  # a window never audited: publication waits for it
            if status == "held":
                break
            new = we if new is None or we > new else new
        if new is not None and new != current:
            conn.execute(
                """
                INSERT INTO quality.publish_state (source, published_until, dag_run_id) VALUES (%s, %s, %s)
                ON CONFLICT (source) DO UPDATE SET published_until = EXCLUDED.published_until,
                       updated_at = now(), dag_run_id = EXCLUDED.dag_run_id
                 WHERE quality.publish_state.published_until < EXCLUDED.published_until
                """,
                (source, new, dag_run_id),
            )
        return new


def release(
    conn: psycopg.Connection[Any],
    sources: Sequence[str],
    start: datetime,
    end: datetime,
    released_by: str,
    reason: str,
    dag_run_id: str,
) -> int:
    """Release the held windows of ``sources`` inside [start, end): on-call accepts them as they are now,
    so every row written to them until now is published (rows written later wait for an audit)."""
    if not released_by.strip() or not reason.strip():
        raise ValueError("releasing a held window needs released_by and a reason")
    clock = audit_clock(conn)
    with conn.transaction():
        released = conn.execute(
            "UPDATE quality.window_audits SET status = 'released', released_by = %s, release_reason = %s,"
            " released_at = %s"
            " WHERE source = ANY(%s) AND status = 'held' AND window_start >= %s AND window_end <= %s"
            " RETURNING source, window_start, window_end",
            (released_by, reason, clock, list(sources), start, end),
        ).fetchall()
        for source, ws, we in released:
            data = _hours_with_data(conn, source, (ws, we))
            _mark_hours(conn, source, [h for h, _, _ in data], clock, clock, dag_run_id)
        return len(released)
