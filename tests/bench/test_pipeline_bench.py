"""The pipeline load test's pure parts (bench/pipeline.py): its generated config, its aggregation, its table.

No stack: the bench itself takes minutes (``make bench BENCHES=pipeline``) and is never part of ``make test``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from bench import pipeline as p


def _ti(task: str, run: str, start: str, end: str, queued: str, dag: str = "ingest_x", **kw: object) -> dict:
    duration = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    return {
        "dag_id": dag,
        "dag_run_id": run,
        "task_id": task,
        "start_date": start,
        "end_date": end,
        "queued_when": queued,
        "duration": duration,
        "state": "success",
        **kw,
    }


def test_sources_file_is_valid_and_scales(tmp_path: Path) -> None:
    """The generated sources file passes pulse.config's validation and asks for more streams at a larger scale."""
    from pulse import config
    from pulse.budget import budgets_from_config

    small, big = p.sources_file(0.5), p.sources_file(4)
    for data in (small, big):
        path = tmp_path / "sources.yaml"
        path.write_text(yaml.safe_dump(data))
        for source in (*p.SOURCES, "alphavantage"):
            config.load_source_config(source, path)
        assert budgets_from_config(data)["reddit"] == ((60, 100_000),)
    assert len(small["reddit"]["subreddits"]) == 4
    assert len(big["reddit"]["subreddits"]) == 32
    assert len(set(big["x"]["queries"])) == len(big["x"]["queries"]) == 24
    assert len(big["openweathermap"]["cities"]) == 96


def test_sim_config_is_accepted_and_reaches_back() -> None:
    """The simulator accepts the volume config; Reddit's listing reaches back over the backfilled hours."""
    from dev.simulator.core import SimulatorServer

    cfg = p.sim_config(2, 6)
    SimulatorServer(host="127.0.0.1", port=0, seed=42).configure(cfg)
    per_hour = (cfg["reddit"]["posts_per_hour"] + cfg["reddit"]["comments_per_hour"]) * p.n_streams(
        "reddit", 2
    )
    assert cfg["reddit"]["listing_cap"] >= per_hour * 7
    assert cfg["github"]["events_cap"] >= cfg["github"]["events_per_hour"] * 7


def test_backfill_range() -> None:
    now = datetime(2026, 12, 7, 15, 32, tzinfo=UTC)
    assert p.backfill_range(now, 3) == (
        datetime(2026, 12, 7, 12, tzinfo=UTC),
        datetime(2026, 12, 7, 14, 59, tzinfo=UTC),
    )
    # 24 h: every tick whose window touches yesterday (ticks at :00 to :59 of the next midnight's hour)
    assert p.backfill_range(now, 24) == (
        datetime(2026, 12, 6, tzinfo=UTC),
        datetime(2026, 12, 7, 0, 59, tzinfo=UTC),
    )


def test_scheduler_and_queue_delays() -> None:
    """Delay = start - end of the task before it in the run (the run's start for the first task)."""
    tis = [
        _ti("warehouse_ready", "r1", "2026-12-07T10:00:05Z", "2026-12-07T10:00:07Z", "2026-12-07T10:00:04Z"),
        _ti("extract", "r1", "2026-12-07T10:00:10Z", "2026-12-07T10:00:20Z", "2026-12-07T10:00:08Z"),
        _ti("load", "r1", "2026-12-07T10:00:26Z", "2026-12-07T10:00:30Z", "2026-12-07T10:00:21Z"),
        {"dag_id": "ingest_x", "dag_run_id": "r1", "task_id": "never", "start_date": None},
    ]
    runs = {("ingest_x", "r1"): {"start_date": "2026-12-07T10:00:00Z"}}
    assert sorted(p.scheduler_delays(tis, runs)) == [3.0, 5.0, 6.0]
    assert p.scheduler_delays(tis, runs, "extract") == [3.0]  # after warehouse_ready, not the run's start
    assert sorted(p.queue_delays(tis)) == [1.0, 2.0, 5.0]


def test_rates_and_medians() -> None:
    tis = [
        _ti("extract", "r1", "2026-12-07T10:00:00Z", "2026-12-07T10:00:10Z", "2026-12-07T10:00:00Z"),
        _ti("extract", "r2", "2026-12-07T10:00:00Z", "2026-12-07T10:00:04Z", "2026-12-07T10:00:00Z"),
        _ti(
            "extract",
            "r3",
            "2026-12-07T10:00:00Z",
            "2026-12-07T10:00:04Z",
            "2026-12-07T10:00:00Z",
            state="failed",
        ),
        _ti("load", "r1", "2026-12-07T10:00:00Z", "2026-12-07T10:00:02Z", "2026-12-07T10:00:00Z"),
    ]
    items = {("ingest_x", "r1"): 1000, ("ingest_x", "r2"): 1000, ("ingest_x", "r3"): 1000}
    assert sorted(p.rates(tis, "extract", items)) == [100.0, 250.0]
    assert p.median([1.0, 3.0, 2.0]) == 2.0
    assert p.median([]) is None
    assert p.quantile([float(i) for i in range(1, 101)], 0.95) == 95.0
    # 3 items at 1 min, 1 item at 100 min: the median item waited 1 min
    assert p.weighted_median([(100.0, 1), (1.0, 3)]) == 1.0
    assert p.weighted_median([(5.0, 1), (1.0, 1), (9.0, 1)]) == 5.0
    assert p.weighted_median([]) is None


def test_table_has_every_metric_and_ratios() -> None:
    a = p.Result("local", {"items_per_hour": 1000.0, "sched_delay": 2.0})
    b = p.Result("celery1", {"items_per_hour": 1500.0, "sched_delay": None})
    table = p.render_table([a, b])
    lines = table.splitlines()
    assert lines[0] == "| metric | local | celery1 | celery1/local |"
    assert len(lines) == 2 + len(p.METRICS)
    assert "| items/h end to end | 1,000 | 1,500 | 1.50x |" in lines
    assert "| sched delay s (median) | 2.0 | n/a | n/a |" in lines


def test_flags_are_checked() -> None:
    with pytest.raises(SystemExit):
        p.main(["--configs", "local,nope"])
    with pytest.raises(SystemExit):
        p.main(["--hours", "0"])
