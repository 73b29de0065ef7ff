"""The extract's reach step: windows older than an API serves become coverage gaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from pulse.budget import Budget
from pulse.ingest.extract import ExtractRun, reachable
from pulse.sources.base import Stream
from pulse.warehouse.raw import RunContext
from pulse.windows import Window, utcnow


class _Recorder:
    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    def transaction(self) -> Any:
        import contextlib

        return contextlib.nullcontext()

    def execute(self, sql: str, params: tuple[Any, ...]) -> None:
        self.rows.append(params)


def _run(conn: Any, window: Window) -> ExtractRun:
    return ExtractRun(conn, "x", RunContext("d", "r", 1, window), Budget(conn, "x", ()))


def test_window_inside_reach_is_fetched_whole() -> None:
    now = utcnow()
    w = Window(now - timedelta(hours=2), now - timedelta(hours=1))
    parser = SimpleNamespace(reach=lambda s: timedelta(days=7))
    conn = _Recorder()
    assert reachable(_run(conn, w), parser, Stream("s", "/e")) == w
    assert conn.rows == []


def test_window_beyond_reach_is_a_gap_and_not_fetched() -> None:
    now = utcnow()
    w = Window(now - timedelta(days=10), now - timedelta(days=9))
    parser = SimpleNamespace(reach=lambda s: timedelta(days=7))
    conn = _Recorder()
    assert reachable(_run(conn, w), parser, Stream("s", "/e")) is None
    (row,) = conn.rows
    assert row[0:2] == ("x", "s") and row[4:] == ("gap", "beyond_reach", "r")


def test_window_partly_beyond_reach_is_clipped_with_a_gap_for_the_rest() -> None:
    now = utcnow()
    w = Window(now - timedelta(days=8), now - timedelta(days=6))
    parser = SimpleNamespace(reach=lambda s: timedelta(days=7))
    conn = _Recorder()
    clipped = reachable(_run(conn, w), parser, Stream("s", "/e"))
    assert clipped is not None and clipped.end == w.end
    assert abs((clipped.start - (now - timedelta(days=7))).total_seconds()) < 5
    (row,) = conn.rows
    assert row[2] == w.start and row[3] == clipped.start and row[5] == "beyond_reach"


def test_no_reach_function_means_unlimited() -> None:
    w = Window(datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 1, 2, tzinfo=UTC))
    conn = _Recorder()
    assert reachable(_run(conn, w), SimpleNamespace(), Stream("s", "/e")) == w
