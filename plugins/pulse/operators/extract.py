"""ExtractToRawOperator: page a source's API for the run's window into ``raw.api_responses``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator


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
    The policy is in named steps, :mod:`pulse.ingest.extract`, guarded by :mod:`pulse.ingest.guard`.

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
        from pulse.config import load_source_config
        from pulse.ingest.extract import ExtractRun, extract
        from pulse.ingest.guard import SourceGuard
        from pulse.params import validate_context
        from pulse.sources.base import get_source
        from pulse.warehouse.db import connect
        from pulse.windows import resolve_window

        # Bad params fail the run at once (no retry) and before the breaker: they are not the source's fault.
        validate_context("ingest", context)
        with connect() as conn:
            guard = SourceGuard(conn, self.source)
            guard.check()
            with guard.watching(context):
                spec = get_source(self.source)
                window = resolve_window(context, spec.default_window)
                config = load_source_config(self.source)
                parser = spec.parser_module()
                conn_id = self.conn_id or getattr(config, "conn_id", None) or spec.default_conn_id
                hook = spec.hook_class()(conn_id)
                streams = parser.plan_streams(config, window)
                run = ExtractRun.begin(conn, self.source, window, context, self.log)
                self.log.info(
                    "%s: window %s, %d streams, connection %s", self.source, window, len(streams), conn_id
                )
                return extract(run, hook, parser, streams)
