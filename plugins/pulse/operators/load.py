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
    The policy is :class:`pulse.ingest.load.RunLoader`; a failure on the last try counts against the source's
    circuit breaker and a success closes it (:mod:`pulse.ingest.guard`).

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
        from pulse.ingest.guard import SourceGuard
        from pulse.ingest.load import RunLoader
        from pulse.warehouse.db import connect

        loader = RunLoader.for_source(self.source)
        with connect() as conn:
            guard = SourceGuard(conn, self.source)
            with guard.watching(context):
                summary = loader.load(conn, context["dag"].dag_id, context["run_id"], self.log)
            guard.succeeded()
        for outlet in self.outlets or []:
            context["outlet_events"][outlet].extra = {
                "source": self.source,
                "run_id": context["run_id"],
                **summary,
            }
        return summary
