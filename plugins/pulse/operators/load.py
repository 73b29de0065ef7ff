"""LoadRawToCoreOperator: parse this run's raw pages, upsert good items, quarantine bad ones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator


class LoadRawToCoreOperator(BaseOperator):
    """Parse and validate every valid raw page of this run, then load it.

    Text items are upserted into ``core.documents`` and numeric facts into their ``core`` fact tables
    (re-runs and backfills give the same rows); every item
    that fails parsing or validation goes to ``quality.quarantine`` with a reason code, and the rest of its
    page loads. Reads only from the warehouse, so it can be re-run after a parser fix without calling the API.

    :param source: source name in :data:`pulse.sources.base.SOURCES` (templated).
    :return: to XCom, ``{"loaded": n, "changed": n, "quarantined": n}``; the same figures go to the
        outlet Asset event's extra and to ``ops.ingest_runs``.
    """

    template_fields: Sequence[str] = ("source",)
    ui_color = "#e6f4ea"

    def __init__(self, *, source: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source

    def execute(self, context: Any) -> dict[str, Any]:
        from pulse.operators.extract import SourceGuard
        from pulse.privacy import make_pseudonymizer
        from pulse.sources.base import get_source
        from pulse.warehouse.db import connect
        from pulse.windows import utcnow

        parser = get_source(self.source).parser_module()
        pseudonymize = make_pseudonymizer(self.source)
        now = utcnow()
        with connect() as conn:
            guard = SourceGuard(conn, self.source)
            try:
                summary = self._load(conn, context, parser, pseudonymize, now)
            except BaseException as exc:
                guard.failed(context, exc)
                raise
            guard.breaker.record_success()
        for outlet in self.outlets or []:
            context["outlet_events"][outlet].extra = {
                "source": self.source,
                "run_id": context["run_id"],
                **summary,
            }
        return summary

    def _load(self, conn: Any, context: Any, parser: Any, pseudonymize: Any, now: Any) -> dict[str, Any]:
        from pulse.ops import record_load
        from pulse.warehouse.loader import ParsedBatch, quarantine, resolve_quarantined
        from pulse.warehouse.raw import RawStore

        run_id = context["run_id"]
        batch = ParsedBatch()
        pages = RawStore(conn).valid_pages(self.source, run_id)
        for page in pages:
            for index, out in parser.parse_page(page, pseudonymize, now):
                batch.add(out, page.id, index)
        result, refused_rows = batch.upsert(conn, run_id)
        # Rows PostgreSQL would refuse (the parser let them through) are quarantined like parse failures.
        rejected = [*batch.rejected, *((rej, raw_id) for _, rej, raw_id in refused_rows)]
        result.quarantined = quarantine(conn, self.source, rejected, run_id)
        # Items that failed before and load now: close their quarantine rows. (Facts are keyed by their
        # table key, not an external id; their rows stay open until a replay resolves them.)
        refused = {rej.external_id for _, rej, _ in refused_rows}
        resolve_quarantined(
            conn, self.source, [doc.external_id for doc, _ in batch.docs if doc.external_id not in refused]
        )
        record_load(conn, context["dag"].dag_id, run_id, result)
        summary = {"loaded": result.loaded, "changed": result.changed, "quarantined": result.quarantined}
        self.log.info("%s: %d pages -> %s", self.source, len(pages), summary)
        return summary
