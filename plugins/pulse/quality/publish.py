"""Write-audit-publish: audit each source's data window by window, publish only what passed.

Loaders *write* to the core and enriched tables at any time. The ``quality`` DAG *audits* each source hour by
hour (the window checks of ``include/quality/checks.yaml``) and records the verdict in
``quality.window_audits``. It *publishes* by moving the source's horizon (``quality.publish_state``) forward
across consecutive windows that passed; the analyst views and the exports read only rows older than the
horizon. A window that fails is *held*: the horizon stops at its start, the coverage views flag it, on-call
is alerted, and later runs audit it again until it passes (after a replay or backfill fixed the data) or
someone releases it (DAG params ``release``, ``released_by``, ``reason``).

Which windows a run audits, per source:

* only windows the source has finished ingesting (the latest ``ops.coverage`` window end) and that are closed;
* the first audit of a source covers its whole backlog (earliest event time to the last ready hour) as one
  window, then hour by hour from the horizon on, at most :data:`MAX_WINDOWS_PER_RUN` per run;
* windows after the horizon that passed before are audited again only when their source recorded coverage
  after that audit (a re-load may have changed them).

Data loaded later for a window behind the horizon (a backfill of an old window) is published as it loads;
re-audit such windows with the DAG params ``window_start``/``window_end``: a failure there is flagged and
alerted, but published data is not withdrawn.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pulse.quality.checks import TIME_COLUMNS, CheckResult, is_window_check, run_check

if TYPE_CHECKING:
    import psycopg

HOUR = timedelta(hours=1)
MAX_WINDOWS_PER_RUN = 24

#: Core tables and their event-time column: where a source's data lives.
SOURCE_TABLES = {t: c for t, c in TIME_COLUMNS.items() if t.startswith("core.")}


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


def _floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def hours(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The whole hours from ``start`` (floored) up to ``end``."""
    out, t = [], _floor_hour(start)
    while t + HOUR <= end:
        out.append((t, t + HOUR))
        t += HOUR
    return out


def horizon(conn: psycopg.Connection[Any], source: str) -> datetime | None:
    row = conn.execute(
        "SELECT published_until FROM quality.publish_state WHERE source = %s", (source,)
    ).fetchone()
    return row[0] if row else None


def _ready_until(conn: Any, source: str, now: datetime) -> datetime | None:
    """The end of the hours the source has ingested and that are closed."""
    row = conn.execute("SELECT max(window_end) FROM ops.coverage WHERE source = %s", (source,)).fetchone()
    if not row or row[0] is None:
        return None
    return _floor_hour(min(row[0], now))


def _earliest(conn: Any, source: str) -> datetime | None:
    found = []
    for table, col in SOURCE_TABLES.items():
        value = conn.execute(f"SELECT min({col}) FROM {table} WHERE source = %s", (source,)).fetchone()[0]
        if value is not None:
            found.append(value)
    return min(found) if found else None


def plan(conn: psycopg.Connection[Any], source: str, now: datetime) -> list[tuple[datetime, datetime]]:
    """The windows this run should audit for ``source`` (see the module docstring)."""
    ready = _ready_until(conn, source, now)
    if ready is None:
        return []
    start = horizon(conn, source)
    if start is None:
        earliest = _earliest(conn, source)
        if earliest is None or earliest >= ready:
            return []
        first = _floor_hour(earliest)
        if first + HOUR >= ready:
            return [(first, ready)]
        return [(first, ready - HOUR), (ready - HOUR, ready)]
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


def audit(
    conn: psycopg.Connection[Any],
    source: str,
    window: tuple[datetime, datetime],
    checks: Iterable[dict[str, Any]],
    now: datetime,
    dag_run_id: str,
) -> WindowAudit:
    """Run the window checks that apply to ``source`` on ``window`` and record the verdict."""
    applicable = [c for c in checks if is_window_check(c) and c.get("source") in (None, source)]
    results = tuple(run_check(conn, c, now, window=window, source=source) for c in applicable)
    failed = [r.name for r in results if r.status != "pass"]
    with conn.transaction():
        previous = conn.execute(
            "SELECT status FROM quality.window_audits WHERE source = %s AND window_start = %s",
            (source, window[0]),
        ).fetchone()
        status = (
            "passed" if not failed else ("released" if previous and previous[0] == "released" else "held")
        )
        conn.execute(
            """
            INSERT INTO quality.window_audits (source, window_start, window_end, status, checks, failed,
                                               failed_checks, dag_run_id, audited_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now())
            ON CONFLICT (source, window_start) DO UPDATE
               SET window_end = EXCLUDED.window_end, status = EXCLUDED.status, checks = EXCLUDED.checks,
                   failed = EXCLUDED.failed, failed_checks = EXCLUDED.failed_checks,
                   dag_run_id = EXCLUDED.dag_run_id, audited_at = now()
            """,
            (source, window[0], window[1], status, len(results), len(failed), failed, dag_run_id),
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
) -> int:
    """Release the held windows of ``sources`` inside [start, end): on-call accepts them as they are."""
    if not released_by.strip() or not reason.strip():
        raise ValueError("releasing a held window needs released_by and a reason")
    with conn.transaction():
        cur = conn.execute(
            "UPDATE quality.window_audits SET status = 'released', released_by = %s, release_reason = %s"
            " WHERE source = ANY(%s) AND status = 'held' AND window_start >= %s AND window_end <= %s",
            (released_by, reason, list(sources), start, end),
        )
        return cur.rowcount
