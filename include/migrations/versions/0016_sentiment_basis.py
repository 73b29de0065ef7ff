"""Sentiment basis and the two new entity types (issue 15).

* ``enriched.document_features.sentiment_basis``: ``ensemble`` when the trained text model and VADER labelled
  the document together, ``vader`` when the document is out of the text model's domain (too few of its words
  were seen in training) and the label leans on VADER, the source's domain and the question cue alone. NULL for
  rows enriched before enrichment 2026.12.1. ``published.document_features`` gains the column at its end.
* Entity types ``crypto`` and ``product`` join person, organisation, place and ticker: only the column comments
  change (the columns are free text).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_SELECT = """
    SELECT f.source, f.external_id, f.created_at, f.enrichment_version, f.language, f.language_confidence,
           f.sentiment_vader, f.sentiment_label, f.sentiment_confidence, f.emotions, f.keywords, f.topic,
           f.topic_confidence, f.sarcasm, f.enriched_at{extra}
      FROM enriched.document_features f
      JOIN quality.publish_state p ON p.source = f.source AND f.created_at < p.published_until
      JOIN quality.hour_audits h
        ON h.source = f.source AND h.hour = date_bin('1 hour', f.created_at, timestamptz '2000-01-01 00:00+00')
       AND f.enriched_at <= h.published_at"""

_BASIS = (
    "How the sentiment label was made: ensemble (the trained text model with VADER) or vader (the text is out "
    "of the model''s domain, so the label leans on VADER, the source and the question cue). NULL before "
    "enrichment 2026.12.1."
)

_TYPES_NEW = "person, organisation, place, ticker, crypto or product."
_TYPES_OLD = "person, organisation, place or ticker."
_TYPE_COLUMNS = (
    "enriched.entity_mentions",
    "published.entity_mentions",
    "analytics.entity_mentions_daily",
    "ops.rollup_entity_hourly",
    "ops.rollup_entity_daily",
)


def _comment_types(text: str) -> None:
    for rel in _TYPE_COLUMNS:
        op.execute(f"COMMENT ON COLUMN {rel}.entity_type IS '{text}'")


def upgrade() -> None:
    op.execute("ALTER TABLE enriched.document_features ADD COLUMN sentiment_basis text")
    op.execute(f"COMMENT ON COLUMN enriched.document_features.sentiment_basis IS '{_BASIS}'")
    op.execute(
        "CREATE OR REPLACE VIEW published.document_features AS" + _SELECT.format(extra=", f.sentiment_basis")
    )
    op.execute(f"COMMENT ON COLUMN published.document_features.sentiment_basis IS '{_BASIS}'")
    op.execute("GRANT SELECT ON published.document_features TO analyst")
    _comment_types(_TYPES_NEW)


#: published.document_features and the two views that join it, all last set by 0010.
_PUBLISHED = ("published.document_features", "published.entity_mentions", "published.places")


def _frozen_published() -> str:
    """0010's statements (view, comments, grant) for :data:`_PUBLISHED`: a migration's text is history."""
    path = next(Path(__file__).parent.glob("0010_*.py"))
    spec = importlib.util.spec_from_file_location("pulse_migration_0010", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    subject = re.compile(r"(?:VIEW|ON|COLUMN)\s+(published\.\w+)")
    stmts = []
    for stmt in str(module.PUBLISHED).split(";\n"):
        m = subject.search(stmt)
        if m and m.group(1) in _PUBLISHED:
            stmts.append(stmt)
    assert sum("CREATE VIEW" in s for s in stmts) == len(_PUBLISHED)
    return ";\n".join(stmts) + ";"


def downgrade() -> None:
    # CREATE OR REPLACE cannot drop a column: the view and the two that join it are dropped and 0010's restored.
    op.execute("DROP VIEW published.places, published.entity_mentions, published.document_features")
    op.execute(_frozen_published())
    op.execute(f"GRANT SELECT ON {', '.join(_PUBLISHED)} TO analyst")
    op.execute("ALTER TABLE enriched.document_features DROP COLUMN sentiment_basis")
    _comment_types(_TYPES_OLD)
