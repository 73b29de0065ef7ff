"""The load policy: parse a run's raw pages, upsert what passes, quarantine what does not."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunLoader:
    """How one source's raw pages become rows: its parser, its pseudonymizer and the load's clock."""

    source: str
    parser: Any
    pseudonymize: Callable[..., Any]
    now: datetime

    @classmethod
    def for_source(cls, source: str) -> RunLoader:
        from pulse.privacy import make_pseudonymizer
        from pulse.sources.base import get_source
        from pulse.windows import utcnow

        return cls(source, get_source(source).parser_module(), make_pseudonymizer(source), utcnow())

    def load(
        self, conn: psycopg.Connection[Any], dag_id: str, run_id: str, log: Any = _LOG
    ) -> dict[str, int]:
        """Load every valid raw page of the run; returns ``{"loaded", "changed", "quarantined"}``.

        Rows PostgreSQL would refuse (the parser let them through) are quarantined like parse failures, and
        documents that load now close their earlier quarantine rows.
        """
        from pulse.ops import record_load
        from pulse.warehouse.loader import ParsedBatch, quarantine, resolve_quarantined
        from pulse.warehouse.raw import RawStore

        batch = ParsedBatch()
        pages = RawStore(conn).valid_pages(self.source, run_id)
        for page in pages:
            for index, out in self.parser.parse_page(page, self.pseudonymize, self.now):
                batch.add(out, page.id, index)
        result, refused_rows = batch.upsert(conn, run_id)
        rejected = [*batch.rejected, *((rej, raw_id) for _, rej, raw_id in refused_rows)]
        result.quarantined = quarantine(conn, self.source, rejected, run_id)
        # Items that failed before and load now: close their quarantine rows. (Facts are keyed by their
        # table key, not an external id; their rows stay open until a replay resolves them.)
        refused = {rej.external_id for _, rej, _ in refused_rows}
        resolve_quarantined(
            conn, self.source, [doc.external_id for doc, _ in batch.docs if doc.external_id not in refused]
        )
        record_load(conn, dag_id, run_id, result)
        summary = {"loaded": result.loaded, "changed": result.changed, "quarantined": result.quarantined}
        log.info("%s: %d pages -> %s", self.source, len(pages), summary)
        return summary
