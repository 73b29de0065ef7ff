"""Spike detection and forecasts (pulse.trends.detect): unit cases and properties on arbitrary matrices.

No services and no clock: every series is a small numpy matrix built here. NaN = hour not observed (a coverage
gap), 0 = observed and empty. Property tests run 200 examples each, a tenth in the fast lane
(``PULSE_FAST_LANE``, like tests/unit/test_params.py).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pulse.trends import detect
from pulse.trends.detect import (
    BASIS_DAILY,
    BASIS_NONE,
    BASIS_WEEKLY,
    DEFAULT,
    HOURS_PER_WEEK,
    episodes,
    forecast,
    seasonal_naive,
    sentiment_scores,
    volume_scores,
)

PROPERTY = settings(
    max_examples=20 if os.environ.get("PULSE_FAST_LANE") else 200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
WEEKS = 5
T = WEEKS * HOURS_PER_WEEK - 1  # the last hour: four full weeks before it


def flat(level: float, hours: int = WEEKS * HOURS_PER_WEEK) -> np.ndarray:
    """A flat series with a little regular wobble (so the MAD is not zero)."""
    wobble = np.tile([0.0, 1.0, -1.0, 0.5], hours // 4 + 1)[:hours]
    return np.maximum(level + wobble * np.sqrt(max(level, 1.0)) * 0.5, 0.0)


# ------------------------------------------------------------------------------------------------ volume


def test_a_clear_spike_is_flagged_at_its_hour_with_its_baseline_and_z() -> None:
    values = flat(20.0)
    values[T] = 200.0
    s = volume_scores(values, [T - 1, T])
    assert s.spike.tolist() == [[False, True]]
    assert s.basis[0, 1] == BASIS_WEEKLY and s.points[0, 1] == 4
    base = np.median(values[T - HOURS_PER_WEEK * np.arange(1, 5)])
    assert s.baseline[0, 1] == pytest.approx(base)
    floor = np.sqrt(base + (detect.OVERDISPERSION * base) ** 2)
    assert s.spread[0, 1] >= floor
    assert s.z[0, 1] == pytest.approx((200.0 - base) / s.spread[0, 1])
    assert s.ratio[0, 1] == pytest.approx(200.0 / base)


def test_a_gap_is_never_a_spike_and_never_a_zero_in_the_baseline() -> None:
    values = flat(30.0)
    values[T] = np.nan
    s = volume_scores(values, [T])
    assert not s.spike[0, 0] and np.isnan(s.z[0, 0]) and np.isnan(s.baseline[0, 0])
    # Gaps in two of the four weekly baseline hours: the baseline is the median of the observed two, not of
    # two zeros and two values (which would make 30 a spike against 15).
    values = flat(30.0)
    values[T - HOURS_PER_WEEK] = values[T - 2 * HOURS_PER_WEEK] = np.nan
    values[T] = 30.0
    s = volume_scores(values, [T])
    assert s.points[0, 0] == 2 and s.baseline[0, 0] >= 25 and not s.spike[0, 0]
    zeros = values.copy()
    zeros[T - HOURS_PER_WEEK] = zeros[T - 2 * HOURS_PER_WEEK] = 0.0
    assert volume_scores(zeros, [T]).baseline[0, 0] < s.baseline[0, 0]


@pytest.mark.parametrize("baseline", [0.0, 0.1, 1.0])
def test_three_documents_are_never_a_spike(baseline: float) -> None:
    values = np.full(WEEKS * HOURS_PER_WEEK, baseline)
    for count in (1.0, 2.0, 3.0, DEFAULT.min_documents - 1.0):
        values[T] = count
        s = volume_scores(values, [T])
        assert not s.spike[0, 0], (baseline, count)
    values[T] = float(DEFAULT.min_documents)  # the support threshold itself: a spike against these baselines
    assert volume_scores(values, [T]).spike[0, 0]


def test_no_history_gives_basis_none_and_no_spike() -> None:
    values = np.full(WEEKS * HOURS_PER_WEEK, np.nan)
    values[T] = 500.0
    s = volume_scores(values, [T])
    assert s.basis[0, 0] == BASIS_NONE and not s.spike[0, 0] and np.isnan(s.z[0, 0])
    # Two days of history: still no verdict (three same-hour-of-day points are needed).
    values[T - 48 : T] = 1.0
    assert volume_scores(values, [T]).basis[0, 0] == BASIS_NONE


def test_a_young_series_is_judged_on_the_same_hour_of_the_previous_days() -> None:
    values = np.full(WEEKS * HOURS_PER_WEEK, np.nan)
    values[T - 96 : T] = 2.0
    values[T] = 60.0
    s = volume_scores(values, [T])
    assert s.basis[0, 0] == BASIS_DAILY and s.points[0, 0] == 4 and s.spike[0, 0]


def test_a_new_series_in_an_observed_source_spikes_with_enough_documents() -> None:
    values = np.zeros(WEEKS * HOURS_PER_WEEK)  # the source was observed: the term just never occurred
    values[T] = float(DEFAULT.min_documents)
    s = volume_scores(values, [T])
    assert s.basis[0, 0] == BASIS_WEEKLY and s.spike[0, 0] and s.baseline[0, 0] == 0


def test_a_step_up_alerts_for_days_not_weeks() -> None:
    values = flat(20.0, 8 * HOURS_PER_WEEK)
    step = 4 * HOURS_PER_WEEK
    values[step:] *= 4
    s = volume_scores(values, np.arange(step, values.size))
    flagged = np.flatnonzero(s.spike[0])
    assert flagged.size and flagged[0] == 0  # the step itself is an event
    assert flagged[-1] < 7 * 24  # the daily confirmation stops the flags within a week


def test_scores_at_hour_t_do_not_read_later_columns() -> None:
    rng = np.random.default_rng(5)
    values = rng.poisson(8.0, size=(6, WEEKS * HOURS_PER_WEEK)).astype(float)
    values[:, ::37] = np.nan
    values[2, 700] = 90.0
    at = np.arange(HOURS_PER_WEEK, values.shape[1])
    full = volume_scores(values, at)
    for j, t in enumerate(at[::50]):
        changed = values.copy()
        changed[:, t + 1 :] = rng.poisson(50.0, size=changed[:, t + 1 :].shape)  # the future, rewritten
        alone = volume_scores(changed[:, : t + 1], [t])
        k = int(np.flatnonzero(at == t)[0])
        for field in ("z", "baseline", "spread", "ratio"):
            np.testing.assert_array_equal(
                getattr(alone, field)[:, 0], getattr(full, field)[:, k], err_msg=field
            )
        np.testing.assert_array_equal(alone.spike[:, 0], full.spike[:, k])
        assert j < len(at)


def test_episodes_merge_runs_one_quiet_hour_apart() -> None:
    flags = [0, 1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1]
    assert episodes(flags) == [(1, 4), (7, 7), (11, 11)]
    assert episodes(flags, max_gap=2) == [(1, 7), (11, 11)]
    assert episodes(flags, max_gap=0) == [(1, 2), (4, 4), (7, 7), (11, 11)]
    assert episodes([]) == [] and episodes([0, 0]) == []


# --------------------------------------------------------------------------------------------- sentiment


def _sentiment(last: tuple[float, float] = (80.0, 40.0)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """200 documents an hour, 80 positive and 40 negative (net +0.2); the last hour's (positive, negative)."""
    hours = WEEKS * HOURS_PER_WEEK
    docs = np.full(hours, 200.0)
    pos = np.full(hours, 80.0)
    neg = np.full(hours, 40.0)
    pos[T], neg[T] = last
    return docs, pos, neg


