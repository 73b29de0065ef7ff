"""Keep the hourly work bounded to the hour on a large warehouse: the rollups' joins, the entity days, the late
rows.

Found with ``make bench BENCHES=scale`` at 10 million documents (208 days at 2,000 an hour): the hourly quality
step took 7x what it took at 100,000, and ``analytics.entity_mentions_daily`` took 1.8 s whenever an hour was
marked dirty (between a load and the next quality run: most of the time). Three causes, each a plan that read
a whole table where the hour's rows would do:

* **Joins bounded by key only.** The live parts of ``ops.refresh_rollups()``, ``entity_mentions_daily`` and
  ``duplicates_per_source`` restricted the driving table (mentions, documents) to the dirty hour but joined
  ``enriched.document_features``, ``document_fingerprints`` and ``duplicate_clusters`` on their keys only.
  PostgreSQL does not carry a range through an equality, so with a large warehouse's statistics the planner
  hashed every partition of ``document_features`` once per key (3.4 s per source hour). Each joined table now
  gets the key's source and hour too (partition pruning, the ``(source, created_at)`` indexes of 0014).
* **Entity days by a join filter.** The refresh's ``rollup_entity_daily`` step and the view's dirty days joined
  ``ops.rollup_entity_hourly`` on the source only and filtered the day afterwards (a scan of the whole rollup,
  5.7 million rows at 10M: 1.8 s). Both now read each dirty day's rows by a range on the primary key, in a
  ``LATERAL`` subquery that ``OFFSET 0`` keeps the planner from flattening back into the hash join.
* **Late rows by a bitmap of the whole source.** ``pulse.quality.publish`` looks for rows written since the
  last check (``source = ? AND loaded_at >= ?``); the planner ANDed the BRIN on ``loaded_at`` with the source's
  whole ``(source, created_at)`` range in every partition (15 ms per partition and source). B-tree indexes on
  ``(source, <written time>)`` answer it from the new rows alone.

The function and view SQL is 0014's, rendered by 0014's own module (a migration file is frozen history, so
reading it is as stable as restating it), changed by exact replacements that must each match: a changed 0014
fails here loudly. The downgrade puts 0014's definitions back and drops the indexes.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_HOUR = "k.hour + interval '1 hour'"
#: 0014's text -> the bounded text, in the function and the views.
JOIN_BOUNDS = (
    (
        "AND m.created_at < p.published_until AND f.enriched_at <= h.published_at",
        "AND m.created_at < p.published_until AND f.source = k.source AND f.created_at >= k.hour"
        f" AND f.created_at < {_HOUR} AND f.enriched_at <= h.published_at",
    ),
    (
        "ON f.source = d.source AND f.external_id = d.external_id AND f.created_at = d.created_at",
        "ON f.source = d.source AND f.external_id = d.external_id AND f.created_at = d.created_at"
        f" AND f.created_at >= k.hour AND f.created_at < {_HOUR}",
    ),
    (
        "ON c.source = f.source AND c.external_id = f.external_id AND c.created_at = f.created_at",
        "ON c.source = f.source AND c.external_id = f.external_id AND c.created_at = f.created_at"
        f" AND c.created_at >= k.hour AND c.created_at < {_HOUR}",
    ),
)
_DAY_RANGE = (
    "y.source = {d}.source AND y.hour >= {d}.day::timestamp AT TIME ZONE 'UTC'"
    " AND y.hour < ({d}.day + 1)::timestamp AT TIME ZONE 'UTC'"
)
#: The refresh's entity-day step.
REFRESH_DAYS = (
    """      FROM unnest(day_srcs, day_days) AS d(source, day)
      JOIN ops.rollup_entity_hourly h
        ON h.source = d.source AND h.hour >= d.day::timestamp AT TIME ZONE 'UTC'
       AND h.hour < (d.day + 1)::timestamp AT TIME ZONE 'UTC'
""",
    f"""      FROM unnest(day_srcs, day_days) AS d(source, day)
     CROSS JOIN LATERAL (SELECT * FROM ops.rollup_entity_hourly y WHERE {_DAY_RANGE.format(d="d")} OFFSET 0) h
""",
)
#: The view's dirty days.
VIEW_DAYS = (
    """              FROM ops.rollup_entity_hourly r
              JOIN dirty_days x ON x.source = r.source AND x.day = (r.hour AT TIME ZONE 'UTC')::date
""",
    f"""              FROM dirty_days x
             CROSS JOIN LATERAL (SELECT * FROM ops.rollup_entity_hourly y
                                  WHERE {_DAY_RANGE.format(d="x")} OFFSET 0) r
""",
)
#: ``(index, table, columns)``: the written time of every table pulse.quality.publish.WRITTEN gates.
WRITTEN_INDEXES = (
    ("documents_source_loaded_idx", "core.documents", "source, loaded_at"),
    ("market_bars_source_loaded_idx", "core.market_bars", "source, loaded_at"),
    ("weather_observations_source_loaded_idx", "core.weather_observations", "source, loaded_at"),
    ("github_repo_snapshots_source_loaded_idx", "core.github_repo_snapshots", "source, loaded_at"),
    ("document_features_source_enriched_idx", "enriched.document_features", "source, enriched_at"),
)


def _v0014() -> ModuleType:
    path = Path(__file__).with_name("0014_rollups.py")
    spec = importlib.util.spec_from_file_location("pulse_migration_0014_for_0015", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _replace(sql: str, pairs: tuple[tuple[str, str], ...]) -> str:
    for old, new in pairs:
        if old not in sql:
            raise RuntimeError(f"migration 0015: 0014's SQL no longer contains {old!r}")
        sql = sql.replace(old, new)
    return sql


def _function(sql: str) -> str:
    return sql.replace(
        "CREATE FUNCTION ops.refresh_rollups()", "CREATE OR REPLACE FUNCTION ops.refresh_rollups()"
    )


def upgrade() -> None:
    v = _v0014()
    for name, table, columns in WRITTEN_INDEXES:
        op.execute(f"CREATE INDEX {name} ON {table} ({columns})")
    op.execute(_function(_replace(str(v.REFRESH), (*JOIN_BOUNDS, REFRESH_DAYS))))
    # The other three views of 0014's VIEWS have nothing to bound: replacing them changes nothing.
    op.execute(_replace(str(v.VIEWS), (*JOIN_BOUNDS, VIEW_DAYS)))


def downgrade() -> None:
    v = _v0014()
    op.execute(_function(str(v.REFRESH)))
    op.execute(str(v.VIEWS))
    schema = {table: table.split(".")[0] for _, table, _ in WRITTEN_INDEXES}
    op.execute("DROP INDEX " + ", ".join(f"{schema[t]}.{name}" for name, t, _ in WRITTEN_INDEXES))
