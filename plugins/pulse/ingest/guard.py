"""The circuit breaker around a source's ingest tasks: skip while open, count the source's final failures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg


def is_source_failure(exc: BaseException) -> bool:
    """Whether a failure says something about the source, so that the circuit breaker counts it.

    HTTP errors, timeouts, malformed pages and rejected credentials do. A user's bad params
    (:class:`pulse.params.BadParam`) and a bad sources file (:class:`pulse.config.ConfigError`) do not: they
    fail the run before or without any API call, and opening the circuit would only skip the next good run.
    """
    from pulse.config import ConfigError
    from pulse.params import BadParam

    return not isinstance(exc, BadParam | ConfigError)


def is_final_try(context: Any, exc: BaseException) -> bool:
    """True when no retry follows this failure (the run fails), for the circuit breaker's count."""
    from airflow.sdk.exceptions import AirflowFailException

    if isinstance(exc, AirflowFailException):
        return True
    ti = context.get("ti")
    max_tries = getattr(ti, "max_tries", None)
    return max_tries is not None and int(getattr(ti, "try_number", 1)) > int(max_tries)


class SourceGuard:
    """Circuit breaker and alerts shared by the ingest operators of one source."""

    def __init__(self, conn: psycopg.Connection[Any], source: str) -> None:
        from pulse.breaker import Breaker, BreakerSettings
        from pulse.config import load_all

        self.source = source
        self.breaker = Breaker(conn, source, BreakerSettings.from_config(load_all()))

    def check(self) -> None:
        """Skip the run while the source's circuit is open.

        ``extract`` becomes a *skipped* task instance and ``load`` follows it (trigger rule ``all_success``), so
        the grid shows the skip; the DAG run itself ends *success*, as Airflow marks every run whose leaves
        all succeeded or skipped (it has no skipped run state).
        """
        from airflow.sdk.exceptions import AirflowSkipException

        from pulse.breaker import CircuitOpen

        try:
            self.breaker.check()
        except CircuitOpen as exc:
            raise AirflowSkipException(str(exc)) from exc

    @contextmanager
    def watching(self, context: Any) -> Iterator[None]:
        """Run the block; a failure in it is counted against the source (:meth:`failed`) and raised on."""
        try:
            yield
        except BaseException as exc:
            self.failed(context, exc)
            raise

    def succeeded(self) -> None:
        """The source delivered a whole run: close the circuit and reset the failure count."""
        self.breaker.record_success()

    def failed(self, context: Any, exc: BaseException) -> None:
        """Count the run's failure against the source when it is the source's and no retry follows."""
        if not is_source_failure(exc) or not is_final_try(context, exc):
            return
        if self.breaker.record_failure(f"{type(exc).__name__}: {exc}"):
            self._alert_open(context, exc)

    def _alert_open(self, context: Any, exc: BaseException) -> None:
        from pulse.alerts import Alert, describe_window, post_alert

        settings = self.breaker.settings
        ti = context.get("ti")
        post_alert(
            Alert(
                route="failures",
                kind="breaker_open",
                title=f":no_entry: *Circuit opened for source `{self.source}`*",
                dag_id=getattr(ti, "dag_id", None),
                run_id=context.get("run_id"),
                window=describe_window(context),
                lines=[
                    f"{settings.failures} runs in a row failed; runs of `{self.source}` skip for "
                    f"{int(settings.cool_down.total_seconds() // 60)} min, then one run tries again.",
                    f"*Last error*: {type(exc).__name__}: {str(exc)[:500]}",
                ],
                links=[("Task log", ti.log_url)] if ti is not None else [],
                dedup_key=f"breaker_open|{self.source}",
            )
        )
