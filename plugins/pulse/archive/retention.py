"""Retention: archive old data to Parquet, verify it, and only then remove it from PostgreSQL; and restore.

Policies live in ``include/retention.yaml``: per table, its group (documents, facts, raw), the event-time
column and how it leaves PostgreSQL:

* partitioned tables (``core.documents``, ``core.market_bars``, ``enriched.*``): each monthly partition whose
  month ended more than ``hot_days`` ago is one unit; after verification the partition is dropped;
* ``raw.api_responses``, partitioned by UTC day of ``fetched_at`` (migration 0013): each daily partition
  whose day ended more than ``hot_days`` ago is one unit. Pages an open quarantine row still points at stay
  out of the archive (``replay_quarantine`` needs them): after verification the partition is detached, those
  pages move into the default partition ``raw.api_responses_held``, the counts are checked (archived + held ==
  the partition's rows) and the partition is dropped. Once their quarantine row is resolved, a later run
  archives the held pages of that day as another part of the same day and deletes them;
* time-sliced tables (the small unpartitioned fact tables by month): each old period is one unit; after
  verification its rows are deleted.

Every archive of a period is its own object (``<name>.parquet``, then ``<name>.part2.parquet`` ...): an
object that is the only copy of removed rows is never overwritten.

One unit, :func:`archive_unit`:

1. a lock connection takes ``SHARE`` on the relation, so nothing can change it until the end (reads go on);
2. :func:`pulse.archive.parquet.write_archive` streams the rows to ``<root>/<schema>/<table>/<yyyy>/<mm>/...``
   and the manifest row is written (``ops.archives``, status ``written``);
3. :func:`pulse.archive.parquet.verify_archive` reads the object back from storage: size, SHA-256, full
   decode, row count, and the rows compared with the database both ways. A failure marks the row ``failed``
   with the problems and stops: nothing is dropped;
4. in the lock connection's transaction: drop the partition (a raw day: detach, move held pages, check the
   counts, drop; or delete the period's rows, checking the count), and mark the manifest row ``dropped``;
   both commit together.

Restore (:func:`restore_period`) loads the latest dropped archive of a period back (checksum and row count
checked first; a raw day gets its partition back first, with its held pages moved into it), marks it
``restored`` and keeps it hot for ``keep_days``; archiving it again later writes an identical object (same
rows, same SHA-256).

Storage: ``PULSE_ARCHIVE_URL`` (``file:///abs/dir`` or ``s3://bucket/prefix``) and, for S3,
``PULSE_ARCHIVE_CONN_ID`` (an ``aws`` connection).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg
    from airflow.sdk import ObjectStoragePath

POLICY_FILE = Path(__file__).resolve().parents[3] / "include" / "retention.yaml"
GROUPS = ("documents", "facts", "raw")


class RetentionError(RuntimeError):
    """A unit could not be archived safely (nothing was removed)."""


@dataclass(frozen=True)
class Policy:
    table: str
    group: str
    column: str
    unit: str  # partition | day | month
    keep_referenced_raw: bool = False


@dataclass(frozen=True)
class Unit:
    """One period of one table to archive (JSON-able: it travels through XCom to mapped tasks)."""

    table: str
    relation: str  # what is read: the partition, or the table for time-sliced policies
    column: str
    kind: str  # partition | day | month
    start: str  # ISO 8601 UTC
    end: str
    keep_referenced_raw: bool = False

    @property
    def label(self) -> str:
        return f"{self.relation} {self.start[:10]}" if self.kind != "partition" else self.relation


def load_policies(path: Path | None = None) -> tuple[dict[str, int], list[Policy]]:
    """Default hot days per group, and the policies of the file (validated)."""
    import yaml

    data = yaml.safe_load((path or POLICY_FILE).read_text())
    hot = {g: int(d) for g, d in (data.get("hot_days") or {}).items()}
    if set(hot) != set(GROUPS) or any(d < 1 for d in hot.values()):
        raise ValueError(f"hot_days needs a positive number of days for each of {GROUPS}")
    policies = []
    for entry in data.get("tables") or []:
        policy = Policy(
            table=str(entry["table"]),
            group=str(entry["group"]),
            column=str(entry["column"]),
            unit=str(entry["unit"]),
            keep_referenced_raw=bool(entry.get("keep_referenced_raw", False)),
        )
        if policy.group not in GROUPS or policy.unit not in ("partition", "day", "month"):
            raise ValueError(f"retention policy {entry}: group one of {GROUPS}, unit partition, day or month")
        policies.append(policy)
    return hot, policies


def archive_root() -> ObjectStoragePath:
    from pulse.storage import root_from_env

    root = root_from_env("PULSE_ARCHIVE_URL", "PULSE_ARCHIVE_CONN_ID")
    if root is None:
        raise RetentionError(
            "set PULSE_ARCHIVE_URL to the archive location (file:///abs/dir or s3://bucket/prefix; "
            "PULSE_ARCHIVE_CONN_ID names the aws connection for s3)"
        )
    return root


def _month_start(d: datetime) -> datetime:
    return d.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(d: datetime) -> datetime:
    return (d.replace(day=28) + timedelta(days=4)).replace(day=1)


#: Raw pages an open quarantine row points at (``t`` is raw.api_responses).
REFERENCED = (
    "EXISTS (SELECT 1 FROM quality.quarantine q WHERE q.raw_response_id = t.id AND q.resolved_at IS NULL)"
)


def _held(conn: Any, table: str, now: datetime) -> set[datetime]:
    """Periods of ``table`` restored and still kept hot: retention leaves them alone."""
    rows = conn.execute(
        "SELECT DISTINCT period_start FROM ops.archives WHERE relation = %s AND status = 'restored'"
        " AND keep_hot_until > %s",
        (table, now),
    ).fetchall()
    return {r[0] for r in rows}


def plan(
    conn: psycopg.Connection[Any], now: datetime, hot_days: dict[str, int], policies: list[Policy]
) -> list[Unit]:
    """Every unit older than its group's hot period, oldest first (restored periods on hold are skipped)."""
    units: list[Unit] = []
    for p in policies:
        cutoff = now - timedelta(days=hot_days[p.group])
        held = _held(conn, p.table, now)
        if p.unit == "partition":
            schema, name = p.table.split(".")
            rows = conn.execute(
                r"""
                SELECT c.relname FROM pg_inherits i
                  JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = %s::regclass AND c.relname ~ ('^' || %s || '_p\d{4}_\d{2}$')
                 ORDER BY c.relname
                """,
                (p.table, name),
            ).fetchall()
            for (part,) in rows:
                y, m = part.rsplit("_p", 1)[1].split("_")
                start = datetime(int(y), int(m), 1, tzinfo=UTC)
                end = _next_month(start)
                if end <= cutoff and start not in held:
                    units.append(
                        Unit(
                            p.table,
                            f"{schema}.{part}",
                            p.column,
                            "partition",
                            start.isoformat(),
                            end.isoformat(),
                        )
                    )
        elif p.unit == "day" and _day_partitioned(conn, p.table):
            units += _day_units(conn, p, cutoff, held)
        else:
            trunc = "day" if p.unit == "day" else "month"
            limit = cutoff.replace(hour=0, minute=0, second=0, microsecond=0)
            if p.unit == "month":
                limit = _month_start(limit)
            keep = f" AND NOT {REFERENCED}" if p.keep_referenced_raw else ""
            periods = conn.execute(
                f"SELECT DISTINCT date_trunc('{trunc}', {p.column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
                f" FROM {p.table} t WHERE {p.column} < %s{keep} ORDER BY 1",
                (limit,),
            ).fetchall()
            for (start,) in periods:
                end = start + timedelta(days=1) if p.unit == "day" else _next_month(start)
                if end <= limit and start not in held:
                    units.append(
                        Unit(
                            p.table,
                            p.table,
                            p.column,
                            p.unit,
                            start.isoformat(),
                            end.isoformat(),
                            p.keep_referenced_raw,
                        )
                    )
    return units


