"""Operators of the ``enrich`` DAG: enrich documents in batches, then find duplicates across sources."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator


class EnrichDocumentsOperator(BaseOperator):
    """Enrich every document without current features: never enriched, enriched by another enrichment version,
    or edited since (the loader rewrote its row and the text the features describe is not its text any more).

    Works in batches of ``batch_size`` (one transaction each: a killed task loses at most the batch in flight,
    and the next try continues where this one stopped) up to ``max_documents`` per run; what is left is taken
    by the next run. Bumping ``pulse.enrich.pipeline.ENRICHMENT_VERSION`` re-enriches everything. A rewritten
    row whose text is unchanged (a score or metric changed) is not enriched again: only its new content digest
    is recorded.

    :return: to XCom, ``{"documents": n, "edited": n, "same_text": n, "errors": n, "entities": n, "places": n,
        "version": v}``: documents enriched, of which edited documents enriched again; rewritten documents
        whose text was unchanged.
    """

    template_fields: Sequence[str] = ("batch_size", "max_documents")
    ui_color = "#fef7e0"

    def __init__(self, *, batch_size: int = 2_000, max_documents: int = 200_000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_size = batch_size
        self.max_documents = max_documents

    def execute(self, context: Any) -> dict[str, Any]:
        from pulse.enrich import pipeline
        from pulse.warehouse.db import connect
        from pulse.warehouse.enriched import confirm_features, pending_batch, write_enrichment

        version = pipeline.ENRICHMENT_VERSION
        components = pipeline.component_versions()
        totals = {"documents": 0, "edited": 0, "same_text": 0, "errors": 0, "entities": 0, "places": 0}
        looked_at = 0
        with connect() as conn:
            # Every document of a batch leaves the pending set (enriched or confirmed); the bound on what one
            # run looks at also ends a run while a loader keeps rewriting rows.
            while looked_at < int(self.max_documents):
                batch = pending_batch(conn, version, min(int(self.batch_size), int(self.max_documents)))
                if not len(batch):
                    break
                looked_at += len(batch)
                totals["same_text"] += confirm_features(conn, version, batch.same_text)
                if batch.enrich:
                    result = pipeline.enrich_documents(batch.enrich)
                    write_enrichment(conn, version, components, batch.enrich, result)
                    totals["documents"] += len(batch.enrich)
                    totals["edited"] += len(batch.edited)
                    totals["errors"] += len(result.errors)
                    totals["entities"] += len(result.entities)
                    totals["places"] += len(result.places)
                self.log.info(
                    "enriched %d documents (%d edited), %d rewritten with the same text (%s so far)",
                    len(batch.enrich),
                    len(batch.edited),
                    len(batch.same_text),
                    totals,
                )
        summary = {**totals, "version": version}
        for outlet in self.outlets or []:
            context["outlet_events"][outlet].extra = summary
        return summary


class DeduplicateDocumentsOperator(BaseOperator):
    """Compare every document not yet fingerprinted with each other and with all earlier ones; update clusters.

    An edited document (its row was rewritten since it was fingerprinted) whose fingerprint changed leaves its
    cluster (which is re-linked, and may split or dissolve) and is compared again like a new one.

    :return: to XCom, ``{"documents": n, "links": n, "clusters_touched": n, "refingerprinted": n,
        "same_text": n, "clusters_split": n}`` (see ``pulse.warehouse.enriched.DEDUP_STATS``).
    """

    template_fields: Sequence[str] = ("batch_size",)
    ui_color = "#fef7e0"

    def __init__(self, *, batch_size: int = 5_000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_size = batch_size

    def execute(self, context: Any) -> dict[str, int]:
        from pulse.warehouse.db import connect
        from pulse.warehouse.enriched import DEDUP_STATS, unfingerprinted, write_duplicates

        totals = dict.fromkeys(DEDUP_STATS, 0)
        with connect() as conn:
            while docs := unfingerprinted(conn, int(self.batch_size)):
                for name, value in write_duplicates(conn, docs).items():
                    totals[name] += value
                self.log.info("deduplicated %d documents (%s so far)", len(docs), totals)
        return totals
