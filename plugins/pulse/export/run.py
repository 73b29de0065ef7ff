"""One run of the ``export`` DAG: which days are ready, export them, notify subscribers, keep the books.

The ``export`` DAG calls :func:`run_export`; everything it decides is here so it can be read and tested in
one place. What a run does:

* **Where**: the destination root is ``PULSE_EXPORT_URL`` (``file:///abs/dir`` or ``s3://bucket/prefix``),
  opened with Airflow's ``ObjectStoragePath`` and, for S3, the aws connection ``PULSE_EXPORT_CONN_ID``.
  Unset is a configuration error (:class:`ExportRunError`), raised before anything is read or written.
* **What**: the marts of :data:`MARTS` (analyst views with a UTC ``day`` column), or the ``marts`` param.
* **The gate (write-audit-publish)**: day ``D`` is exported only when it is fully published: at least one
  source has a horizon in ``quality.publish_state`` and every source there has ``published_until`` at or
  after ``D + 1`` 00:00 UTC. The views already hide unpublished rows; the gate makes sure the files of a day
  are never a partial picture that changes later.
* **Which days**: a scheduled run (no ``day`` param) exports, per mart, the days after the last day in
  ``ops.exports`` (or, for a mart never exported, the day before the run), up to the day before the run,
  at most :data:`MAX_DAYS_PER_RUN` of them; the days among them that are not fully published yet are
  *skipped* (named in the summary with the lagging sources, not a failure), those beyond the budget are
  *deferred* to the next run. ``day`` re-exports that one day (the same paths are overwritten); a day that
  is not fully published fails the run (:class:`ExportRunError` naming the sources and their horizons).
* **Books**: each (mart, day) exported upserts its ``ops.exports`` row; every notification is a row in
  ``ops.webhook_deliveries``.
* **Webhooks never block exports**: each subscriber that wants the mart gets :func:`~pulse.export.webhooks.
  deliver` with bounded retries (``max_attempts``/``backoff_s`` from its entry in the subscribers file,
  defaults 5 and 2 s). A subscriber whose delivery fails is reported once to Slack (route ``failures``,
  dedup key ``webhook_failing|<name>``) and is not tried again in this run; its remaining notifications are
  recorded with ``attempts = 0``. The files are there either way and the run succeeds. A re-export of the
  day (``day`` param) notifies again, with the same delivery id when the files did not change.

Subscribers come from ``include/exports/subscribers.yaml`` (``PULSE_EXPORT_SUBSCRIBERS`` overrides the path).
A subscribers file that cannot be loaded is a configuration error raised before anything is exported: once
fixed, the run exports and notifies everything (nothing is exported without its notification being tried).

Nothing heavy is imported at module level: psycopg, pyarrow, requests and Airflow come in with the calls.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg
    from airflow.sdk import ObjectStoragePath

    from pulse.export.webhooks import Delivery, Subscriber
    from pulse.export.writers import ExportResult

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Mart:
    """An exported mart: its name (folder and file names), the view it reads and the view's UTC day column."""

    name: str
    relation: str
    day_column: str


#: The exported marts (docs/exports.md lists them for partners).
MARTS: tuple[Mart, ...] = (
    Mart("daily_volume", "analytics.daily_volume", "day"),
    Mart("daily_sentiment", "analytics.daily_sentiment", "day"),
    Mart("entity_mentions_daily", "analytics.entity_mentions_daily", "day"),
)
#: Days a scheduled run exports per mart at most; a longer backlog is caught up over the next runs.
MAX_DAYS_PER_RUN = 7
#: Delivery retries when a subscriber's entry does not set them.
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_BACKOFF_S = 2.0
#: Optional keys of a subscriber entry read here (``load_subscribers`` validates the others).

URL_ENV = "PULSE_EXPORT_URL"
CONN_ID_ENV = "PULSE_EXPORT_CONN_ID"
SUBSCRIBERS_ENV = "PULSE_EXPORT_SUBSCRIBERS"
SUBSCRIBERS_FILE = ROOT / "include" / "exports" / "subscribers.yaml"

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_END_OF_TIME = datetime.max.replace(tzinfo=UTC)
_START_OF_TIME = datetime.min.replace(tzinfo=UTC)


class ExportRunError(ValueError):
    """The run cannot do what it was asked (configuration, params, a day not published): retrying won't help."""


