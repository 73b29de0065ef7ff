"""Build the entity enricher's data (``python -m pulse.enrich.train_ner [build|eval]``) from dev items only.

``build`` writes, from the fetched corpora artefacts (``include/corpora/artefacts.yaml``):

1. ``include/enrich/ner_vocab.tsv``: how each word is usually written (lower case or capitalised), counted over
   the **dev half** of every corpus (Reddit, GitHub, news, tweets, NYT sentences);
2. ``include/enrich/companies.tsv``: the listed companies of pytickersymbols with their names stripped of legal
   suffixes ("Apple Hospitality REIT, Inc." -> "Apple Hospitality REIT") and their US symbols. One-word names
   that are ordinary words ("Target", "Next") and symbols that are words or frequent acronyms are left out
   (cashtags still link them through :func:`pulse.enrich.entities.symbols`);
3. ``include/enrich/models/ner_<version>.npz`` + ``.json``: the candidate classifier of :mod:`pulse.enrich.ner`,
   a multinomial logistic regression trained on the **dev half** of WNUT-16 (tweets; person -> person,
   company / sportsteam / musicartist -> organisation, geo-loc / facility -> place, product / movie / tvshow ->
   product) and of the hand-labelled set (``include/eval/hand``), which weighs more (it is the only Reddit, news
   and GitHub data and the only data labelled with our guideline). C and the probability threshold are chosen
   on out-of-fold predictions (5 folds by item).

``eval`` prints type-aware exact-span P/R/F1 on the dev data: the gazetteers and patterns alone, and with the
classifier (out-of-fold). Every item goes through :func:`pulse.enrich.evalset.dev_items`: test ids raise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pulse.enrich import entities, evalset, ner
from pulse.enrich.text import tokens

WNUT_TYPES = {
    "person": "person",
    "company": "organisation",
    "sportsteam": "organisation",
    "musicartist": "organisation",
    "geo-loc": "place",
    "facility": "place",
    "product": "product",
    "movie": "product",
    "tvshow": "product",
}
#: The brief's mapping for reported figures: these WNUT types are neither counted as gold nor as errors.
WNUT_UNSCORED = frozenset({"other", "movie", "tvshow"})
HAND_TYPES = {
    "PERSON": "person",
    "ORG": "organisation",
    "PLACE": "place",
    "TICKER": "ticker",
    "CRYPTO": "crypto",
    "PRODUCT": "product",
}
VOCAB_MIN_COUNT = 5
HAND_WEIGHT = 3.0
C_GRID = (0.1, 0.3, 1.0, 3.0)
THRESHOLD_GRID = tuple(round(0.3 + 0.05 * i, 2) for i in range(13))
FOLDS = 5
LEGAL_SUFFIX_RE = re.compile(
    r"(?:,?\s+(?:Inc\.?|Incorporated|Corporation|Corp\.?|Company|Co\.|plc|PLC|N\.V\.|NV|S\.A\.|SA|SE|AG|KGaA|"
    r"Ltd\.?|Limited|Holdings?|Group|ASA|AB|Oyj|S\.p\.A\.|SpA|& Co\.?))+$"
)


@dataclass(frozen=True)
class Doc:
    id: str
    source: str  # wnut | hand:<domain>
    text: str
    gold: tuple[tuple[int, int, str], ...]  # (start, end, our type)
    unscored: tuple[tuple[int, int], ...]  # spans neither gold nor an error


def _dev_texts() -> list[str]:
    from pulse.enrich import corpora

    items: list[Any] = []
    for reader in (corpora.reddit, corpora.github, corpora.news, corpora.health_tweets, corpora.vader_tweets):
        items.extend(x for x in reader() if evalset.split_of(x.id) == "dev")
    items.extend(x for x in corpora.vader_nyt() if evalset.split_of(x.id) == "dev")
    return [x.text for x in evalset.dev_items(items)]


def build_vocab(texts: list[str]) -> dict[str, str]:
    """Word -> L / M / C by the share of its occurrences written in lower case (sentence starts and texts mostly in
    capitals not counted)."""
    total: Counter[str] = Counter()
    lower: Counter[str] = Counter()
    for text in texts:
        toks = tokens(text)
        alpha = [t[0] for t in toks if t[0][0].isalpha()]
        if len(alpha) >= 4 and sum(w[0].isupper() for w in alpha) > 0.5 * len(alpha):
            continue  # title case or shouting: capitals say nothing about the words
        for i, (w, _s, _e) in enumerate(toks):
            if w[0] in "#@$" or not w[0].isalpha() or ner.sentence_start(text, toks, i):
                continue
            lw = w.lower()
            total[lw] += 1
            if w[0].islower():
                lower[lw] += 1
    out = {}
    for w, n in total.items():
        if n < VOCAB_MIN_COUNT:
            continue
        r = lower[w] / n
        out[w] = "L" if r >= 0.9 else "M" if r >= 0.3 else "C"
    return out


def build_companies(vocab: dict[str, str], texts: list[str]) -> list[tuple[str, list[str], list[str]]]:
    from pulse.enrich import corpora

    upper_count: Counter[str] = Counter()
    for text in texts:
        for w in re.findall(r"\b[A-Z]{2,6}\b", text):
            upper_count[w] += 1
    rows = []
    seen: set[str] = set()
    for s in sorted(corpora.tickers(), key=lambda s: s["name"]):
        full = s["name"].strip()
        short = LEGAL_SUFFIX_RE.sub("", full).strip(" ,") or full
        if short.lower() in seen:
            continue
        seen.add(short.lower())
        aliases = []
        for form in dict.fromkeys([short, full]):
            words = form.split()
            if len(form) < 3 or (len(words) == 1 and vocab.get(form.lower(), "U") in ("L", "M")):
                continue
            if form.isupper() and len(form) <= 3:  # KPN, UCB: acronyms that clash easily
                continue
            aliases.append(form)
        syms = []
        for entry in s.get("symbols", []):
            g = str(entry.get("google", ""))
            if g.startswith(("NASDAQ:", "NYSE:")):
                sym = g.split(":", 1)[1]
                if (
                    len(sym) >= 3
                    and sym.replace(".", "").isalpha()
                    and sym.lower() not in vocab
                    and upper_count[sym] < 3
                ):
                    syms.append(sym)
        if aliases or syms:
            rows.append((short, aliases, sorted(set(syms))))
    return rows


def _wnut_docs() -> list[Doc]:
    from pulse.enrich import corpora

    items = evalset.dev_items([x for x in corpora.wnut16() if evalset.split_of(x.id) == "dev"])
    out = []
    for x in items:
        gold = tuple((s, e, WNUT_TYPES[t]) for s, e, t in x.meta["entities"] if t in WNUT_TYPES)
        uns = tuple((s, e) for s, e, t in x.meta["entities"] if t in WNUT_UNSCORED)
        out.append(Doc(x.id, "wnut", x.text, gold, uns))
    return out


def _hand_docs() -> list[Doc]:
    items = evalset.dev_items(evalset.hand("dev"))
    return [
        Doc(
            x.id,
            f"hand:{x.domain}",
            x.text,
            tuple((e.start, e.end, HAND_TYPES[e.type]) for e in x.entities),
            (),
        )
        for x in items
    ]


def _taken(text: str, toks: list, mentions: list[entities.Mention]) -> list[bool]:
    return [any(m.start < t[2] and t[1] < m.end for m in mentions) for t in toks]


def prepare(docs: list[Doc]) -> list[dict[str, Any]]:
    """Per doc: the gazetteer/pattern mentions, and the candidates with features and labels."""
    out = []
    for d in docs:
        toks = tokens(d.text)
        base = entities.find(d.text, toks, model=False)
        taken = _taken(d.text, toks, base)
        gold = {(s, e): t for s, e, t in d.gold}
        loud = ner.shouting(d.text, toks)
        cands = []
        for c in ner.candidates(d.text, toks, taken):
            label = gold.get((c.start, c.end), "none")
            if label not in ner.CLASSES:
                label = "none"
            cands.append((c, ner.features(d.text, toks, c, ner.vocab(), loud), label))
        out.append({"doc": d, "base": base, "cands": cands})
    return out


def score_docs(
    prepared: list[dict[str, Any]], predicted: list[list[tuple[int, int, str]]], brief_mapping: bool = True
) -> dict[str, dict[str, float]]:
    """Type-aware exact-span P/R/F1 per type and overall."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for p, pred in zip(prepared, predicted, strict=True):
        d: Doc = p["doc"]
        unscored = set(d.unscored) if brief_mapping else set()
        gold = {
            (s, e, t)
            for s, e, t in d.gold
            if not (brief_mapping and d.source == "wnut" and (s, e) in unscored)
        }
        for s, e, t in pred:
            if (s, e) in unscored:
                continue
            if (s, e, t) in gold:
                tp[t] += 1
            else:
                fp[t] += 1
        pset = set(pred)
        for s, e, t in gold:
            if (s, e, t) not in pset:
                fn[t] += 1
    out = {}
    for t in [*sorted(set(tp) | set(fp) | set(fn)), "all"]:
        a = sum(tp.values()) if t == "all" else tp[t]
        b = sum(fp.values()) if t == "all" else fp[t]
        c = sum(fn.values()) if t == "all" else fn[t]
        p_ = a / (a + b) if a + b else 0.0
        r_ = a / (a + c) if a + c else 0.0
        out[t] = {
            "p": round(p_, 3),
            "r": round(r_, 3),
            "f1": round(2 * p_ * r_ / (p_ + r_) if p_ + r_ else 0.0, 3),
            "n": a + c,
        }
    return out


