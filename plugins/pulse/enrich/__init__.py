"""Text enrichment (issue 5): language, sentiment, emotion, entities, keywords, topic, geo; sarcasm slot.

The public API lives in :mod:`pulse.enrich.pipeline` and is re-exported here. Importing this package is
cheap: models, lexicons and gazetteers load on first use, once per process.
"""

from pulse.enrich.pipeline import (
    ENRICHERS,
    ENRICHMENT_VERSION,
    BatchResult,
    EnrichError,
    EnrichInput,
    EntityMention,
    Features,
    Place,
    component_versions,
    enrich_documents,
    enrichment_text,
)

__all__ = [
    "ENRICHERS",
    "ENRICHMENT_VERSION",
    "BatchResult",
    "EnrichError",
    "EnrichInput",
    "EntityMention",
    "Features",
    "Place",
    "component_versions",
    "enrich_documents",
    "enrichment_text",
]
