"""Assets the DAGs produce and consume (names are stable; URIs follow the postgres provider's form)."""

from __future__ import annotations

from airflow.sdk import Asset

CORE_DOCUMENTS = Asset(
    name="core_documents",
    uri="postgres://warehouse:5432/warehouse/core/documents",
    group="core",
)
