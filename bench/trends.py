"""Trends benchmark: our vectorised detection + forecast (:mod:`pulse.trends.detect`) over 10,000 hourly series,
beside a per-series Prophet fit and a per-series Holt-Winters (ETS) fit, on the same synthetic series.

Series (``--series`` N, default 10,000, ``--seed``, default the backtest's held-out seed 2): the backtest's
generator (:mod:`pulse.trends.backtest`: heavy-tailed base rates, daily and weekly seasonality, overdispersed
counts, planted spikes and level shifts, coverage gaps, young series), cut at hour :data:`ORIGIN` = 1,008 (6
weeks of history); the next 24 hours are the forecast truth.

Methods:

* ``ours``: ``volume_scores`` over the last 24 hours of every series plus ``forecast`` of the next 24 hours,
  one call each over the whole (series, hours) matrix; timed end to end, median of ``--reps`` (3) reps, all
  series (measured).
* ``prophet``: per series, ``Prophet(daily, weekly seasonality, interval_width=0.99)`` fitted on the observed
  hours of its 6 weeks, ``predict`` over history + the next 24 hours (the in-sample 99 % band flags hours above
  its upper bound), and 1,000 predictive samples of the next 24 hours for the 80 % and 95 % intervals;
  forecasts clipped at 0. Timed on ``--prophet-sample`` (20) series and extrapolated x N / sample.
* ``holt-winters``: per series, statsmodels ``ETSModel(error="add", seasonal="add", seasonal_periods=168,
  initialization_method="heuristic")`` on the history with gaps filled by the value one week earlier (else 0),
  ``get_prediction`` of the next 24 hours with 80 % and 95 % intervals, clipped at 0. Same sample,
  extrapolated.
* ``seasonal naive``: the value one week earlier (MASE's yardstick: 1.0 by its scale on the history).

Sample: half the series have a planted spike or level shift starting in the detection window (the last 7 days
of history, hours 840-1007), half are null or gap series. Quality on the sample: MASE of each forecast (scaled
by the history's mean absolute one-week difference), empirical coverage of the 80 % and 95 % intervals, and
detection precision/recall at episode level over the detection window (ours: ``volume_scores`` at each hour
with the columns before it; Prophet: the hour lies above the in-sample 99 % band), as in the backtest.

Prophet and statsmodels come from requirements-bench.lock; when they are missing, ours runs alone.

Usage: ``python -m bench.trends [--series 10000] [--reps 3] [--prophet-sample 20] [--seed 2]``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from pulse.trends import backtest, detect

ORIGIN = 6 * detect.HOURS_PER_WEEK
HORIZON = 24
WINDOW = (ORIGIN - 7 * 24, ORIGIN)
INSTALL = "install with: .venv/bin/uv pip install --python .venv/bin/python -r requirements-bench.lock"

Array = npt.NDArray[np.float64]


def run_ours(values: Array) -> tuple[detect.VolumeScores, detect.Forecast]:
    history = values[:, :ORIGIN]
    scores = detect.volume_scores(history, np.arange(ORIGIN - 24, ORIGIN))
    return scores, detect.forecast(history, HORIZON)


def pick_sample(data: backtest.Synthetic, size: int, seed: int) -> npt.NDArray[np.int64]:
    rng = np.random.default_rng(seed)
    with_event = sorted(
        {e.series for e in data.events if WINDOW[0] <= e.start < WINDOW[1] - backtest.DELAY and e.detectable}
    )
    quiet = [i for i, g in enumerate(data.group) if g in ("null", "gap") and i not in with_event]
    half = size // 2
    a = rng.choice(with_event, size=min(half, len(with_event)), replace=False)
    b = rng.choice(quiet, size=size - a.size, replace=False)
    return np.sort(np.concatenate([a, b]).astype(np.int64))


def _fill(y: Array) -> Array:
    out = y.copy()
    for j in np.flatnonzero(np.isnan(out)):
        out[j] = out[j - detect.HOURS_PER_WEEK] if j >= detect.HOURS_PER_WEEK else 0.0
    return np.nan_to_num(out)


def run_prophet(values: Array) -> dict[str, Array]:
    """Per series: forecast mean, 80/95 % bounds (next 24 h) and the in-sample 99 % upper band."""
    logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
    logging.getLogger("prophet").setLevel(logging.WARNING)
    import pandas as pd
    from prophet import Prophet

    ds = pd.date_range("2026-10-05", periods=ORIGIN + HORIZON, freq="h")
    out: dict[str, list[Array]] = {
        k: [] for k in ("mean", "lower80", "upper80", "lower95", "upper95", "upper99")
    }
    for y in values[:, :ORIGIN]:
        frame = pd.DataFrame({"ds": ds[:ORIGIN], "y": y}).dropna()
        m = Prophet(
            interval_width=0.99, daily_seasonality=True, weekly_seasonality=True, yearly_seasonality=False
        )
        m.fit(frame)
        fitted = m.predict(pd.DataFrame({"ds": ds}))
        samples = np.asarray(m.predictive_samples(pd.DataFrame({"ds": ds[ORIGIN:]}))["yhat"])
        out["mean"].append(np.maximum(fitted["yhat"].to_numpy()[ORIGIN:], 0.0))
        for name, q in (("lower80", 10), ("upper80", 90), ("lower95", 2.5), ("upper95", 97.5)):
            out[name].append(np.maximum(np.percentile(samples, q, axis=1), 0.0))
        out["upper99"].append(fitted["yhat_upper"].to_numpy()[:ORIGIN])
    return {k: np.vstack(v) for k, v in out.items()}


def run_holt_winters(values: Array) -> dict[str, Array]:
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    out: dict[str, list[Array]] = {k: [] for k in ("mean", "lower80", "upper80", "lower95", "upper95")}
    for y in values[:, :ORIGIN]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ETSModel(
                pd.Series(_fill(y)),
                error="add",
                trend=None,
                seasonal="add",
                seasonal_periods=detect.HOURS_PER_WEEK,
                initialization_method="heuristic",
            )
            fit = model.fit(disp=False)
            pred = fit.get_prediction(start=ORIGIN, end=ORIGIN + HORIZON - 1)
            f80 = pred.summary_frame(alpha=0.2)
            f95 = pred.summary_frame(alpha=0.05)
        out["mean"].append(np.maximum(f80["mean"].to_numpy(), 0.0))
        out["lower80"].append(np.maximum(f80["pi_lower"].to_numpy(), 0.0))
        out["upper80"].append(f80["pi_upper"].to_numpy())
        out["lower95"].append(np.maximum(f95["pi_lower"].to_numpy(), 0.0))
        out["upper95"].append(f95["pi_upper"].to_numpy())
    return {k: np.vstack(v) for k, v in out.items()}


def quality(values: Array, fc: dict[str, Array]) -> dict[str, float]:
    history, actual = values[:, :ORIGIN], values[:, ORIGIN : ORIGIN + HORIZON]
    ok = ~np.isnan(actual) & ~np.isnan(fc["mean"])
    out = {"mase": detect.mase(actual, fc["mean"], history)}
    for level in ("80", "95"):
        if f"lower{level}" in fc:
            inside = ok & (actual >= fc[f"lower{level}"]) & (actual <= fc[f"upper{level}"])
            out[f"coverage{level}"] = float(inside.sum() / ok.sum()) if ok.any() else float("nan")
    return out


def detection(flags: npt.NDArray[np.bool_], data: backtest.Synthetic, rows: npt.NDArray[np.int64]) -> str:
    """Episode precision/recall over :data:`WINDOW` on ``rows`` (flags: rows x window hours)."""
    index = {int(r): k for k, r in enumerate(rows)}
    events = [
        backtest.Event(index[e.series], e.start, e.end, e.kind, e.detectable, e.magnitude)
        for e in data.events
        if e.series in index and WINDOW[0] <= e.start < WINDOW[1]
    ]
    d, _ = backtest.score_events(flags, events, offset=WINDOW[0])
    return f"{d.precision:.2f} / {d.recall:.2f} ({d.detected}/{d.detectable} events, {d.false_alarms} FA)"


def _fmt(x: float) -> str:
    return "-" if x != x else f"{x:.3f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--prophet-sample", type=int, default=20)
    parser.add_argument("--seed", type=int, default=backtest.HELD_OUT_SEED)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    data = backtest.generate(args.seed, args.series)
    values = data.values[:, : ORIGIN + HORIZON]
    print(
        f"series: {args.series:,} x {ORIGIN} hours of history (+{HORIZON} h truth), seed {args.seed}, "
        f"built in {time.perf_counter() - t0:.1f} s"
    )

    seconds: list[float] = []
    for rep in range(args.reps):
        t = time.perf_counter()
        scores, fc = run_ours(values)
        seconds.append(time.perf_counter() - t)
        print(f"  rep {rep + 1} ours {seconds[-1]:7.2f} s ({int(scores.spike.sum())} spike hours)")
    ours_s = statistics.median(seconds)

    sample = pick_sample(data, args.prophet_sample, args.seed)
    sub = values[sample]
    at = np.arange(*WINDOW)
    ours_fc = {k: getattr(fc, k)[sample] for k in ("mean", "lower80", "upper80", "lower95", "upper95")}
    naive = {"mean": detect.seasonal_naive(sub[:, :ORIGIN], HORIZON)}
    ours_flags = detect.volume_scores(sub[:, :ORIGIN], at).spike

    rows: list[tuple[str, str, str, dict[str, float], str]] = [
        (
            "ours (volume_scores 24 h + forecast 24 h)",
            f"{ours_s:,.2f}",
            "measured",
            quality(sub, ours_fc),
            detection(ours_flags, data, sample),
        ),
    ]
    others: dict[str, Callable[[Array], dict[str, Array]]] = {}
    try:
        import prophet  # noqa: F401
        import statsmodels  # noqa: F401

        others = {"prophet (per series)": run_prophet, "holt-winters ETS (per series)": run_holt_winters}
    except ImportError as exc:
        print(f"prophet/statsmodels not importable ({exc}); {INSTALL}; running ours alone")
    timing: dict[str, float] = {}
    for name, method in others.items():
        t = time.perf_counter()
        out = method(sub)
        per_series = (time.perf_counter() - t) / len(sample)
        timing[name] = per_series * args.series
        det: str = "-"
        if "upper99" in out:
            det = detection(
                sub[:, WINDOW[0] : WINDOW[1]] > out["upper99"][:, WINDOW[0] : WINDOW[1]], data, sample
            )
        rows.append(
            (
                name,
                f"{timing[name]:,.0f}",
                f"extrapolated ({per_series:.3f} s/series x {args.series:,})",
                quality(sub, out),
                det,
            )
        )
    rows.append(("seasonal naive", "-", "-", quality(sub, naive), "-"))

    print()
    print(
        f"Trends, {args.series:,} series; quality on the same {len(sample)} sample series (seed {args.seed})"
    )
    print(
        "| method | s for all series | how | MASE | coverage 80 % | coverage 95 % | detection P / R (sample) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, secs, how, q, det in rows:
        print(
            f"| {name} | {secs} | {how} | {_fmt(q['mase'])} | {_fmt(q.get('coverage80', float('nan')))} | "
            f"{_fmt(q.get('coverage95', float('nan')))} | {det} |"
        )
    print()
    print(
        f"ours over all {args.series:,} series: {ours_s:.2f} s median of {args.reps} ({min(seconds):.2f}-{max(seconds):.2f})"
    )
    for name, secs in timing.items():
        print(f"{name} / ours: {secs / ours_s:,.0f}x (extrapolated)")


if __name__ == "__main__":
    main()