@pytest.mark.parametrize(("last", "sign"), [((140.0, 0.0), 1), ((20.0, 80.0), -1), ((100.0, 30.0), 0)])
def test_a_sentiment_spike_up_or_down_is_flagged(last: tuple[float, float], sign: int) -> None:
    docs, pos, neg = _sentiment(last)  # net +0.7 (a shift of +0.5), -0.3 (-0.5), +0.35 (+0.15: not enough)
    s = sentiment_scores(docs, pos, neg, [T - 1, T])
    assert s.spike.tolist() == [[False, sign != 0]]
    assert s.baseline[0, 1] == pytest.approx(0.2)
    assert np.sign(s.z[0, 1]) == (sign or 1)


def test_sentiment_needs_documents_in_the_hour_and_the_baseline() -> None:
    docs, pos, neg = _sentiment()
    docs[T], pos[T], neg[T] = 10.0, 10.0, 0.0  # net 1.0, but only 10 documents
    assert not sentiment_scores(docs, pos, neg, [T]).spike[0, 0]
    docs, pos, neg = _sentiment((140.0, 0.0))
    assert sentiment_scores(docs, pos, neg, [T]).spike[0, 0]
    docs[: T - 1] = np.nan
    s = sentiment_scores(docs, pos, neg, [T])
    assert not s.spike[0, 0] and np.isnan(s.z[0, 0])


def test_a_past_sentiment_shift_does_not_echo_a_week_later() -> None:
    docs, pos, neg = _sentiment()  # an ordinary hour now (net +0.2) ...
    week_ago = T - HOURS_PER_WEEK  # ... after a burst of 600 negative documents a week ago: pooled in, the
    docs[week_ago], pos[week_ago], neg[week_ago] = 600.0, 0.0, 600.0  # baseline would be -0.4, a +0.6 "shift"
    s = sentiment_scores(docs, pos, neg, [T])
    assert s.baseline[0, 0] == pytest.approx(0.2) and not s.spike[0, 0]


