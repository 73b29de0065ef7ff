"""An extract run of a toy source on the real test warehouse, and a hook that serves pages from a list."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest

from pulse.budget import Budget
from pulse.ingest.extract import ExtractRun
from pulse.sources.base import Page, Stream
from pulse.warehouse.raw import RunContext
from pulse.windows import Window
from tests.conftest import WINDOW

SOURCE = "toy"
RUN_WINDOW = Window(datetime.fromisoformat(WINDOW[0]), datetime.fromisoformat(WINDOW[1]))
_ids = itertools.count()


def make_page(stream: Stream, page_no: int, next_cursor: str | None, **kw: Any) -> Page:
    return Page(
        stream, page_no, stream.endpoint, {}, 200, {}, b'{"items": []}', next_cursor=next_cursor, **kw
    )


def pages_of(stream: Stream, n: int) -> list[Page]:
    """``n`` pages of ``stream``, each pointing at the next (cursor ``c<k>``), the last at nothing."""
    return [make_page(stream, i, f"c{i + 1}" if i < n - 1 else None, item_count=1) for i in range(n)]


class FakeHook:
    """Serves each stream's listed pages from ``page_no`` on; records every ``iter_pages`` call.

    ``fail`` maps a stream key to an exception raised instead of the page at ``fail_at``.
    """

    def __init__(
        self, pages: dict[str, list[Page]], fail: dict[str, BaseException] | None = None, fail_at: int = 0
    ):
        self.pages = pages
        self.fail = fail or {}
        self.fail_at = fail_at
        self.calls: list[tuple[str, Window, str | None, int]] = []

    def iter_pages(
        self, stream: Stream, window: Window, cursor: str | None = None, page_no: int = 0
    ) -> Iterator[Page]:
        self.calls.append((stream.key, window, cursor, page_no))
        for page in self.pages.get(stream.key, [])[page_no:]:
            if stream.key in self.fail and page.page_no == self.fail_at:
                raise self.fail[stream.key]
            yield page


@pytest.fixture
def wdb(db: Any) -> Any:
    """The warehouse (autocommit), with nothing of the toy source in it."""
    for table in (
        "raw.api_responses",
        "ops.coverage",
        "ops.api_budget",
        "ops.ingest_runs",
        "quality.source_health",
    ):
        db.execute(f"DELETE FROM {table} WHERE source = %s", (SOURCE,))
    return db


@pytest.fixture
def make_run(wdb: Any) -> Callable[..., ExtractRun]:
    """An extract run of the toy source over :data:`RUN_WINDOW` (its own run id), with the given quota."""

    def make(
        limits: tuple[tuple[int, int], ...] = ((86400, 1000),), window: Window = RUN_WINDOW
    ) -> ExtractRun:
        ctx = RunContext(
            dag_id="ingest_toy", dag_run_id=f"manual__toy_{next(_ids)}", task_try=1, window=window
        )
        return ExtractRun(wdb, SOURCE, ctx, Budget(wdb, SOURCE, limits))

    return make


def coverage_rows(db: Any, run: ExtractRun) -> list[tuple[Any, ...]]:
    """The run's ``ops.coverage`` rows: (stream, start, end, status, reason), in order."""
    return db.execute(
        "SELECT stream, window_start, window_end, status, reason FROM ops.coverage"
        " WHERE source = %s AND dag_run_id = %s ORDER BY stream, status, window_start",
        (SOURCE, run.ctx.dag_run_id),
    ).fetchall()


def raw_rows(db: Any, run: ExtractRun) -> list[tuple[Any, ...]]:
    """The run's raw pages: (stream, page_no, is_valid, next_cursor), in the order stored."""
    return db.execute(
        "SELECT stream, page_no, is_valid, next_cursor FROM raw.api_responses"
        " WHERE source = %s AND dag_run_id = %s ORDER BY id",
        (SOURCE, run.ctx.dag_run_id),
    ).fetchall()
