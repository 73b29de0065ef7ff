"""The extract policy as named steps: plan, resume, fetch, record coverage, finish.

An :class:`ExtractRun` pages each planned stream of a source for the run's window into ``raw.api_responses``
and says in ``ops.coverage`` what the window holds and why the rest is missing (:func:`extract`)::

    for stream, reachable in plan(run, parser, streams):  # within the API's reach, while budget lasts
        start = resume(run, stream)  # after the last page this run stored; None: the stream is complete
        if start is not None:
            last = fetch(run, hook, stream, reachable, start)  # one budget call per page
            if not run.budget_spent:
                record_coverage(run, stream, reachable, last)
    return finish(run)  # ops.ingest_runs and the XCom summary

The circuit breaker around it is :class:`pulse.ingest.guard.SourceGuard`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from pulse import coverage
from pulse.budget import Budget, budgets_from_config
from pulse.sources.base import MalformedPageError, Page, SourceAuthError, Stream
from pulse.warehouse.raw import RawStore, RunContext
from pulse.windows import Window, utcnow

if TYPE_CHECKING:
    import psycopg

#: Waits for a quota bucket shorter than this are slept through; longer ones end the run with a gap.
MAX_BUDGET_WAIT = timedelta(seconds=90)


class Pager(Protocol):
    """What the steps need of a source hook."""

    def iter_pages(
        self, stream: Stream, window: Window, cursor: str | None = None, page_no: int = 0
    ) -> Iterator[Page]: ...


@dataclass
class ExtractRun:
    """One extract task of one source: its warehouse connection, run, raw store and quota.

    Coverage rows are one short call (:meth:`gap`, :meth:`ingested`); the run counts the gaps it records
    and remembers when its budget ran out, for the steps that follow.

    :param log: where the steps log (the operator passes its task logger).
    """

    conn: psycopg.Connection[Any]
    source: str
    ctx: RunContext
    budget: Budget
    log: Any = field(default_factory=lambda: logging.getLogger(__name__))
    raw: RawStore = field(init=False)
    gaps: int = 0
    budget_spent: bool = False

    def __post_init__(self) -> None:
        self.raw = RawStore(self.conn)

    @classmethod
    def begin(
        cls, conn: psycopg.Connection[Any], source: str, window: Window, context: Any, log: Any
    ) -> ExtractRun:
        """The run of this task instance, with the source's budget from the sources file (or the defaults)."""
        from pulse.config import load_all

        budget = Budget(conn, source, budgets_from_config(load_all()).get(source, ()))
        ctx = RunContext(
            dag_id=context["dag"].dag_id,
            dag_run_id=context["run_id"],
            task_try=int(getattr(context.get("ti"), "try_number", 1) or 1),
            window=window,
        )
        return cls(conn, source, ctx, budget, log)

    @property
    def window(self) -> Window:
        return self.ctx.window

    def gap(
        self, stream: Stream, start: datetime, end: datetime, reason: str, *, counted: bool = True
    ) -> None:
        """Record ``[start, end)`` of ``stream`` as a coverage gap; ``counted`` ones go to the run's summary."""
        coverage.record(self.conn, self.source, stream.key, start, end, "gap", self.ctx.dag_run_id, reason)
        if counted:
            self.gaps += 1

    def ingested(self, stream: Stream, window: Window) -> None:
        """Record ``window`` of ``stream`` as ingested."""
        coverage.record(
            self.conn, self.source, stream.key, window.start, window.end, "ingested", self.ctx.dag_run_id
        )


@dataclass(frozen=True)
class Start:
    """Where a stream's paging starts: the top, or after the last page this run stored."""

    cursor: str | None = None
    page_no: int = 0


def extract(run: ExtractRun, hook: Pager, parser: Any, streams: Iterable[Stream]) -> dict[str, Any]:
    """Every step in order, for every stream; returns the run's summary (:func:`finish`)."""
    for stream, reachable in plan(run, parser, streams):
        start = resume(run, stream)
        if start is None:
            continue
        last = fetch(run, hook, stream, reachable, start)
        if not run.budget_spent:
            record_coverage(run, stream, reachable, last)
    return finish(run)


def plan(run: ExtractRun, parser: Any, streams: Iterable[Stream]) -> Iterator[tuple[Stream, Window]]:
    """The streams to fetch, each with the part of the window the API can serve (:func:`reachable`).

    Lazily, so that once the budget is spent (by :func:`fetch`) each remaining stream becomes a
    ``budget_exhausted`` gap over the whole window instead.
    """
    for stream in streams:
        window = reachable(run, parser, stream)
        if window is None:
            continue
        if run.budget_spent:
            run.gap(stream, run.window.start, run.window.end, coverage.BUDGET_EXHAUSTED)
            continue
        yield stream, window


def reachable(run: ExtractRun, parser: Any, stream: Stream) -> Window | None:
    """The part of the run's window the API can serve (the parser's optional ``reach(stream)``).

    A window wholly older than the reach is a counted ``beyond_reach`` gap (None: nothing to fetch); the older
    part of a window that straddles it is a gap too (not counted: the stream is still fetched).
    """
    window = run.window
    reach = getattr(parser, "reach", None)
    horizon = reach(stream) if reach else None
    if horizon is None:
        return window
    earliest = utcnow() - horizon
    if window.end <= earliest:
        run.gap(stream, window.start, window.end, coverage.BEYOND_REACH)
        run.log.warning(
            "%s: window %s is beyond the API's reach (%s back); recorded as a gap",
            stream.key,
            window,
            horizon,
        )
        return None
    if window.start < earliest:
        run.gap(stream, window.start, earliest, coverage.BEYOND_REACH, counted=False)
        return Window(earliest, window.end)
    return window


