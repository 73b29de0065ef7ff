"""The ingest path's policy, in small named steps the thin operators call.

* :mod:`pulse.ingest.guard`: the circuit breaker around a source's tasks (skip while open, count failures).
* :mod:`pulse.ingest.extract`: plan the streams within reach and budget, resume, fetch, record coverage.
* :mod:`pulse.ingest.load`: parse the run's raw pages, upsert what passes, quarantine the rest.
"""
