"""Enrichment measured on real text: ``python -m pulse.enrich.evaluate`` (``make evaluate``).

Runs the enrichment exactly as the warehouse gets it (:func:`pulse.enrich.enrich_documents`) over the frozen
**test** split of the evaluation set (``pulse.enrich.evalset``) and prints, per domain and overall:

* sentiment: macro-F1 of the stored label next to VADER's (compound with its +-0.05 thresholds), with a 95 %
  bootstrap interval of the difference; neutral rates on questions / announcements / statements; calibration
  (expected calibration error and a reliability table); how often the out-of-domain combiner labelled;
* per-entity (aspect) sentiment and emotion where the hand labels have them;
* entities: type-aware exact-span precision, recall, F1 per type and domain (and on WNUT-16's test half,
  mapped to our types);
* topic and language accuracy; sarcasm label counts;
* the worst remaining errors.

``--split dev`` prints the same for the dev split (what tuning may look at). ``--json FILE`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pulse.enrich import corpora, evalset

SOURCE_OF = {"tweet": "x", "reddit": "reddit", "news": "newsapi", "github": "github"}
TYPE_OF = {
    "person": "PERSON",
    "organisation": "ORG",
    "place": "PLACE",
    "ticker": "TICKER",
    "crypto": "CRYPTO",
    "product": "PRODUCT",
}
WNUT_TYPES = {
    "person": "PERSON",
    "company": "ORG",
    "sportsteam": "ORG",
    "musicartist": "ORG",
    "geo-loc": "PLACE",
    "facility": "PLACE",
    "product": "PRODUCT",
    "movie": "PRODUCT",
    "tvshow": "PRODUCT",
}
LABELS = ("negative", "neutral", "positive")


@dataclass
class Case:
    """One evaluated text: gold labels and what the enrichment produced."""

    id: str
    set: str  # hand | vader_tweets | vader_nyt | wnut16
    domain: str
    text: str
    gold: evalset.Labelled | None
    gold_sentiment: str | None
    gold_spans: list[tuple[int, int, str]]
    ignore_spans: list[tuple[int, int]]
    features: Any = None
    spans: list[tuple[int, int, str, str]] | None = None  # start, end, TYPE, normalized


def _cases(split: str) -> list[Case]:
    from pulse.enrich.train_sentiment import rating_label

    out: list[Case] = []
    for x in evalset.hand(split):
        out.append(
            Case(
                x.id,
                "hand",
                x.domain,
                x.text,
                x,
                x.sentiment,
                [(s.start, s.end, s.type) for s in x.entities],
                [],
            )
        )
    for name, items in (("vader_tweets", corpora.vader_tweets()), ("vader_nyt", corpora.vader_nyt())):
        for it in items:
            if evalset.split_of(it.id) == split:
                out.append(
                    Case(it.id, name, it.domain, it.text, None, rating_label(it.meta["mean_rating"]), [], [])
                )
    for it in corpora.wnut16():
        if evalset.split_of(it.id) == split:
            gold = [(s, e, WNUT_TYPES[t]) for s, e, t in it.meta["entities"] if t in WNUT_TYPES]
            ignore = [(s, e) for s, e, t in it.meta["entities"] if t not in WNUT_TYPES]
            out.append(Case(it.id, "wnut16", "tweet", it.text, None, None, gold, ignore))
    return out


def _enrich(cases: list[Case]) -> None:
    from pulse.enrich import EnrichInput, enrich_documents

    key0 = datetime(2026, 1, 1, tzinfo=UTC)
    inputs = [
        EnrichInput(
            key=(SOURCE_OF[c.domain], f"{c.set}/{c.id}", key0),
            source=SOURCE_OF[c.domain],
            kind="eval",
            title=None,
            body=c.text,
            url=None,
        )
        for c in cases
    ]
    by_key: dict[str, list[tuple[int, int, str, str]]] = defaultdict(list)
    by_id = {f"{c.set}/{c.id}": c for c in cases}  # a WNUT-16 tweet may also be hand-labelled
    for i in range(0, len(inputs), 500):
        res = enrich_documents(inputs[i : i + 500])
        for f in res.features:
            by_id[f.key[1]].features = f
        for m in res.entities:
            by_key[m.key[1]].append(
                (m.start, m.end, TYPE_OF.get(m.entity_type, m.entity_type.upper()), m.normalized)
            )
    for c in cases:
        c.spans = sorted(by_key.get(f"{c.set}/{c.id}", []))


def _f1s(gold: list[str], pred: list[str]) -> dict[str, float]:
    from sklearn.metrics import f1_score

    return {
        # Over the classes present in the gold labels or the predictions (a class absent from both, such as
        # negative in a set of GitHub texts without any, counts for nobody).
        "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)),
        "accuracy": sum(g == p for g, p in zip(gold, pred, strict=True)) / max(1, len(gold)),
        "n": len(gold),
    }


def _macro_f1_idx(g: Any, p: Any, k: int) -> float:
    """Macro-F1 over the classes present in ``g`` or ``p`` (integer arrays), as sklearn's default computes it."""
    import numpy as np

    cm = np.bincount(g * k + p, minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(float)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    present = (support + predicted) > 0
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
    return float(f1[present].mean()) if present.any() else 0.0


def _boot_diff(gold: list[str], a: list[str], b: list[str], reps: int = 1000) -> tuple[float, float]:
    """95 % bootstrap interval of macro-F1(a) - macro-F1(b) (seeded, resampling texts)."""
    import numpy as np

    classes = sorted(set(gold) | set(a) | set(b))
    idx_of = {c: i for i, c in enumerate(classes)}
    g, pa, pb = (np.array([idx_of[x] for x in seq]) for seq in (gold, a, b))
    rng = np.random.default_rng(15)
    n, k = len(g), len(classes)
    diffs = []
    for _ in range(reps):
        i = rng.integers(0, n, n)
        diffs.append(_macro_f1_idx(g[i], pa[i], k) - _macro_f1_idx(g[i], pb[i], k))
    diffs.sort()
    return diffs[int(0.025 * reps)], diffs[int(0.975 * reps) - 1]


def vader_label(compound: float | None) -> str:
    from pulse.enrich.sentiment import vader_label as vl

    return vl(compound or 0.0)


def sentiment_report(cases: list[Case]) -> dict[str, Any]:
    rated = [c for c in cases if c.gold_sentiment and c.features and c.features.sentiment_label]
    groups: dict[str, list[Case]] = {f"{d} (hand)": [] for d in evalset.DOMAINS}
    groups.update({"tweet (VADER's tweets)": [], "news (VADER's NYT sentences)": []})
    for c in rated:
        if c.set == "hand":
            groups[f"{c.domain} (hand)"].append(c)
        else:
            groups[
                "tweet (VADER's tweets)" if c.set == "vader_tweets" else "news (VADER's NYT sentences)"
            ].append(c)
    by_domain: dict[str, list[Case]] = defaultdict(list)
    for c in rated:
        by_domain[c.domain].append(c)
    rows = {}
    for name, cs in (
        list(groups.items())
        + [(f"domain {d}", by_domain[d]) for d in evalset.DOMAINS]
        + [
            ("all hand-labelled", [c for c in rated if c.set == "hand"]),
            ("overall (pooled)", rated),
        ]
    ):
        if not cs:
            continue
        gold = [c.gold_sentiment for c in cs]
        ours = [c.features.sentiment_label for c in cs]
        vad = [vader_label(c.features.sentiment_vader) for c in cs]
        o, v = _f1s(gold, ours), _f1s(gold, vad)  # type: ignore[arg-type]
        lo, hi = _boot_diff(gold, ours, vad)  # type: ignore[arg-type]
        rows[name] = {
            "n": len(cs),
            "ours": o,
            "vader": v,
            "diff": o["macro_f1"] - v["macro_f1"],
            "ci95": [lo, hi],
        }
    dom_mean_ours = sum(
        rows[f"domain {d}"]["ours"]["macro_f1"] for d in evalset.DOMAINS if f"domain {d}" in rows
    )
    dom_mean_vader = sum(
        rows[f"domain {d}"]["vader"]["macro_f1"] for d in evalset.DOMAINS if f"domain {d}" in rows
    )
    k = sum(f"domain {d}" in rows for d in evalset.DOMAINS) or 1
    rows["mean of the four domains"] = {
        "n": len(rated),
        "ours": {"macro_f1": dom_mean_ours / k},
        "vader": {"macro_f1": dom_mean_vader / k},
        "diff": (dom_mean_ours - dom_mean_vader) / k,
    }
    # Questions, announcements, statements: how often each method says neutral (gold says so too, mostly).
    acts = {}
    for act in ("question", "announcement", "statement"):
        cs = [c for c in rated if c.gold and c.gold.act == act]
        if cs:
            acts[act] = {
                "n": len(cs),
                "gold_neutral": sum(c.gold_sentiment == "neutral" for c in cs) / len(cs),
                "ours_neutral": sum(c.features.sentiment_label == "neutral" for c in cs) / len(cs),
                "vader_neutral": sum(vader_label(c.features.sentiment_vader) == "neutral" for c in cs)
                / len(cs),
            }
    # Calibration of the stored confidence.
    bins = [[0, 0.0, 0] for _ in range(10)]  # n, sum confidence, correct
    for c in rated:
        conf = c.features.sentiment_confidence
        b = min(9, int(conf * 10))
        bins[b][0] += 1
        bins[b][1] += conf
        bins[b][2] += c.features.sentiment_label == c.gold_sentiment
    n = sum(b[0] for b in bins) or 1
    ece = sum(abs(b[1] - b[2]) for b in bins if b[0]) / n
    reliability = [
        {
            "bin": f"{i / 10:.1f}-{(i + 1) / 10:.1f}",
            "n": b[0],
            "confidence": b[1] / b[0],
            "accuracy": b[2] / b[0],
        }
        for i, b in enumerate(bins)
        if b[0]
    ]
    basis = Counter(getattr(c.features, "sentiment_basis", None) for c in rated)
    basis_f1 = {}
    for bname in basis:
        cs = [c for c in rated if getattr(c.features, "sentiment_basis", None) == bname]
        basis_f1[str(bname)] = _f1s([c.gold_sentiment for c in cs], [c.features.sentiment_label for c in cs])  # type: ignore[misc]
    return {"rows": rows, "acts": acts, "ece": ece, "reliability": reliability, "basis": basis_f1}


def aspect_report(cases: list[Case]) -> dict[str, Any]:
    """Per-entity sentiment: VADER of the mention's sentence(s), as the warehouse stores it, on gold spans."""
    from pulse.enrich import sentiment
    from pulse.enrich.text import sentence_index, sentence_spans

    gold, pred = [], []
    for c in cases:
        if not c.gold:
            continue
        spans = None
        for s in c.gold.entities:
            if s.sentiment is None:
                continue
            spans = spans or sentence_spans(c.text)
            a, b = sentence_index(spans, s.start), sentence_index(spans, max(s.start, s.end - 1))
            score = sentiment.vader_sentence(c.text[spans[a][0] : spans[b][1]])[0]
            gold.append(s.sentiment)
            pred.append(vader_label(score))
    return _f1s(gold, pred) if gold else {"n": 0}


def emotion_report(cases: list[Case]) -> dict[str, Any]:
    """Dominant NRC category (most counts; none when no emotion word) against the hand label."""
    gold, pred = [], []
    for c in cases:
        if c.gold and c.gold.emotion and c.features and c.features.emotions is not None:
            counts = {k: v for k, v in c.features.emotions.items() if k not in ("positive", "negative") and v}
            gold.append(c.gold.emotion)
            pred.append(max(sorted(counts), key=lambda k: counts[k]) if counts else "none")
    if not gold:
        return {"n": 0}
    from sklearn.metrics import f1_score

    emo = [g for g in gold if g != "none"]
    return {
        "n": len(gold),
        "accuracy": sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold),
        "macro_f1_over_gold_emotions": float(
            f1_score(gold, pred, labels=sorted(set(emo)), average="macro", zero_division=0)
        ),
        "majority_none_accuracy": gold.count("none") / len(gold),
    }


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {
        "precision": p,
        "recall": r,
        "f1": 2 * p * r / (p + r) if p + r else 0.0,
        "gold": tp + fn,
        "pred": tp + fp,
    }