@dataclass(frozen=True)
class RetryPolicy:
    """Delivery retries for one subscriber."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_s: float = DEFAULT_BACKOFF_S


# --- configuration ----------------------------------------------------------------------------------------


def export_root() -> ObjectStoragePath:
    """The destination root from ``PULSE_EXPORT_URL`` (and ``PULSE_EXPORT_CONN_ID`` for S3)."""
    from pulse.storage import root_from_env

    root = root_from_env(URL_ENV, CONN_ID_ENV)
    if root is None:
        raise ExportRunError(
            f"set {URL_ENV} to the export location (file:///abs/dir or s3://bucket/prefix; "
            f"{CONN_ID_ENV} names the aws connection for s3)"
        )
    return root


def subscribers_file() -> Path:
    """``PULSE_EXPORT_SUBSCRIBERS`` or ``include/exports/subscribers.yaml`` (relative paths: the repository)."""
    raw = os.environ.get(SUBSCRIBERS_ENV, "").strip()
    if not raw:
        return SUBSCRIBERS_FILE
    path = Path(raw)
    return path if path.is_absolute() else ROOT / path


def load_subscribers_with_retries(path: Path) -> tuple[list[Subscriber], dict[str, RetryPolicy]]:
    """The subscribers of ``path`` and each one's retry policy (entry keys ``max_attempts``, ``backoff_s``).

    Any problem (a bad entry, a missing connection, host or password) raises :class:`ExportRunError` naming
    the file and entry.
    """
    from pulse.export.webhooks import load_subscribers

    try:
        subscribers = load_subscribers(path)
    except Exception as exc:  # a missing connection, host or password, a bad entry
        raise ExportRunError(
            f"subscribers file {path}: {exc}" if str(path) not in str(exc) else str(exc)
        ) from exc
    return subscribers, {s.name: RetryPolicy(s.max_attempts, s.backoff_s) for s in subscribers}


def select_marts(requested: Any) -> list[Mart]:
    """The marts of the ``marts`` param: ``None`` for all, a list of names, or names separated by commas."""
    if requested is None or requested == "" or requested == []:
        return list(MARTS)
    names = [n.strip() for n in requested.split(",")] if isinstance(requested, str) else list(requested)
    known = {m.name: m for m in MARTS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ExportRunError(f"unknown mart(s) {unknown}; one of {sorted(known)}")
    return [m for m in MARTS if m.name in names]


def parse_day(value: Any) -> date | None:
    """The ``day`` param (``YYYY-MM-DD``) as a date; ``None`` when not given."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _DAY.match(value):
        raise ExportRunError(f"day must be YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ExportRunError(f"day {value!r}: {exc}") from exc


# --- the gate ---------------------------------------------------------------------------------------------


def horizons(conn: psycopg.Connection[Any]) -> dict[str, datetime]:
    """Each source's publication horizon (``quality.publish_state``), infinities as datetime.max/min (UTC)."""
    rows = conn.execute(
        "SELECT source, CASE WHEN isfinite(published_until) THEN published_until END,"
        " published_until = 'infinity'::timestamptz FROM quality.publish_state ORDER BY source"
    ).fetchall()
    return {
        source: value.astimezone(UTC) if value is not None else (_END_OF_TIME if infinite else _START_OF_TIME)
        for source, value, infinite in rows
    }


def horizon_text(value: datetime) -> str:
    """A horizon as the manifest and messages show it: ``2026-11-28T00:00:00Z``, ``infinity``, ``-infinity``."""
    if value == _END_OF_TIME:
        return "infinity"
    if value == _START_OF_TIME:
        return "-infinity"
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def lagging(published: Mapping[str, datetime], day: date) -> dict[str, datetime]:
    """The sources whose horizon is before the end of ``day`` (``day + 1`` 00:00 UTC): they hold it back."""
    end = _midnight(day) + timedelta(days=1)
    return {s: h for s, h in published.items() if h < end}


def is_published(published: Mapping[str, datetime], day: date) -> bool:
    """``day`` is fully published: some source is published and none lags behind the end of the day."""
    return bool(published) and not lagging(published, day)


def not_published_reason(published: Mapping[str, datetime], day: date) -> str:
    """Why ``day`` is not fully published, naming the lagging sources and their horizons."""
    if not published:
        return "nothing is published yet (quality.publish_state is empty: the quality DAG has not published)"
    needed = horizon_text(_midnight(day) + timedelta(days=1))
    behind = ", ".join(f"{s} until {horizon_text(h)}" for s, h in sorted(lagging(published, day).items()))
    return f"not fully published: {behind} (needs {needed} for every source)"


# --- the books --------------------------------------------------------------------------------------------


def last_exported(conn: psycopg.Connection[Any], mart: str) -> date | None:
    """The latest day of ``mart`` in ``ops.exports``."""
    row = conn.execute("SELECT max(day) FROM ops.exports WHERE mart = %s", (mart,)).fetchone()
    return row[0] if row else None


def record_export(
    conn: psycopg.Connection[Any], result: ExportResult, schema_version: str, dag_run_id: str
) -> None:
    """Upsert the ``ops.exports`` row of ``result`` (plain URLs, as partners see them)."""
    from psycopg.types.json import Jsonb

    from pulse.storage import storage_url

    files = [
        {
            "format": f.format,
            "path": storage_url(f.path),
            "rows": f.rows,
            "bytes": f.bytes,
            "sha256": f.sha256,
        }
        for f in result.files
    ]
    conn.execute(
        """
        INSERT INTO ops.exports (mart, day, directory, manifest_path, rows, files, schema_version, dag_run_id)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (mart, day) DO UPDATE
           SET directory = EXCLUDED.directory, manifest_path = EXCLUDED.manifest_path, rows = EXCLUDED.rows,
               files = EXCLUDED.files, schema_version = EXCLUDED.schema_version, exported_at = now(),
               dag_run_id = EXCLUDED.dag_run_id
        """,
        (
            result.mart,
            result.day,
            storage_url(result.directory),
            storage_url(result.manifest_path),
            result.rows,
            Jsonb(files),
            schema_version,
            dag_run_id,
        ),
    )


def record_delivery(
    conn: psycopg.Connection[Any], delivery: Delivery, mart: str, day: date, dag_run_id: str
) -> None:
    """One ``ops.webhook_deliveries`` row."""
    conn.execute(
        "INSERT INTO ops.webhook_deliveries (subscriber, mart, day, delivery_id, ok, attempts, status, error,"
        " permanent, dag_run_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            delivery.subscriber,
            mart,
            day,
            delivery.delivery_id,
            delivery.ok,
            delivery.attempts,
            delivery.status,
            delivery.error,
            delivery.permanent,
            dag_run_id,
        ),
    )


