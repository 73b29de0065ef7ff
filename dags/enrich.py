"""
### enrich

Turns documents into what analysts ask about. Runs whenever an ingest DAG updates `core.documents` (the
`core_documents` Asset), and can be triggered by hand.

* **enrich**: every document without features for the current enrichment version gets language, sentiment
  (VADER compound and an ensemble label), NRC emotions, entities with offsets and per-entity sentence
  sentiment, keywords, a topic (`include/enrich/topics.yaml`) and geocoded places, in batches of 2,000, one
  transaction each, into `enriched.*`. An enricher that fails on a document leaves an
  `enriched.enrichment_errors` row; the other enrichers and documents go on. Bumping the enrichment version
  re-enriches everything; `enriched.component_versions` records every model and lexicon used.
* **deduplicate**: documents not yet compared get exact keys (normalised text, canonical URL) and MinHash
  LSH bands, are linked to every earlier document and to each other, and land in
  `enriched.duplicate_clusters` (see `analytics.duplicate_clusters`, `analytics.duplicates_per_source`).

Everything runs offline from installed packages (docs/enrichment.md).

**Params**: none; a run triggered with conf fails at once, without retries, naming the keys (`pulse/params.py`):
a manual run enriches every pending document.

**Triage**: a failure is a bug or the database: the next try continues with the documents still pending.
`SELECT enricher, count(*) FROM enriched.enrichment_errors GROUP BY 1` shows per-enricher failures.
"""

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from pulse.assets import CORE_DOCUMENTS, ENRICHED_DOCUMENTS
from pulse.dag_defaults import dag_failure_notifier, deadline, default_args, warehouse_ready
from pulse.operators.enrich import DeduplicateDocumentsOperator, EnrichDocumentsOperator
from pulse.params import reject_any_params

with DAG(
    dag_id="enrich",
    doc_md=__doc__,
    schedule=CORE_DOCUMENTS,
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["enrich"],
    on_failure_callback=dag_failure_notifier(),
    deadline=deadline(timedelta(minutes=60)),
):
    enrich = EnrichDocumentsOperator(
        task_id="enrich", outlets=[ENRICHED_DOCUMENTS], pre_execute=reject_any_params
    )
    deduplicate = DeduplicateDocumentsOperator(task_id="deduplicate")
    warehouse_ready() >> enrich >> deduplicate