def _fit(rows: list[tuple[list[str], str, float]], c_value: float) -> tuple[list[str], Any, Any]:
    import numpy as np
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = DictVectorizer()
    x = vec.fit_transform([dict.fromkeys(f, 1.0) for f, _l, _w in rows])
    y = np.array([ner.CLASSES.index(lab) for _f, lab, _w in rows])
    w = np.array([wt for _f, _l, wt in rows])
    clf = LogisticRegression(C=c_value, max_iter=3000)
    clf.fit(x, y, sample_weight=w)
    # one column per class of CLASSES even if a class is missing from this fold
    coef = np.zeros((x.shape[1], len(ner.CLASSES)), dtype=np.float32)
    bias = np.full(len(ner.CLASSES), -30.0, dtype=np.float32)
    for k, cls in enumerate(clf.classes_):
        coef[:, cls] = clf.coef_[k]
        bias[cls] = clf.intercept_[k]
    return list(vec.get_feature_names_out()), coef, bias


def _rows(prepared: list[dict[str, Any]]) -> list[tuple[list[str], str, float]]:
    rows = []
    for p in prepared:
        wt = HAND_WEIGHT if p["doc"].source.startswith("hand") else 1.0
        rows.extend((f, lab, wt) for _c, f, lab in p["cands"])
    return rows


