"""The steps of ``run_export`` that need no warehouse: what a run plans to export, and in which order."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from pulse.export.run import MARTS, ExportPlan, ExportRequest, ExportRunError, plan_exports

TODAY = date(2026, 12, 5)


class _Books:
    """A stand-in connection: ``ops.exports``' last day per mart (the only query planning makes)."""

    def __init__(self, last: dict[str, date | None]) -> None:
        self.last = last

    def execute(self, sql: str, params: tuple[str, ...]) -> Any:
        assert "FROM ops.exports" in sql
        day = self.last[params[0]]
        return type("Cursor", (), {"fetchone": lambda _self: (day,)})()


def request(day: date | None = None) -> ExportRequest:
    return ExportRequest("run", None, list(MARTS), day, [], {}, TODAY)  # type: ignore[arg-type]


def test_a_scheduled_run_exports_oldest_day_first_across_marts_and_names_what_waits() -> None:
    volume, sentiment, mentions = (m.name for m in MARTS)
    books = _Books({volume: date(2026, 12, 1), sentiment: date(2026, 12, 2), mentions: date(2026, 11, 20)})
    published = {"reddit": datetime(2026, 12, 4, 6, tzinfo=UTC)}  # 12-03 is the last fully published day

    plan = plan_exports(books, request(), published)  # type: ignore[arg-type]

    assert [(f"{d:%m-%d}", m.name) for d, m in plan.work] == [
        ("11-21", mentions),
        ("11-22", mentions),
        ("11-23", mentions),
        ("11-24", mentions),
        ("11-25", mentions),
        ("11-26", mentions),
        ("11-27", mentions),
        ("12-02", volume),
        ("12-03", volume),
        ("12-03", sentiment),
    ]
    assert sorted(plan.skipped) == [date(2026, 12, 4)]
    assert plan.skipped[date(2026, 12, 4)]["marts"] == [volume, sentiment]
    assert "reddit until 2026-12-04T06:00:00Z" in plan.skipped[date(2026, 12, 4)]["reason"]
    assert plan.deferred == {mentions: 7}


def test_a_day_param_plans_every_mart_of_that_day_or_refuses() -> None:
    published = {"reddit": datetime(2026, 12, 4, tzinfo=UTC)}
    books = _Books({})  # a re-export does not read the books
    plan = plan_exports(books, request(date(2026, 12, 3)), published)  # type: ignore[arg-type]
    assert plan == ExportPlan(work=[(date(2026, 12, 3), m) for m in MARTS])
    with pytest.raises(ExportRunError, match="has not ended yet"):
        plan_exports(books, request(TODAY), published)  # type: ignore[arg-type]
    with pytest.raises(ExportRunError, match="cannot be exported: not fully published"):
        plan_exports(books, request(date(2026, 12, 4)), published)  # type: ignore[arg-type]
