"""
### ingest_openweathermap

Current weather and the 5 day / 3 hour forecast of the cities in `include/sources.yaml`, every hour at minute
5, into `core.weather_observations`.

* **extract**: per city, `GET /data/2.5/weather` and (with `forecast: true`) `GET /data/2.5/forecast`, both with
  `units=metric`; one page each, stored in `raw.api_responses` as it arrives (the API key is never stored).
* **load**: parses this run's pages; each observation and forecast entry is upserted into
  `core.weather_observations` keyed by `(city, kind, valid_at)` (a newer forecast for the same time replaces the
  older one); bad entries (missing or unparseable `dt`, non-numeric or implausible values, a forecast time
  beyond the 5-day range, NUL bytes) go to `quality.quarantine` with a reason code.

**Window**: scheduled runs cover the hour before their tick. A manual run (no logical date) covers the hour
before it was triggered; set `window_start` and `window_end` to pick one. Both endpoints describe only the
present: a window (or the part of one) that ended more than 2 hours ago is beyond reach, so the run fetches
nothing for it and records a `beyond_reach` gap in `ops.coverage` (a backfill succeeds with no rows).

**Params** (manual runs): `window_start`, `window_end`: UTC date-times with a zone (`2026-11-28T11:00:00Z`),
both or neither, start before end, at most 31 days, from 2000-01-01, ending at most a day after now
(`pulse/params.py`). A bad value, or a param this DAG does not have, fails the run at once, without retries,
naming the param; it does not count against the source's circuit breaker. While the breaker is open (3 failed
runs in a row by default), `extract` and `load` show as **skipped** and the run itself as success (Airflow has
no skipped run state): look at the task states, and `SELECT * FROM quality.source_health`.

**Triage**: 401/403 means the API key in the `openweathermap_default` connection (password) is wrong or not
yet active (new keys take up to 2 hours); no retries. 429 means the plan's quota (60 calls/min on the free
plan) is spent; 5xx come from OpenWeatherMap; the task retries both with backoff. See `ops.ingest_runs` for
what each run fetched.
"""

from pulse.ingest_dag import ingest_dag
from pulse.sources.openweathermap import SPEC

# An Airflow DAG built from the source's declaration (plugins/pulse/sources/openweathermap.py, docs/adding-a-source.md).
dag = ingest_dag(SPEC, doc_md=__doc__)