def _as_model(names: list[str], coef: Any, bias: Any, threshold: float) -> ner.Model:
    return ner.Model(
        {n: tuple(float(v) for v in row) for n, row in zip(names, coef, strict=True)},
        tuple(float(b) for b in bias),
        ner.vocab(),
        threshold,
        {},
    )


def _predict(p: dict[str, Any], m: ner.Model | None) -> tuple[list[tuple[int, int, str]], list[list[float]]]:
    pred = [(x.start, x.end, x.entity_type) for x in p["base"]]
    probs = []
    for c, f, _lab in p["cands"]:
        if m is None:
            continue
        pr = ner.score(m, f)
        probs.append(pr)
        best = max(range(1, len(ner.CLASSES)), key=pr.__getitem__)
        if pr[0] <= m.threshold:
            pred.append((c.start, c.end, ner.CLASSES[best]))
    return pred, probs


def _fold(doc_id: str) -> int:
    return int(hashlib.sha256(f"ner-fold/{doc_id}".encode()).hexdigest(), 16) % FOLDS


def cross_validate(prepared: list[dict[str, Any]]) -> tuple[float, float, dict[str, Any]]:
    """Best (C, threshold) by out-of-fold F1 on the hand-labelled dev texts (all dev texts if there are none)."""
    best: tuple[float, float, float] | None = None
    table: dict[str, Any] = {}
    for c_value in C_GRID:
        oof_models = {}
        for k in range(FOLDS):
            train = [p for p in prepared if _fold(p["doc"].id) != k]
            oof_models[k] = _fit(_rows(train), c_value)
        for th in THRESHOLD_GRID:
            preds = []
            for p in prepared:
                names, coef, bias = oof_models[_fold(p["doc"].id)]
                m = _model_cache(names, coef, bias, th, c_value, _fold(p["doc"].id))
                preds.append(_predict(p, m)[0])
            # the hand-labelled dev texts speak for the four domains of the evaluation; WNUT breaks ties
            hand = [i for i, p in enumerate(prepared) if p["doc"].source.startswith("hand")]
            f1_all = score_docs(prepared, preds)["all"]["f1"]
            f1_hand = (
                score_docs([prepared[i] for i in hand], [preds[i] for i in hand])["all"]["f1"] if hand else 0
            )
            f1 = f1_hand + 0.01 * f1_all if hand else f1_all
            table[f"C={c_value} t={th}"] = f1
            if best is None or f1 > best[0]:
                best = (f1, c_value, th)
    assert best is not None
    return best[1], best[2], table


