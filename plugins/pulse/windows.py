"""The data window of a run, in every way Airflow 3 can start one.

* Scheduled runs of a ``CronTriggerTimetable(..., interval=...)`` carry ``[start, end)``: used as is.
* A timetable without an interval gives a zero-length interval: the window becomes ``[end - default, end)``.
* Manual runs from the UI, CLI or REST have no logical date and no data interval (AIRFLOW3.md §5): the
  window ends at the run's ``run_after`` (to the minute) and reaches back ``default``.
* ``params.window_start`` / ``params.window_end`` (ISO 8601) override everything, for a hand-picked window.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any


def floor_hour(ts: datetime) -> datetime:
    """Start of the UTC hour of ``ts`` (as ``date_bin('1 hour', ts, '2000-01-01')`` in the warehouse)."""
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def utcnow() -> datetime:
    """The pipeline's clock, the only clock pipeline code reads: real UTC time, or ``PULSE_NOW`` (ISO 8601).

    Tests pin it to the simulator's fixed clock, so that checks such as "timestamp in the future" or "older
    than the API's reach" give the same answers on any later day; the test harness also gives manual runs a
    ``run_after`` on this clock (``tests/conftest.py::dag_test``), as Airflow gives them one on its own clock.
    Left on the machine's clock on purpose: HTTP protocol times that are compared with a server's or a
    partner's clock (GitHub's rate-limit reset epoch against the response's ``Date``, webhook signature
    timestamps), and the dev tools' own timeouts.
    """
    pinned = os.environ.get("PULSE_NOW")
    if pinned:
        value = datetime.fromisoformat(pinned.replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.now(tz=UTC)


@dataclass(frozen=True)
class Window:
    """A half-open time window ``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if self.start >= self.end:
            raise ValueError(f"empty window: {self.start.isoformat()} >= {self.end.isoformat()}")

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def _as_utc(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        raise TypeError(f"not a datetime: {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)


def resolve_window(context: Any, default: timedelta) -> Window:
    """Return the window a task should fetch, from its Airflow context."""
    from pulse.params import ingest_window  # checked like every DAG's params: BadParam fails the run at once

    picked = ingest_window(context.get("params") or {})
    if picked is not None:
        return picked

    start = _as_utc(context.get("data_interval_start"))
    end = _as_utc(context.get("data_interval_end"))
    if start is not None and end is not None:
        return Window(start, end) if start < end else Window(end - default, end)

    dag_run = context.get("dag_run")
    # Airflow sets run_after from its own clock when the run is triggered; only a run without one (a bare
    # context) falls back, and then to the pipeline clock, never to the machine's directly.
    run_after = _as_utc(getattr(dag_run, "run_after", None)) or utcnow()
    end = run_after.replace(second=0, microsecond=0)
    return Window(end - default, end)
