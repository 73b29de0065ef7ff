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

    :param source: source name in :data:`pulse.sources.base.SOURCES` (templated).
    :param conn_id: connection to use instead of the one in ``include/sources.yaml`` (templated).
    :return: to XCom, ``{"window": [start, end], "pages": n, "items": n}`` for the whole run so far.
    """

    template_fields: Sequence[str] = ("source", "conn_id")
    ui_color = "#e8f0fe"

    def __init__(self, *, source: str, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.conn_id = conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowException, AirflowFailException

        from pulse.config import load_source_config
        from pulse.ops import record_extract
        from pulse.sources.base import MalformedPageError, SourceAuthError, get_source
        from pulse.warehouse.db import connect
        from pulse.warehouse.raw import RawStore, RunContext
        from pulse.windows import resolve_window

        spec = get_source(self.source)
        window = resolve_window(context, spec.default_window)
        config = load_source_config(self.source)
        conn_id = self.conn_id or getattr(config, "conn_id", None) or spec.default_conn_id
        hook = spec.hook_class()(conn_id)
        streams = spec.parser_module().plan_streams(config, window)
        run = RunContext(
            dag_id=context["dag"].dag_id,
            dag_run_id=context["run_id"],
            task_try=int(getattr(context.get("ti"), "try_number", 1) or 1),
            window=window,
        )
        self.log.info("%s: window %s, %d streams, connection %s", self.source, window, len(streams), conn_id)
        with connect() as conn:
            raw = RawStore(conn)
            for stream in streams:
                last = raw.last_valid_page(self.source, run.dag_run_id, stream.key)
                if last is not None and last.next_cursor is None:
                    self.log.info("%s: already complete in this run", stream.key)
                    continue
                cursor, page_no = (last.next_cursor, last.page_no + 1) if last else (None, 0)
                if last:
                    self.log.info("%s: resuming after stored page %d", stream.key, last.page_no)
                try:
                    for page in hook.iter_pages(stream, window, cursor=cursor, page_no=page_no):
                        raw_id = raw.store(self.source, page, run)
                        self.log.info(
                            "%s page %d: %s items, stored as raw id %d",
                            stream.key,
                            page.page_no,
                            page.item_count,
                            raw_id,
                        )
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
            pages, items = raw.run_totals(self.source, run.dag_run_id)
            record_extract(conn, run, self.source, pages, items)
        self.log.info("%s: %d pages, %d items in window %s", self.source, pages, items, window)
        return {"window": [window.start.isoformat(), window.end.isoformat()], "pages": pages, "items": items}
