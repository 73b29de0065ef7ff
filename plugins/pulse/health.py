"""Pulse's health: Airflow's own health plus the pipeline's dependencies, each judged in bounded time.

:func:`check_health` runs six checks side by side, each in its own thread, each wrapped (an exception is a
failing part, never a crash of the whole answer) and each given :data:`CHECK_TIMEOUT_S` seconds (a check that
has not answered by then is a failing part "timed out"; its thread is abandoned, the answer is not delayed):

``airflow``
    ``airflow.api.common.airflow_health.get_airflow_health()`` (what ``/api/v2/monitor/health`` answers):
    the metadatabase, the scheduler and the dag-processor must be healthy; the triggerer must not be
    unhealthy (``null``, never started, is accepted: a deployment without deferrable tasks may run none).
``warehouse``
    a connection through ``warehouse_default`` (:func:`pulse.warehouse.db.connect`) with a
    :data:`CONNECT_TIMEOUT_S` connect timeout and a statement timeout, then ``SELECT 1``.
``migrations``
    ``ops.alembic_version`` equals the head of ``include/migrations``
    (:func:`pulse.warehouse.bootstrap.script_directory`).
``sources``
    per declared source (:func:`pulse.sources.spec.all_sources`), from ``analytics.source_health``: failing
    when its circuit breaker is ``open``, or when its last successful ingest run is older than its spec's
    ``freshness.max_age_minutes`` (or there never was one). ``half_open`` is reported, not failing: the next
    run is a trial.
``publication``
    per source, the publication lag ``now - quality.publish_state.published_until``: failing when it exceeds
    the spec's ``freshness.max_age_minutes`` plus :data:`QUALITY_CYCLE` (the quality DAG audits and publishes
    hourly, so a healthy source's horizon trails its freshest data by at most one quality cycle), or when
    nothing of the source was ever published.
``object_storage``
    the archive and export roots (``PULSE_ARCHIVE_URL`` / ``PULSE_EXPORT_URL`` with the aws connections
    ``PULSE_ARCHIVE_CONN_ID`` / ``PULSE_EXPORT_CONN_ID``, as :mod:`pulse.storage` reads them): ``s3://`` roots
    answer a ``HeadBucket`` (2 s connect and read timeouts, no retries); ``file://`` roots are an existing,
    writable folder (and allowed by the executor: :func:`pulse.storage.check_local_root`). An unset URL fails:
    retention and exports would fail too.

When the warehouse part fails, the parts that read it (``migrations``, ``sources``, ``publication``) are
``unknown`` ("not checked: the warehouse is unreachable") instead of failing too: ``failing`` names the cause.
Likewise, when the warehouse is not at the migrations' head, a ``sources`` or ``publication`` check that
errored (a view or table missing) is ``unknown``; one that answered keeps its own verdict.
The answer is ``healthy`` only when every part is. "Now" is the pipeline clock (:func:`pulse.windows.utcnow`).

Nothing in an answer holds a secret: errors are reported as ``{"error": <exception class>, "detail":
<message>}`` with URL credentials and ``password=`` values masked (:func:`redact`), never a traceback or a DSN.
Heavy imports (psycopg, alembic, boto3, Airflow's jobs) happen inside the checks. docs/health.md.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime, timedelta
from typing import Any, Literal

from pulse.warehouse.db import WAREHOUSE_CONN_ID

__all__ = [
    "CHECKS",
    "CHECK_TIMEOUT_S",
    "HEALTHY",
    "UNHEALTHY",
    "UNKNOWN",
    "check_health",
    "redact",
]

Status = Literal["healthy", "unhealthy", "unknown"]
HEALTHY: Status = "healthy"
UNHEALTHY: Status = "unhealthy"
UNKNOWN: Status = "unknown"

#: Seconds each check may take before it counts as failing ("timed out").
CHECK_TIMEOUT_S = 5.0
#: libpq connect timeout of the warehouse checks (seconds; libpq's minimum is 2).
CONNECT_TIMEOUT_S = 3
#: Statement timeout of the warehouse checks (milliseconds).
STATEMENT_TIMEOUT_MS = 3000
#: Connect and read timeouts of the object storage checks (seconds).
STORAGE_TIMEOUT_S = 2
#: How far the publication horizon may trail a source's freshness limit: one run of the hourly quality DAG.
QUALITY_CYCLE = timedelta(minutes=60)
#: The parts that read the warehouse: ``unknown`` when the warehouse part fails.
NEEDS_WAREHOUSE = ("migrations", "sources", "publication")
#: The object storage roots: (name, URL variable, connection id variable).
STORAGE_ROOTS = (
    ("archive", "PULSE_ARCHIVE_URL", "PULSE_ARCHIVE_CONN_ID"),
    ("export", "PULSE_EXPORT_URL", "PULSE_EXPORT_CONN_ID"),
)

Part = dict[str, Any]


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")
_SECRET_PAIRS = re.compile(r"(?i)\b(password|passwd|pwd|secret|token|aws_secret_access_key)\s*[=:]\s*\S+")


def redact(text: str, limit: int = 300) -> str:
    """``text`` without credentials: ``scheme://user:pass@host`` loses its userinfo, ``password=...`` (and
    secret, token ...) values become ``***``; cut to ``limit`` characters, on one line."""
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}***@", text)
    text = _SECRET_PAIRS.sub(lambda m: f"{m.group(1)}=***", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error(exc: BaseException) -> Part:
    """A failing part for an exception: its class and its (redacted) message, no traceback."""
    return {
        "status": UNHEALTHY,
        "error": type(exc).__name__,
        "detail": redact(str(exc)) or type(exc).__name__,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _minutes(delta: timedelta) -> float:
    return round(delta.total_seconds() / 60, 1)


def _connect() -> Any:
    """An autocommit warehouse connection with short connect and statement timeouts."""
    from pulse.warehouse.db import connect

    conn = connect(WAREHOUSE_CONN_ID, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
    conn.execute(f"SET statement_timeout = {int(STATEMENT_TIMEOUT_MS)}")
    return conn


# ------------------------------------------------------------------------------------------------
# the checks: each returns a part ({"status", "detail", ...}) or raises
# ------------------------------------------------------------------------------------------------


def check_airflow() -> Part:
    """Airflow's own health: metadatabase, scheduler and dag-processor healthy; triggerer not unhealthy."""
    from airflow.api.common import airflow_health

    components: dict[str, Any] = airflow_health.get_airflow_health()
    bad = []
    for name in ("metadatabase", "scheduler", "dag_processor", "triggerer"):
        status = (components.get(name) or {}).get("status")
        if status == HEALTHY or (name == "triggerer" and status is None):
            continue
        bad.append(f"{name} {status or 'never started'}")
    return {
        "status": UNHEALTHY if bad else HEALTHY,
        "detail": ", ".join(bad) if bad else "metadatabase, scheduler, dag-processor and triggerer healthy",
        "components": components,
    }


