"""The extract steps one by one (pulse.ingest.extract), on the real test warehouse with a fake hook."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from pulse.ingest import extract as steps
from pulse.ingest.extract import Start
from pulse.sources.base import MalformedPageError, SourceAuthError, Stream
from pulse.windows import Window, utcnow
from tests.ingest.conftest import RUN_WINDOW, FakeHook, coverage_rows, make_page, pages_of, raw_rows

A, B = Stream("a", "/a"), Stream("b", "/b")


def _reach(horizon: timedelta | None) -> Any:
    return SimpleNamespace(reach=lambda stream: horizon)


# plan / reachable -------------------------------------------------------------------------------------------


def test_window_straddling_the_reach_is_clipped_and_its_older_part_is_an_uncounted_gap(
    make_run: Any, db: Any
) -> None:
    now = utcnow()
    window = Window(now - timedelta(hours=5), now - timedelta(hours=1))
    run = make_run(window=window)
    planned = list(steps.plan(run, _reach(timedelta(hours=3)), [A]))
    assert planned == [(A, Window(now - timedelta(hours=3), window.end))]
    assert coverage_rows(db, run) == [("a", window.start, now - timedelta(hours=3), "gap", "beyond_reach")]
    assert run.gaps == 0, "the stream is still fetched: the clipped part is not counted as a gap"


def test_window_wholly_beyond_reach_is_a_counted_gap_and_not_planned(make_run: Any, db: Any) -> None:
    now = utcnow()
    window = Window(now - timedelta(days=10), now - timedelta(days=9))
    run = make_run(window=window)
    assert list(steps.plan(run, _reach(timedelta(days=7)), [A, B])) == []
    assert coverage_rows(db, run) == [
        ("a", window.start, window.end, "gap", "beyond_reach"),
        ("b", window.start, window.end, "gap", "beyond_reach"),
    ]
    assert run.gaps == 2


def test_no_reach_plans_the_whole_window(make_run: Any, db: Any) -> None:
    run = make_run()
    assert list(steps.plan(run, _reach(None), [A, B])) == [(A, RUN_WINDOW), (B, RUN_WINDOW)]
    assert list(steps.plan(run, SimpleNamespace(), [A])) == [(A, RUN_WINDOW)]
    assert coverage_rows(db, run) == [] and run.gaps == 0


def test_once_the_budget_is_spent_the_remaining_streams_are_budget_exhausted_gaps(
    make_run: Any, db: Any
) -> None:
    run = make_run()
    planned = steps.plan(run, SimpleNamespace(), [A, B])
    assert next(planned) == (A, RUN_WINDOW)
    run.budget_spent = True  # as fetch() sets it while A pages
    assert list(planned) == []
    assert coverage_rows(db, run) == [("b", RUN_WINDOW.start, RUN_WINDOW.end, "gap", "budget_exhausted")]
    assert run.gaps == 1


# resume -----------------------------------------------------------------------------------------------------


def test_resume_starts_at_the_top_when_nothing_is_stored(make_run: Any) -> None:
    assert steps.resume(make_run(), A) == Start(None, 0)


def test_resume_picks_the_cursor_after_the_last_valid_stored_page(make_run: Any) -> None:
    run = make_run()
    other = make_run()  # another run's pages and another stream's pages do not count
    p0, p1, p2 = pages_of(A, 3)
    for page in (p0, p1):
        run.raw.store(run.source, page, run.ctx)
    other.raw.store(other.source, p2, other.ctx)
    run.raw.store(run.source, make_page(B, 5, "cb6"), run.ctx)
    run.raw.store(run.source, make_page(A, 2, "bad", is_valid=False, error="not JSON"), run.ctx)
    assert steps.resume(run, A) == Start("c2", 2)
    assert steps.resume(run, B) == Start("cb6", 6)


def test_resume_says_a_stream_whose_last_page_is_stored_is_complete(make_run: Any) -> None:
    run = make_run()
    for page in pages_of(A, 2):
        run.raw.store(run.source, page, run.ctx)
    assert steps.resume(run, A) is None


def test_a_complete_stream_is_skipped_and_the_rest_resumes(make_run: Any, db: Any) -> None:
    run = make_run()
    a_pages, b_pages = pages_of(A, 2), pages_of(B, 3)
    for page in [*a_pages, b_pages[0]]:  # a try that failed on B's second page
        run.raw.store(run.source, page, run.ctx)
    hook = FakeHook({"a": a_pages, "b": b_pages})
    out = steps.extract(run, hook, SimpleNamespace(), [A, B])
    assert hook.calls == [("b", RUN_WINDOW, "c1", 1)], "A is not fetched again; B resumes after page 0"
    assert raw_rows(db, run)[3:] == [("b", 1, True, "c2"), ("b", 2, True, None)]
    assert out["pages"] == 5 and out["gaps"] == 0
    assert [r[0] for r in coverage_rows(db, run)] == ["b"], "coverage comes from the try that fetched"


# take_budget / fetch ----------------------------------------------------------------------------------------


def _used(run: Any) -> dict[int, int]:
    return run.budget.used()


def test_fetch_stores_each_page_and_takes_one_call_per_page(make_run: Any, db: Any) -> None:
    run = make_run()
    hook = FakeHook({"a": pages_of(A, 3)})
    last = steps.fetch(run, hook, A, RUN_WINDOW, Start())
    assert last is not None and last.page_no == 2
    assert raw_rows(db, run) == [("a", 0, True, "c1"), ("a", 1, True, "c2"), ("a", 2, True, None)]
    assert _used(run) == {86400: 3}, "no call is taken after the page without a next cursor"
    assert not run.budget_spent


def test_a_stream_whose_last_page_takes_the_last_call_is_complete(make_run: Any, db: Any) -> None:
    run = make_run(limits=((86400, 2),))
    last = steps.fetch(run, FakeHook({"a": pages_of(A, 2)}), A, RUN_WINDOW, Start())
    assert last is not None and last.next_cursor is None
    assert not run.budget_spent and run.gaps == 0, "no call is asked for after the listing's last page"
    assert coverage_rows(db, run) == []


def test_a_listing_that_ends_without_a_page_gives_its_call_back(make_run: Any) -> None:
    run = make_run()
    assert steps.fetch(run, FakeHook({}), A, RUN_WINDOW, Start()) is None
    assert _used(run) == {86400: 0}


def test_fetch_passes_the_start_and_the_reachable_window_to_the_hook(make_run: Any) -> None:
    run = make_run()
    hook = FakeHook({"a": pages_of(A, 4)})
    part = Window(RUN_WINDOW.start + timedelta(minutes=10), RUN_WINDOW.end)
    steps.fetch(run, hook, A, part, Start("c2", 2))
    assert hook.calls == [("a", part, "c2", 2)]


def test_budget_spent_while_paging_ends_the_stream_with_a_gap_over_the_whole_window(
    make_run: Any, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(steps.time, "sleep", lambda s: pytest.fail("a day's wait is not slept through"))
    run = make_run(limits=((86400, 2),))
    part = Window(RUN_WINDOW.start + timedelta(minutes=10), RUN_WINDOW.end)
    last = steps.fetch(run, FakeHook({"a": pages_of(A, 5)}), A, part, Start())
    assert last is not None and last.page_no == 1
    assert run.budget_spent and run.gaps == 1
    assert [r[:2] for r in raw_rows(db, run)] == [("a", 0), ("a", 1)]
    assert coverage_rows(db, run) == [("a", RUN_WINDOW.start, RUN_WINDOW.end, "gap", "budget_exhausted")]


def test_extract_with_too_little_budget_records_gaps_and_no_coverage_for_the_cut_stream(
    make_run: Any, db: Any
) -> None:
    run = make_run(limits=((86400, 1),))
    hook = FakeHook({"a": pages_of(A, 2), "b": pages_of(B, 1)})
    out = steps.extract(run, hook, SimpleNamespace(), [A, B])
    assert [c[0] for c in hook.calls] == ["a"], "B is never asked for once the budget is spent"
    assert coverage_rows(db, run) == [
        ("a", RUN_WINDOW.start, RUN_WINDOW.end, "gap", "budget_exhausted"),
        ("b", RUN_WINDOW.start, RUN_WINDOW.end, "gap", "budget_exhausted"),
    ]
    assert out == {
        "window": [RUN_WINDOW.start.isoformat(), RUN_WINDOW.end.isoformat()],
        "pages": 1,
        "items": 1,
        "gaps": 2,
    }


def test_a_wait_longer_than_the_limit_is_not_slept_through(
    make_run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(steps.time, "sleep", slept.append)
    # PULSE_NOW is 12:05:00 sharp: a 5-minute bucket rolls over in 300 s, past MAX_BUDGET_WAIT.
    long_run = make_run(limits=((300, 1),))
    assert steps.take_budget(long_run) is True
    assert steps.take_budget(long_run) is False
    assert slept == []
    assert timedelta(seconds=90) == steps.MAX_BUDGET_WAIT


def test_a_short_wait_is_slept_once_but_not_again_on_a_pinned_clock(
    make_run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(steps.time, "sleep", slept.append)
    run = make_run(limits=((120, 1),))  # at 12:05:00, its bucket (from 12:04) rolls over in 60 s
    assert steps.take_budget(run) is True
    assert steps.take_budget(run) is False, "the bucket never rolls over on a pinned clock"
    assert slept == [120 - 60 + 0.5]


def test_a_short_wait_is_slept_through_when_the_clock_moves(
    make_run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # the pipeline clock moves on by as much
        slept.append(seconds)
        monkeypatch.setenv("PULSE_NOW", (utcnow() + timedelta(seconds=seconds)).isoformat())

    monkeypatch.setattr(steps.time, "sleep", sleep)
    monkeypatch.setenv("PULSE_NOW", os.environ["PULSE_NOW"])  # restored after the test
    run = make_run(limits=((120, 1),))
    assert steps.take_budget(run) is True
    assert steps.take_budget(run) is True, "the next bucket has room"
    assert slept == [60.5]


def test_rejected_credentials_fail_the_task_at_once(make_run: Any, db: Any) -> None:
    run = make_run()
    hook = FakeHook({"a": pages_of(A, 3)}, fail={"a": SourceAuthError("401 Unauthorized")}, fail_at=1)
    with pytest.raises(AirflowFailException, match=r"^401 Unauthorized$"):
        steps.fetch(run, hook, A, RUN_WINDOW, Start())
    assert [r[:2] for r in raw_rows(db, run)] == [("a", 0)]


def test_a_malformed_page_is_kept_as_evidence_and_fails_the_try(make_run: Any, db: Any) -> None:
    run = make_run()
    evidence = make_page(A, 1, None, is_valid=False, error="HTML instead of JSON")
    hook = FakeHook(
        {"a": pages_of(A, 3)}, fail={"a": MalformedPageError("page 1 is HTML.", evidence)}, fail_at=1
    )
    with pytest.raises(AirflowException) as info:
        steps.fetch(run, hook, A, RUN_WINDOW, Start())
    assert not isinstance(info.value, AirflowFailException), "a retry may get a good page"
    assert str(info.value) == (
        f"toy page 1 is HTML. Pages stored before it are kept in raw.api_responses (run {run.ctx.dag_run_id});"
        " a retry resumes after them."
    )
    assert raw_rows(db, run) == [("a", 0, True, "c1"), ("a", 1, False, None)]
    assert steps.resume(run, A) == Start("c1", 1), "the retry resumes before the malformed page"


def test_a_malformed_response_without_a_page_stores_nothing(make_run: Any, db: Any) -> None:
    run = make_run()
    hook = FakeHook({"a": pages_of(A, 2)}, fail={"a": MalformedPageError("no body.")}, fail_at=0)
    with pytest.raises(AirflowException, match=r"^toy no body\. Pages stored before it"):
        steps.fetch(run, hook, A, RUN_WINDOW, Start())
    assert raw_rows(db, run) == []


# record_coverage / finish -----------------------------------------------------------------------------------


def test_a_fetched_stream_is_ingested_over_its_reachable_window(make_run: Any, db: Any) -> None:
    run = make_run()
    part = Window(RUN_WINDOW.start + timedelta(minutes=10), RUN_WINDOW.end)
    steps.record_coverage(run, A, part, pages_of(A, 1)[0])
    assert coverage_rows(db, run) == [("a", part.start, part.end, "ingested", None)]
    assert run.gaps == 0


def test_a_listing_that_ended_inside_the_window_leaves_a_listing_cap_gap(make_run: Any, db: Any) -> None:
    run = make_run()
    oldest = RUN_WINDOW.start + timedelta(minutes=20)
    last = make_page(A, 3, None, oldest_created=oldest.timestamp())
    steps.record_coverage(run, A, RUN_WINDOW, last)
    assert coverage_rows(db, run) == [
        ("a", RUN_WINDOW.start, oldest, "gap", "listing_cap"),
        ("a", RUN_WINDOW.start, RUN_WINDOW.end, "ingested", None),
    ]
    assert run.gaps == 1


@pytest.mark.parametrize(
    ("oldest", "next_cursor"),
    [
        (RUN_WINDOW.start, None),  # the listing reached the window start
        (RUN_WINDOW.start - timedelta(hours=1), None),
        (None, None),  # the hook does not know how far back it reached
        (RUN_WINDOW.start + timedelta(minutes=20), "more"),  # not the listing's end
    ],
)
def test_no_listing_cap_gap_when_the_listing_reached_back_or_did_not_end(
    make_run: Any, db: Any, oldest: datetime | None, next_cursor: str | None
) -> None:
    run = make_run()
    last = make_page(A, 3, next_cursor, oldest_created=oldest.timestamp() if oldest else None)
    steps.listing_cap_gap(run, A, last)
    steps.listing_cap_gap(run, A, None)
    assert coverage_rows(db, run) == [] and run.gaps == 0


def test_a_listing_cap_gap_ends_at_the_window_end(make_run: Any, db: Any) -> None:
    run = make_run()
    later = RUN_WINDOW.end + timedelta(hours=1)
    steps.listing_cap_gap(run, A, make_page(A, 0, None, oldest_created=later.timestamp()))
    assert coverage_rows(db, run) == [("a", RUN_WINDOW.start, RUN_WINDOW.end, "gap", "listing_cap")]


def test_finish_writes_the_run_totals_and_returns_the_summary(make_run: Any, db: Any) -> None:
    run = make_run()
    for page in pages_of(A, 2):
        run.raw.store(run.source, page, run.ctx)
    run.raw.store(run.source, pages_of(A, 2)[1], run.ctx)  # a page fetched twice counts once
    run.gaps = 4
    assert steps.finish(run) == {
        "window": ["2026-11-28T11:00:00+00:00", "2026-11-28T12:00:00+00:00"],
        "pages": 2,
        "items": 2,
        "gaps": 4,
    }
    row = db.execute(
        "SELECT dag_id, source, window_start, window_end, pages, items FROM ops.ingest_runs WHERE dag_run_id = %s",
        (run.ctx.dag_run_id,),
    ).fetchone()
    assert row == ("ingest_toy", "toy", RUN_WINDOW.start, RUN_WINDOW.end, 2, 2)


def test_extract_runs_every_step_for_every_stream(make_run: Any, db: Any) -> None:
    now = utcnow()
    window = Window(now - timedelta(hours=4), now - timedelta(hours=1))
    run = make_run(window=window)
    parser = SimpleNamespace(reach=lambda s: timedelta(hours=2) if s is B else None)
    hook = FakeHook({"a": pages_of(A, 2), "b": pages_of(B, 1)})
    out = steps.extract(run, hook, parser, [A, B])
    clipped = Window(now - timedelta(hours=2), window.end)
    assert hook.calls == [("a", window, None, 0), ("b", clipped, None, 0)]
    assert coverage_rows(db, run) == [
        ("a", window.start, window.end, "ingested", None),
        ("b", window.start, clipped.start, "gap", "beyond_reach"),
        ("b", clipped.start, clipped.end, "ingested", None),
    ]
    assert out == {
        "window": [window.start.isoformat(), window.end.isoformat()],
        "pages": 3,
        "items": 3,
        "gaps": 0,
    }
    assert datetime.fromisoformat(out["window"][0]).tzinfo == UTC