def _day_partitioned(conn: Any, table: str) -> bool:
    from pulse.warehouse.partitions import DAILY

    return table in DAILY and conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is not None


def _default_partition(conn: Any, table: str) -> str | None:
    row = conn.execute(
        """
        SELECT i.inhrelid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = %s::regclass AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'
        """,
        (table,),
    ).fetchone()
    return row[0] if row else None


def _day_units(conn: Any, p: Policy, cutoff: datetime, held: set[datetime]) -> list[Unit]:
    """Units of a table partitioned by day: every daily partition older than the cutoff (dropped whole), and
    the days of the default (held) partition's rows no open quarantine row points at any more (deleted)."""
    schema, name = p.table.split(".")
    limit = cutoff.replace(hour=0, minute=0, second=0, microsecond=0)
    found: list[tuple[datetime, str]] = []
    for (part,) in conn.execute(
        r"""
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = %s::regclass AND c.relname ~ ('^' || %s || '_p\d{4}_\d{2}_\d{2}$')
        """,
        (p.table, name),
    ).fetchall():
        y, m, d = part.rsplit("_p", 1)[1].split("_")
        found.append((datetime(int(y), int(m), int(d), tzinfo=UTC), f"{schema}.{part}"))
    default = _default_partition(conn, p.table)
    if default is not None:
        keep = f" AND NOT {REFERENCED}" if p.keep_referenced_raw else ""
        for (start,) in conn.execute(
            f"SELECT DISTINCT date_trunc('day', {p.column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
            f" FROM {default} t WHERE {p.column} < %s{keep}",
            (limit,),
        ).fetchall():
            found.append((start, default))
    return [
        Unit(
            p.table,
            relation,
            p.column,
            "day",
            start.isoformat(),
            (start + timedelta(days=1)).isoformat(),
            p.keep_referenced_raw,
        )
        for start, relation in sorted(found)
        if start + timedelta(days=1) <= limit and start not in held
    ]


