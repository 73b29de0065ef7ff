"""The circuit breaker guard around a source's ingest tasks (pulse.ingest.guard), on the real warehouse."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from pulse.config import ConfigError
from pulse.ingest.guard import SourceGuard
from pulse.params import BadParam
from pulse.sources.base import PageFetchError
from pulse.windows import utcnow
from tests.ingest.conftest import SOURCE

FINAL = {
    "ti": SimpleNamespace(try_number=3, max_tries=2, dag_id="ingest_toy", log_url="http://log"),
    "run_id": "r",
}
RETRY = {
    "ti": SimpleNamespace(try_number=1, max_tries=2, dag_id="ingest_toy", log_url="http://log"),
    "run_id": "r",
}
#: The second of three tries (``retries=2``): one more follows.
LAST_BUT_ONE = {"ti": SimpleNamespace(try_number=2, max_tries=2, dag_id="ingest_toy"), "run_id": "r"}


def _failures(db: Any) -> int:
    row = db.execute(
        "SELECT consecutive_failures FROM quality.source_health WHERE source = %s", (SOURCE,)
    ).fetchone()
    return int(row[0]) if row else 0


def _fail(guard: SourceGuard, context: dict[str, Any], exc: BaseException) -> None:
    with pytest.raises(type(exc)) as info, guard.watching(context):
        raise exc
    assert info.value is exc, "the failure is raised on unchanged"


@pytest.mark.parametrize(
    ("context", "exc", "counted"),
    [
        (FINAL, PageFetchError("503 after 4 attempts"), True),
        (RETRY, PageFetchError("503 after 4 attempts"), False),  # a retry follows: not yet the run's failure
        (LAST_BUT_ONE, PageFetchError("503 after 4 attempts"), False),
        (RETRY, AirflowFailException("401"), True),  # no retry follows a fail-at-once
        ({"run_id": "r"}, PageFetchError("503"), False),  # no task instance: no try count to judge by
        (FINAL, BadParam("window_start", "not a date"), False),  # the user's, not the source's
        (FINAL, ConfigError("subreddits: x"), False),
    ],
)
def test_only_the_sources_final_failures_count(
    wdb: Any, context: dict[str, Any], exc: BaseException, counted: bool
) -> None:
    guard = SourceGuard(wdb, SOURCE)
    _fail(guard, context, exc)
    assert _failures(wdb) == int(counted)


def test_a_success_resets_the_count_and_a_clean_block_counts_nothing(wdb: Any) -> None:
    guard = SourceGuard(wdb, SOURCE)
    _fail(guard, FINAL, PageFetchError("503"))
    with guard.watching(FINAL):
        pass
    assert _failures(wdb) == 1
    guard.succeeded()
    assert _failures(wdb) == 0


def test_the_failure_that_opens_the_circuit_alerts_once_and_later_runs_skip(
    wdb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    alerts: list[Any] = []
    monkeypatch.setattr("pulse.alerts.post_alert", alerts.append)
    guard = SourceGuard(wdb, SOURCE)
    guard.check()  # closed: no skip
    for n in range(guard.breaker.settings.failures):
        assert alerts == [], f"no alert before failure {n + 1}"
        _fail(guard, FINAL, PageFetchError("503"))
    [alert] = alerts
    assert alert.kind == "breaker_open" and alert.dedup_key == f"breaker_open|{SOURCE}"
    assert "PageFetchError: 503" in alert.lines[-1]
    with pytest.raises(AirflowSkipException, match="circuit open since"):
        guard.check()


def test_an_open_circuit_past_its_cool_down_lets_one_run_try(wdb: Any) -> None:
    guard = SourceGuard(wdb, SOURCE)
    wdb.execute(
        "INSERT INTO quality.source_health (source, state, consecutive_failures, opened_at) VALUES (%s, 'open', 3, %s)",
        (SOURCE, utcnow() - guard.breaker.settings.cool_down),
    )
    guard.check()