def check_warehouse() -> Part:
    """Connect (short timeout) and ``SELECT 1``."""
    with _connect() as conn:
        row = conn.execute("SELECT 1, current_setting('server_version')").fetchone()
    if not row or row[0] != 1:
        return {"status": UNHEALTHY, "detail": "SELECT 1 did not answer 1"}
    return {"status": HEALTHY, "detail": "connected, SELECT 1 answered", "server_version": row[1]}


def check_migrations() -> Part:
    """``ops.alembic_version`` against the head of ``include/migrations``."""
    from pulse.warehouse.bootstrap import script_directory

    head = script_directory().get_current_head()
    with _connect() as conn:
        exists = conn.execute("SELECT to_regclass('ops.alembic_version') IS NOT NULL").fetchone()[0]
        row = conn.execute("SELECT version_num FROM ops.alembic_version").fetchone() if exists else None
    current = row[0] if row else None
    if current == head:
        return {"status": HEALTHY, "detail": f"at head {head}", "current": current, "head": head}
    return {
        "status": UNHEALTHY,
        "detail": f"the warehouse is at {current or 'base (not migrated)'}, the code's head is {head}: "
        "the next DAG run's warehouse_ready task migrates it (or `python -m pulse.warehouse.migrate`)",
        "current": current,
        "head": head,
    }


def _specs() -> dict[str, Any]:
    from pulse.sources.spec import all_sources

    return {spec.name: spec for spec in all_sources()}


def check_sources(now: datetime) -> Part:
    """Each declared source's circuit breaker and last successful ingest against its freshness limit."""
    specs = _specs()
    with _connect() as conn:
        rows = conn.execute(
            "SELECT source, circuit_state, consecutive_failures, circuit_opened_at, last_success_at,"
            " last_failure_at FROM analytics.source_health WHERE source = ANY(%s)",
            (list(specs),),
        ).fetchall()
    found = {r[0]: r for r in rows}
    sources: dict[str, Part] = {}
    failing: list[str] = []
    for name, spec in specs.items():
        _, state, failures, opened_at, last_success, last_failure = found.get(
            name, (name, "closed", 0, None, None, None)
        )
        limit = timedelta(minutes=spec.freshness.max_age_minutes)
        problems = []
        if state == "open":
            problems.append(f"circuit breaker open since {_iso(opened_at)} after {failures} failed runs")
        if last_success is None:
            problems.append("no successful ingest run yet")
        elif now - last_success > limit:
            problems.append(
                f"last successful ingest {_minutes(now - last_success)} min ago, limit {_minutes(limit)} min"
            )
        sources[name] = {
            "status": UNHEALTHY if problems else HEALTHY,
            "circuit_state": state,
            "consecutive_failures": failures,
            "last_success_at": _iso(last_success),
            "last_failure_at": _iso(last_failure),
            "age_minutes": _minutes(now - last_success) if last_success else None,
            "limit_minutes": _minutes(limit),
            **({"problems": problems} if problems else {}),
        }
        if problems:
            failing.append(name)
    detail = (
        "; ".join(f"{n}: {', '.join(sources[n]['problems'])}" for n in failing)
        if failing
        else f"{len(specs)} sources: breakers closed, each fresh within its limit"
    )
    return {
        "status": UNHEALTHY if failing else HEALTHY,
        "detail": detail,
        "failing": failing,
        "sources": sources,
    }