# --------------------------------------------------------------------------------------------- forecasts


def test_forecast_shape_and_nan_for_a_young_series() -> None:
    values = np.vstack([flat(10.0), np.r_[np.full(WEEKS * HOURS_PER_WEEK - 100, np.nan), np.full(100, 3.0)]])
    fc = forecast(values, horizon=24)
    assert fc.mean.shape == (2, 24) and fc.lower80.shape == (2, 24)
    assert np.all(np.isfinite(fc.mean[0])) and np.all(np.isnan(fc.mean[1]))
    assert fc.history_hours.tolist() == [WEEKS * HOURS_PER_WEEK, 100]
    assert seasonal_naive(values).shape == (2, 24)


def test_forecast_intervals_are_ordered() -> None:
    rng = np.random.default_rng(3)
    values = rng.poisson(np.linspace(1, 80, 30)[:, None], size=(30, WEEKS * HOURS_PER_WEEK)).astype(float)
    fc = forecast(values)
    assert np.all(fc.lower95 <= fc.lower80) and np.all(fc.lower80 <= fc.mean)
    assert np.all(fc.mean <= fc.upper80) and np.all(fc.upper80 <= fc.upper95) and np.all(fc.lower95 >= 0)


# -------------------------------------------------------------------------------------------- properties

_counts = st.one_of(
    st.just(np.nan),
    st.just(0.0),
    st.floats(min_value=0, max_value=50),
    st.integers(min_value=0, max_value=10**12).map(float),
)


@st.composite
def matrices(draw: st.DrawFn) -> np.ndarray:
    rows = draw(st.integers(1, 3))
    hours = draw(st.sampled_from([1, 30, 200, 2 * HOURS_PER_WEEK + 5, 5 * HOURS_PER_WEEK]))
    kind = draw(st.sampled_from(["any", "zero", "nan", "huge"]))
    if kind == "zero":
        return np.zeros((rows, hours))
    if kind == "nan":
        return np.full((rows, hours), np.nan)
    if kind == "huge":
        return np.full((rows, hours), 1e12)
    return draw(hnp.arrays(np.float64, (rows, hours), elements=_counts))


@PROPERTY
@given(values=matrices(), data=st.data())
def test_volume_scores_never_raise_and_never_spike_on_nan_or_little(
    values: np.ndarray, data: st.DataObject
) -> None:
    hours = values.shape[1]
    at = np.array(data.draw(st.lists(st.integers(0, hours - 1), min_size=1, max_size=20)))
    s = volume_scores(values, at)
    x = values[:, at]
    assert s.spike.shape == x.shape
    assert not np.any(s.spike & np.isnan(x))
    assert not np.any(s.spike & (np.nan_to_num(x) < DEFAULT.min_documents))
    assert not np.any(s.spike & (s.basis == BASIS_NONE))
    assert np.all(np.isfinite(s.z) | np.isnan(s.z))


@PROPERTY
@given(values=matrices(), data=st.data())
def test_sentiment_scores_never_raise(values: np.ndarray, data: st.DataObject) -> None:
    share = data.draw(st.floats(0, 1))
    pos = np.floor(np.nan_to_num(values, nan=0.0) * share)
    neg = np.floor((np.nan_to_num(values, nan=0.0) - pos) * share)
    at = np.arange(values.shape[1])[-20:]
    s = sentiment_scores(
        values, np.where(np.isnan(values), np.nan, pos), np.where(np.isnan(values), np.nan, neg), at
    )
    x = values[:, at]
    assert not np.any(s.spike & np.isnan(x))
    assert not np.any(s.spike & (np.nan_to_num(x) < DEFAULT.min_sentiment_documents))
    assert np.all(np.isfinite(s.z) | np.isnan(s.z))


@PROPERTY
@given(values=matrices(), horizon=st.integers(1, 48))
def test_forecasts_are_non_negative_and_ordered(values: np.ndarray, horizon: int) -> None:
    fc = forecast(values, horizon)
    assert fc.mean.shape == (values.shape[0], horizon)
    ok = ~np.isnan(fc.mean)
    assert np.all(fc.mean[ok] >= 0)
    assert np.all(fc.lower95[ok] <= fc.lower80[ok]) and np.all(fc.lower80[ok] <= fc.mean[ok])
    assert np.all(fc.mean[ok] <= fc.upper80[ok]) and np.all(fc.upper80[ok] <= fc.upper95[ok])
    assert seasonal_naive(values, horizon).shape == (values.shape[0], horizon)