def consecutive_failures(conn: psycopg.Connection[Any], subscriber: str) -> int:
    """Attempted deliveries to ``subscriber`` that failed since its last successful one (all, if none)."""
    row = conn.execute(
        """
        SELECT count(*) FROM ops.webhook_deliveries
         WHERE subscriber = %s AND NOT ok AND attempts > 0
           AND id > coalesce((SELECT max(id) FROM ops.webhook_deliveries WHERE subscriber = %s AND ok), 0)
        """,
        (subscriber, subscriber),
    ).fetchone()
    return int(row[0]) if row else 0


def _report_failing(
    conn: psycopg.Connection[Any], delivery: Delivery, result: ExportResult, policy: RetryPolicy, run_id: str
) -> bool:
    """Post the Slack alert for a subscriber whose delivery failed; return whether it was posted."""
    from pulse.alerts import Alert, post_alert
    from pulse.storage import storage_url

    streak = consecutive_failures(conn, delivery.subscriber)
    answer = f"HTTP {delivery.status}" if delivery.status is not None else "no answer"
    kind = "permanent (retrying cannot help: check its URL and secret)" if delivery.permanent else "gave up"
    alert = Alert(
        route="failures",
        kind="webhook_failing",
        title=f":satellite_antenna: *Export webhook failing* `{delivery.subscriber}`",
        dag_id="export",
        run_id=run_id,
        window=f"{result.mart} {result.day:%Y-%m-%d}",
        lines=[
            f"*Subscriber*: `{delivery.subscriber}` · *Last answer*: {answer} · *Error*: {delivery.error or 'n/a'}",
            f"*Attempts*: {delivery.attempts} of {policy.max_attempts}, {kind}",
            f"*Consecutive failed deliveries*: {streak}",
            f"*Export*: {result.mart} {result.day:%Y-%m-%d}, {result.rows} rows, manifest "
            f"{storage_url(result.manifest_path)} (the files are there; the export succeeded)",
            "Not retried again in this run; re-export the day (param `day`) to notify it again.",
        ],
        dedup_key=f"webhook_failing|{delivery.subscriber}",
    )
    return post_alert(alert, conn=conn)


# --- the run ----------------------------------------------------------------------------------------------


def _reference_time(context: Mapping[str, Any]) -> datetime:
    """When the run is "for": the logical date of a scheduled run, else the pipeline clock (manual runs)."""
    from pulse.windows import _as_utc, utcnow

    return _as_utc(context.get("logical_date")) or utcnow()