def check_publication(now: datetime) -> Part:
    """Each source's publication lag against its freshness limit plus one quality cycle."""
    specs = _specs()
    from pulse.quality.publish import horizons

    with _connect() as conn:
        until = horizons(conn, list(specs))
    found = {source: (published, published is None) for source, published in until.items()}
    sources: dict[str, Part] = {}
    failing: list[str] = []
    for name, spec in specs.items():
        limit = timedelta(minutes=spec.freshness.max_age_minutes) + QUALITY_CYCLE
        published, infinite = found.get(name, (None, False))
        problem = None
        lag = None
        if infinite:
            lag = timedelta(0)
        elif published is None:
            problem = "nothing published yet"
        else:
            lag = max(now - published, timedelta(0))
            if lag > limit:
                problem = f"publication lag {_minutes(lag)} min, limit {_minutes(limit)} min"
        sources[name] = {
            "status": UNHEALTHY if problem else HEALTHY,
            "published_until": "infinity" if infinite else _iso(published),
            "lag_minutes": _minutes(lag) if lag is not None else None,
            "limit_minutes": _minutes(limit),
            **({"problem": problem} if problem else {}),
        }
        if problem:
            failing.append(name)
    detail = (
        "; ".join(f"{n}: {sources[n]['problem']}" for n in failing)
        if failing
        else f"{len(specs)} sources published within their limits"
    )
    return {
        "status": UNHEALTHY if failing else HEALTHY,
        "detail": detail,
        "failing": failing,
        "sources": sources,
    }


def _check_root(url_var: str, url: str, conn_id: str | None) -> Part:
    """One storage root: an s3 bucket that answers HeadBucket, or a writable local folder."""
    from pulse.storage import LOCAL_PROTOCOLS, check_local_root, storage_url

    scheme, sep, rest = url.partition("://")
    scheme = scheme if sep else ""
    shown = storage_url(url)
    if scheme in LOCAL_PROTOCOLS:
        check_local_root(url_var, url)
        path = rest if sep else url
        if not os.path.isdir(path):
            return {"status": UNHEALTHY, "url": shown, "detail": "the folder does not exist"}
        if not os.access(path, os.W_OK | os.X_OK):
            return {"status": UNHEALTHY, "url": shown, "detail": "the folder is not writable"}
        return {"status": HEALTHY, "url": shown, "detail": "folder exists and is writable"}
    if scheme in ("s3", "s3a"):
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from botocore.config import Config

        bucket = rest.partition("/")[0].rpartition("@")[2]
        config = Config(
            connect_timeout=STORAGE_TIMEOUT_S,
            read_timeout=STORAGE_TIMEOUT_S,
            retries={"max_attempts": 1, "mode": "standard"},
        )
        client = S3Hook(aws_conn_id=conn_id, config=config).get_conn()
        client.head_bucket(Bucket=bucket)
        return {"status": HEALTHY, "url": shown, "conn_id": conn_id, "detail": f"bucket {bucket} answers"}
    return {"status": UNHEALTHY, "url": shown, "detail": f"unsupported scheme {scheme!r}: s3:// or file://"}


