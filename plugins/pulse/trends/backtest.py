"""Backtest of :mod:`pulse.trends.detect` on synthetic hourly series with known labels.

Generator (:func:`generate`, seeded, numpy only)
    ``WEEKS`` (8) weeks of hourly counts per series. The per-series base rate is heavy-tailed like entity and
    keyword series: 60 % small (0.1-3 documents/hour), 25 % medium (3-50), 15 % big (50-500), log-uniform within
    each band. Daily seasonality (a cosine of amplitude 0.3-0.8 peaking at a random hour), a weekend factor
    (0.6-1.3 on Saturday and Sunday), a slow trend on a quarter of the series (x exp(+-0.5) over the 8 weeks),
    and negative-binomial noise (gamma-Poisson, shape 10-100 log-uniform: a coefficient of variation of 0.1-0.32
    on top of the Poisson noise; real counts are overdispersed).

    Groups: ``null`` (no event; false alarms are counted here), ``spike`` (1-3 planted spikes), ``shift`` (a
    permanent step up by x2-x4), ``gap`` (like null, with 1-3 coverage gaps of 2-72 hours, NaN), ``young`` (NaN
    before a start hour inside the scored window: no history). Every series has documents split into positive,
    negative and neutral (per-series shares, net sentiment jittered by N(0, 0.05) from hour to hour); the
    ``sentiment`` events shift the net sentiment of 1-6 hours by 0.4-1.0 (up or down) on a fifth of the
    series whose base rate is at least 5/hour.

    Planted volume spikes last 1-6 hours, peak in their first hour and decay by a factor 0.5-1 per hour. Their
    magnitude m is log-uniform in [2.5, 20] times the expected count of the hour, with at least 15 extra
    documents (extra = Poisson(max((m - 1) x expected, 15)), on top of the ordinary count). An event is
    *detectable* when its peak hour holds at least ``min_documents`` documents (the support rule forbids
    anything else); recall is reported on detectable events and the undetectable ones are counted.

Scoring
    Spikes are scored in weeks 5-8 (hours 672-1343), so every scored hour has its four weeks of baseline. Every
    hour is judged as the DAG judges it: with the columns up to and including it (``volume_scores`` with ``at``
    = all scored hours reads only columns before each hour; tests/trends/test_backtest.py checks that it equals
    the hour-by-hour call). Flags are merged into episodes (:func:`pulse.trends.detect.episodes`, one quiet hour
    bridged). A planted event is detected when a flagged hour falls in its span plus :data:`DELAY` hours; its
    delay is the first such hour minus its start. An episode that overlaps no planted event's span (+ delay) is
    a false alarm. A level shift's span for precision is the four weeks after the step (the baseline adapts in
    that time); it is detected when a flag falls in its first 24 hours (+ delay), and we report when its flags
    stop. Forecasts: ``forecast`` and ``seasonal_naive`` for the next 24 hours from 14 daily origins in weeks 7-8
    (6-7 weeks of history), MASE and the empirical coverage of the 80 % and 95 % intervals.

Usage: ``python -m pulse.trends.backtest [--seed N] [--series N]`` prints markdown tables.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pulse.trends import detect

Array = npt.NDArray[np.float64]

WEEKS = 8
HOURS = WEEKS * detect.HOURS_PER_WEEK
#: First scored hour: four full weeks of baseline before it.
SCORE_START = 4 * detect.HOURS_PER_WEEK
#: Hours after an event's last hour in which a first flag still counts as detecting it.
DELAY = 1
#: Hours after a step up that count as its event for detection (its first day).
SHIFT_DETECT_HOURS = 24
#: Hours after a step up during which flags are attributed to it, not false alarms (the baseline's 4 weeks).
SHIFT_SPAN = 4 * detect.HOURS_PER_WEEK
#: Daily forecast origins (hour indices): weeks 7-8, so 6-7 weeks of history each.
FORECAST_ORIGINS = tuple(6 * detect.HOURS_PER_WEEK + 24 * k for k in range(14))
TUNING_SEED = 1
HELD_OUT_SEED = 2
GROUPS = ("null", "spike", "shift", "gap", "young")
GROUP_SHARES = (0.30, 0.35, 0.12, 0.15, 0.08)


@dataclass(frozen=True)
class Event:
    """A planted event on row ``series``: hours ``[start, end)``; ``detectable`` by the support rule."""

    series: int
    start: int
    end: int
    kind: str
    detectable: bool
    magnitude: float


@dataclass
class Synthetic:
    """Generated series and their labels."""

    values: Array
    positive: Array
    negative: Array
    group: list[str]
    base_rate: Array
    events: list[Event] = field(default_factory=list)
    sentiment_events: list[Event] = field(default_factory=list)


def _expected_profile(rng: np.random.Generator, series: int) -> tuple[Array, Array]:
    """Noise-free expected counts (series, HOURS) and the base rate per series."""
    band = rng.choice(3, size=series, p=(0.60, 0.25, 0.15))
    lo = np.array([0.1, 3.0, 50.0])[band]
    hi = np.array([3.0, 50.0, 500.0])[band]
    base = np.exp(rng.uniform(np.log(lo), np.log(hi)))
    hours = np.arange(HOURS)
    hour_of_day = hours % 24
    day_of_week = (hours // 24) % 7  # day 5, 6 = weekend
    amp = rng.uniform(0.3, 0.8, size=series)
    peak = rng.uniform(0, 24, size=series)
    daily = 1.0 + amp[:, None] * np.cos(2 * np.pi * (hour_of_day[None, :] - peak[:, None]) / 24)
    weekend = rng.uniform(0.6, 1.3, size=series)
    weekly = np.where(day_of_week[None, :] >= 5, weekend[:, None], 1.0)
    trend_on = rng.random(series) < 0.25
    growth = np.where(trend_on, rng.uniform(-0.5, 0.5, size=series), 0.0)
    trend = np.exp(growth[:, None] * hours[None, :] / HOURS)
    return base[:, None] * daily * weekly * trend, base


def _noisy(rng: np.random.Generator, mean: Array, shape: Array) -> Array:
    """Negative-binomial counts: Poisson of a gamma-distributed rate (mean ``mean``, shape per row)."""
    rate = mean * rng.gamma(shape[:, None], 1.0 / shape[:, None], size=mean.shape)
    return rng.poisson(rate).astype(np.float64)


def generate(seed: int, series: int = 2000, thresholds: detect.Thresholds = detect.DEFAULT) -> Synthetic:
    """``series`` synthetic series of :data:`HOURS` hours with planted events (see the module doc)."""
    rng = np.random.default_rng(seed)
    mean, base = _expected_profile(rng, series)
    shape = np.exp(rng.uniform(np.log(10.0), np.log(100.0), size=series))
    group = [str(g) for g in rng.choice(GROUPS, size=series, p=GROUP_SHARES)]
    events: list[Event] = []

    # Level shifts: a permanent step in the expected count early in week 5.
    shift_at: dict[int, tuple[int, float]] = {}
    for i, g in enumerate(group):
        if g == "shift":
            at = SCORE_START + int(rng.integers(0, 72))
            factor = float(rng.uniform(2.0, 4.0))
            mean[i, at:] *= factor
            shift_at[i] = (at, factor)
    values = _noisy(rng, mean, shape)

    # Spikes: extra documents on top of the ordinary count.
    for i, g in enumerate(group):
        if g != "spike":
            continue
        n_events = int(rng.integers(1, 4))
        slots = rng.choice(np.arange(SCORE_START + 24, HOURS - 12, 48), size=n_events, replace=False)
        for start in sorted(int(s) for s in slots):
            start += int(rng.integers(0, 24))
            length = int(rng.integers(1, 7))
            magnitude = float(np.exp(rng.uniform(np.log(2.5), np.log(20.0))))
            decay = float(rng.uniform(0.5, 1.0))
            span = np.arange(start, min(start + length, HOURS))
            extra = np.maximum((magnitude - 1.0) * mean[i, start], 15.0) * decay ** np.arange(span.size)
            values[i, span] += rng.poisson(extra)
            peak = float(np.max(values[i, span]))
            events.append(
                Event(i, start, start + span.size, "spike", peak >= thresholds.min_documents, magnitude)
            )
    for i, (at, factor) in shift_at.items():
        first = values[i, at : at + SHIFT_DETECT_HOURS]
        detectable = bool(np.max(first) >= thresholds.min_documents)
        events.append(Event(i, at, at + SHIFT_DETECT_HOURS, "shift", detectable, factor))

    # Sentiment: per-series shares, jittered from hour to hour; planted shifts of the net sentiment.
    p_pos = rng.uniform(0.15, 0.5, size=series)
    p_neg = rng.uniform(0.1, 0.4, size=series)
    p_neu = np.clip(1.0 - p_pos - p_neg, 0.05, None)
    total = p_pos + p_neg + p_neu
    p_pos, p_neg, p_neu = p_pos / total, p_neg / total, p_neu / total
    net = (p_pos - p_neg)[:, None] + rng.normal(0.0, 0.05, size=(series, HOURS))
    neu = np.broadcast_to(p_neu[:, None], (series, HOURS)).copy()
    sentiment_events: list[Event] = []
    for i in range(series):
        if base[i] < 5.0 or rng.random() >= 0.2:
            continue
        start = int(rng.integers(SCORE_START + 24, HOURS - 12))
        length = int(rng.integers(1, 7))
        delta = float(rng.uniform(0.4, 1.0))
        base_net = float(p_pos[i] - p_neg[i])
        direction = 1.0 if rng.random() < 0.5 else -1.0
        if abs(base_net + direction * delta) > 0.95:
            direction = -direction
        target = float(np.clip(base_net + direction * delta, -0.95, 0.95))
        span = slice(start, min(start + length, HOURS))
        net[i, span] = target
        neu[i, span] = np.minimum(neu[i, span], 1.0 - abs(target))
        docs = values[i, span]
        peak = float(np.max(docs))
        sentiment_events.append(
            Event(
                i,
                start,
                min(start + length, HOURS),
                "sentiment",
                peak >= thresholds.min_sentiment_documents,
                target - base_net,
            )
        )
    net = np.clip(net, -(1.0 - neu), 1.0 - neu)
    pos_share = (1.0 - neu + net) / 2.0
    neg_share = (1.0 - neu - net) / 2.0
    positive = rng.binomial(values.astype(np.int64), np.clip(pos_share, 0.0, 1.0)).astype(np.float64)
    rest = values - positive
    cond = np.clip(neg_share / np.maximum(1.0 - pos_share, 1e-9), 0.0, 1.0)
    negative = rng.binomial(rest.astype(np.int64), cond).astype(np.float64)

    # Coverage gaps and young series (NaN = not observed).
    for i, g in enumerate(group):
        if g == "gap":
            for _ in range(int(rng.integers(1, 4))):
                length = int(np.exp(rng.uniform(np.log(2), np.log(72))))
                start = int(rng.integers(0, HOURS - length))
                values[i, start : start + length] = np.nan
        elif g == "young":
            start = int(rng.integers(SCORE_START, HOURS - 3 * detect.HOURS_PER_DAY))
            values[i, :start] = np.nan
    positive = np.where(np.isnan(values), np.nan, positive)
    negative = np.where(np.isnan(values), np.nan, negative)
    return Synthetic(values, positive, negative, group, base, events, sentiment_events)


# ------------------------------------------------------------------------------------------------ scoring


def volume_flags(
    values: Array, thresholds: detect.Thresholds = detect.DEFAULT, chunk: int = 500
) -> npt.NDArray[np.bool_]:
    """Spike flags of every hour of :data:`SCORE_START`.. (series, scored hours), in chunks of series."""
    at = np.arange(SCORE_START, values.shape[1])
    out = [
        detect.volume_scores(values[i : i + chunk], at, thresholds).spike
        for i in range(0, values.shape[0], chunk)
    ]
    return np.concatenate(out, axis=0)


def volume_basis(
    values: Array, thresholds: detect.Thresholds = detect.DEFAULT, chunk: int = 500
) -> npt.NDArray[np.int8]:
    at = np.arange(SCORE_START, values.shape[1])
    out = [
        detect.volume_scores(values[i : i + chunk], at, thresholds).basis
        for i in range(0, values.shape[0], chunk)
    ]
    return np.concatenate(out, axis=0)


def sentiment_flags(
    data: Synthetic, thresholds: detect.Thresholds = detect.DEFAULT, chunk: int = 500
) -> npt.NDArray[np.bool_]:
    at = np.arange(SCORE_START, data.values.shape[1])
    rows = data.values.shape[0]
    out = [
        detect.sentiment_scores(
            data.values[i : i + chunk],
            data.positive[i : i + chunk],
            data.negative[i : i + chunk],
            at,
            thresholds,
        ).spike
        for i in range(0, rows, chunk)
    ]
    return np.concatenate(out, axis=0)


@dataclass
class Detection:
    """Episode-level figures of one kind of event."""

    events: int = 0
    detectable: int = 0
    detected: int = 0
    undetectable_detected: int = 0
    episodes: int = 0
    false_alarms: int = 0
    delays: list[int] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.detected / self.detectable if self.detectable else float("nan")

    @property
    def precision(self) -> float:
        return (self.episodes - self.false_alarms) / self.episodes if self.episodes else float("nan")


def score_events(
    flags: npt.NDArray[np.bool_],
    events: Sequence[Event],
    rows: Sequence[int] | None = None,
    offset: int = SCORE_START,
) -> tuple[Detection, dict[int, list[tuple[int, int]]]]:
    """Match flagged episodes with events on ``rows`` (default: every row); column 0 of ``flags`` is hour
    ``offset``. Returns the figures and the false-alarm episodes (absolute hours) per row."""
    by_row: dict[int, list[Event]] = {}
    for e in events:
        by_row.setdefault(e.series, []).append(e)
    det = Detection(events=len(events), detectable=sum(e.detectable for e in events))
    false: dict[int, list[tuple[int, int]]] = {}
    hit: set[Event] = set()
    for i in rows if rows is not None else range(flags.shape[0]):
        row_events = by_row.get(i, [])
        flagged = np.flatnonzero(flags[i]) + offset
        for e in row_events:
            window = flagged[(flagged >= e.start) & (flagged < e.end + DELAY)]
            if window.size:
                hit.add(e)
                if e.detectable:
                    det.delays.append(int(window[0] - e.start))
        for a, b in detect.episodes(flags[i]):
            a, b = a + offset, b + offset
            det.episodes += 1
            if not any(a < _span_end(e) and b >= e.start for e in row_events):
                det.false_alarms += 1
                false.setdefault(i, []).append((a, b))
    det.detected = sum(1 for e in hit if e.detectable)
    det.undetectable_detected = sum(1 for e in hit if not e.detectable)
    return det, false


def _span_end(e: Event) -> int:
    return e.start + SHIFT_SPAN if e.kind == "shift" else e.end + DELAY


@dataclass
class Report:
    """Every figure of one backtest run."""

    seed: int
    series: int
    groups: dict[str, int]
    volume: Detection
    spikes: Detection
    shifts: Detection
    false_alarms_per_series_week: dict[str, float]
    shift_stop_hours: list[int]
    shift_flagging_last_week: int
    flags_in_gaps: int
    flags_without_basis: int
    hours_without_basis: int
    sentiment: Detection
    sentiment_false_alarms_per_series_week: float
    forecast: dict[str, dict[str, float]]


def _weeks(rows: int) -> float:
    return rows * (HOURS - SCORE_START) / detect.HOURS_PER_WEEK


def evaluate_forecasts(values: Array, rows: npt.NDArray[np.int64]) -> dict[str, float]:
    """MASE of ``forecast`` and ``seasonal_naive`` (mean over origins) and interval coverage on ``rows``."""
    ours, naive = [], []
    inside80 = inside95 = total = 0
    sub = values[rows]
    for origin in FORECAST_ORIGINS:
        history = sub[:, :origin]
        actual = sub[:, origin : origin + 24]
        fc = detect.forecast(history)
        sn = detect.seasonal_naive(history)
        ours.append(detect.mase(actual, fc.mean, history))
        naive.append(detect.mase(actual, sn, history))
        ok = ~np.isnan(actual) & ~np.isnan(fc.mean)
        total += int(ok.sum())
        inside80 += int((ok & (actual >= fc.lower80) & (actual <= fc.upper80)).sum())
        inside95 += int((ok & (actual >= fc.lower95) & (actual <= fc.upper95)).sum())
    return {
        "mase": float(np.nanmean(ours)),
        "mase_naive": float(np.nanmean(naive)),
        "coverage80": inside80 / total if total else float("nan"),
        "coverage95": inside95 / total if total else float("nan"),
        "hours": float(total),
    }


def run(
    seed: int, series: int = 2000, thresholds: detect.Thresholds = detect.DEFAULT, forecasts: bool = True
) -> Report:
    """Generate, score, report (see the module doc)."""
    data = generate(seed, series, thresholds)
    flags = volume_flags(data.values, thresholds)
    rows_by_group = {g: [i for i, x in enumerate(data.group) if x == g] for g in GROUPS}
    volume, false = score_events(flags, data.events)
    spikes, _ = score_events(flags, [e for e in data.events if e.kind == "spike"], rows_by_group["spike"])
    shifts, _ = score_events(flags, [e for e in data.events if e.kind == "shift"], rows_by_group["shift"])
    fa_rate = {
        g: sum(len(false.get(i, [])) for i in rows) / _weeks(len(rows)) if rows else float("nan")
        for g, rows in rows_by_group.items()
    }
    stops: list[int] = []
    last_week = 0
    for e in data.events:
        if e.kind != "shift":
            continue
        flagged = np.flatnonzero(flags[e.series]) + SCORE_START
        after = flagged[flagged >= e.start]
        stops.append(int(after[-1] - e.start + 1) if after.size else 0)
        last_week += int(np.any(after >= HOURS - detect.HOURS_PER_WEEK))
    scored = data.values[:, SCORE_START:]
    flags_in_gaps = int(np.sum(flags & np.isnan(scored)))
    basis = volume_basis(data.values, thresholds)
    observed_no_basis = (basis == detect.BASIS_NONE) & ~np.isnan(scored)
    sflags = sentiment_flags(data, thresholds)
    sentiment, sfalse = score_events(sflags, data.sentiment_events)
    s_rows = [i for i in range(series) if i not in {e.series for e in data.sentiment_events}]
    s_fa = sum(len(sfalse.get(i, [])) for i in s_rows) / _weeks(len(s_rows)) if s_rows else float("nan")
    fc: dict[str, dict[str, float]] = {}
    if forecasts:
        quiet = np.array([i for i, g in enumerate(data.group) if g in ("null", "gap")], dtype=np.int64)
        fc["no events (null, gap)"] = evaluate_forecasts(data.values, quiet)
        fc["all series"] = evaluate_forecasts(data.values, np.arange(series))
        for name, lo, hi in (("base < 3/h", 0, 3), ("base 3-50/h", 3, 50), ("base >= 50/h", 50, np.inf)):
            rows = np.flatnonzero((data.base_rate >= lo) & (data.base_rate < hi))
            fc[name] = evaluate_forecasts(data.values, rows)
    return Report(
        seed=seed,
        series=series,
        groups={g: len(r) for g, r in rows_by_group.items()},
        volume=volume,
        spikes=spikes,
        shifts=shifts,
        false_alarms_per_series_week=fa_rate,
        shift_stop_hours=stops,
        shift_flagging_last_week=last_week,
        flags_in_gaps=flags_in_gaps,
        flags_without_basis=int(np.sum(flags & (basis == detect.BASIS_NONE))),
        hours_without_basis=int(observed_no_basis.sum()),
        sentiment=sentiment,
        sentiment_false_alarms_per_series_week=s_fa,
        forecast=fc,
    )


def _delay(d: Detection) -> str:
    if not d.delays:
        return "-"
    return f"{statistics.median(d.delays):.0f} / {max(d.delays)}"


def markdown(report: Report, thresholds: detect.Thresholds = detect.DEFAULT) -> str:
    """The report as markdown tables."""
    r = report
    lines = [
        f"### Backtest, seed {r.seed}, {r.series:,} series x {HOURS} hours (scored hours {SCORE_START}-{HOURS - 1})",
        "",
        "groups: " + ", ".join(f"{g} {n}" for g, n in r.groups.items()),
        f"thresholds: {thresholds}",
        "",
        f"| detection (delay allowance {DELAY} h after the event) | events | detectable | detected | recall | "
        "episodes | false alarms | precision | delay h median / max |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, d in (("volume, all", r.volume), ("spikes", r.spikes), ("level shifts (first 24 h)", r.shifts)):
        lines.append(
            f"| {name} | {d.events} | {d.detectable} | {d.detected} | {d.recall:.3f} | {d.episodes} | "
            f"{d.false_alarms} | {d.precision:.3f} | {_delay(d)} |"
        )
    s = r.sentiment
    lines.append(
        f"| sentiment shifts | {s.events} | {s.detectable} | {s.detected} | {s.recall:.3f} | {s.episodes} | "
        f"{s.false_alarms} | {s.precision:.3f} | {_delay(s)} |"
    )
    undetectable = r.volume.events - r.volume.detectable
    lines += [
        "",
        f"undetectable volume events (peak < min_documents): {undetectable} ({r.volume.undetectable_detected} "
        f"flagged anyway); sentiment events with < min_sentiment_documents at the peak: "
        f"{s.events - s.detectable}",
        "",
        "| false alarms per series-week | value |",
        "|---|---|",
    ]
    for g, v in r.false_alarms_per_series_week.items():
        lines.append(f"| volume, {g} series | {v:.4f} |")
    lines.append(
        f"| sentiment, series without a sentiment event | {r.sentiment_false_alarms_per_series_week:.4f} |"
    )
    stops = r.shift_stop_hours
    lines += [
        "",
        "| level shifts and gaps | value |",
        "|---|---|",
        f"| hours from the step to the last flag, median / max | "
        f"{(statistics.median(stops) if stops else float('nan')):.0f} / {max(stops) if stops else '-'} |",
        f"| shift series still flagging in the last week (3-3.4 weeks after) | {r.shift_flagging_last_week} "
        f"of {len(stops)} |",
        f"| flags on NaN (gap) hours | {r.flags_in_gaps} |",
        f"| flags on hours with basis none / observed hours with basis none | {r.flags_without_basis} / "
        f"{r.hours_without_basis} |",
    ]
    if r.forecast:
        lines += [
            "",
            f"| forecast, next 24 h from {len(FORECAST_ORIGINS)} daily origins | MASE ours | MASE seasonal naive "
            "| coverage 80 % | coverage 95 % | hours |",
            "|---|---|---|---|---|---|",
        ]
        for name, f in r.forecast.items():
            lines.append(
                f"| {name} | {f['mase']:.3f} | {f['mase_naive']:.3f} | {f['coverage80']:.3f} | "
                f"{f['coverage95']:.3f} | {f['hours']:,.0f} |"
            )
    return "\n".join(lines)


@dataclass
class SimulatorRun:
    """The simulator's hourly documents of one term, with a planted spike (:func:`simulator_spike`)."""

    term: str
    hours: int
    planted: list[int]
    documents: Array
    volume_flags: list[int]
    sentiment_flags: list[int]
    scored_from: int