def plan_days(
    last: date | None, published: Mapping[str, datetime], before: date, budget: int = MAX_DAYS_PER_RUN
) -> tuple[list[date], list[date], int]:
    """(days to export, days due but not fully published, days deferred) for one mart of a scheduled run.

    Due days run from ``last + 1`` (or the day before ``before`` when ``last`` is None) to the day before
    ``before``; at most ``budget`` of them are taken, oldest first. Published days form a prefix (the gate
    is a single horizon), so the skipped ones are the latest.
    """
    first = last + timedelta(days=1) if last is not None else before - timedelta(days=1)
    due = [first + timedelta(days=i) for i in range(max(0, (before - first).days))]
    taken, deferred = due[:budget], max(0, len(due) - budget)
    ready = [d for d in taken if is_published(published, d)]
    return ready, [d for d in taken if d not in ready], deferred


@dataclass(frozen=True)
class ExportRequest:
    """What a run is asked to do: read from the params, the context and the configuration, all checked before
    anything is read or written."""

    run_id: str
    dest: ObjectStoragePath
    marts: list[Mart]
    day: date | None  # the ``day`` param (a re-export), or None for a scheduled run
    subscribers: list[Subscriber]
    policies: dict[str, RetryPolicy]
    today: date  # the day of the run's reference time (UTC): days before it may be exported


@dataclass
class ExportPlan:
    """The (day, mart) pairs to export, oldest first, and what a scheduled run leaves for later."""

    work: list[tuple[date, Mart]] = field(default_factory=list)
    skipped: dict[date, dict[str, Any]] = field(default_factory=dict)  # day -> marts, reason (not published)
    deferred: dict[str, int] = field(default_factory=dict)  # mart -> days due beyond MAX_DAYS_PER_RUN


@dataclass
class Notifications:
    """The webhook deliveries of a run so far."""

    counts: dict[str, int] = field(default_factory=lambda: {"ok": 0, "failed": 0, "not_attempted": 0})
    failing: dict[str, str] = field(default_factory=dict)  # subscriber -> why, not tried again in this run
    alerts_posted: int = 0


def read_request(params: Mapping[str, Any], context: Mapping[str, Any]) -> ExportRequest:
    """The run's request; any configuration or param problem raises :class:`ExportRunError` here."""
    run_id = str(context.get("run_id") or "manual")
    dest = export_root()
    marts = select_marts(params.get("marts"))
    day = parse_day(params.get("day"))
    subscribers, policies = load_subscribers_with_retries(subscribers_file())
    today = _reference_time(context).date()
    return ExportRequest(run_id, dest, marts, day, subscribers, policies, today)


def plan_exports(
    conn: psycopg.Connection[Any], request: ExportRequest, published: Mapping[str, datetime]
) -> ExportPlan:
    """Which (day, mart) pairs to export: the ``day`` param's day (it must have ended and be fully published),
    or, per mart, the published days due since its last export (:func:`plan_days`)."""
    plan = ExportPlan()
    day, today = request.day, request.today
    if day is not None:
        if day >= today:
            raise ExportRunError(f"day {day} has not ended yet (today is {today} UTC)")
        if not is_published(published, day):
            raise ExportRunError(f"day {day} cannot be exported: {not_published_reason(published, day)}")
        plan.work = [(day, m) for m in request.marts]
    else:
        for mart in request.marts:
            ready, waiting, later = plan_days(last_exported(conn, mart.name), published, today)
            plan.work += [(d, mart) for d in ready]
            for d in waiting:
                entry = plan.skipped.setdefault(
                    d, {"marts": [], "reason": not_published_reason(published, d)}
                )
                entry["marts"].append(mart.name)
            if later:
                plan.deferred[mart.name] = later
    plan.work.sort(key=lambda item: (item[0], MARTS.index(item[1])))
    return plan


def export_mart_day(
    conn: psycopg.Connection[Any],
    request: ExportRequest,
    mart: Mart,
    day: date,
    horizon_texts: dict[str, str],
) -> ExportResult:
    """Write the files and manifest of ``mart`` for ``day`` and record them in ``ops.exports``."""
    from pulse.export.writers import MANIFEST_NAME, read_manifest, write_exports

    result = write_exports(
        conn,
        mart=mart.name,
        relation=mart.relation,
        day=day,
        day_column=mart.day_column,
        dest_root=request.dest,
        extra_manifest={"published_until": horizon_texts, "dag_run_id": request.run_id},
    )
    manifest = read_manifest(request.dest / mart.name / f"day={day:%Y-%m-%d}" / MANIFEST_NAME)
    record_export(conn, result, str(manifest["schema_version"]), request.run_id)
    return result


