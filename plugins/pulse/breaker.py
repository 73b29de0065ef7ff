"""A circuit breaker per source, kept in ``quality.source_health``.

After ``failures`` consecutive failed runs a source opens: its runs skip at once (one Slack alert when it
opens, not one per run). After ``cool_down`` it half-opens: the next run tries; success closes it, failure
opens it again. One failing source never blocks the others: each source has its own row and its own DAG.
Settings: ``circuit_breaker: {failures: 3, cool_down_minutes: 60}`` in ``include/sources.yaml``.
Times (failures, opening, the cool-down) are on the pipeline clock, :func:`pulse.windows.utcnow`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pulse.windows import utcnow

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True)
class BreakerSettings:
    failures: int = 3
    cool_down: timedelta = timedelta(minutes=60)

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> BreakerSettings:
        from pulse.config import ConfigError

        section = data.get("circuit_breaker") or {}
        failures = section.get("failures", cls.failures)
        minutes = section.get("cool_down_minutes", cls.cool_down.total_seconds() / 60)
        if not isinstance(failures, int) or failures < 1:
            raise ConfigError("circuit_breaker.failures: must be a positive integer")
        if not isinstance(minutes, int | float) or minutes <= 0:
            raise ConfigError("circuit_breaker.cool_down_minutes: must be a positive number")
        return cls(failures=failures, cool_down=timedelta(minutes=minutes))


class CircuitOpen(Exception):
    """The source's circuit is open: the run skips."""


class Breaker:
    def __init__(self, conn: psycopg.Connection[Any], source: str, settings: BreakerSettings) -> None:
        self.conn = conn
        self.source = source
        self.settings = settings

    def state(self) -> tuple[str, int, datetime | None]:
        row = self.conn.execute(
            "SELECT state, consecutive_failures, opened_at FROM quality.source_health WHERE source = %s",
            (self.source,),
        ).fetchone()
        self.conn.commit()
        return (row[0], row[1], row[2]) if row else ("closed", 0, None)

    def check(self, now: datetime | None = None) -> str:
        """Return ``closed`` or ``half_open``; raise :class:`CircuitOpen` while the cool-down runs."""
        now = now or utcnow()
        state, failures, opened_at = self.state()
        if state != "open":
            return state
        if opened_at is not None and now - opened_at < self.settings.cool_down:
            until = opened_at + self.settings.cool_down
            raise CircuitOpen(
                f"{self.source}: circuit open since {opened_at.isoformat()} after {failures} failed runs; "
                f"the next try is after {until.isoformat()}"
            )
        with self.conn.transaction():
            self.conn.execute(
                "UPDATE quality.source_health SET state = 'half_open', updated_at = now() WHERE source = %s",
                (self.source,),
            )
        return "half_open"

    def record_failure(self, error: str, now: datetime | None = None) -> bool:
        """Count a failed run; return True when this failure opens the circuit (time to alert, once)."""
        now = now or utcnow()
        with self.conn.transaction():
            row = self.conn.execute(
                """
                INSERT INTO quality.source_health AS h (source, consecutive_failures, last_failure_at, last_failure)
                VALUES (%s, 1, %s, %s)
                ON CONFLICT (source) DO UPDATE SET consecutive_failures = h.consecutive_failures + 1,
                    last_failure_at = EXCLUDED.last_failure_at, last_failure = EXCLUDED.last_failure,
                    updated_at = now()
                RETURNING state, consecutive_failures
                """,
                (self.source, now, error[:2000]),
            ).fetchone()
            assert row is not None
            state, failures = row
            opens = state == "half_open" or (state == "closed" and failures >= self.settings.failures)
            if opens:
                self.conn.execute(
                    "UPDATE quality.source_health SET state = 'open', opened_at = %s WHERE source = %s",
                    (now, self.source),
                )
        return opens

    def record_success(self, now: datetime | None = None) -> None:
        now = now or utcnow()
        with self.conn.transaction():
            self.conn.execute(
                """
                INSERT INTO quality.source_health (source, state, consecutive_failures, last_success_at)
                VALUES (%s, 'closed', 0, %s)
                ON CONFLICT (source) DO UPDATE SET state = 'closed', consecutive_failures = 0, opened_at = NULL,
                    last_success_at = EXCLUDED.last_success_at, updated_at = now()
                """,
                (self.source, now),
            )
