"""ExtractToRawOperator: page a source's API for the run's window into ``raw.api_responses``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    import psycopg

    from pulse.sources.base import Stream
    from pulse.windows import Window

#: Waits for a quota bucket shorter than this are slept through; longer ones end the run with a gap.
MAX_BUDGET_WAIT = timedelta(seconds=90)


def is_source_failure(exc: BaseException) -> bool:
    """Whether a failure says something about the source, so that the circuit breaker counts it.

    HTTP errors, timeouts, malformed pages and rejected credentials do. A user's bad params
    (:class:`pulse.params.BadParam`) and a bad sources file (:class:`pulse.config.ConfigError`) do not: they
    fail the run before or without any API call, and opening the circuit would only skip the next good run.
    """
    from pulse.config import ConfigError
    from pulse.params import BadParam

    return not isinstance(exc, BadParam | ConfigError)


def is_final_try(context: Any, exc: BaseException) -> bool:
    """True when no retry follows this failure (the run fails), for the circuit breaker's count."""
    from airflow.sdk.exceptions import AirflowFailException

    if isinstance(exc, AirflowFailException):
        return True
    ti = context.get("ti")
    max_tries = getattr(ti, "max_tries", None)
    return max_tries is not None and int(getattr(ti, "try_number", 1)) > int(max_tries)


class SourceGuard:
    """Circuit breaker and alerts shared by the ingest operators of one source."""

    def __init__(self, conn: psycopg.Connection[Any], source: str) -> None:
        from pulse.breaker import Breaker, BreakerSettings
        from pulse.config import load_all

        self.source = source
        self.breaker = Breaker(conn, source, BreakerSettings.from_config(load_all()))

    def check(self) -> None:
        """Skip the run while the source's circuit is open.

        ``extract`` becomes a *skipped* task instance and ``load`` follows it (trigger rule ``all_success``), so
        the grid shows the skip; the DAG run itself ends *success*, as Airflow marks every run whose leaves
        all succeeded or skipped (it has no skipped run state).
        """
        from airflow.sdk.exceptions import AirflowSkipException

        from pulse.breaker import CircuitOpen

        try:
            self.breaker.check()
        except CircuitOpen as exc:
            raise AirflowSkipException(str(exc)) from exc

    def failed(self, context: Any, exc: BaseException) -> None:
        """Count the run's failure against the source when it is the source's and no retry follows."""
        if not is_source_failure(exc) or not is_final_try(context, exc):
            return
        if self.breaker.record_failure(f"{type(exc).__name__}: {exc}"):
            self._alert_open(context, exc)

    def _alert_open(self, context: Any, exc: BaseException) -> None:
        from pulse.alerts import Alert, describe_window, post_alert

        settings = self.breaker.settings
        ti = context.get("ti")
        post_alert(
            Alert(
                route="failures",
                kind="breaker_open",
                title=f":no_entry: *Circuit opened for source `{self.source}`*",
                dag_id=getattr(ti, "dag_id", None),
                run_id=context.get("run_id"),
                window=describe_window(context),
                lines=[
                    f"{settings.failures} runs in a row failed; runs of `{self.source}` skip for "
                    f"{int(settings.cool_down.total_seconds() // 60)} min, then one run tries again.",
                    f"*Last error*: {type(exc).__name__}: {str(exc)[:500]}",
                ],
                links=[("Task log", ti.log_url)] if ti is not None else [],
                dedup_key=f"breaker_open|{self.source}",
            )
        )