def notify_subscribers(
    conn: psycopg.Connection[Any], request: ExportRequest, result: ExportResult, notes: Notifications
) -> None:
    """Deliver the export event of ``result`` to every subscriber that wants its mart, and record each
    delivery. A subscriber that failed earlier in the run is not tried (recorded with ``attempts = 0``); one
    that fails now is reported to Slack once and joins ``notes.failing``."""
    from pulse.export.webhooks import Delivery, deliver, delivery_id, export_event

    event = export_event(result)
    for subscriber in request.subscribers:
        if not subscriber.wants(result.mart):
            continue
        did = delivery_id(subscriber.name, result)
        if subscriber.name in notes.failing:
            skip = Delivery(
                subscriber.name,
                did,
                False,
                0,
                None,
                f"not attempted: the subscriber failed earlier in this run ({notes.failing[subscriber.name]})",
                False,
            )
            record_delivery(conn, skip, result.mart, result.day, request.run_id)
            notes.counts["not_attempted"] += 1
            continue
        policy = request.policies[subscriber.name]
        delivery = deliver(
            subscriber, event, delivery_id=did, max_attempts=policy.max_attempts, backoff_s=policy.backoff_s
        )
        record_delivery(conn, delivery, result.mart, result.day, request.run_id)
        if delivery.ok:
            notes.counts["ok"] += 1
            continue
        notes.counts["failed"] += 1
        notes.failing[subscriber.name] = (
            f"HTTP {delivery.status}" if delivery.status is not None else str(delivery.error)
        )[:200]
        notes.alerts_posted += int(_report_failing(conn, delivery, result, policy, request.run_id))


def run_summary(
    request: ExportRequest,
    horizon_texts: dict[str, str],
    plan: ExportPlan,
    exported: list[dict[str, Any]],
    notes: Notifications,
) -> dict[str, Any]:
    """The JSON-able summary of a run (the task's return value)."""
    from pulse.storage import storage_url

    return {
        "mode": "day" if request.day is not None else "scheduled",
        "destination": storage_url(request.dest),
        "published_until": horizon_texts,
        "exported": exported,
        "days_exported": sorted({e["day"] for e in exported}),
        "skipped": [
            {"day": f"{d:%Y-%m-%d}", "marts": v["marts"], "reason": v["reason"]}
            for d, v in sorted(plan.skipped.items())
        ],
        "deferred": plan.deferred,
        "deliveries": notes.counts,
        "failing_subscribers": notes.failing,
        "alerts_posted": notes.alerts_posted,
    }


def log_summary(summary: Mapping[str, Any]) -> None:
    """What the run did, in the task log: skipped and deferred days, then the totals."""
    for entry in summary["skipped"]:
        log.info("skipped %s (%s): %s", entry["day"], ", ".join(entry["marts"]), entry["reason"])
    for mart_name, n in summary["deferred"].items():
        log.info(
            "%s: %d more day(s) due, deferred to the next run (%d per run)", mart_name, n, MAX_DAYS_PER_RUN
        )
    if not summary["exported"] and not summary["skipped"]:
        log.info("nothing to export: every mart is up to date")
    counts = summary["deliveries"]
    log.info(
        "exported %d mart-day(s) to %s; deliveries ok %d, failed %d, not attempted %d",
        len(summary["exported"]),
        summary["destination"],
        counts["ok"],
        counts["failed"],
        counts["not_attempted"],
    )


def run_export(params: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the ``export`` task does (module docstring); returns a JSON-able summary of the run.

    The steps: :func:`read_request` (configuration and params, before anything is read), :func:`plan_exports`
    (which days of which marts, behind the gate), then per (day, mart) :func:`export_mart_day` (files, manifest,
    ``ops.exports``) and :func:`notify_subscribers` (webhooks, ``ops.webhook_deliveries``, Slack), and
    :func:`run_summary` / :func:`log_summary`.
    """
    from pulse.storage import storage_url
    from pulse.warehouse.db import connect

    request = read_request(params, context)
    with connect(autocommit=True) as conn:
        published = horizons(conn)
        horizon_texts = {s: horizon_text(h) for s, h in published.items()}
        plan = plan_exports(conn, request, published)
        exported: list[dict[str, Any]] = []
        notes = Notifications()
        for d, mart in plan.work:
            result = export_mart_day(conn, request, mart, d, horizon_texts)
            exported.append(
                {
                    "mart": mart.name,
                    "day": f"{d:%Y-%m-%d}",
                    "rows": result.rows,
                    "manifest": storage_url(result.manifest_path),
                }
            )
            notify_subscribers(conn, request, result, notes)
    summary = run_summary(request, horizon_texts, plan, exported, notes)
    log_summary(summary)
    return summary