def resume(run: ExtractRun, stream: Stream) -> Start | None:
    """Where to start ``stream``: after the last valid page this run stored (a retry), or at the top.

    None when that page was the stream's last: the stream is complete in this run.
    """
    last = run.raw.last_valid_page(run.source, run.ctx.dag_run_id, stream.key)
    if last is None:
        return Start()
    if last.next_cursor is None:
        run.log.info("%s: already complete in this run", stream.key)
        return None
    run.log.info("%s: resuming after stored page %d", stream.key, last.page_no)
    return Start(last.next_cursor, last.page_no + 1)


def take_budget(run: ExtractRun) -> bool:
    """Take one call from the budget, sleeping through a short wait; False when the run must stop instead.

    A wait longer than :data:`MAX_BUDGET_WAIT` stops the run, and so does a wait the pipeline clock did not
    advance through (pinned by ``PULSE_NOW``: its bucket would never roll over).
    """
    while True:
        decision = run.budget.acquire()
        if decision.allowed:
            return True
        if decision.wait_s > MAX_BUDGET_WAIT.total_seconds():
            return False
        run.log.info(
            "%s: quota bucket of %ss full; waiting %.0fs", run.source, decision.period_s, decision.wait_s
        )
        before = utcnow()
        time.sleep(decision.wait_s + 0.5)
        if utcnow() - before < timedelta(seconds=decision.wait_s):
            # The pipeline clock is pinned (PULSE_NOW): the budget's bucket never rolls over, so waiting
            # again would never end. End the run with a gap, as for a long wait.
            run.log.warning("%s: the pipeline clock did not advance; not waiting again", run.source)
            return False


def fetch(run: ExtractRun, hook: Pager, stream: Stream, window: Window, start: Start) -> Page | None:
    """Page ``stream`` over ``window`` from ``start``, storing (and committing) each page as it arrives.

    Each page first takes one call from the budget (:func:`take_budget`); the call taken for the end of the
    listing is given back. When the budget runs out, the run's whole window of this stream becomes a
    ``budget_exhausted`` gap and ``run.budget_spent`` is set. Returns the last page stored.

    :raises AirflowFailException: the source rejected the credentials (no retry can help).
    :raises AirflowException: a malformed page, kept in raw (``is_valid = false``) as evidence.
    """
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    pages = hook.iter_pages(stream, window, cursor=start.cursor, page_no=start.page_no)
    last = None
    try:
        while True:
            if not take_budget(run):
                run.budget_spent = True
                run.gap(stream, run.window.start, run.window.end, coverage.BUDGET_EXHAUSTED)
                run.log.warning("%s: budget spent; the rest of the run is recorded as a gap", stream.key)
                return last
            try:
                page = next(pages)
            except StopIteration:
                run.budget.refund()
                return last
            raw_id = run.raw.store(run.source, page, run.ctx)
            last = page
            run.log.info(
                "%s page %d: %s items, stored as raw id %d", stream.key, page.page_no, page.item_count, raw_id
            )
            if page.next_cursor is None:
                return last  # the stream is complete: no budget call for a page that is not needed
    except SourceAuthError as exc:
        raise AirflowFailException(str(exc)) from exc
    except MalformedPageError as exc:
        if exc.page is not None:
            raw_id = run.raw.store(run.source, exc.page, run.ctx)
            run.log.error("malformed body kept as raw id %d (is_valid = false)", raw_id)
        raise AirflowException(
            f"{run.source} {exc} Pages stored before it are kept in raw.api_responses "
            f"(run {run.ctx.dag_run_id}); a retry resumes after them."
        ) from exc


def record_coverage(run: ExtractRun, stream: Stream, window: Window, last: Page | None) -> None:
    """A fetched stream holds ``window`` (:func:`reachable`), less what its listing could not reach."""
    run.ingested(stream, window)
    listing_cap_gap(run, stream, last)


def listing_cap_gap(run: ExtractRun, stream: Stream, last: Page | None) -> None:
    """A newest-first listing that ended before reaching the window start holds nothing older: a gap."""
    oldest = getattr(last, "oldest_created", None)
    if last is None or oldest is None or last.next_cursor is not None:
        return
    oldest_dt = datetime.fromtimestamp(oldest, tz=UTC)
    if oldest_dt <= run.window.start:
        return
    run.gap(stream, run.window.start, min(oldest_dt, run.window.end), coverage.LISTING_CAP)


def finish(run: ExtractRun) -> dict[str, Any]:
    """Write the run's totals to ``ops.ingest_runs``; return the extract's XCom summary."""
    from pulse.ops import record_extract

    pages, items = run.raw.run_totals(run.source, run.ctx.dag_run_id)
    record_extract(run.conn, run.ctx, run.source, pages, items)
    run.log.info(
        "%s: %d pages, %d items, %d gaps in window %s", run.source, pages, items, run.gaps, run.window
    )
    return {
        "window": [run.window.start.isoformat(), run.window.end.isoformat()],
        "pages": pages,
        "items": items,
        "gaps": run.gaps,
    }