def _is_day_partition(unit: Unit) -> bool:
    """A daily partition (dropped whole), not the table nor its default partition (rows deleted)."""
    import re

    return unit.kind == "day" and re.search(r"_p\d{4}_\d{2}_\d{2}$", unit.relation) is not None


def object_path(root: ObjectStoragePath, unit: Unit, part: int = 1) -> ObjectStoragePath:
    """``<root>/<schema>/<table>/<yyyy>/<mm>/<name>[.partN].parquet``."""
    schema, table = unit.table.split(".")
    start = datetime.fromisoformat(unit.start)
    folder = root / schema / table / f"{start:%Y}" / f"{start:%m}"
    if unit.kind == "partition":
        name = unit.relation.split(".")[1]
    elif unit.kind == "day":
        name = f"{table}_{start:%Y_%m_%d}"
    else:
        name = f"{table}_{start:%Y_%m}"
    return folder / (f"{name}.parquet" if part == 1 else f"{name}.part{part}.parquet")


def _part(conn: Any, unit: Unit) -> int:
    """1 + the archives of this period that hold (or held) removed rows: their objects are never reused."""
    n = conn.execute(
        "SELECT count(*) FROM ops.archives WHERE relation = %s AND period_start = %s"
        " AND status IN ('dropped', 'restored')",
        (unit.table, unit.start),
    ).fetchone()[0]
    return int(n) + 1


def _where(unit: Unit) -> tuple[str | None, tuple[Any, ...]]:
    if unit.kind == "partition":
        return None, ()
    keep = f" AND NOT {REFERENCED.replace('t.id', unit.relation + '.id')}" if unit.keep_referenced_raw else ""
    return f"{unit.column} >= %s AND {unit.column} < %s{keep}", (
        datetime.fromisoformat(unit.start),
        datetime.fromisoformat(unit.end),
    )


