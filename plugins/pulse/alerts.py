"""Slack alerts: one message format, routed by kind, deduplicated across every Airflow component.

Every alert Pulse sends goes through here and through the Slack provider's ``SlackWebhookNotifier``:

* task failures after the last retry (worker), DAG run failures (dag-processor) and missed Deadline Alerts
  (triggerer) use :class:`PulseSlackNotifier` as the callback;
* failed quality checks, an opened circuit breaker and rows in default partitions call :func:`post_alert`.

**Routing**: an alert has a route, and each route is its own Slack webhook connection: ``failures`` ->
``slack_failures`` (runs, tasks, deadlines, breakers, partitions), ``quality`` -> ``slack_quality`` (data
quality checks), ``trends`` -> ``slack_trends`` (trend alerts). Point them at different channels.

**Deduplication**: alerts with the same key (kind, DAG, task and the shape of the error, with numbers and ids
masked) within ``PULSE_ALERT_DEDUP_MINUTES`` (default 60) of the last post are counted in ``ops.alert_log``
instead of posted; the next post after the window says how many repeats it stands for, and the daily digest
lists them all. Every alert, posted or not, is a row in ``ops.alert_events``. If the warehouse cannot be
reached the alert is posted anyway (an alert is never lost to its own bookkeeping) and says so.

**Content**: each message names the DAG, the run, the data window, what failed, and links to the run (and
the task log) in the Airflow UI (``[api] base_url``).

A deadline miss for a run that has already failed is recorded but not posted: the failure alert said it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

log = logging.getLogger(__name__)

#: Route -> Slack webhook connection id.
ROUTES: dict[str, str] = {
    "failures": "slack_failures",
    "quality": "slack_quality",
    "trends": "slack_trends",
}
DEDUP_MINUTES_ENV = "PULSE_ALERT_DEDUP_MINUTES"
DEFAULT_DEDUP_MINUTES = 60.0

_MASKS = (
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<uuid>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ][0-9:.+\-Z]+"), "<time>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\d+(\.\d+)?"), "<n>"),
)


def error_shape(text: str, limit: int = 160) -> str:
    """The error message with numbers, ids and times masked: two failures of the same kind compare equal."""
    first = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    for pattern, repl in _MASKS:
        first = pattern.sub(repl, first)
    return first[:limit]


def dedup_window_minutes() -> float:
    """The deduplication window in minutes (``PULSE_ALERT_DEDUP_MINUTES``; 0 posts every alert)."""
    raw = os.environ.get(DEDUP_MINUTES_ENV, "")
    try:
        return max(0.0, float(raw)) if raw.strip() else DEFAULT_DEDUP_MINUTES
    except ValueError:
        log.warning("%s=%r is not a number; using %s", DEDUP_MINUTES_ENV, raw, DEFAULT_DEDUP_MINUTES)
        return DEFAULT_DEDUP_MINUTES


def ui_base_url() -> str:
    from airflow.configuration import conf

    return str(conf.get("api", "base_url", fallback="http://localhost:8080/")).rstrip("/")


def run_url(dag_id: str, run_id: str | None) -> str:
    """Link to a DAG run in the Airflow 3 UI (to the DAG when there is no run)."""
    base = f"{ui_base_url()}/dags/{quote(dag_id)}"
    return f"{base}/runs/{quote(run_id)}" if run_id else base


@dataclass
class Alert:
    """One alert. ``lines`` are the body (what failed, observed values ...)."""

    route: str
    kind: str
    title: str
    dag_id: str | None
    run_id: str | None
    dedup_key: str
    window: str | None = None
    lines: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    post: bool = True
    note: str | None = None

    def text(self, repeats: int = 0, since: datetime | None = None, window_min: float = 0) -> str:
        out = [self.title]
        meta = []
        if self.dag_id:
            meta.append(f"*DAG*: `{self.dag_id}`")
        if self.run_id:
            meta.append(f"*Run*: `{self.run_id}`")
        meta.append(f"*Window*: {self.window or 'n/a'}")
        out.append(" · ".join(meta))
        out.extend(self.lines)
        if repeats:
            when = f" since {since:%Y-%m-%d %H:%M} UTC" if since else ""
            out.append(
                f"_Repeated: {repeats} more time(s){when} were not posted "
                f"(same alert within {window_min:g} min)._"
            )
        if self.note:
            out.append(f"_{self.note}_")
        links = list(self.links)
        if self.dag_id:
            links.insert(0, ("Open the run in Airflow", run_url(self.dag_id, self.run_id)))
        if links:
            out.append(" · ".join(f"<{url}|{label}>" for label, url in links))
        return "\n".join(out)


# --------------------------------------------------------------------------------------------------
# deduplication store (the warehouse)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    post: bool
    repeats: int  # repeats held back since the previous post (reported by this post)
    since: datetime | None
    note: str | None = None


def register(alert: Alert, window_minutes: float | None = None, conn: Any = None) -> Decision:
    """Record ``alert`` in ``ops.alert_log``/``ops.alert_events`` and decide whether to post it.

    Posts when the key was never posted or its last post is older than the window. Fails open: if the store
    is unreachable the decision is to post, with a note.
    """
    window = dedup_window_minutes() if window_minutes is None else window_minutes
    try:
        if conn is None:
            from pulse.warehouse.db import connect

            with connect(connect_timeout=5) as own:
                return _register(own, alert, window)
        return _register(conn, alert, window)
    except Exception as exc:  # the alert matters more than its bookkeeping
        log.warning("alert dedup store unavailable (%s): posting %s", exc, alert.dedup_key)
        return Decision(True, 0, None, note=f"dedup store unavailable: {type(exc).__name__}")


def _register(conn: Any, alert: Alert, window: float) -> Decision:
    with conn.transaction():
        conn.execute(
            "INSERT INTO ops.alert_log (dedup_key, route, kind, title) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (dedup_key) DO NOTHING",
            (alert.dedup_key, alert.route, alert.kind, alert.title),
        )
        last_posted, suppressed, first_seen, now = conn.execute(
            "SELECT last_posted_at, suppressed, first_seen, now() FROM ops.alert_log"
            " WHERE dedup_key = %s FOR UPDATE",
            (alert.dedup_key,),
        ).fetchone()
        fresh = last_posted is None or (now - last_posted).total_seconds() >= window * 60
        post = alert.post and fresh
        if post:
            conn.execute(
                "UPDATE ops.alert_log SET last_seen = now(), last_posted_at = now(), occurrences = occurrences + 1,"
                " suppressed = 0, title = %s, route = %s WHERE dedup_key = %s",
                (alert.title, alert.route, alert.dedup_key),
            )
        else:
            conn.execute(
                "UPDATE ops.alert_log SET last_seen = now(), occurrences = occurrences + 1,"
                " suppressed = suppressed + %s, title = %s WHERE dedup_key = %s",
                (1 if alert.post else 0, alert.title, alert.dedup_key),
            )
        note = alert.note if not alert.post else (None if post else f"duplicate within {window:g} min")
        conn.execute(
            "INSERT INTO ops.alert_events (route, kind, dedup_key, dag_id, run_id, title, posted, note)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (alert.route, alert.kind, alert.dedup_key, alert.dag_id, alert.run_id, alert.title, post, note),
        )
    return Decision(post, int(suppressed) if post else 0, last_posted or first_seen)


def post_alert(alert: Alert, *, window_minutes: float | None = None, conn: Any = None) -> bool:
    """Deduplicate and post ``alert`` through the Slack provider's notifier; return whether it was posted.

    Posting errors are logged, never raised: an alert must not fail the task that raised it.
    """
    decision = register(alert, window_minutes, conn)
    if not decision.post:
        log.info("alert %s not posted: %s", alert.dedup_key, alert.note or "duplicate within the window")
        return False
    if decision.note:
        alert.note = decision.note
    text = alert.text(
        decision.repeats, decision.since, dedup_window_minutes() if window_minutes is None else window_minutes
    )
    try:
        SlackWebhookNotifier(slack_webhook_conn_id=ROUTES[alert.route], text=text).notify({})
    except Exception:
        log.exception("could not post the %s alert to %s", alert.kind, ROUTES[alert.route])
        return False
    return True


# --------------------------------------------------------------------------------------------------
# alerts from Airflow callback contexts
# --------------------------------------------------------------------------------------------------


def _iso(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC") if value.utcoffset() is not None else value.isoformat()
    text = str(value)
    try:
        return _iso(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return text


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def describe_window(context: Mapping[str, Any]) -> str:
    """The data window of the run: hand-picked params, else the data interval, else when the run was due."""
    params = context.get("params") or {}
    dag_run = context.get("dag_run")
    conf = _get(dag_run, "conf") or {}
    start = params.get("window_start") or conf.get("window_start")
    end = params.get("window_end") or conf.get("window_end")
    if start or end:
        return f"{_iso(start)} → {_iso(end)}"
    start = context.get("data_interval_start") or _get(dag_run, "data_interval_start")
    end = context.get("data_interval_end") or _get(dag_run, "data_interval_end")
    if start and end and _iso(start) != _iso(end):
        return f"{_iso(start)} → {_iso(end)}"
    due = _get(dag_run, "run_after") or _get(dag_run, "logical_date") or end
    return f"the DAG's default window before {_iso(due)}" if due else "n/a"


def _run_id(context: Mapping[str, Any]) -> str | None:
    return (
        context.get("run_id")
        or _get(context.get("dag_run"), "run_id")
        or _get(context.get("dag_run"), "dag_run_id")
    )


def task_failed_alert(context: Mapping[str, Any]) -> Alert:
    ti = context.get("ti")
    dag_id, task_id = str(_get(ti, "dag_id")), str(_get(ti, "task_id"))
    exc = context.get("exception")
    error = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(exc or "unknown")
    tries = _get(ti, "try_number")
    links = []
    log_url = _get(ti, "log_url")
    if log_url:
        links.append(("Task log", str(log_url)))
    return Alert(
        route="failures",
        kind="task_failed",
        title=f":red_circle: *Task failed* `{dag_id}.{task_id}`" + (f" after {tries} tries" if tries else ""),
        dag_id=dag_id,
        run_id=_run_id(context),
        window=describe_window(context),
        lines=[f"*Error*: {error[:600]}"],
        links=links,
        dedup_key=f"task_failed|{dag_id}|{task_id}|{error_shape(error)}",
    )


def dag_failed_alert(context: Mapping[str, Any]) -> Alert:
    dag_run = context.get("dag_run")
    dag = context.get("dag")
    dag_id = str(_get(dag_run, "dag_id") or _get(dag, "dag_id"))
    reason = context.get("reason") or "failed"
    failed = []
    try:
        tis = dag_run.get_task_instances(state=["failed", "upstream_failed"]) if dag_run is not None else []
        failed = sorted(f"{t.task_id} ({t.state})" for t in tis)
    except Exception:  # the DagRun may be detached from its session: the message stays useful without it
        failed = []
    ti = context.get("ti")
    if not failed and _get(ti, "task_id"):
        # In the dag-processor (the real stack) dag_run is the Task SDK's DagRun, which cannot list its task
        # instances; ti is the task instance Airflow blames (the last one that failed, for task_failure).
        state = _get(ti, "state") or ("failed" if reason == "task_failure" else reason)
        failed = [f"{_get(ti, 'task_id')} ({state})"]
    lines = [f"*Reason*: {reason}"]
    if failed:
        lines.append("*Tasks*: " + ", ".join(failed[:10]))
    return Alert(
        route="failures",
        kind="dag_failed",
        title=f":x: *DAG run failed* `{dag_id}`",
        dag_id=dag_id,
        run_id=_run_id(context),
        window=describe_window(context),
        lines=lines,
        dedup_key=f"dag_failed|{dag_id}|{error_shape(str(reason))}",
    )


def deadline_alert(context: Mapping[str, Any], name: str | None = None) -> Alert:
    dag_run = context.get("dag_run") or {}
    deadline = context.get("deadline") or {}
    dag_id = str(_get(dag_run, "dag_id"))
    state = str(_get(dag_run, "state") or "")
    alert = Alert(
        route="failures",
        kind="deadline_missed",
        title=f":hourglass: *Deadline missed* `{dag_id}`" + (f" ({name})" if name else ""),
        dag_id=dag_id,
        run_id=_run_id(context),
        window=describe_window(context),
        lines=[
            f"*Not done by*: {_iso(_get(deadline, 'deadline_time'))} (queued {_iso(_get(dag_run, 'queued_at'))}, "
            f"state {state or 'unknown'})"
        ],
        dedup_key=f"deadline_missed|{dag_id}|{name or ''}",
    )
    if state == "failed":
        # Airflow only prunes deadlines of successful runs: a failed run still misses its deadline later.
        alert.post = False
        alert.note = "run already failed (its failure alert was sent)"
    return alert


class PulseSlackNotifier(SlackWebhookNotifier):
    """``SlackWebhookNotifier`` that builds the Pulse message from the context, routes and deduplicates it.

    ``kind`` is ``task_failed`` (task ``on_failure_callback``), ``dag_failed`` (DAG ``on_failure_callback``)
    or ``deadline_missed`` (Deadline Alert ``AsyncCallback``). The message is composed in Python rather than
    Jinja, so it also works where Airflow cannot render templates (DAG callbacks under ``dag.test()``, the
    triggerer's small deadline context).
    """

    template_fields: Sequence[str] = ()

    def __init__(
        self, *, kind: str, route: str = "failures", name: str | None = None, text: str = "", **kwargs: Any
    ) -> None:
        if route not in ROUTES:
            raise ValueError(f"unknown alert route {route!r}; one of {sorted(ROUTES)}")
        if kind not in ("task_failed", "dag_failed", "deadline_missed"):
            raise ValueError(f"unknown alert kind {kind!r}")
        super().__init__(slack_webhook_conn_id=ROUTES[route], text=text, **kwargs)
        self.kind, self.route, self.name = kind, route, name

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Nothing to render: the text is built from the context in :meth:`notify`."""

    def _alert(self, context: Mapping[str, Any]) -> Alert:
        if self.kind == "task_failed":
            alert = task_failed_alert(context)
        elif self.kind == "dag_failed":
            alert = dag_failed_alert(context)
        else:
            alert = deadline_alert(context, self.name)
        alert.route = self.route
        return alert

    def notify(self, context: Any) -> None:
        post_alert(self._alert(context))

    async def async_notify(self, context: Any) -> None:
        # The triggerer runs this in its event loop: the blocking database and HTTP calls go to a thread.
        await asyncio.to_thread(post_alert, self._alert(context))


# --------------------------------------------------------------------------------------------------
# daily digest
# --------------------------------------------------------------------------------------------------


def digest_text(conn: Any, since: datetime, until: datetime) -> str:
    """Summary of every alert raised in [since, until): counts per route and kind, the most repeated ones."""
    rows = conn.execute(
        """
        SELECT route, kind, count(*), count(*) FILTER (WHERE posted)
          FROM ops.alert_events WHERE occurred_at >= %s AND occurred_at < %s
         GROUP BY 1, 2 ORDER BY 1, 3 DESC
        """,
        (since, until),
    ).fetchall()
    span = f"{since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC"
    if not rows:
        return f":sunny: *Pulse alert digest*, {span}: no alerts."
    total = sum(r[2] for r in rows)
    held = total - sum(r[3] for r in rows)
    lines = [f":bookmark_tabs: *Pulse alert digest*, {span}: {total} alert(s), {held} held back as repeats."]
    lines += [f"• {route} / {kind}: {n} ({posted} posted)" for route, kind, n, posted in rows]
    top = conn.execute(
        """
        SELECT min(title), dedup_key, count(*), max(occurred_at)
          FROM ops.alert_events WHERE occurred_at >= %s AND occurred_at < %s
         GROUP BY dedup_key HAVING count(*) > 1 ORDER BY 3 DESC, 2 LIMIT 5
        """,
        (since, until),
    ).fetchall()
    if top:
        lines.append("*Most repeated*:")
        lines += [f"• {title}: {n} times, last {last:%H:%M} UTC" for title, _key, n, last in top]
    return "\n".join(lines)
