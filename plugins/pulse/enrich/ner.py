"""The statistical half of the entity enricher: capitalised word runs, typed by a trained linear classifier.

:func:`pulse.enrich.entities.find` first matches its gazetteers (known organisations, people, places, products,
crypto, tickers); the words it did not claim are grouped into **candidates** here and each candidate is typed
``person``, ``organisation``, ``place``, ``product`` or ``none`` by a multinomial logistic regression over
sparse features (the words, their shape, the words around them, whether the run opens a sentence, and how often
each word is written in lower case in the corpora: "Storm" at the start of a sentence is usually a word,
"Obama" never is).

A candidate is a run of adjacent tokens (single spaces or hyphens between them) that start with a capital
letter, optionally joined by ``of``/``de``/``van``... and followed by numbers ("Windows 10"); a trailing
possessive ``'s`` is left out of the span. Model and vocabulary: ``include/enrich/models/ner_<version>.npz``
with its ``.json`` (version, training data hashes, dev figures), built by ``python -m pulse.enrich.train_ner``.
Only numpy is needed to load it (once per process); scoring is pure Python dictionary look-ups (~10 µs per
candidate).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pulse.enrich.text import Token

MODEL_VERSION = "2026.12.1"
MODEL_DIR = Path(__file__).resolve().parents[3] / "include" / "enrich" / "models"
MODEL_STEM = f"ner_{MODEL_VERSION}"
CLASSES = ("none", "person", "organisation", "place", "product")
#: Words that may join capitalised words inside one name ("Bank of America", "Ursula von der Leyen").
CONNECTORS = frozenset(
    {"of", "de", "del", "della", "van", "von", "der", "den", "da", "du", "la", "le", "y", "al"}
)
MAX_CANDIDATE_TOKENS = 12
#: Longer runs are split at ordinary lower-case words ("Watch Tom Cruise Fall Into A Bunch Of Movies").
SPLIT_RUNS_OVER = 3
CAPS_WORD_RE = re.compile(r"\b[A-Z][A-Z0-9'.&-]+\b")
SENTENCE_BREAK = frozenset('.!?:;\n"\u201c\u201d|()[]*')


@dataclass(frozen=True, slots=True)
class Candidate:
    i: int  # first token
    j: int  # one past the last token
    start: int
    end: int  # character end, without a trailing possessive


@dataclass(frozen=True)
class Model:
    weights: dict[str, tuple[float, ...]]
    bias: tuple[float, ...]
    vocab: dict[str, str]  # lower-case word -> bucket (see :func:`vocab`)
    threshold: float  # a candidate is an entity (of its most likely type) when P(none) is at most this
    meta: dict


VOCAB_FILE = MODEL_DIR.parent / "ner_vocab.tsv"


def model_paths() -> tuple[Path, Path]:
    return MODEL_DIR / f"{MODEL_STEM}.npz", MODEL_DIR / f"{MODEL_STEM}.json"


def data_files() -> tuple[Path, Path]:
    """The generated data the recogniser reads besides the model (for ``component_versions``)."""
    return MODEL_DIR.parent / "companies.tsv", VOCAB_FILE


@cache
def vocab() -> dict[str, str]:
    """Lower-case word -> how it is usually written in the corpora (dev half): ``L`` lower case >= 90 % of the
    time, ``M`` 30-90 %, ``C`` capitalised; words seen fewer than 5 times are absent (``U``). Read once."""
    out: dict[str, str] = {}
    if not VOCAB_FILE.exists():  # only while train_ner builds it
        return out
    for line in VOCAB_FILE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            word, bucket = line.split("\t")
            out[word] = bucket
    return out


@cache
def model() -> Model:
    """The trained model (read once per process)."""
    import numpy as np

    npz_path, json_path = model_paths()
    meta = json.loads(json_path.read_text(encoding="utf-8"))
    with np.load(npz_path, allow_pickle=False) as z:
        names = [str(s) for s in z["features"]]
        w = z["weights"].astype(float).tolist()
        bias = tuple(float(x) for x in z["bias"])
    return Model(
        weights={n: tuple(row) for n, row in zip(names, w, strict=True)},
        bias=bias,
        vocab=vocab(),
        threshold=float(meta["threshold"]),
        meta=meta,
    )


def _shape(word: str) -> str:
    if word.isupper():
        return "X" if len(word) > 1 else "x1"
    if word[:1].isupper():
        if any(c.isupper() for c in word[1:]):
            return "XxX"
        return "Xx"
    if word[:1].isdigit():
        return "d"
    if any(c.isupper() for c in word[1:]):
        return "xX"
    return "x"


def _is_cap(word: str) -> bool:
    """Starts with a capital, or is camel case from the second or third letter ("iPhone", "eBay")."""
    c = word[0]
    if c.isupper():
        return True
    return (
        c.islower() and not word.islower() and word.isalnum() and (word[1:2].isupper() or word[2:3].isupper())
    )


def _strip_possessive(word: str) -> int:
    """Characters to drop at the end of ``word`` ("Google's" -> 2)."""
    if len(word) > 2 and word[-2] in "'\u2019" and word[-1] in "sS":
        return 2
    return 0


def sentence_start(text: str, toks: list[Token], i: int) -> bool:
    if i == 0:
        return True
    gap = text[toks[i - 1][2] : toks[i][1]]
    return gap != " " and any(c in SENTENCE_BREAK for c in gap)


def candidates(text: str, toks: list[Token], taken: list[bool]) -> list[Candidate]:
    """Runs of capitalised tokens not claimed by the gazetteers (``taken[i]``)."""
    out: list[Candidate] = []
    n = len(toks)
    i = 0
    while i < n:
        word = toks[i][0]
        if taken[i]:
            i += 1
            continue
        if word[0] == "@":  # a handle: a person, an organisation, or just an address
            if len(word) > 2:
                out.append(Candidate(i, i + 1, toks[i][1], toks[i][2]))
            i += 1
            continue
        if word[0] in "#$" or not _is_cap(word):
            i += 1
            continue
        j = i + 1
        while j < n and j - i < MAX_CANDIDATE_TOKENS and not taken[j]:
            gap = text[toks[j - 1][2] : toks[j][1]]
            if gap != " " and gap != "-":
                break
            if _strip_possessive(toks[j - 1][0]):
                break
            w = toks[j][0]
            if w[0] in "#@$":
                break
            if _is_cap(w) or w[0].isdigit():
                j += 1
                continue
            if (
                w in CONNECTORS
                and j + 1 < n
                and not taken[j + 1]
                and text[toks[j][2] : toks[j + 1][1]] == " "
                and _is_cap(toks[j + 1][0])
            ):
                j += 2
                continue
            break
        if j == i + 1 and vocab().get(word.lower()) == "L" and sentence_start(text, toks, i):
            i = j  # "The", "Give", "Thanks" opening a sentence: an ordinary word, not worth scoring
            continue
        if j - i > SPLIT_RUNS_OVER:  # a title-case headline: ordinary words do not belong to a name
            voc = vocab()
            k = i
            while k < j:
                if voc.get(toks[k][0].lower(), "U") in "LM" or toks[k][0].lower() in CONNECTORS:
                    k += 1
                    continue
                m = k + 1
                while (
                    m < j
                    and voc.get(toks[m][0].lower(), "U") not in "LM"
                    and toks[m][0].lower() not in CONNECTORS
                ):
                    m += 1
                last = toks[m - 1]
                out.append(Candidate(k, m, toks[k][1], last[2] - _strip_possessive(last[0])))
                k = m
        else:
            last = toks[j - 1]
            out.append(Candidate(i, j, toks[i][1], last[2] - _strip_possessive(last[0])))
        i = j
    return out


def shouting(text: str, toks: list[Token]) -> bool:
    """Most words are in capitals (then capitals say little)."""
    n = len(toks)
    return n >= 3 and len(CAPS_WORD_RE.findall(text)) > 0.6 * n


def features(
    text: str, toks: list[Token], c: Candidate, vocab: dict[str, str], loud: bool = False
) -> list[str]:
    """The sparse features of one candidate (shared by training and run time)."""
    words = [t[0] for t in toks[c.i : c.j]]
    if words[0][0] == "@":
        return _handle_features(text, toks, c, vocab)
    if _strip_possessive(words[-1]):
        words[-1] = words[-1][:-2]
        poss = True
    else:
        poss = False
    low = [w.lower() for w in words]
    n = len(words)
    s0 = sentence_start(text, toks, c.i)
    shape = " ".join(_shape(w) for w in words[:4])
    b0 = vocab.get(low[0], "U")
    f = [
        f"n={min(n, 4)}",
        f"shape={shape}",
        f"first={low[0]}",
        f"last={low[-1]}",
        f"b0={b0}",
        f"s0b0={s0}{b0}",
        f"suf={low[-1][-3:]}",
    ]
    if n == 1:
        f.append(f"one={low[0]}")
        f.append(f"one_s0={s0}")
    else:
        f.append("span=" + " ".join(low))
        f.append("bs=" + "".join(vocab.get(w, "U") for w in low[:4]))
    for w in low:
        f.append(f"w={w}")
    if s0:
        f.append("s0")
    if poss:
        f.append("poss")
    p = toks[c.i - 1][0] if c.i > 0 else ""
    f.append(f"prev={p.lower() if p[:1] not in '@#' else p[:1]}")
    if c.i > 1:
        f.append(f"prev2={toks[c.i - 2][0].lower()}")
    x = toks[c.j][0] if c.j < len(toks) else ""
    f.append(f"next={x.lower() if x[:1] not in '@#' else x[:1]}")
    if x[:1].isupper():
        f.append("next_cap")
    if loud:
        f.append("shouting")
    return f


HANDLE_PART_RE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def _handle_features(text: str, toks: list[Token], c: Candidate, vocab: dict[str, str]) -> list[str]:
    body = toks[c.i][0][1:]
    parts = [p.lower() for p in HANDLE_PART_RE.findall(body)]
    f = [
        "handle",
        f"h_start={c.i == 0}",
        f"h_shape={_shape(body)}",
        f"h_parts={min(len(parts), 4)}",
        f"h_digit={any(ch.isdigit() for ch in body)}",
        f"h_us={'_' in body}",
        f"h_body={body.lower()}",
    ]
    f.extend(f"h_part={p}" for p in parts)
    f.extend(f"h_b={vocab.get(p, 'U')}" for p in parts[:3])
    p = toks[c.i - 1][0] if c.i > 0 else ""
    f.append(f"h_prev={p.lower() if p[:1] not in '@#' else p[:1]}")
    x = toks[c.j][0] if c.j < len(toks) else ""
    f.append(f"h_next={x.lower() if x[:1] not in '@#' else x[:1]}")
    return f


def score(m: Model, feats: list[str]) -> list[float]:
    """Class probabilities (softmax over :data:`CLASSES`)."""
    z0, z1, z2, z3, z4 = m.bias  # unrolled over the five CLASSES: this runs for every candidate
    weights = m.weights
    for name in feats:
        row = weights.get(name)
        if row is not None:
            z0 += row[0]
            z1 += row[1]
            z2 += row[2]
            z3 += row[3]
            z4 += row[4]
    z = (z0, z1, z2, z3, z4)
    top = max(z)
    e = [math.exp(v - top) for v in z]
    s = sum(e)
    return [v / s for v in e]


def tag(text: str, toks: list[Token], taken: list[bool]) -> list[tuple[Candidate, str, float]]:
    """Typed candidates: (candidate, entity type, probability) for those the model calls an entity."""
    cands = candidates(text, toks, taken)
    if not cands:
        return []
    m = model()
    loud = shouting(text, toks)
    out = []
    for c in cands:
        probs = score(m, features(text, toks, c, m.vocab, loud))
        best = max(range(1, len(CLASSES)), key=probs.__getitem__)
        if probs[0] <= m.threshold:
            out.append((c, CLASSES[best], probs[best]))
    return out
