"""Assets the DAGs produce and consume (names are stable; URIs follow the postgres provider's form)."""

from __future__ import annotations

from airflow.sdk import Asset

CORE_DOCUMENTS = Asset(
    name="core_documents",
    uri="postgres://warehouse:5432/warehouse/core/documents",
    group="core",
)

MARKET_BARS = Asset(
    name="core_market_bars", uri="postgres://warehouse:5432/warehouse/core/market_bars", group="core"
)
WEATHER_OBSERVATIONS = Asset(
    name="core_weather_observations",
    uri="postgres://warehouse:5432/warehouse/core/weather_observations",
    group="core",
)
GITHUB_REPO_SNAPSHOTS = Asset(
    name="core_github_repo_snapshots",
    uri="postgres://warehouse:5432/warehouse/core/github_repo_snapshots",
    group="core",
)

ENRICHED_DOCUMENTS = Asset(
    name="enriched_document_features",
    uri="postgres://warehouse:5432/warehouse/enriched/document_features",
    group="enriched",
)

#: Updated by every quality run that audited and published (``quality.audit_and_publish``): the trends DAG
#: runs on it, so it only ever reads published hours.
PUBLISHED_HOURS = Asset(
    name="published_hours",
    uri="postgres://warehouse:5432/warehouse/quality/hour_audits",
    group="published",
)