_MODELS: dict[tuple[float, int], ner.Model] = {}


def _model_cache(names: list[str], coef: Any, bias: Any, th: float, c_value: float, fold: int) -> ner.Model:
    key = (c_value, fold)
    if key not in _MODELS:
        _MODELS[key] = _as_model(names, coef, bias, 0.0)
    m = _MODELS[key]
    return ner.Model(m.weights, m.bias, m.vocab, th, {})


def oof_predictions(
    prepared: list[dict[str, Any]], c_value: float, th: float
) -> list[list[tuple[int, int, str]]]:
    models = {k: _fit(_rows([p for p in prepared if _fold(p["doc"].id) != k]), c_value) for k in range(FOLDS)}
    preds = []
    for p in prepared:
        names, coef, bias = models[_fold(p["doc"].id)]
        preds.append(_predict(p, _as_model(names, coef, bias, th))[0])
    return preds


def _report(
    title: str, prepared: list[dict[str, Any]], preds: list[list[tuple[int, int, str]]]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for source in [*sorted({p["doc"].source.split(":")[0] for p in prepared}), "all"]:
        idx = [i for i, p in enumerate(prepared) if source == "all" or p["doc"].source.startswith(source)]
        res = score_docs([prepared[i] for i in idx], [preds[i] for i in idx])
        out[source] = res
        print(
            f"{title} [{source}, {len(idx)} texts]: "
            + "  ".join(
                f"{t} P{v['p']:.2f} R{v['r']:.2f} F{v['f1']:.2f} (n={v['n']})" for t, v in res.items()
            )
        )
    return out


def _docs() -> list[Doc]:
    docs = _wnut_docs()
    try:
        docs += _hand_docs()
    except Exception as exc:  # hand labels may be missing or mid-edit: train on WNUT alone
        print(f"hand labels not used: {exc}", file=sys.stderr)
    return docs


def build(write: bool = True) -> dict[str, Any]:
    import numpy as np

    t0 = time.perf_counter()
    texts = _dev_texts()
    vocab = build_vocab(texts)
    if write:
        ner.VOCAB_FILE.write_text(
            "# word<TAB>bucket: L lower case >= 90 % of the time, M 30-90 %, C capitalised (dev half of the corpora,"
            f" >= {VOCAB_MIN_COUNT} occurrences); generated by python -m pulse.enrich.train_ner\n"
            + "".join(f"{w}\t{b}\n" for w, b in sorted(vocab.items())),
            encoding="utf-8",
        )
        rows = build_companies(vocab, texts)
        entities.COMPANIES_FILE.write_text(
            "# canonical<TAB>aliases (|)<TAB>bare US symbols (|): pytickersymbols, generated by "
            "python -m pulse.enrich.train_ner\n"
            + "".join(f"{n}\t{'|'.join(a)}\t{'|'.join(s)}\n" for n, a, s in rows),
            encoding="utf-8",
        )
        for f in (
            ner.vocab,
            entities.companies,
            entities.symbols,
            entities.table,
            entities.first_words,
            entities.gazetteer_sha256,
        ):
            f.cache_clear()
    docs = _docs()
    prepared = prepare(docs)
    print(
        f"{len(docs)} dev texts, {sum(len(p['cands']) for p in prepared)} candidates "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    base = _report("gazetteer+patterns", prepared, [_predict(p, None)[0] for p in prepared])
    c_value, th, grid = cross_validate(prepared)
    print(f"chosen C={c_value} threshold={th}")
    oof = _report("with classifier (out-of-fold)", prepared, oof_predictions(prepared, c_value, th))
    names, coef, bias = _fit(_rows(prepared), c_value)
    keep = np.abs(coef).max(axis=1) >= 1e-3
    names = [n for n, k in zip(names, keep, strict=True) if k]
    coef = coef[keep]
    meta = {
        "version": ner.MODEL_VERSION,
        "classes": list(ner.CLASSES),
        "threshold": th,
        "C": c_value,
        "features": len(names),
        "training": {
            "wnut16_dev_texts": sum(d.source == "wnut" for d in docs),
            "hand_dev_texts": sum(d.source.startswith("hand") for d in docs),
            "hand_weight": HAND_WEIGHT,
            "texts_sha256": hashlib.sha256(
                "\n".join(d.id + "\t" + d.text for d in docs).encode()
            ).hexdigest(),
            "gold_sha256": hashlib.sha256(repr([d.gold for d in docs]).encode()).hexdigest(),
        },
        "dev_figures": {"gazetteer_patterns": base, "out_of_fold": oof},
        "grid_f1": grid,
        "command": "python -m pulse.enrich.train_ner build",
    }
    if write:
        npz_path, json_path = ner.model_paths()
        np.savez_compressed(
            npz_path, features=np.array(names), weights=coef.astype(np.float32), bias=bias.astype(np.float32)
        )
        json_path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        ner.model.cache_clear()
        print(f"wrote {npz_path} ({npz_path.stat().st_size} bytes), {json_path}")
    return meta


def errors(limit: int = 40, source: str = "") -> None:
    """Out-of-fold errors on the dev data (for reading, not for tuning on test)."""
    docs = _docs()
    prepared = prepare(docs)
    m = ner.model()
    preds = oof_predictions(prepared, float(m.meta["C"]), m.threshold)
    shown = 0
    for p, pred in zip(prepared, preds, strict=True):
        d = p["doc"]
        gold = set(d.gold)
        ps = {x for x in pred if (x[0], x[1]) not in set(d.unscored)}
        if gold != ps and shown < limit and d.source.startswith(source):
            shown += 1
            miss = [(d.text[s:e], t) for s, e, t in sorted(gold - ps)]
            extra = [(d.text[s:e], t) for s, e, t in sorted(ps - gold)]
            print(f"{d.id}: missed {miss} extra {extra}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pulse.enrich.train_ner", description=__doc__.split("\n")[0])
    ap.add_argument("command", nargs="?", default="build", choices=("build", "eval", "errors"))
    ap.add_argument(
        "--source", default="", help="errors: only texts whose source starts with this (wnut, hand)"
    )
    ap.add_argument("--limit", type=int, default=40)
    args = ap.parse_args(argv)
    if args.command == "build":
        build(write=True)
    elif args.command == "eval":
        build(write=False)
    else:
        errors(args.limit, args.source)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
