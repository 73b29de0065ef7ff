"""Per-source API quotas, persisted in ``ops.api_budget`` so they hold across tasks, workers and restarts.

Each source has one or more limits ``(period in seconds, calls)``; a call is allowed only when every period's
bucket has room, and the check-and-increment is one atomic statement per period inside one transaction, so
concurrent tasks never overspend. Defaults follow the free plans: each source's ``SourceSpec.budgets``
(``pulse.sources.<source>``); override them in ``include/sources.yaml`` under
``budgets: {<source>: [{per_seconds: N, calls: M}, ...]}``.
Buckets follow the pipeline clock, :func:`pulse.windows.utcnow`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pulse.windows import utcnow

if TYPE_CHECKING:
    import psycopg


def default_budgets() -> dict[str, tuple[tuple[int, int], ...]]:
    """Every declared source's limits ``((period_s, calls), ...)``, from its spec."""
    from pulse.sources.spec import all_sources

    return {spec.name: spec.budgets for spec in all_sources()}


def __getattr__(name: str) -> Any:
    if name == "DEFAULT_BUDGETS":  # the former constant, now always the specs' current limits
        return default_budgets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Decision:
    """The answer of :meth:`Budget.acquire`: go, or wait ``wait_s`` for the ``period_s`` bucket to roll over."""

    allowed: bool
    wait_s: float = 0.0
    period_s: int = 0


def budgets_from_config(data: dict[str, Any]) -> dict[str, tuple[tuple[int, int], ...]]:
    """Defaults overridden by the ``budgets`` section of the sources file (validated)."""
    from pulse.config import ConfigError

    out = default_budgets()
    section = data.get("budgets") or {}
    if not isinstance(section, dict):
        raise ConfigError("budgets: expected a mapping of source to a list of limits")
    for source, limits in section.items():
        where = f"budgets.{source}"
        if not isinstance(limits, list) or not limits:
            raise ConfigError(f"{where}: expected a non-empty list of {{per_seconds, calls}}")
        parsed = []
        for i, limit in enumerate(limits):
            if not isinstance(limit, dict) or set(limit) != {"per_seconds", "calls"}:
                raise ConfigError(f"{where}[{i}]: expected {{per_seconds: N, calls: M}}")
            period, calls = limit["per_seconds"], limit["calls"]
            if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (period, calls)):
                raise ConfigError(f"{where}[{i}]: per_seconds and calls must be positive integers")
            parsed.append((period, calls))
        out[source] = tuple(parsed)
    return out


class Budget:
    """The quota of one source on one warehouse connection."""

    def __init__(
        self, conn: psycopg.Connection[Any], source: str, limits: tuple[tuple[int, int], ...]
    ) -> None:
        self.conn = conn
        self.source = source
        self.limits = limits

    @staticmethod
    def _bucket(now: datetime, period: int) -> datetime:
        epoch = int(now.timestamp())
        return datetime.fromtimestamp(epoch - epoch % period, tz=UTC)

    def acquire(self, now: datetime | None = None) -> Decision:
        """Spend one call if every period has room; otherwise spend nothing and say how long to wait."""
        import psycopg

        now = now or utcnow()
        decision = Decision(True)
        with self.conn.transaction():
            for period, calls in self.limits:
                bucket = self._bucket(now, period)
                row = self.conn.execute(
                    """
                    INSERT INTO ops.api_budget AS b (source, period_s, bucket_start, used) VALUES (%s, %s, %s, 1)
                    ON CONFLICT (source, period_s, bucket_start) DO UPDATE SET used = b.used + 1
                    WHERE b.used < %s
                    RETURNING used
                    """,
                    (self.source, period, bucket, calls),
                ).fetchone()
                if row is None:
                    wait = (bucket + timedelta(seconds=period) - now).total_seconds()
                    decision = Decision(False, max(wait, 0.0), period)
                    raise psycopg.Rollback()  # nothing of this attempt is kept
        return decision

    def refund(self, now: datetime | None = None) -> None:
        """Give back one call (acquired for a page that turned out not to be needed)."""
        now = now or utcnow()
        with self.conn.transaction():
            for period, _ in self.limits:
                self.conn.execute(
                    "UPDATE ops.api_budget SET used = greatest(used - 1, 0)"
                    " WHERE source = %s AND period_s = %s AND bucket_start = %s",
                    (self.source, period, self._bucket(now, period)),
                )

    def used(self, now: datetime | None = None) -> dict[int, int]:
        now = now or utcnow()
        out = {}
        for period, _ in self.limits:
            row = self.conn.execute(
                "SELECT used FROM ops.api_budget WHERE source = %s AND period_s = %s AND bucket_start = %s",
                (self.source, period, self._bucket(now, period)),
            ).fetchone()
            out[period] = int(row[0]) if row else 0
        self.conn.commit()
        return out