def entity_report(cases: list[Case], sets: tuple[str, ...]) -> dict[str, Any]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for c in cases:
        if c.set not in sets:
            continue
        gold = set(c.gold_spans)
        pred = set()
        for s, e, t, _ in c.spans or []:
            if c.set == "wnut16" and (
                t in ("TICKER", "CRYPTO") or any(s < ie and is_ < e for is_, ie in c.ignore_spans)
            ):
                continue  # WNUT has no ticker/crypto labels; its "other" spans are neither right nor wrong
            pred.add((s, e, t))
        for scope in ("all", f"domain {c.domain}"):
            counts[scope][0] += len(gold & pred)
            counts[scope][1] += len(pred - gold)
            counts[scope][2] += len(gold - pred)
        for t in evalset.ENTITY_TYPES:
            g = {x for x in gold if x[2] == t}
            p = {x for x in pred if x[2] == t}
            counts[f"type {t}"][0] += len(g & p)
            counts[f"type {t}"][1] += len(p - g)
            counts[f"type {t}"][2] += len(g - p)
    return {k: _prf(*v) for k, v in sorted(counts.items())}


def topic_report(cases: list[Case]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    hand = [c for c in cases if c.gold and c.gold.topic and c.features]
    for scope, cs in [("all", hand)] + [(d, [c for c in hand if c.domain == d]) for d in evalset.DOMAINS]:
        if not cs:
            continue
        gold = [c.gold.topic for c in cs]  # type: ignore[union-attr]
        pred = [c.features.topic for c in cs]
        majority = Counter(gold).most_common(1)[0][1] / len(gold)
        out[scope] = {
            "n": len(cs),
            "accuracy": sum(g == p for g, p in zip(gold, pred, strict=True)) / len(cs),
            "majority_class_accuracy": majority,
        }
    return out


def language_report(cases: list[Case]) -> dict[str, Any]:
    cs = [c for c in cases if c.gold and c.gold.language and c.gold.language != "und" and c.features]
    if not cs:
        return {"n": 0}
    langs = Counter(c.gold.language for c in cs)  # type: ignore[union-attr]
    return {
        "n": len(cs),
        "accuracy": sum(c.features.language == c.gold.language for c in cs) / len(cs),  # type: ignore[union-attr]
        "languages": dict(langs),
    }


def worst_errors(cases: list[Case], n: int = 5) -> list[dict[str, Any]]:
    """The most confident wrong sentiment labels on hand-labelled texts, and the entity misses."""
    wrong = [
        c
        for c in cases
        if c.set == "hand"
        and c.gold_sentiment
        and c.features
        and c.features.sentiment_label != c.gold_sentiment
    ]
    wrong.sort(key=lambda c: (-(c.features.sentiment_confidence or 0), c.id))
    out = []
    for c in wrong[:n]:
        out.append(
            {
                "id": c.id,
                "gold": c.gold_sentiment,
                "ours": c.features.sentiment_label,
                "confidence": c.features.sentiment_confidence,
                "vader": c.features.sentiment_vader,
                "text": c.text[:160].replace("\n", " "),
            }
        )
    return out


def run(split: str) -> dict[str, Any]:
    cases = _cases(split)
    _enrich(cases)
    hand_sets = ("hand",)
    return {
        "split": split,
        "cases": Counter(c.set for c in cases),
        "sentiment": sentiment_report(cases),
        "aspect_sentiment_vader_sentence": aspect_report(cases),
        "emotion": emotion_report(cases),
        "entities_hand": entity_report(cases, hand_sets),
        "entities_wnut16": entity_report(cases, ("wnut16",)),
        "topic": topic_report(cases),
        "language": language_report(cases),
        "sarcasm_labels": Counter(
            str(c.gold.sarcasm) for c in cases if c.gold is not None and c.gold.sarcasm is not None
        ),
        "worst_sentiment_errors": worst_errors(cases),
        "_cases": cases,
    }


def _print(r: dict[str, Any]) -> None:
    p = print
    p(f"# enrichment evaluation on the {r['split']} split: {dict(r['cases'])}")
    p("\n## sentiment: macro-F1 of the stored label vs VADER (+-0.05), 95% bootstrap CI of the difference")
    p(f"{'set':<32}{'n':>6}{'ours':>8}{'VADER':>8}{'diff':>8}   ci95")
    for name, row in r["sentiment"]["rows"].items():
        ci = row.get("ci95")
        ci_s = f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""
        p(
            f"{name:<32}{row['n']:>6}{row['ours']['macro_f1']:>8.3f}{row['vader']['macro_f1']:>8.3f}"
            f"{row['diff']:>+8.3f}   {ci_s}"
        )
    p("\nneutral rate by act (hand labels): gold / ours / VADER")
    for act, a in r["sentiment"]["acts"].items():
        p(
            f"  {act:<14} n={a['n']:>4}  {a['gold_neutral']:.2f} / {a['ours_neutral']:.2f} / {a['vader_neutral']:.2f}"
        )
    p(f"\ncalibration: expected calibration error {r['sentiment']['ece']:.3f} (10 bins)")
    p(f"{'confidence bin':<16}{'n':>6}{'mean conf':>11}{'accuracy':>10}")
    for b in r["sentiment"]["reliability"]:
        p(f"{b['bin']:<16}{b['n']:>6}{b['confidence']:>11.3f}{b['accuracy']:>10.3f}")
    p("\nbasis of the label (ensemble = in domain, vader = out of domain): macro-F1 per basis")
    for bname, s in r["sentiment"]["basis"].items():
        p(f"  {bname:<10} n={s['n']:>5} macro-F1={s['macro_f1']:.3f} accuracy={s['accuracy']:.3f}")
    a = r["aspect_sentiment_vader_sentence"]
    if a.get("n"):
        p(
            f"\nper-entity sentiment (VADER of the mention's sentence): n={a['n']} macro-F1={a['macro_f1']:.3f} "
            f"accuracy={a['accuracy']:.3f}"
        )
    e = r["emotion"]
    if e.get("n"):
        p(
            f"emotion (dominant NRC category vs hand label): n={e['n']} accuracy={e['accuracy']:.3f} "
            f"(always 'none': {e['majority_none_accuracy']:.3f}), macro-F1 over emotions {e['macro_f1_over_gold_emotions']:.3f}"
        )
    for title, key in (("hand-labelled", "entities_hand"), ("WNUT-16 (mapped types)", "entities_wnut16")):
        p(f"\n## entities, {title}: type-aware exact spans")
        p(f"{'scope':<18}{'gold':>6}{'pred':>6}{'P':>7}{'R':>7}{'F1':>7}")
        for scope, s in r[key].items():
            p(
                f"{scope:<18}{s['gold']:>6}{s['pred']:>6}{s['precision']:>7.3f}{s['recall']:>7.3f}{s['f1']:>7.3f}"
            )
    p("\n## topic accuracy (hand labels) vs always the most common topic")
    for scope, t in r["topic"].items():
        p(
            f"  {scope:<8} n={t['n']:>4} accuracy={t['accuracy']:.3f} (majority {t['majority_class_accuracy']:.3f})"
        )
    lang = r["language"]
    if lang.get("n"):
        p(f"\n## language: n={lang['n']} accuracy={lang['accuracy']:.3f} {lang['languages']}")
    p(f"\n## sarcasm labels (hand): {dict(r['sarcasm_labels'])}")
    p("\n## worst sentiment errors (most confident wrong labels)")
    for w in r["worst_sentiment_errors"]:
        p(
            f"  {w['id']}: gold {w['gold']}, ours {w['ours']} ({w['confidence']}), VADER {w['vader']}: {w['text']!r}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pulse.enrich.evaluate", description=__doc__)
    parser.add_argument("--split", choices=["test", "dev"], default="test")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    r = run(args.split)
    _print(r)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({k: v for k, v in r.items() if k != "_cases"}, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