class ExtractToRawOperator(BaseOperator):
    """Fetch every page of a source for the run's window and store each one as it arrives.

    The window comes from :func:`pulse.windows.resolve_window` (scheduled, manual and hand-picked runs).
    Pages are committed one by one; a retry of the same run resumes each stream after its last stored valid
    page, and skips streams already complete. Rejected credentials fail the task at once (no retries); a
    page that stays malformed fails it with the page kept in raw as evidence.

    Before each page one call is taken from the source's persisted budget (``pulse.budget``): a short wait
    for the next quota bucket is slept through, a long one ends the run cleanly with what it has and records
    the rest as a ``budget_exhausted`` gap in ``ops.coverage``. Windows older than the API's reach (the
    parser module's optional ``reach(stream)``) are recorded as ``beyond_reach`` gaps instead of fetched.
    While the source's circuit breaker is open, the task skips (and so does ``load``). The run's params are
    checked first (:mod:`pulse.params`): bad ones fail the task at once and never count against the source.

    :param source: source name in :data:`pulse.sources.base.SOURCES` (templated).
    :param conn_id: connection to use instead of the one in ``include/sources.yaml`` (templated).
    :return: to XCom, ``{"window": [start, end], "pages": n, "items": n, "gaps": n}`` for the whole run.
    """

    template_fields: Sequence[str] = ("source", "conn_id")
    ui_color = "#e8f0fe"

    def __init__(self, *, source: str, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.conn_id = conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from pulse.params import validate_context
        from pulse.warehouse.db import connect

        # Bad params fail the run at once (no retry) and before the breaker: they are not the source's fault.
        validate_context("ingest", context)
        with connect() as conn:
            guard = SourceGuard(conn, self.source)
            guard.check()
            try:
                return self._extract(conn, context)
            except BaseException as exc:
                guard.failed(context, exc)
                raise

    def _extract(self, conn: psycopg.Connection[Any], context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowException, AirflowFailException

        from pulse import coverage
        from pulse.budget import Budget, budgets_from_config
        from pulse.config import load_all, load_source_config
        from pulse.ops import record_extract
        from pulse.sources.base import MalformedPageError, SourceAuthError, get_source
        from pulse.warehouse.raw import RawStore, RunContext
        from pulse.windows import resolve_window

        spec = get_source(self.source)
        window = resolve_window(context, spec.default_window)
        config = load_source_config(self.source)
        parser = spec.parser_module()
        conn_id = self.conn_id or getattr(config, "conn_id", None) or spec.default_conn_id
        hook = spec.hook_class()(conn_id)
        streams = parser.plan_streams(config, window)
        budget = Budget(conn, self.source, budgets_from_config(load_all()).get(self.source, ()))
        run = RunContext(
            dag_id=context["dag"].dag_id,
            dag_run_id=context["run_id"],
            task_try=int(getattr(context.get("ti"), "try_number", 1) or 1),
            window=window,
        )
        self.log.info("%s: window %s, %d streams, connection %s", self.source, window, len(streams), conn_id)
        raw = RawStore(conn)
        gaps = 0
        budget_spent = False
        for stream in streams:
            fetch_window = self._reachable(conn, parser, stream, window, run)
            if fetch_window is None:
                gaps += 1
                continue
            if budget_spent:
                coverage.record(
                    conn,
                    self.source,
                    stream.key,
                    window.start,
                    window.end,
                    "gap",
                    run.dag_run_id,
                    coverage.BUDGET_EXHAUSTED,
                )
                gaps += 1
                continue
            last = raw.last_valid_page(self.source, run.dag_run_id, stream.key)
            if last is not None and last.next_cursor is None:
                self.log.info("%s: already complete in this run", stream.key)
                continue
            cursor, page_no = (last.next_cursor, last.page_no + 1) if last else (None, 0)
            if last:
                self.log.info("%s: resuming after stored page %d", stream.key, last.page_no)
            pages = hook.iter_pages(stream, fetch_window, cursor=cursor, page_no=page_no)
            final = None
            try:
                while True:
                    if not self._take_budget(budget):
                        budget_spent = True
                        coverage.record(
                            conn,
                            self.source,
                            stream.key,
                            window.start,
                            window.end,
                            "gap",
                            run.dag_run_id,
                            coverage.BUDGET_EXHAUSTED,
                        )
                        gaps += 1
                        self.log.warning(
                            "%s: budget spent; the rest of the run is recorded as a gap", stream.key
                        )
                        break
                    try:
                        page = next(pages)
                    except StopIteration:
                        budget.refund()
                        break
                    raw_id = raw.store(self.source, page, run)
                    final = page
                    self.log.info(
                        "%s page %d: %s items, stored as raw id %d",
                        stream.key,
                        page.page_no,
                        page.item_count,
                        raw_id,
                    )
                    if page.next_cursor is None:
                        break  # the stream is complete: no budget call for a page that is not needed
            except SourceAuthError as exc:
                raise AirflowFailException(str(exc)) from exc
            except MalformedPageError as exc:
                if exc.page is not None:
                    raw_id = raw.store(self.source, exc.page, run)
                    self.log.error("malformed body kept as raw id %d (is_valid = false)", raw_id)
                raise AirflowException(
                    f"{self.source} {exc} Pages stored before it are kept in raw.api_responses "
                    f"(run {run.dag_run_id}); a retry resumes after them."
                ) from exc
            if budget_spent:
                continue
            coverage.record(
                conn,
                self.source,
                stream.key,
                fetch_window.start,
                fetch_window.end,
                "ingested",
                run.dag_run_id,
            )
            gaps += self._listing_cap_gap(conn, stream, window, final, run)
        pages_n, items = raw.run_totals(self.source, run.dag_run_id)
        record_extract(conn, run, self.source, pages_n, items)
        self.log.info(
            "%s: %d pages, %d items, %d gaps in window %s", self.source, pages_n, items, gaps, window
        )
        return {
            "window": [window.start.isoformat(), window.end.isoformat()],
            "pages": pages_n,
            "items": items,
            "gaps": gaps,
        }

    def _take_budget(self, budget: Any) -> bool:
        from pulse.windows import utcnow

        while True:
            decision = budget.acquire()
            if decision.allowed:
                return True
            if decision.wait_s > MAX_BUDGET_WAIT.total_seconds():
                return False
            self.log.info(
                "%s: quota bucket of %ss full; waiting %.0fs", self.source, decision.period_s, decision.wait_s
            )
            before = utcnow()
            time.sleep(decision.wait_s + 0.5)
            if utcnow() - before < timedelta(seconds=decision.wait_s):
                # The pipeline clock is pinned (PULSE_NOW): the budget's bucket never rolls over, so waiting
                # again would never end. End the run with a gap, as for a long wait.
                self.log.warning("%s: the pipeline clock did not advance; not waiting again", self.source)
                return False

    def _reachable(
        self, conn: psycopg.Connection[Any], parser: Any, stream: Stream, window: Window, run: Any
    ) -> Window | None:
        """The part of the window the API can serve; gaps for the rest go to ``ops.coverage``."""
        from pulse import coverage
        from pulse.windows import Window, utcnow

        reach = getattr(parser, "reach", None)
        horizon = reach(stream) if reach else None
        if horizon is None:
            return window
        earliest = utcnow() - horizon
        if window.end <= earliest:
            coverage.record(
                conn,
                self.source,
                stream.key,
                window.start,
                window.end,
                "gap",
                run.dag_run_id,
                coverage.BEYOND_REACH,
            )
            self.log.warning(
                "%s: window %s is beyond the API's reach (%s back); recorded as a gap",
                stream.key,
                window,
                horizon,
            )
            return None
        if window.start < earliest:
            coverage.record(
                conn,
                self.source,
                stream.key,
                window.start,
                earliest,
                "gap",
                run.dag_run_id,
                coverage.BEYOND_REACH,
            )
            return Window(earliest, window.end)
        return window

    def _listing_cap_gap(
        self, conn: psycopg.Connection[Any], stream: Stream, window: Window, final: Any, run: Any
    ) -> int:
        """A newest-first listing that ended before reaching the window start holds nothing older."""
        from pulse import coverage

        oldest = getattr(final, "oldest_created", None)
        if final is None or oldest is None or final.next_cursor is not None:
            return 0
        oldest_dt = datetime.fromtimestamp(oldest, tz=UTC)
        if oldest_dt <= window.start:
            return 0
        coverage.record(
            conn,
            self.source,
            stream.key,
            window.start,
            min(oldest_dt, window.end),
            "gap",
            run.dag_run_id,
            coverage.LISTING_CAP,
        )
        return 1