def check_object_storage() -> Part:
    """The archive and export roots (each wrapped: one failing root does not hide the other)."""
    env = {
        "PULSE_ARCHIVE_URL": os.environ.get("PULSE_ARCHIVE_URL", "").strip(),
        "PULSE_ARCHIVE_CONN_ID": os.environ.get("PULSE_ARCHIVE_CONN_ID", "").strip(),
        "PULSE_EXPORT_URL": os.environ.get("PULSE_EXPORT_URL", "").strip(),
        "PULSE_EXPORT_CONN_ID": os.environ.get("PULSE_EXPORT_CONN_ID", "").strip(),
    }
    roots: dict[str, Part] = {}
    for name, url_var, conn_var in STORAGE_ROOTS:
        url, conn_id = env[url_var], env[conn_var] or None
        if not url:
            roots[name] = {"status": UNHEALTHY, "detail": f"{url_var} is not set"}
            continue
        try:
            roots[name] = _check_root(url_var, url, conn_id)
        except Exception as exc:  # each root wrapped: an error is this root's failure
            roots[name] = {**_error(exc), "url": _safe_url(url)}
    failing = [n for n, part in roots.items() if part["status"] != HEALTHY]
    detail = (
        "; ".join(f"{n}: {roots[n]['detail']}" for n in failing)
        if failing
        else "archive and export roots reachable"
    )
    return {"status": UNHEALTHY if failing else HEALTHY, "detail": detail, "failing": failing, "roots": roots}


def _safe_url(url: str) -> str:
    try:
        from pulse.storage import storage_url

        return redact(storage_url(url))
    except Exception:
        return "<unparseable>"


# ------------------------------------------------------------------------------------------------
# the whole answer
# ------------------------------------------------------------------------------------------------

#: Every part, in the order of the answer: name -> check (``now`` passed to those that take it).
CHECKS: Mapping[str, Callable[..., Part]] = {
    "airflow": check_airflow,
    "warehouse": check_warehouse,
    "migrations": check_migrations,
    "sources": check_sources,
    "publication": check_publication,
    "object_storage": check_object_storage,
}
_TAKES_NOW = frozenset({"sources", "publication"})


def _run(name: str, check: Callable[..., Part], now: datetime) -> Part:
    started = time.perf_counter()
    try:
        part = check(now) if name in _TAKES_NOW else check()
        part.setdefault("detail", "")
    except Exception as exc:  # one failing check never stops the others
        part = _error(exc)
    part["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return part


def _root_cause(parts: dict[str, Part]) -> None:
    """Parts that could not be checked because of another part become ``unknown``, naming it: every part
    reading the warehouse when the warehouse fails; a check of the pipeline's tables that errored (a missing
    view, say) when the warehouse is not at the migrations' head."""
    if parts.get("warehouse", {}).get("status") == UNHEALTHY:
        for name in NEEDS_WAREHOUSE:
            if name in parts and parts[name]["status"] == UNHEALTHY:
                parts[name] = {
                    "status": UNKNOWN,
                    "detail": "not checked: the warehouse is unreachable",
                    "duration_ms": parts[name].get("duration_ms"),
                }
    elif parts.get("migrations", {}).get("status") == UNHEALTHY:
        for name in ("sources", "publication"):
            part = parts.get(name)
            if part is not None and part["status"] == UNHEALTHY and "error" in part:
                parts[name] = {
                    "status": UNKNOWN,
                    "detail": "not checked: the warehouse is not at the migrations' head "
                    f"({part['error']}: {part['detail']})",
                    "duration_ms": part.get("duration_ms"),
                }


def check_health(
    checks: Mapping[str, Callable[..., Part]] | None = None, timeout_s: float | None = None
) -> dict[str, Any]:
    """Run every check side by side; the answer ``{"status", "checked_at", "parts", "failing"}``.

    ``status`` is ``healthy`` when every part is, ``failing`` names the unhealthy parts (in :data:`CHECKS`
    order). A check running longer than ``timeout_s`` (default :data:`CHECK_TIMEOUT_S`) is an unhealthy part
    ("timed out"); the answer takes at most about ``timeout_s``. ``checked_at`` is the pipeline clock.
    """
    from pulse.windows import utcnow

    checks = CHECKS if checks is None else checks
    timeout_s = CHECK_TIMEOUT_S if timeout_s is None else timeout_s
    now = utcnow()
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="pulse-health")
    try:
        futures: dict[str, Future[Part]] = {
            name: pool.submit(_run, name, fn, now) for name, fn in checks.items()
        }
        deadline = time.perf_counter() + timeout_s
        parts: dict[str, Part] = {}
        for name, future in futures.items():
            try:
                parts[name] = future.result(timeout=max(deadline - time.perf_counter(), 0.0))
            except FutureTimeout:
                parts[name] = {
                    "status": UNHEALTHY,
                    "error": "Timeout",
                    "detail": f"no answer within {timeout_s:g} s",
                    "duration_ms": round(timeout_s * 1000, 1),
                }
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a hung check's thread is left behind, not waited for
    _root_cause(parts)
    failing = [name for name, part in parts.items() if part["status"] == UNHEALTHY]
    healthy = all(part["status"] == HEALTHY for part in parts.values())
    return {
        "status": HEALTHY if healthy else UNHEALTHY,
        "checked_at": now.isoformat(),
        "parts": parts,
        "failing": failing,
    }