def archive_unit(unit: Unit, dag_run_id: str, *, root: ObjectStoragePath | None = None) -> dict[str, Any]:
    """Archive, verify, then remove one unit (module docstring). Raises RetentionError when unsafe."""
    import psycopg

    from pulse.archive.parquet import verify_archive, write_archive
    from pulse.storage import storage_url
    from pulse.warehouse.db import dsn_from_connection

    root = root or archive_root()
    where, params = _where(unit)
    dsn = dsn_from_connection()
    with (
        psycopg.connect(dsn, application_name="pulse-retention-lock") as lock,
        psycopg.connect(dsn, application_name="pulse-retention", autocommit=True) as conn,
    ):
        if lock.execute("SELECT to_regclass(%s)", (unit.relation,)).fetchone()[0] is None:
            return {"unit": unit.label, "skipped": "relation no longer exists"}
        lock.execute("SET LOCAL lock_timeout = '60s'")
        lock.execute(f"LOCK TABLE {unit.relation} IN SHARE MODE")
        version = conn.execute("SELECT version_num FROM ops.alembic_version").fetchone()[0]
        dest = object_path(root, unit, _part(conn, unit))  # write_archive creates local folders
        archive = write_archive(conn, unit.relation, dest, where=where, params=params)
        manifest_id = conn.execute(
            """
            INSERT INTO ops.archives (relation, archived_relation, period_start, period_end, path, location, rows,
                                      bytes, sha256, schema_fingerprint, schema_version, columns, status, dag_run_id)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'written', %s) RETURNING id
            """,
            (
                unit.table,
                # A period of rows (a day of raw, wherever its rows sit) is restored into the table itself.
                unit.relation if unit.kind == "partition" else unit.table,
                unit.start,
                unit.end,
                archive.path,
                storage_url(archive.path),
                archive.rows,
                archive.bytes,
                archive.sha256,
                archive.schema_fingerprint,
                version,
                psycopg.types.json.Jsonb([list(c) for c in archive.columns]),
                dag_run_id,
            ),
        ).fetchone()[0]
        check = verify_archive(conn, archive, relation=unit.relation, where=where, params=params)
        if not check.ok:
            conn.execute(
                "UPDATE ops.archives SET status = 'failed', problems = %s WHERE id = %s",
                (check.problems, manifest_id),
            )
            lock.rollback()
            raise RetentionError(
                f"archive of {unit.label} failed verification, nothing was removed: {'; '.join(check.problems)}"
            )
        conn.execute(
            "UPDATE ops.archives SET status = 'verified', verified_at = now() WHERE id = %s", (manifest_id,)
        )
        removed = _remove(lock, unit, where, params, archive.rows)
        lock.execute(
            "UPDATE ops.archives SET status = 'dropped', dropped_at = now() WHERE id = %s", (manifest_id,)
        )
        lock.commit()
    return {
        "unit": unit.label,
        "rows": archive.rows,
        "bytes": archive.bytes,
        "sha256": archive.sha256,
        "location": storage_url(archive.path),
        "removed": removed,
        "verify_seconds": round(check.seconds, 2),
    }


def _remove(lock: Any, unit: Unit, where: str | None, params: tuple[Any, ...], archived: int) -> int:
    """Drop the partition or delete the period's rows, in the lock's transaction; return rows removed."""
    if unit.kind == "partition":
        lock.execute(f"DROP TABLE {unit.relation}")
        # A DROP fires no trigger: the analytics rollups forget the period in the same transaction.
        from pulse.warehouse.rollups import mark_period

        mark_period(lock, unit.table, datetime.fromisoformat(unit.start), datetime.fromisoformat(unit.end))
        return archived
    if _is_day_partition(unit):
        return _drop_day(lock, unit, archived)
    deleted = lock.execute(f"DELETE FROM {unit.relation} WHERE {where}", params).rowcount
    if deleted != archived:
        lock.rollback()
        raise RetentionError(
            f"{unit.label}: {deleted} rows to delete != {archived} archived; nothing was removed"
        )
    return int(deleted)


def _drop_day(lock: Any, unit: Unit, archived: int) -> int:
    """Detach a verified daily partition, move the pages open quarantine rows point at into the default
    (held) partition, check archived + held == its rows, and drop it (all in the lock's transaction)."""
    cols = ", ".join(
        r[0]
        for r in lock.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
            " ORDER BY attnum",
            (unit.table,),
        ).fetchall()
    )
    lock.execute(f"ALTER TABLE {unit.table} DETACH PARTITION {unit.relation}")
    total = lock.execute(f"SELECT count(*) FROM {unit.relation}").fetchone()[0]
    kept = 0
    if unit.keep_referenced_raw:
        kept = lock.execute(
            f"INSERT INTO {unit.table} ({cols}) OVERRIDING SYSTEM VALUE"
            f" SELECT {cols} FROM {unit.relation} t WHERE {REFERENCED}"
        ).rowcount
    if total != archived + kept:
        lock.rollback()
        raise RetentionError(
            f"{unit.label}: {total} rows != {archived} archived + {kept} held for open quarantine rows"
            " (a quarantine row changed meanwhile?); nothing was removed"
        )
    lock.execute(f"DROP TABLE {unit.relation}")
    return int(archived)


