"""Declarative data quality checks, evaluated in PostgreSQL; every result is recorded with what was observed.

Check types (fields in ``include/quality/checks.yaml``; every check has ``name``, ``type``, optional ``source``
and ``severity`` (warning | critical, default warning)).

*Window checks* judge the rows of one data window (event time ``time_column``, by default the table's:
documents ``created_at``, bars ``ts``, weather ``issued_at`` (else ``valid_at``: a forecast is judged when it
is issued, not when it comes true), snapshots ``snapshot_at``) for one source; the
``quality`` DAG runs them per source and hour, and their verdict gates publication (``pulse.quality.publish``).
A window check without ``source`` applies to every source:

* ``volume_anomaly``: ``table``, ``weeks`` (default 4), ``min_ratio``, ``max_ratio``, ``min_history``
  (default 2): rows in the window hour against the median of the same hour and weekday of the previous
  weeks; with too little history (or a window that is not one hour) the check passes and says so.
* ``null_rate``: ``table``, ``column``, ``max_rate``: share of the window's rows where ``column`` is NULL.
* ``unique``: ``table``, ``columns``: no key value of the window's rows appears twice (in any partition).
* ``range``: ``table``, ``column``, ``min`` / ``max`` (inclusive) or ``min_exclusive``.

*Run checks* judge the pipeline as of the run and do not gate windows:

* ``freshness``: ``table``, ``column`` (a timestamp), ``max_age_minutes``: the newest row is at most that old.
* ``schema_drift``: ``items_path`` (a jsonpath to the items of a raw page), ``lookback_hours`` (default 24),
  ``baseline_days`` (default 7): the set of item fields in recent valid raw pages equals the baseline's (fields
  new or missing fail the check, named in the detail).

Identifiers in the file are checked against a strict pattern before they reach SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

CHECKS_FILE = Path(__file__).resolve().parents[3] / "include" / "quality" / "checks.yaml"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")
WINDOW_TYPES = ("volume_anomaly", "null_rate", "unique", "range")
RUN_TYPES = ("freshness", "schema_drift")
TYPES = RUN_TYPES + WINDOW_TYPES
#: Event-time column (or expression) of each table a window check may read.
TIME_COLUMNS = {
    "core.documents": "created_at",
    "core.market_bars": "ts",
    "core.weather_observations": "coalesce(issued_at, valid_at)",
    "core.github_repo_snapshots": "snapshot_at",
    "enriched.document_features": "created_at",
    "enriched.entity_mentions": "created_at",
}


@dataclass(frozen=True)
class CheckResult:
    name: str
    type: str
    target: str
    source: str | None
    severity: str
    status: str  # pass | fail | error
    observed: float | None
    threshold: str
    detail: str
    scope: str = "run"  # run | window
    window_start: datetime | None = None
    window_end: datetime | None = None


def load_checks(path: Path | None = None) -> list[dict[str, Any]]:
    """The checks of the file, validated (unknown types, missing fields and odd identifiers are errors)."""
    import yaml

    data = yaml.safe_load((path or CHECKS_FILE).read_text()) or {}
    checks = data.get("checks") or []
    names = set()
    for check in checks:
        where = f"check {check.get('name')!r}"
        if check.get("type") not in TYPES:
            raise ValueError(f"{where}: type must be one of {TYPES}")
        if not check.get("name") or check["name"] in names:
            raise ValueError(f"{where}: needs a unique name")
        names.add(check["name"])
        for key in ("table", "column", "time_column"):
            if key in check and not _IDENT.match(str(check[key])):
                raise ValueError(f"{where}: {key} {check[key]!r} is not a plain identifier")
        for col in check.get("columns", []):
            if not _IDENT.match(str(col)):
                raise ValueError(f"{where}: column {col!r} is not a plain identifier")
        if check.get("severity", "warning") not in ("warning", "critical"):
            raise ValueError(f"{where}: severity must be warning or critical")
        if (
            check["type"] in WINDOW_TYPES
            and check.get("time_column", TIME_COLUMNS.get(check.get("table", ""))) is None
        ):
            raise ValueError(
                f"{where}: a window check needs time_column (no default for {check.get('table')!r})"
            )
    return checks


def is_window_check(check: dict[str, Any]) -> bool:
    return check["type"] in WINDOW_TYPES


def last_closed_hour(now: datetime) -> tuple[datetime, datetime]:
    end = now.replace(minute=0, second=0, microsecond=0)
    return end - timedelta(hours=1), end


def _source_filter(check: dict[str, Any]) -> tuple[str, list[Any]]:
    return (" AND source = %s", [check["source"]]) if check.get("source") else ("", [])


def _window_filter(check: dict[str, Any], alias: str = "") -> tuple[str, list[Any]]:
    """SQL and arguments restricting a window check to its source and window."""
    col = check.get("time_column") or TIME_COLUMNS[check["table"]]
    where, args = _source_filter(check)
    if alias:
        where = where.replace("source", f"{alias}.source")
        col = col if "(" in col else f"{alias}.{col}"  # an expression's columns resolve to the outer row
    start, end = check["_window"]
    return f"{where} AND {col} >= %s AND {col} < %s", [*args, start, end]


def run_check(
    conn: psycopg.Connection[Any],
    check: dict[str, Any],
    now: datetime,
    window: tuple[datetime, datetime] | None = None,
    source: str | None = None,
) -> CheckResult:
    """Evaluate one check; a check that cannot run gives status ``error`` (never an exception).

    Window checks judge ``window`` (default: the last closed hour before ``now``) for ``source`` (default:
    the check's own source, else every source).
    """
    kind = check["type"]
    scoped = is_window_check(check)
    if scoped:
        window = window or last_closed_hour(now)
        check = {**check, "_window": window}
        if source and not check.get("source"):
            check["source"] = source
    target = check.get("table") or f"raw.api_responses:{check.get('source')}"
    base = {
        "name": check["name"],
        "type": kind,
        "target": target,
        "source": check.get("source"),
        "severity": check.get("severity", "warning"),
        "scope": "window" if scoped else "run",
        "window_start": window[0] if scoped and window else None,
        "window_end": window[1] if scoped and window else None,
    }
    try:
        with conn.transaction():
            status, observed, threshold, detail = _EVALUATORS[kind](conn, check, now)
    except Exception as exc:  # a broken check is reported, not raised: the other checks still run
        return CheckResult(
            **base, status="error", observed=None, threshold="", detail=f"{type(exc).__name__}: {exc}"
        )
    return CheckResult(**base, status=status, observed=observed, threshold=threshold, detail=detail)


def _freshness(conn: Any, check: dict[str, Any], now: datetime) -> tuple[str, float | None, str, str]:
    where, args = _source_filter(check)
    limit = float(check["max_age_minutes"])
    # The recent rows first (BRIN indexes on the written times make this read the last blocks, not the
    # table; OFFSET 0 keeps the source filter out of the scan, else the planner ANDs the BRIN with the whole
    # source's range of the (source, created_at) index); the whole table only when nothing is fresh, to say
    # how old the newest row is.
    col = check["column"]
    newest = conn.execute(
        f"SELECT max({col}) FROM (SELECT * FROM {check['table']} WHERE {col} >= %s OFFSET 0) t WHERE true{where}",
        [now - timedelta(minutes=limit), *args],
    ).fetchone()[0]
    if newest is None:
        newest = conn.execute(f"SELECT max({col}) FROM {check['table']} WHERE true{where}", args).fetchone()[
            0
        ]
    if newest is None:
        return "fail", None, f"<= {limit:g} min", "no rows at all"
    age = (now - newest).total_seconds() / 60
    status = "pass" if age <= limit else "fail"
    return status, round(age, 1), f"<= {limit:g} min", f"newest {check['column']} is {newest.isoformat()}"


def _volume_anomaly(conn: Any, check: dict[str, Any], now: datetime) -> tuple[str, float | None, str, str]:
    where, args = _source_filter(check)
    col = check.get("time_column") or TIME_COLUMNS[check["table"]]
    weeks = int(check.get("weeks", 4))
    start, hour_end = check["_window"]
    lo, hi = float(check.get("min_ratio", 0.2)), float(check.get("max_ratio", 5.0))
    threshold = f"{lo:g}..{hi:g} x median of the same hour in {weeks} previous weeks"
    if hour_end - start != timedelta(hours=1):
        return "pass", None, threshold, "not an hourly window: volume is judged per hour"
    counts = []
    for w in range(weeks + 1):
        end = hour_end - timedelta(weeks=w)
        n = conn.execute(
            f"SELECT count(*) FROM {check['table']} WHERE {col} >= %s AND {col} < %s{where}",
            [end - timedelta(hours=1), end, *args],
        ).fetchone()[0]
        counts.append(int(n))
    current, history = counts[0], [c for c in counts[1:] if c > 0]
    if len(history) < int(check.get("min_history", 2)):
        return "pass", float(current), threshold, f"{current} rows; not enough history ({len(history)} weeks)"
    median = sorted(history)[len(history) // 2]
    ratio = current / median
    status = "pass" if lo <= ratio <= hi else "fail"
    return (
        status,
        round(ratio, 3),
        threshold,
        f"{current} rows in the hour to {hour_end:%Y-%m-%d %H:%M}, median {median}",
    )


def _null_rate(conn: Any, check: dict[str, Any], now: datetime) -> tuple[str, float | None, str, str]:
    where, args = _window_filter(check)
    total, nulls = conn.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {check['column']} IS NULL) FROM {check['table']}"
        f" WHERE true{where}",
        args,
    ).fetchone()
    limit = float(check["max_rate"])
    if not total:
        return "pass", None, f"<= {limit:g}", "no rows in the window"
    rate = nulls / total
    return (
        ("pass" if rate <= limit else "fail"),
        round(rate, 4),
        f"<= {limit:g}",
        f"{nulls} of {total} rows null",
    )


def _unique(conn: Any, check: dict[str, Any], now: datetime) -> tuple[str, float | None, str, str]:
    cols = check["columns"]
    where, args = _window_filter(check, alias="t")
    same = " AND ".join(f"o.{c} = t.{c}" for c in cols)
    dupes, example = conn.execute(
        f"SELECT count(DISTINCT ({', '.join('t.' + c for c in cols)})),"
        f" min(({', '.join('t.' + c for c in cols)})::text)"
        f" FROM {check['table']} t WHERE true{where}"
        f" AND EXISTS (SELECT 1 FROM {check['table']} o WHERE {same}"
        f" AND (o.tableoid, o.ctid) <> (t.tableoid, t.ctid))",
        args,
    ).fetchone()
    detail = f"{dupes} key values of the window appear more than once" + (
        f", e.g. {example}" if dupes else ""
    )
    return ("pass" if dupes == 0 else "fail"), float(dupes), "0 duplicate keys", detail


def _range(conn: Any, check: dict[str, Any], now: datetime) -> tuple[str, float | None, str, str]:
    col = check["column"]
    where, args = _window_filter(check)
    conds, parts = [], []
    if "min" in check:
        conds.append(f"{col} < {float(check['min'])!r}")
        parts.append(f">= {check['min']}")
    if "min_exclusive" in check:
        conds.append(f"{col} <= {float(check['min_exclusive'])!r}")
        parts.append(f"> {check['min_exclusive']}")
    if "max" in check:
        conds.append(f"{col} > {float(check['max'])!r}")
        parts.append(f"<= {check['max']}")
    if not conds:
        raise ValueError("a range check needs min, min_exclusive or max")
    bad, low, high = conn.execute(
        f"SELECT count(*), min({col}), max({col}) FROM {check['table']} WHERE ({' OR '.join(conds)}){where}",
        args,
    ).fetchone()
    detail = f"{bad} rows outside" + (f" (from {low} to {high})" if bad else "")
    return ("pass" if bad == 0 else "fail"), float(bad), " and ".join(parts), detail


def _schema_drift(conn: Any, check: dict[str, Any], now: datetime) -> tuple[str, float | None, str, str]:
    recent_from = now - timedelta(hours=float(check.get("lookback_hours", 24)))
    base_from = recent_from - timedelta(days=float(check.get("baseline_days", 7)))
    sql = """
        SELECT DISTINCT k FROM raw.api_responses r,
               LATERAL jsonb_path_query(r.body::jsonb, %s::jsonpath) AS item,
               LATERAL jsonb_object_keys(CASE WHEN jsonb_typeof(item) = 'object' THEN item ELSE '{}'::jsonb END) AS k
         WHERE r.source = %s AND r.is_valid AND r.body NOT LIKE '%%\\u0000%%'
           AND r.fetched_at >= %s AND r.fetched_at < %s
    """
    path, source = check["items_path"], check["source"]
    recent = {r[0] for r in conn.execute(sql, (path, source, recent_from, now)).fetchall()}
    baseline = {r[0] for r in conn.execute(sql, (path, source, base_from, recent_from)).fetchall()}
    if not recent or not baseline:
        return "pass", 0.0, "no new or missing fields", "not enough pages to compare"
    new, missing = sorted(recent - baseline), sorted(baseline - recent)
    changed = len(new) + len(missing)
    detail = f"new fields: {new or 'none'}; missing fields: {missing or 'none'}"
    return ("pass" if changed == 0 else "fail"), float(changed), "no new or missing fields", detail


_EVALUATORS = {
    "freshness": _freshness,
    "volume_anomaly": _volume_anomaly,
    "null_rate": _null_rate,
    "unique": _unique,
    "range": _range,
    "schema_drift": _schema_drift,
}


def record(conn: psycopg.Connection[Any], results: list[CheckResult], dag_run_id: str) -> None:
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO quality.check_results (check_name, check_type, target, source, severity, status, observed,
                                               threshold, detail, scope, window_start, window_end, dag_run_id)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            """,
            [
                (
                    r.name,
                    r.type,
                    r.target,
                    r.source,
                    r.severity,
                    r.status,
                    r.observed,
                    r.threshold,
                    r.detail,
                    r.scope,
                    r.window_start,
                    r.window_end,
                    dag_run_id,
                )
                for r in results
            ],
        )