def simulator_spike(
    weeks: int = 5,
    term: str = "flight",
    factor: float = 2.0,
    length: int = 3,
    tone: str = "positive",
    seed: int = 42,
    now: str = "2026-11-28T12:00:00Z",
) -> SimulatorRun:
    """Generate ``weeks`` weeks of the dev simulator's X and Reddit documents in process (no server started),
    with its spike switch on for ``length`` hours two days before ``now``; count the documents that contain
    ``term`` per hour (positive/negative by the simulator's own VADER tone), and score every hour of the last
    week as the DAG would. The simulator is imported here only: it is a dev tool, not a dependency."""
    from dev.simulator import SimulatorServer
    from dev.simulator import text as sim_text

    sim = SimulatorServer(seed=seed, now=now)
    last = int(sim.now() // 3600)
    first = last - weeks * detect.HOURS_PER_WEEK
    start = last - 48
    sim.configure(
        {
            "spike": {
                "term": term,
                "start": start * 3600,
                "end": (start + length) * 3600,
                "factor": factor,
                "tone": tone,
                "sources": ["x", "reddit"],
            }
        }
    )
    docs = sim_text.served_documents(
        sim,
        first,
        last - first,
        x_queries=("data engineering lang:en",),
        subreddits=("python", "technology"),
        news_queries=(),
        headlines=(),
        repos=(),
    )
    hours = last - first
    counts = np.zeros((3, hours))
    for d in docs:
        if not sim_text.contains(d.text, term):
            continue
        h = int(d.created // 3600) - first
        if 0 <= h < hours:
            counts[0, h] += 1
            mood = sim_text.tone_of(d.text)
            counts[1, h] += mood == "positive"
            counts[2, h] += mood == "negative"
    scored_from = hours - detect.HOURS_PER_WEEK
    at = np.arange(scored_from, hours)
    vol = detect.volume_scores(counts[0], at).spike[0]
    sen = detect.sentiment_scores(counts[0], counts[1], counts[2], at).spike[0]
    return SimulatorRun(
        term=term,
        hours=hours,
        planted=list(range(start - first, start - first + length)),
        documents=counts,
        volume_flags=[int(h) for h in at[vol]],
        sentiment_flags=[int(h) for h in at[sen]],
        scored_from=scored_from,
    )


def simulator_markdown(run: SimulatorRun) -> str:
    n = run.documents[0]
    quiet = np.delete(n[run.scored_from :], [h - run.scored_from for h in run.planted])
    with np.errstate(all="ignore"):
        net = (run.documents[1] - run.documents[2]) / n
    return "\n".join(
        [
            f"### Simulator spike (dev/simulator, in process): term {run.term!r}, {run.hours} hours, last "
            f"{detect.HOURS_PER_WEEK} scored",
            "",
            "| what | value |",
            "|---|---|",
            f"| planted spike hours | {run.planted} |",
            f"| documents with the term, planted hours | {[int(n[h]) for h in run.planted]} |",
            f"| documents with the term, other scored hours: median / max | {np.median(quiet):.0f} / "
            f"{np.max(quiet):.0f} |",
            f"| net sentiment, planted hours / other scored hours (mean) | "
            f"{np.nanmean(net[run.planted]):+.2f} / {np.nanmean(np.delete(net[run.scored_from :], [h - run.scored_from for h in run.planted])):+.2f} |",
            f"| volume flags | {run.volume_flags} |",
            f"| sentiment flags | {run.sentiment_flags} |",
        ]
    )


def tune(seed: int = TUNING_SEED, series: int = 2000) -> list[dict[str, float]]:
    """Grid over the volume thresholds, the overdispersion floor and the daily confirmation, and the sentiment
    thresholds, on the tuning seed (the spike and sentiment figures of each setting). Restores the module."""
    import dataclasses
    import itertools

    data = generate(seed, series)
    rows: list[dict[str, float]] = []
    saved = detect.OVERDISPERSION, detect.DAILY_CONFIRM
    null_rows = [i for i, g in enumerate(data.group) if g == "null"]
    try:
        for od, confirm, z, ratio in itertools.product(
            (0.0, 0.1, 0.15, 0.2, 0.25, 0.3), (False, True), (3.0, 3.5, 4.0, 5.0), (1.5, 1.8, 2.0)
        ):
            detect.OVERDISPERSION, detect.DAILY_CONFIRM = od, confirm
            th = dataclasses.replace(detect.DEFAULT, volume_z=z, volume_ratio=ratio)
            flags = volume_flags(data.values, th)
            d, false = score_events(flags, data.events)
            fa = sum(len(false.get(i, [])) for i in null_rows) / _weeks(len(null_rows))
            stops = [
                int(np.flatnonzero(flags[e.series])[-1]) + SCORE_START - e.start + 1
                if flags[e.series].any()
                else 0
                for e in data.events
                if e.kind == "shift"
            ]
            rows.append(
                {
                    "kind": 0.0,
                    "overdispersion": od,
                    "daily_confirm": float(confirm),
                    "z": z,
                    "ratio": ratio,
                    "precision": d.precision,
                    "recall": d.recall,
                    "fa_week": fa,
                    "shift_stop": float(statistics.median(stops)) if stops else float("nan"),
                }
            )
        detect.OVERDISPERSION, detect.DAILY_CONFIRM = saved
        for sz, delta, floor, docs in itertools.product(
            (3.0, 3.5, 4.0), (0.2, 0.3), (0.03, 0.05, 0.08), (10, 20, 30)
        ):
            th = dataclasses.replace(
                detect.DEFAULT,
                sentiment_z=sz,
                sentiment_delta=delta,
                sentiment_floor=floor,
                min_sentiment_documents=docs,
            )
            d, _ = score_events(sentiment_flags(data, th), data.sentiment_events)
            regen = [e for e in data.sentiment_events if e.detectable]
            rows.append(
                {
                    "kind": 1.0,
                    "z": sz,
                    "delta": delta,
                    "floor": floor,
                    "docs": float(docs),
                    "precision": d.precision,
                    "recall": d.recall,
                    "detectable": float(len(regen)),
                }
            )
    finally:
        detect.OVERDISPERSION, detect.DAILY_CONFIRM = saved
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seed", type=int, default=HELD_OUT_SEED, help=f"tuning seed {TUNING_SEED}, held-out {HELD_OUT_SEED}"
    )
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--tune", action="store_true", help="print the threshold grid on the seed instead")
    parser.add_argument("--simulator", action="store_true", help="also the dev simulator's spike switch")
    args = parser.parse_args(argv)
    if args.tune:
        for row in tune(args.seed, args.series):
            print(" ".join(f"{k}={v:.4g}" for k, v in row.items()))
        return 0
    print(markdown(run(args.seed, args.series)))
    if args.simulator:
        print()
        print(simulator_markdown(simulator_spike()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
