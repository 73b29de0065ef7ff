from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from pulse.windows import Window, resolve_window

H = timedelta(hours=1)


def test_scheduled_run_uses_its_data_interval() -> None:
    ctx = {
        "data_interval_start": datetime(2026, 11, 28, 10, tzinfo=UTC),
        "data_interval_end": datetime(2026, 11, 28, 11, tzinfo=UTC),
    }
    assert resolve_window(ctx, H) == Window(
        datetime(2026, 11, 28, 10, tzinfo=UTC), datetime(2026, 11, 28, 11, tzinfo=UTC)
    )


def test_zero_length_interval_reaches_back_the_default() -> None:
    t = datetime(2026, 11, 28, 11, tzinfo=UTC)
    w = resolve_window({"data_interval_start": t, "data_interval_end": t}, H)
    assert (w.start, w.end) == (t - H, t)


def test_manual_run_without_logical_date_ends_at_run_after() -> None:
    run = SimpleNamespace(run_after=datetime(2026, 11, 28, 11, 37, 12, 5, tzinfo=UTC))
    w = resolve_window({"data_interval_start": None, "data_interval_end": None, "dag_run": run}, H)
    assert w.end == datetime(2026, 11, 28, 11, 37, tzinfo=UTC)
    assert w.start == w.end - H


def test_params_override_everything() -> None:
    ctx = {
        "params": {"window_start": "2026-11-01T00:00:00Z", "window_end": "2026-11-02T00:00:00+00:00"},
        "data_interval_start": datetime(2026, 11, 28, tzinfo=UTC),
        "data_interval_end": datetime(2026, 11, 28, 1, tzinfo=UTC),
    }
    w = resolve_window(ctx, H)
    assert (w.start.isoformat(), w.end.isoformat()) == (
        "2026-11-01T00:00:00+00:00",
        "2026-11-02T00:00:00+00:00",
    )


def test_half_given_or_empty_windows_are_refused() -> None:
    with pytest.raises(ValueError, match="both"):
        resolve_window({"params": {"window_start": "2026-11-01T00:00:00Z"}}, H)
    with pytest.raises(ValueError, match="empty window"):
        resolve_window(
            {"params": {"window_start": "2026-11-02T00:00:00Z", "window_end": "2026-11-01T00:00:00Z"}}, H
        )
