"""
### trends

What is rising, what just broke out, and what comes next, on **published data only**: runs each time the
`quality` DAG has audited and published (the `published_hours` Asset), so it never sees a row analysts cannot
(`pulse/trends/run.py`, `pulse/trends/detect.py`; the figures explained for analysts: docs/trends.md).

* **Incremental**: per source it reads only the hours published since its last run (new hours, and older
  hours a late row made the quality DAG publish again) plus the 4 weeks of baseline they need; its cursor is
  `ops.trends_state`. A re-run, a cleared task or a backfill replaces the same rows: never duplicates.
* **Series** per source and hour (`analytics.trend_series_hourly`): the source, each topic, entity, ticker,
  keyword and GitHub repository: documents and net sentiment. Hours in a coverage gap (`ops.coverage`) are
  unknown, never zero (`analytics.trend_source_hours`).
* **Spikes**: volume and net sentiment against the same hour of the week over the previous 4 weeks (median and
  MAD, robust z-score), with minimum support (10 documents; 20 for sentiment). Spiking hours merge into
  episodes (`analytics.trend_spikes`); each new episode is posted **once** to Slack (`slack_trends`): what
  spiked, by how much against which baseline, the sample size, the top documents and a link. Episodes found
  in a backlog (peak more than a day before the horizon) are recorded, not posted; at most 10 posts a run.
* **Views**: `analytics.trend_hourly` (24 h moving average), `analytics.trend_daily` (7 and 28 days),
  `analytics.emerging_terms`, `analytics.trend_forecasts` (next 24 h with 80/95 % intervals),
  `analytics.market_sentiment_daily` (returns and volatility next to sentiment), `analytics.github_trending`,
  `analytics.github_star_velocity`, `analytics.weather_sentiment_by_city`.

**Params**: none; a run triggered with conf fails at once, without retries, naming the keys (`pulse/params.py`).
Trigger it by hand to catch up at once; it does nothing when no hour was published since its last run.

**Triage**: `SELECT * FROM ops.trends_state`; `SELECT * FROM analytics.trend_spikes ORDER BY spike_id DESC`;
the task's return value lists per source the hours read, recomputed and rescored.
"""

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from pulse.assets import PUBLISHED_HOURS
from pulse.dag_defaults import dag_failure_notifier, deadline, default_args, warehouse_ready

with DAG(
    dag_id="trends",
    doc_md=__doc__,
    schedule=[PUBLISHED_HOURS],
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["trends"],
    on_failure_callback=dag_failure_notifier(),
    deadline=deadline(timedelta(minutes=45)),
):

    @task
    def compute_trends(**context: Any) -> dict[str, Any]:
        """Fold the newly published hours into the trend series, score them, post spike alerts, forecast."""
        from pulse.params import validate_context
        from pulse.trends.run import run_trends

        validate_context("none", context)  # it takes no params: conf keys fail the run at once
        return run_trends(context)

    warehouse_ready() >> compute_trends()
