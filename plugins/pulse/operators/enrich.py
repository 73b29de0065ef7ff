"""Operators of the ``enrich`` DAG: enrich documents in batches, then find duplicates across sources."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator


class EnrichDocumentsOperator(BaseOperator):
    """Enrich every document that has no features for the current enrichment version.

    Works in batches of ``batch_size`` (one transaction each: a killed task loses at most the batch in flight,
    and the next try continues where this one stopped) up to ``max_documents`` per run; what is left is taken
    by the next run. Bumping ``pulse.enrich.pipeline.ENRICHMENT_VERSION`` re-enriches everything.

    :return: to XCom, ``{"documents": n, "errors": n, "entities": n, "places": n, "version": v}``.
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
        from pulse.warehouse.enriched import pending_documents, write_enrichment

        version = pipeline.ENRICHMENT_VERSION
        components = pipeline.component_versions()
        totals = {"documents": 0, "errors": 0, "entities": 0, "places": 0}
        with connect() as conn:
            while totals["documents"] < int(self.max_documents):
                docs = pending_documents(conn, version, min(int(self.batch_size), int(self.max_documents)))
                if not docs:
                    break
                result = pipeline.enrich_documents(docs)
                write_enrichment(conn, version, components, docs, result)
                totals["documents"] += len(docs)
                totals["errors"] += len(result.errors)
                totals["entities"] += len(result.entities)
                totals["places"] += len(result.places)
                self.log.info("enriched %d documents (%s so far)", len(docs), totals)
        summary = {**totals, "version": version}
        for outlet in self.outlets or []:
            context["outlet_events"][outlet].extra = summary
        return summary


class DeduplicateDocumentsOperator(BaseOperator):
    """Compare every document not yet fingerprinted with each other and with all earlier ones; update clusters.

    :return: to XCom, ``{"documents": n, "links": n, "clusters_touched": n}``.
    """

    template_fields: Sequence[str] = ("batch_size",)
    ui_color = "#fef7e0"

    def __init__(self, *, batch_size: int = 5_000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_size = batch_size

    def execute(self, context: Any) -> dict[str, int]:
        from pulse.warehouse.db import connect
        from pulse.warehouse.enriched import unfingerprinted, write_duplicates

        totals = {"documents": 0, "links": 0, "clusters_touched": 0}
        with connect() as conn:
            while docs := unfingerprinted(conn, int(self.batch_size)):
                for name, value in write_duplicates(conn, docs).items():
                    totals[name] += value
                self.log.info("deduplicated %d documents (%s so far)", len(docs), totals)
        return totals