@dataclass(frozen=True)
class Restored:
    relation: str
    period_start: str
    rows: int  # rows loaded back
    archived_rows: int  # rows in the archive parts loaded
    location: str
    keep_hot_until: str


def restore_period(
    conn: psycopg.Connection[Any], table: str, period: date, keep_days: int, dag_run_id: str
) -> Restored:
    """Load the latest dropped archive of ``table`` for the period starting ``period`` back into PostgreSQL."""
    from airflow.sdk import ObjectStoragePath

    from pulse.archive.parquet import ArchiveFile, restore_archive

    start = datetime(period.year, period.month, period.day, tzinfo=UTC)
    rows = conn.execute(
        """
        SELECT id, archived_relation, path, location, rows, bytes, sha256, schema_fingerprint, columns, status
          FROM ops.archives WHERE relation = %s AND period_start = %s AND status IN ('dropped', 'restored')
         ORDER BY archived_at DESC
        """,
        (table, start),
    ).fetchall()
    if not rows:
        raise RetentionError(
            f"no archive of {table} for the period starting {period}: see analytics.data_months"
        )
    if rows[0][-1] == "restored":
        raise RetentionError(f"{table} {period} is already restored (ops.archives id {rows[0][0]})")
    partitioned = rows[0][1] != table
    # A partition left whole in its latest archive; a time slice may have left in several parts.
    parts = [rows[0]] if partitioned else [r for r in rows if r[-1] == "dropped"]

    def expected(r: Any) -> ArchiveFile:
        return ArchiveFile(
            path=r[2],
            table=r[1],
            rows=r[4],
            bytes=r[5],
            sha256=r[6],
            schema_fingerprint=r[7],
            columns=[(str(n), str(t)) for n, t in r[8]],
        )

    with conn.transaction():
        if partitioned:  # recreate the partition, empty, and load straight into it
            relation = rows[0][1]
            conn.execute("SELECT ops.ensure_month_partitions(%s::regclass, %s, %s)", (table, start, start))
            present = conn.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]
            if present:
                raise RetentionError(f"{relation} already holds {present} rows; restore needs it empty")
            loaded = restore_archive(conn, ObjectStoragePath(rows[0][2]), table, expected=expected(rows[0]))
        else:  # rows of the period may still be there (raw pages kept for open quarantine rows)
            if _day_partitioned(conn, table):  # the day's partition again, with its held pages moved in
                conn.execute("SELECT ops.ensure_day_partitions(%s::regclass, %s, %s)", (table, start, start))
            conn.execute(f"CREATE TEMP TABLE restore_stage (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP")
            for r in parts:
                restore_archive(conn, ObjectStoragePath(r[2]), "restore_stage", expected=expected(r))
            loaded = conn.execute(
                f"INSERT INTO {table} OVERRIDING SYSTEM VALUE SELECT * FROM restore_stage ON CONFLICT DO NOTHING"
            ).rowcount
        from pulse.windows import utcnow

        until = utcnow() + timedelta(days=keep_days)  # the pipeline's clock, as retention's plan uses
        conn.execute(
            "UPDATE ops.archives SET status = 'restored', restored_at = now(), keep_hot_until = %s"
            " WHERE id = ANY(%s)",
            (until, [r[0] for r in parts]),
        )
    location = ", ".join(r[3] for r in parts)
    archived_rows = sum(int(r[4]) for r in parts)
    return Restored(table, start.isoformat(), int(loaded), archived_rows, location, until.isoformat())


def as_dict(obj: Any) -> dict[str, Any]:
    """A Unit or Restored as a plain dict (XCom)."""
    return asdict(obj)
