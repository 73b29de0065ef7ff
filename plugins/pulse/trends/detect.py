"""Spike detection and forecasts on hourly series: numpy only, vectorised over many series at once.

Every function takes a matrix of hourly values, one row per series and one column per hour (column ``j`` is
``start + j`` hours), where **NaN means the hour was not observed** (the source had a coverage gap or was not
published yet) and 0 means it was observed and held nothing. A gap never reads as a drop to zero.

Volume (:func:`volume_scores`)
    The baseline of hour ``t`` is the **median of the same hour of the week** over the previous
    :attr:`Thresholds.weeks` weeks (``t - 168 k``), observed hours only. With fewer than
    :attr:`Thresholds.min_weekly_points` of them, the same hour of the day over the previous
    :attr:`Thresholds.days` days (``t - 24 k``) stands in (a young series); with fewer than
    :attr:`Thresholds.min_daily_points` of those too, there is no verdict (``basis = none``). The spread is the
    MAD (x 1.4826, a standard deviation for normal data), floored at the negative-binomial noise of the
    baseline, ``sqrt(max(median, 1) + (OVERDISPERSION x median)^2)`` (:data:`OVERDISPERSION` = 0.25: hourly
    counts vary more than Poisson), so neither a flat nor a big series is a hair-trigger. The hour spikes when
    its count is at least :attr:`Thresholds.min_documents` (support: three mentions are never a spike), its
    robust z-score at least :attr:`Thresholds.volume_z` and its ratio to the baseline at least
    :attr:`Thresholds.volume_ratio`, and (:data:`DAILY_CONFIRM`) when it also clears the same z and ratio
    against the same hour of the previous :attr:`Thresholds.days` days, whenever at least
    :attr:`Thresholds.min_daily_points` of those were observed: after a permanent step up the weekly baseline
    needs three weeks to follow, the daily one a few days, so a level shift alerts for its first days, not for
    weeks. The reported baseline, spread, z and ratio are the weekly (or fallback) ones.

Sentiment (:func:`sentiment_scores`)
    Net sentiment of an hour = (positive - negative) / documents, in [-1, 1]. The baseline pools the same
    baseline hours as volume (documents, positives and negatives added up), so it is the net sentiment of
    those hours' documents; a baseline hour whose own net sentiment lies more than
    :attr:`Thresholds.sentiment_delta` from the median of the baseline hours' is left out (it was a shift
    itself, and would echo a week later). The z-score divides the difference by the standard error of the
    difference (per-document variance from the baseline, over the hour's documents and over the baseline's)
    plus a floor for the variation between hours (:attr:`Thresholds.sentiment_floor`). A sentiment spike, up or
    down, needs :attr:`Thresholds.min_sentiment_documents` documents in the hour and
    :attr:`Thresholds.min_baseline_documents` in the baseline, |z| >= :attr:`Thresholds.sentiment_z` and a
    shift of at least :attr:`Thresholds.sentiment_delta`.

Forecasts (:func:`forecast`)
    Seasonal median x level: each of the next ``horizon`` hours is the median of its same hour of the week
    over the previous weeks, times the ratio of the last day's observed volume to what those medians expected
    for it (shrunk toward 1 and clipped to [0.5, 2]). Prediction intervals come from the series' own scaled
    errors of the same forecast over its recent past (pooled over all series when a series has too little
    history), scaled by ``sqrt(forecast + 1)``.

The thresholds were chosen on synthetic series (:mod:`pulse.trends.backtest`), whose figures docs/trends.md
reports; they are constants here, not per-series fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

HOURS_PER_WEEK = 168
HOURS_PER_DAY = 24
MAD_TO_SD = 1.4826
#: Extra-Poisson noise of hourly counts (a coefficient of variation): the spread floor is
#: ``sqrt(max(median, 1) + (OVERDISPERSION x median)^2)``, negative-binomial noise, so a big series is not a
#: hair-trigger either.
OVERDISPERSION = 0.25
#: Also require the hour to stand out against the same hour of the previous ``days`` days (when observed).
DAILY_CONFIRM = True

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Thresholds:
    """What makes a spike. The defaults are the ones the backtest measured (docs/trends.md)."""

    weeks: int = 4
    min_weekly_points: int = 2
    days: int = 7
    min_daily_points: int = 3
    min_documents: int = 10
    volume_z: float = 5.0
    volume_ratio: float = 2.0
    min_sentiment_documents: int = 20
    min_baseline_documents: int = 20
    sentiment_z: float = 4.0
    sentiment_delta: float = 0.3
    sentiment_floor: float = 0.08


DEFAULT = Thresholds()

#: ``basis`` codes: which baseline an hour was judged against.
BASIS_NONE, BASIS_WEEKLY, BASIS_DAILY = 0, 1, 2
BASIS_NAMES = {BASIS_NONE: "none", BASIS_WEEKLY: "same_hour_of_week", BASIS_DAILY: "same_hour_of_day"}


def _as_matrix(values: npt.ArrayLike) -> Array:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"expected a (series, hours) matrix, got shape {arr.shape}")
    return arr


def _lagged(values: Array, at: npt.NDArray[np.int64], step: int, count: int) -> Array:
    """``values[:, at - step * k]`` for k = 1..count as a (series, len(at), count) array; NaN before column 0."""
    series = values.shape[0]
    lags = at[:, None] - step * np.arange(1, count + 1)[None, :]
    out = np.full((series, at.size, count), np.nan)
    ok = lags >= 0
    if ok.any():
        rows = np.where(ok, lags, 0)
        taken = values[:, rows]  # (series, len(at), count)
        out = np.where(ok[None, :, :], taken, np.nan)
    return out


def baseline_points(
    values: npt.ArrayLike, at: npt.ArrayLike, thresholds: Thresholds = DEFAULT
) -> tuple[Array, npt.NDArray[np.int8]]:
    """The baseline hours' values for each series and each hour in ``at``: (series, len(at), k) and the basis.

    Weekly lags when at least ``min_weekly_points`` of them were observed, else daily lags when at least
    ``min_daily_points`` were, else all NaN with basis ``none``.
    """
    vals = _as_matrix(values)
    idx = np.atleast_1d(np.asarray(at, dtype=np.int64))
    weekly = _lagged(vals, idx, HOURS_PER_WEEK, thresholds.weeks)
    daily = _lagged(vals, idx, HOURS_PER_DAY, thresholds.days)
    width = max(thresholds.weeks, thresholds.days)
    weekly = np.pad(weekly, ((0, 0), (0, 0), (0, width - weekly.shape[2])), constant_values=np.nan)
    daily = np.pad(daily, ((0, 0), (0, 0), (0, width - daily.shape[2])), constant_values=np.nan)
    n_weekly = np.sum(~np.isnan(weekly), axis=2)
    n_daily = np.sum(~np.isnan(daily), axis=2)
    use_weekly = n_weekly >= thresholds.min_weekly_points
    use_daily = ~use_weekly & (n_daily >= thresholds.min_daily_points)
    points = np.where(use_weekly[:, :, None], weekly, np.where(use_daily[:, :, None], daily, np.nan))
    basis = np.where(use_weekly, BASIS_WEEKLY, np.where(use_daily, BASIS_DAILY, BASIS_NONE)).astype(np.int8)
    return points, basis


@dataclass
class VolumeScores:
    """Per series (rows) and evaluated hour (columns)."""

    value: Array
    baseline: Array
    spread: Array
    z: Array
    ratio: Array
    points: npt.NDArray[np.int64]
    basis: npt.NDArray[np.int8]
    spike: npt.NDArray[np.bool_]


def _nanmedian(points: Array) -> Array:
    with np.errstate(all="ignore"):
        count = np.sum(~np.isnan(points), axis=-1)
        filled = np.where(np.isnan(points), np.inf, points)
        ordered = np.sort(filled, axis=-1)
        lo = np.take_along_axis(ordered, np.clip((count - 1) // 2, 0, None)[..., None], axis=-1)[..., 0]
        hi = np.take_along_axis(ordered, np.clip(count // 2, 0, None)[..., None], axis=-1)[..., 0]
        med = (lo + hi) / 2.0
    return np.where(count > 0, med, np.nan)


def _nanmean(a: Array, axis: int | None = None) -> Array:
    """``np.nanmean`` without its warning on all-NaN slices (NaN there)."""
    count = np.sum(~np.isnan(a), axis=axis)
    total = np.nansum(a, axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _centre_spread(points: Array) -> tuple[Array, Array]:
    """Median of the baseline points and their spread: MAD x 1.4826, floored at negative-binomial noise."""
    med = _nanmedian(points)
    mad = _nanmedian(np.abs(points - med[..., None]))
    centre = np.nan_to_num(med)
    floor = np.sqrt(np.maximum(centre, 1.0) + (OVERDISPERSION * centre) ** 2)
    return med, np.maximum(MAD_TO_SD * np.nan_to_num(mad), floor)


def volume_scores(values: npt.ArrayLike, at: npt.ArrayLike, thresholds: Thresholds = DEFAULT) -> VolumeScores:
    """Robust seasonal z-scores of the hours ``at`` (column indices) of every series."""
    vals = _as_matrix(values)
    idx = np.atleast_1d(np.asarray(at, dtype=np.int64))
    points, basis = baseline_points(vals, idx, thresholds)
    x = vals[:, idx]
    med, spread = _centre_spread(points)
    with np.errstate(all="ignore"):
        z = (x - med) / spread
        ratio = x / np.maximum(med, 1.0)
    known = (basis != BASIS_NONE) & ~np.isnan(x)
    spike = (
        known
        & (np.nan_to_num(x) >= thresholds.min_documents)
        & (np.nan_to_num(z) >= thresholds.volume_z)
        & (np.nan_to_num(ratio) >= thresholds.volume_ratio)
    )
    if DAILY_CONFIRM:
        daily = _lagged(vals, idx, HOURS_PER_DAY, thresholds.days)
        d_med, d_spread = _centre_spread(daily)
        enough = np.sum(~np.isnan(daily), axis=-1) >= thresholds.min_daily_points
        with np.errstate(all="ignore"):
            d_ok = ((x - d_med) / d_spread >= thresholds.volume_z) & (
                x / np.maximum(d_med, 1.0) >= thresholds.volume_ratio
            )
        spike &= ~enough | d_ok
    return VolumeScores(
        value=x,
        baseline=np.where(known, med, np.nan),
        spread=np.where(known, spread, np.nan),
        z=np.where(known, z, np.nan),
        ratio=np.where(known, ratio, np.nan),
        points=np.sum(~np.isnan(points), axis=-1),
        basis=basis,
        spike=spike,
    )


@dataclass
class SentimentScores:
    """Net sentiment per series and evaluated hour, its pooled baseline and z-score."""

    value: Array
    documents: Array
    baseline: Array
    baseline_documents: Array
    z: Array
    spike: npt.NDArray[np.bool_]


def sentiment_scores(
    documents: npt.ArrayLike,
    positive: npt.ArrayLike,
    negative: npt.ArrayLike,
    at: npt.ArrayLike,
    thresholds: Thresholds = DEFAULT,
) -> SentimentScores:
    """Net sentiment of the hours ``at`` against the pooled baseline hours (the same hours as volume)."""
    n = _as_matrix(documents)
    pos = _as_matrix(positive)
    neg = _as_matrix(negative)
    idx = np.atleast_1d(np.asarray(at, dtype=np.int64))
    n_points, basis = baseline_points(n, idx, thresholds)
    # The same baseline hours for the three matrices: where n's point is NaN, so are pos/neg's.
    pos_points, _ = baseline_points(np.where(np.isnan(n), np.nan, pos), idx, thresholds)
    neg_points, _ = baseline_points(np.where(np.isnan(n), np.nan, neg), idx, thresholds)
    # A baseline hour whose own net sentiment is more than sentiment_delta from the median of the baseline
    # hours' was itself a shift: left out, so one past event does not echo a week later.
    with np.errstate(all="ignore"):
        hour_net = (pos_points - neg_points) / n_points
    outlier = np.abs(hour_net - _nanmedian(hour_net)[..., None]) > thresholds.sentiment_delta
    n_points = np.where(outlier, np.nan, n_points)
    pos_points = np.where(outlier, np.nan, pos_points)
    neg_points = np.where(outlier, np.nan, neg_points)
    base_n = np.nansum(n_points, axis=-1)
    base_pos = np.nansum(pos_points, axis=-1)
    base_neg = np.nansum(neg_points, axis=-1)
    x_n, x_pos, x_neg = n[:, idx], pos[:, idx], neg[:, idx]
    with np.errstate(all="ignore"):
        value = (x_pos - x_neg) / x_n
        base = (base_pos - base_neg) / base_n
        var = np.clip((base_pos + base_neg) / base_n - base**2, 0.0, 1.0)
        se = np.sqrt(var / x_n + var / base_n + thresholds.sentiment_floor**2)
        z = (value - base) / se
    known = (
        (basis != BASIS_NONE)
        & (np.nan_to_num(x_n) >= thresholds.min_sentiment_documents)
        & (base_n >= thresholds.min_baseline_documents)
    )
    spike = (
        known
        & (np.abs(np.nan_to_num(z)) >= thresholds.sentiment_z)
        & (np.abs(np.nan_to_num(value - base)) >= thresholds.sentiment_delta)
    )
    return SentimentScores(
        value=value,
        documents=x_n,
        baseline=np.where(known, base, np.nan),
        baseline_documents=base_n,
        z=np.where(known, z, np.nan),
        spike=spike,
    )


def episodes(flags: npt.ArrayLike, max_gap: int = 1) -> list[tuple[int, int]]:
    """Runs of spiking hours as (first, last) column indices; runs at most ``max_gap`` quiet hours apart merge.

    One alert per episode: a spike that lasts five hours, or dips below the threshold for an hour in the
    middle, is one episode, not five alerts.
    """
    hours = np.flatnonzero(np.asarray(flags, dtype=bool))
    out: list[tuple[int, int]] = []
    for h in hours.tolist():
        if out and h - out[-1][1] <= max_gap + 1:
            out[-1] = (out[-1][0], h)
        else:
            out.append((h, h))
    return out


@dataclass
class Forecast:
    """Forecasts for the ``horizon`` hours after the last column, per series, with prediction intervals."""

    mean: Array
    lower80: Array
    upper80: Array
    lower95: Array
    upper95: Array
    level: Array
    history_hours: npt.NDArray[np.int64]


_Z80, _Z95 = 1.2816, 1.96


def _seasonal_median_at(values: Array, targets: npt.NDArray[np.int64], weeks: int) -> Array:
    """Median of ``values[:, t - 168 k]`` (k = 1..weeks) for each target column ``t`` (may lie past the end)."""
    hours = values.shape[1]
    lags = targets[:, None] - HOURS_PER_WEEK * np.arange(1, weeks + 1)[None, :]
    ok = (lags >= 0) & (lags < hours)
    taken = values[:, np.where(ok, lags, 0)]
    return _nanmedian(np.where(ok[None, :, :], taken, np.nan))


def _level(values: Array, weeks: int, end: int, shrink: float) -> Array:
    """Observed volume of the 24 hours before column ``end`` over what the seasonal medians expected for them."""
    recent = np.arange(max(end - HOURS_PER_DAY, 0), end)
    expected = _seasonal_median_at(values[:, :end], recent, weeks)
    actual = values[:, recent]
    both = ~np.isnan(expected) & ~np.isnan(actual)
    with np.errstate(all="ignore"):
        raw = (np.where(both, actual, 0).sum(axis=1) + 1.0) / (np.where(both, expected, 0).sum(axis=1) + 1.0)
    level = 1.0 + shrink * (raw - 1.0)
    return np.clip(np.where(both.any(axis=1), level, 1.0), 0.5, 2.0)


def forecast(
    values: npt.ArrayLike,
    horizon: int = 24,
    *,
    weeks: int = 4,
    shrink: float = 0.5,
    calibration_days: int = 7,
) -> Forecast:
    """Forecast the ``horizon`` hours after the last column of every series (see the module docstring).

    Series with no observed same-hour-of-week value for a target hour get NaN there (too young to forecast).
    """
    vals = _as_matrix(values)
    series, hours = vals.shape
    targets = np.arange(hours, hours + horizon)
    level = _level(vals, weeks, hours, shrink)
    mean = _seasonal_median_at(vals, targets, weeks) * level[:, None]

    # Scaled errors of the same forecast (horizon 1..24 from daily origins) over the last calibration days.
    errors: list[Array] = []
    for day in range(1, calibration_days + 1):
        origin = hours - day * HOURS_PER_DAY
        if origin <= HOURS_PER_WEEK:
            break
        tgt = np.arange(origin, min(origin + horizon, hours))
        past = vals[:, :origin]
        fc = _seasonal_median_at(past, tgt, weeks) * _level(vals, weeks, origin, shrink)[:, None]
        with np.errstate(all="ignore"):
            errors.append((vals[:, tgt] - fc) / np.sqrt(np.maximum(fc, 0) + 1.0))
    if errors:
        err = np.concatenate(errors, axis=1)
        counts = np.sum(~np.isnan(err), axis=1)
        with np.errstate(all="ignore"):
            own = np.sqrt(_nanmean(err**2, axis=1))
            pooled = float(np.sqrt(_nanmean(err**2))) if np.any(~np.isnan(err)) else 1.0
        scale = np.where(counts >= 48, own, pooled)
        scale = np.where(np.isnan(scale), pooled, scale)
    else:
        scale = np.ones(series)
    scale = np.maximum(scale, 0.5)
    width = scale[:, None] * np.sqrt(np.maximum(mean, 0) + 1.0)
    return Forecast(
        mean=mean,
        lower80=np.maximum(mean - _Z80 * width, 0.0),
        upper80=mean + _Z80 * width,
        lower95=np.maximum(mean - _Z95 * width, 0.0),
        upper95=mean + _Z95 * width,
        level=level,
        history_hours=np.sum(~np.isnan(vals), axis=1),
    )


def seasonal_naive(values: npt.ArrayLike, horizon: int = 24) -> Array:
    """The benchmark forecast: each hour as it was one week earlier."""
    vals = _as_matrix(values)
    hours = vals.shape[1]
    targets = np.arange(hours, hours + horizon) - HOURS_PER_WEEK
    out = np.full((vals.shape[0], horizon), np.nan)
    ok = targets >= 0
    out[:, ok] = vals[:, targets[ok]]
    return out


def mase(actual: npt.ArrayLike, predicted: npt.ArrayLike, history: npt.ArrayLike) -> float:
    """Mean absolute scaled error: |error| over the mean absolute one-week seasonal difference of the history."""
    act, pred, hist = _as_matrix(actual), _as_matrix(predicted), _as_matrix(history)
    diffs = np.abs(hist[:, HOURS_PER_WEEK:] - hist[:, :-HOURS_PER_WEEK])
    with np.errstate(all="ignore"):
        scale = _nanmean(diffs, axis=1)
        scaled = np.abs(act - pred) / scale[:, None]
    ok = np.isfinite(scaled)
    return float(np.mean(scaled[ok])) if ok.any() else float("nan")
