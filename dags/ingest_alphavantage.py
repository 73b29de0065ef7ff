"""
### ingest_alphavantage

Daily and intraday bars of the stocks and daily bars of the crypto pairs in `include/sources.yaml`, every
weekday at 22:30 UTC (after the US close), into `core.market_bars`.

* **extract**: one Alpha Vantage call per series, each stored in `raw.api_responses` as it arrives (a retry
  skips the series already stored): `TIME_SERIES_DAILY` per stock (`compact`: the last 100 trading days),
  `TIME_SERIES_INTRADAY` per stock and per US/Eastern month the window touches (`month=YYYY-MM`, the whole
  month), `DIGITAL_CURRENCY_DAILY` per crypto pair (the whole history).
* **load**: every bar of those responses is upserted into `core.market_bars` (key: symbol, market, interval,
  bar start in UTC); bad bars (non-numeric or missing values, bad or future timestamps, high below low) go to
  `quality.quarantine` with a reason code.

**Window**: scheduled runs cover the day before their tick. A manual run (no logical date) covers the day
before it was triggered; set `window_start` and `window_end` to pick one. The window decides which intraday
months are asked for; daily series always come whole. Reach: daily stock bars 100 trading days back with a
free key (`daily_outputsize: full` needs a premium key), intraday any month since 2000-01, crypto daily the
whole history. A window older than the daily series' reach is recorded as a `beyond_reach` gap in
`ops.coverage` instead of being fetched; when the source's budget (25 calls/day, `pulse.budget`) runs out the
run ends cleanly and the streams left are recorded as `budget_exhausted` gaps.

**Params** (manual runs): `window_start`, `window_end`: UTC date-times with a zone (`2026-11-28T11:00:00Z`),
both or neither, start before end, at most 31 days, from 2000-01-01, ending at most a day after now
(`pulse/params.py`). A bad value, or a param this DAG does not have, fails the run at once, without retries,
naming the param; it does not count against the source's circuit breaker. While the breaker is open (3 failed
runs in a row by default), `extract` and `load` show as **skipped** and the run itself as success (Airflow has
no skipped run state): look at the task states, and `SELECT * FROM quality.source_health`.

**Triage**: Alpha Vantage answers errors with HTTP 200. "rejected the API key" means the `alphavantage_default`
connection's password is wrong (no retries). "daily request quota ... is spent" means the key's 25 calls/day are
used up (no retries: rerun tomorrow or use a premium key). "refused ... Check the symbol" names a bad symbol in
`include/sources.yaml`. Per-minute throttles (`Note`) and 5xx are waited out and retried. See
`ops.ingest_runs` for what each run fetched.
"""

from pulse.ingest_dag import ingest_dag
from pulse.sources.alphavantage import SPEC

# An Airflow DAG built from the source's declaration (plugins/pulse/sources/alphavantage.py, docs/adding-a-source.md).
dag = ingest_dag(SPEC, doc_md=__doc__)
