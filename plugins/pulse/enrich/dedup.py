"""Duplicates across sources: exact (normalised-text hash, canonical URL) and near-duplicate clusters.

Three kinds of link join two documents; union-find over all of them gives the clusters:

* ``exact_text``: the same :func:`exact_key` (sha256 of :func:`normalize_text`; texts of fewer than
  :data:`MIN_TOKENS` tokens have no key and are never linked by text);
* ``canonical_url``: the same :func:`canonical_url`, taken from the document's ``url`` and from URLs written
  in its text (so a tweet quoting an article's link joins the article); a site's home page never links;
* ``near_duplicate``: Jaccard similarity of the character 5-shingle sets of the normalised texts of at least
  :data:`THRESHOLD`, found without comparing all pairs: MinHash signatures (:data:`NUM_PERM` values) and LSH
  banding (:data:`BANDS` bands of :data:`ROWS` rows) propose candidate pairs, whose exact Jaccard is then
  checked.

MinHash here is one-permutation hashing with optimal densification (Shrivastava, ICML 2017): every shingle is
hashed once (a 64-bit mix of its 5 bytes), the top bits pick one of :data:`NUM_PERM` bins and the low 32 bits
are the value; a bin keeps its minimum; an empty bin borrows the value of the first non-empty bin in a fixed
pseudo-random probe sequence of its own. The probability that two signatures agree at a position is the
Jaccard similarity of the two shingle sets, as with :data:`NUM_PERM` independent permutations, but the cost
is one hash per shingle instead of :data:`NUM_PERM`, all in numpy.

Signatures and band keys depend on :data:`DEDUP_VERSION` (seed, shingle, normalisation, bands): persist the
version beside them and recompute when it changes.
"""

from __future__ import annotations

import hashlib
import re
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import numpy as np

DEDUP_VERSION = "dedup-1"
SHINGLE = 5  #: characters (bytes of the UTF-8 normalised text) per shingle
NUM_PERM = 128  #: signature length (bins); a power of two
BANDS = 32
ROWS = 4  #: BANDS * ROWS == NUM_PERM; LSH S-curve midpoint (1/BANDS)**(1/ROWS) ~ 0.42
THRESHOLD = 0.6  #: minimum exact Jaccard of 5-shingle sets for a near-duplicate link
MIN_TOKENS = 5  #: texts with fewer normalised tokens have no exact key and take no part in text links
MAX_BUCKET_ALL_PAIRS = 32  #: larger LSH buckets are checked as a chain plus a star (keeps it sub-quadratic)
MAX_URLS_PER_TEXT = 5
_PREFILTER_MARGIN = 0.2  #: candidates whose estimated Jaccard is below THRESHOLD minus this are dropped

_SEED = 0x5EED_D3D0_0001
_EMPTY = np.uint32(0xFFFFFFFF)  #: marks an empty bin; real values are capped at 0xFFFFFFFE
_PROBES = 64  #: densification probes per bin, then a circular scan (see _densify)
_M64 = (1 << 64) - 1

EXACT_TEXT = "exact_text"
CANONICAL_URL = "canonical_url"
NEAR_DUPLICATE = "near_duplicate"
_METHOD_PRIORITY = (EXACT_TEXT, CANONICAL_URL, NEAR_DUPLICATE)

assert BANDS * ROWS == NUM_PERM and NUM_PERM & (NUM_PERM - 1) == 0

# --------------------------------------------------------------------------------------------- normalising

_URL_RE = re.compile(r"(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)
_STRIP_RE = re.compile(r"(?:https?://|www\.)\S+|@\w+|[^\w\s]|_")


def normalize_text(text: str | None) -> str:
    """Text for comparing: NFKC, lowercased, URLs and @mentions removed, ``#`` and every other symbol,
    emoji and punctuation replaced by a space, whitespace collapsed to single spaces.

    A hashtag keeps its word (``#Fed`` -> ``fed``).
    """
    if not text:
        return ""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    text = text.lower()
    return " ".join(_STRIP_RE.sub(" ", text).split())


def exact_key(text: str | None) -> str | None:
    """sha256 hex of :func:`normalize_text`, or None when it has fewer than :data:`MIN_TOKENS` tokens."""
    return _exact_key_of_normalized(normalize_text(text))


def _exact_key_of_normalized(norm: str) -> str | None:
    if norm.count(" ") + 1 < MIN_TOKENS:
        return None
    return hashlib.sha256(norm.encode()).hexdigest()


# ------------------------------------------------------------------------------------------------- URLs

_TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gclsrc",
        "msclkid",
        "yclid",
        "twclid",
        "igshid",
        "igsh",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
        "ref",
        "ref_src",
        "ref_url",
        "referrer",
        "cmpid",
        "ocid",
        "smid",
        "sr_share",
        "share",
        "spm",
        "amp",
        "outputtype",
        "__twitter_impression",
        "taid",
        "cid",
        "ito",
    }
)
_TRACKING_PREFIXES = ("utm_", "at_", "pk_", "mtm_", "hsa_", "vero_")
#: www./m./mobile./amp. and reddit's old./new./np. in front of a name that keeps at least one dot
_HOST_PREFIX_RE = re.compile(r"^(?:(?:www\d?|m|mobile|amp|old|new|np)\.)+(?=[^.]+\.[^.]+)")
_HOST_ALIASES = {"twitter.com": "x.com", "nitter.net": "x.com", "youtube-nocookie.com": "youtube.com"}
_PER_HOST_PARAMS = {"x.com": frozenset({"s", "t"}), "youtube.com": frozenset({"feature", "si", "pp"})}


def canonical_url(url: str | None) -> str | None:
    """A canonical form of an http(s) URL, or None when it is not one.

    ``https`` for both schemes; host lowercased, port 80/443, ``www.``/``m.``/``mobile.``/``amp.`` (and
    reddit's ``old.``/``new.``) dropped, ``twitter.com`` -> ``x.com``, ``youtu.be/ID`` ->
    ``youtube.com/watch?v=ID``; path with duplicate and trailing slashes removed and AMP variants folded
    (``/amp/...``, ``.../amp``, ``....amp.html``); tracking parameters (``utm_*``, ``fbclid``, ``gclid``,
    ``ref``, ...) dropped, the others sorted; fragment dropped.
    """
    if not url:
        return None
    url = url.strip().strip("<>\"'")
    if url.lower().startswith("www."):
        url = "http://" + url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    host = _HOST_PREFIX_RE.sub("", parts.hostname.rstrip("."))  # hostname is lowercased already
    host = _HOST_ALIASES.get(host, host)
    path = parts.path or "/"
    if "//" in path:
        path = re.sub(r"/{2,}", "/", path)
    query = [("v", path.strip("/"))] if host == "youtu.be" and len(path) > 1 else []
    if query:
        host, path = "youtube.com", "/watch"
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    if parts.query:
        query += [
            (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k, host)
        ]
    if path.startswith("/amp/"):
        path = path[4:]
    if path.endswith("/amp") or path.endswith("/amp/"):
        path = path.rstrip("/")[: -len("/amp")] or "/"
    if path.endswith(".amp.html"):
        path = path[: -len(".amp.html")] + ".html"
    elif path.endswith(".amp"):
        path = path[: -len(".amp")]
    path = path.rstrip("/")
    q = urlencode(sorted(query))
    return f"https://{netloc}{path}" + (f"?{q}" if q else "")


def _is_tracking(name: str, host: str) -> bool:
    low = name.lower()
    return (
        low in _TRACKING_PARAMS
        or low.startswith(_TRACKING_PREFIXES)
        or low in _PER_HOST_PARAMS.get(host, frozenset())
    )


def _linkable(canon: str) -> bool:
    """A home page (no path, no query) says nothing about the story: it never links documents."""
    rest = canon.split("://", 1)[1]
    return "/" in rest or "?" in rest


def urls_in_text(text: str | None) -> list[str]:
    """The http(s)/www URLs written in a text (at most :data:`MAX_URLS_PER_TEXT`), trailing punctuation cut."""
    if not text or ("://" not in text and "www." not in text.lower()):
        return []
    return [m.rstrip(".,;:!?)]}'\"…") for m in _URL_RE.findall(text)[:MAX_URLS_PER_TEXT]]


# -------------------------------------------------------------------------------------- MinHash and LSH


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, element-wise on uint64 (wrapping arithmetic)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _mix64_int(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


#: Densification probe sequence: bin j, probe t borrows from bin _DONORS[t, j] (fixed by the seed).
_DONORS = np.array(
    [
        [_mix64_int(_SEED ^ (t * NUM_PERM + j + 1)) % NUM_PERM for j in range(NUM_PERM)]
        for t in range(_PROBES)
    ],
    dtype=np.intp,
)
_BAND_SEEDS = np.array([_mix64_int(_SEED + 7919 * (b + 1)) for b in range(BANDS)], dtype=np.uint64)


_CHUNK_BYTES = 1 << 20  #: texts are hashed in chunks of about this many bytes (keeps arrays in cache)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)


def _shingle_hashes(encoded: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(doc index, 64-bit hash) of every 5-byte window inside each of the byte strings."""
    lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
    counts = np.maximum(lengths - (SHINGLE - 1), 0)
    if not counts.any():
        return np.empty(0, np.int32), np.empty(0, np.uint64)
    raw = np.frombuffer(b"".join(encoded) + bytes(8), dtype=np.uint8)
    size = raw.size - 8
    # Every 8-byte window as a little-endian uint64, keep the low 5 bytes: the shingle itself (no collision).
    x = np.lib.stride_tricks.sliding_window_view(raw, 8)[:size].copy().view(np.uint64).ravel()
    # Windows that start in one text and end in the next are dropped.
    valid = np.ones(size, dtype=bool)
    ends = np.cumsum(lengths)
    for k in range(1, SHINGLE):  # the last 4 starts of each text (all of a text shorter than 5 bytes)
        valid[(ends - k)[lengths >= k]] = False
    x = x[valid]
    doc = np.repeat(np.arange(len(encoded), dtype=np.int32), counts)
    # Mix (in place, two multiply-xorshift rounds of the splitmix64 finaliser).
    x &= np.uint64((1 << (8 * SHINGLE)) - 1)
    x ^= np.uint64(_SEED)
    tmp = np.empty_like(x)
    for c, shift in ((_C1, 30), (_C2, 27)):
        np.right_shift(x, np.uint64(shift), out=tmp)
        x ^= tmp
        x *= c
    np.right_shift(x, np.uint64(31), out=tmp)
    x ^= tmp
    return doc, x


def signatures(texts: Sequence[str | None], *, normalized: bool = False) -> np.ndarray:
    """MinHash signatures, an ``(n, NUM_PERM)`` uint32 array, of the character 5-shingles of the texts.

    Texts are passed through :func:`normalize_text` unless ``normalized``. Shingles are windows of the UTF-8
    bytes. A text with no shingle (fewer than 5 bytes) gets an all-``0xFFFFFFFF`` row, which
    :func:`similarity` scores 0 against anything.
    """
    encoded = [((t or "") if normalized else normalize_text(t)).encode() for t in texts]
    n = len(encoded)
    sig = np.full((n, NUM_PERM), _EMPTY, dtype=np.uint32)
    flat = sig.ravel()
    shift = np.uint64(64 - NUM_PERM.bit_length() + 1)
    lo = 0
    while lo < n:
        hi, size = lo, 0
        while hi < n and (size < _CHUNK_BYTES or hi == lo):
            size += len(encoded[hi])
            hi += 1
        doc, h = _shingle_hashes(encoded[lo:hi])
        if h.size:
            index = (doc.astype(np.int64) + lo) * NUM_PERM + (h >> shift).astype(np.int64)
            values = np.minimum(h.astype(np.uint32), np.uint32(0xFFFFFFFE))  # low 32 bits
            np.minimum.at(flat, index, values)
        lo = hi
    _densify(sig)
    return sig


def _densify(sig: np.ndarray) -> None:
    """Optimal densification in place: an empty bin takes the value of the first non-empty bin of its probe
    sequence. Bins still empty after :data:`_PROBES` probes (only in texts of a handful of shingles) take
    the next non-empty bin to their right, circularly. Rows without any value are left empty."""
    empty = sig == _EMPTY
    nonempty_rows = ~empty.all(axis=1)
    rows, cols = np.nonzero(empty & nonempty_rows[:, None])
    source = sig.copy()
    for t in range(_PROBES):
        if rows.size == 0:
            break
        donor = _DONORS[t, cols]
        found = ~empty[rows, donor]
        sig[rows[found], cols[found]] = source[rows[found], donor[found]]
        rows, cols = rows[~found], cols[~found]
    for offset in range(1, NUM_PERM):
        if rows.size == 0:
            break
        donor = (cols + offset) % NUM_PERM
        found = ~empty[rows, donor]
        sig[rows[found], cols[found]] = source[rows[found], donor[found]]
        rows, cols = rows[~found], cols[~found]


def band_keys(sigs: np.ndarray) -> np.ndarray:
    """LSH band hashes, an ``(n, BANDS)`` int64 array: band b of two signatures is equal (bar 2**-64
    collisions) when their ROWS values of that band are all equal. Keys differ between bands, so all bands
    can share one index column. Texts without shingles (and, better, every text whose :func:`exact_key` is
    None) all share the same keys: leave them out of any index."""
    sigs = np.asarray(sigs, dtype=np.uint32)
    bands = sigs.reshape(sigs.shape[0], BANDS, ROWS).astype(np.uint64)
    h = np.broadcast_to(_BAND_SEEDS, (sigs.shape[0], BANDS)).copy()
    for r in range(ROWS):
        h = _mix64(h ^ bands[:, :, r])
    return h.view(np.int64)


def similarity(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two signatures: the share of equal positions (0 for empty texts)."""
    a = np.asarray(sig_a, dtype=np.uint32)
    b = np.asarray(sig_b, dtype=np.uint32)
    agree = (a == b) & (a != _EMPTY)
    return float(agree.mean()) if agree.size else 0.0


def jaccard(norm_a: str, norm_b: str) -> float:
    """Exact Jaccard similarity of the character 5-shingle sets of two normalised texts."""
    sa, sb = _shingle_set(norm_a), _shingle_set(norm_b)
    if not sa or not sb:
        return 0.0
    inter = len(sa & sb)
    return inter / (len(sa) + len(sb) - inter)


def _shingle_set(norm: str) -> set[bytes]:
    b = norm.encode()
    return {b[i : i + SHINGLE] for i in range(len(b) - SHINGLE + 1)}


def candidate_pairs(keys: np.ndarray) -> np.ndarray:
    """Pairs ``(i, j)``, i < j, of rows sharing at least one band key, as an ``(m, 2)`` int64 array, unique.

    A bucket of up to :data:`MAX_BUCKET_ALL_PAIRS` rows gives all its pairs; a larger one (a template
    posted thousands of times) gives a chain through it plus a star from its first row, so the work stays
    linear in the bucket size.
    """
    n, nb = keys.shape
    flat = keys.ravel()
    order = np.argsort(flat, kind="stable")
    sorted_keys = flat[order]
    rows = order // nb
    boundary = np.flatnonzero(np.diff(sorted_keys) != 0) + 1
    run_start = np.concatenate(([0], boundary))
    run_len = np.diff(np.concatenate((run_start, [flat.size])))
    out: list[np.ndarray] = []
    for size in np.unique(run_len[run_len >= 2]):
        starts = run_start[run_len == size]
        if size <= MAX_BUCKET_ALL_PAIRS:
            i, j = np.triu_indices(int(size), 1)
            out.append(
                np.stack((rows[starts[:, None] + i], rows[starts[:, None] + j]), axis=-1).reshape(-1, 2)
            )
        else:
            for s in starts:
                members = rows[s : s + size]
                out.append(np.stack((members[:-1], members[1:]), axis=1))
                out.append(np.stack((np.full(size - 2, members[0]), members[2:]), axis=1))
    if not out:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.concatenate(out).astype(np.int64)
    pairs.sort(axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    codes = np.unique(pairs[:, 0] * n + pairs[:, 1])
    return np.stack((codes // n, codes % n), axis=1)


# -------------------------------------------------------------------------------------------- clusters


@dataclass
class DedupInput:
    """One document to cluster: its key ``(source, external_id, created_at)``, its text (title + body) and
    URL (the linked article's URL is best; URLs in the text are used as well)."""

    key: tuple[str, str, datetime]
    source: str
    text: str
    url: str | None = None


@dataclass
class Cluster:
    """A duplicate cluster of at least 2 documents. ``members`` holds ``(key, method)`` sorted by key;
    ``method`` is the strongest link kind touching that member: exact_text > canonical_url > near_duplicate.
    ``cluster_id`` is the sha256 of the smallest member key (stable while that member stays in it)."""

    cluster_id: str
    members: list[tuple[tuple[str, str, datetime], str]] = field(default_factory=list)


def _key_str(key: tuple[str, str, datetime]) -> str:
    source, external_id, created_at = key
    ts = created_at.isoformat() if isinstance(created_at, datetime) else str(created_at)
    return f"{source}\x1f{external_id}\x1f{ts}"


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        parent = self.parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            if ra < rb:
                ra, rb = rb, ra
            self.parent[ra] = rb


def find_clusters(
    items: Sequence[DedupInput], *, threshold: float = THRESHOLD, stats: dict[str, Any] | None = None
) -> list[Cluster]:
    """Duplicate clusters (>= 2 members) among ``items``, ordered by cluster id.

    Work is near-linear in the number of items: exact and URL links by hashing, near-duplicates by MinHash
    LSH among one representative per exact-text group, with candidates verified by exact Jaccard >=
    ``threshold``. ``stats``, when given, receives phase timings (seconds) and counts.
    """
    t0 = time.perf_counter()
    n = len(items)
    uf = _UnionFind(n)
    methods: list[set[str]] = [set() for _ in range(n)]

    def link_groups(groups: dict[str, list[int]], method: str) -> int:
        links = 0
        for members in groups.values():
            if len(members) < 2:
                continue
            first = members[0]
            methods[first].add(method)
            for other in members[1:]:
                uf.union(first, other)
                methods[other].add(method)
                links += 1
        return links

    norms = [normalize_text(it.text) for it in items]
    by_text: dict[str, list[int]] = {}
    for i, norm in enumerate(norms):
        key = _exact_key_of_normalized(norm)
        if key is not None:
            by_text.setdefault(key, []).append(i)
    exact_links = link_groups(by_text, EXACT_TEXT)
    t1 = time.perf_counter()

    by_url: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        seen: set[str] = set()
        for raw in ([it.url] if it.url else []) + urls_in_text(it.text):
            canon = canonical_url(raw)
            if canon and canon not in seen and _linkable(canon):
                seen.add(canon)
                by_url.setdefault(canon, []).append(i)
    url_links = link_groups(by_url, CANONICAL_URL)
    t2 = time.perf_counter()

    reps = [members[0] for members in by_text.values()]
    sigs = signatures([norms[i] for i in reps], normalized=True)
    t3 = time.perf_counter()
    pairs = candidate_pairs(band_keys(sigs)) if len(reps) > 1 else np.empty((0, 2), np.int64)
    t4 = time.perf_counter()
    n_candidates = int(pairs.shape[0])
    # Cheap vectorised filter first: the estimate's standard deviation at J = 0.6 is about 0.043, so a pair
    # at the threshold falls more than _PREFILTER_MARGIN below it with probability ~1e-6.
    if pairs.size:
        estimate = (sigs[pairs[:, 0]] == sigs[pairs[:, 1]]).mean(axis=1)
        pairs = pairs[estimate >= threshold - _PREFILTER_MARGIN]
    shingles: dict[int, set[bytes]] = {}
    near_links = 0
    for a, b in pairs.tolist():
        i, j = reps[a], reps[b]
        sa = shingles.get(i) or shingles.setdefault(i, _shingle_set(norms[i]))
        sb = shingles.get(j) or shingles.setdefault(j, _shingle_set(norms[j]))
        inter = len(sa & sb)
        if sa and sb and inter / (len(sa) + len(sb) - inter) >= threshold:
            uf.union(i, j)
            methods[i].add(NEAR_DUPLICATE)
            methods[j].add(NEAR_DUPLICATE)
            near_links += 1
    t5 = time.perf_counter()

    groups: dict[int, list[int]] = {}
    for i in range(n):
        if methods[i]:
            groups.setdefault(uf.find(i), []).append(i)
    clusters = []
    for members in groups.values():
        if len(members) < 2:
            continue
        keyed = sorted(((_key_str(items[i].key), i) for i in members), key=lambda p: p[0])
        cid = hashlib.sha256(keyed[0][0].encode()).hexdigest()
        clusters.append(
            Cluster(
                cluster_id=cid,
                members=[
                    (items[i].key, next(m for m in _METHOD_PRIORITY if m in methods[i])) for _, i in keyed
                ],
            )
        )
    clusters.sort(key=lambda c: c.cluster_id)
    t6 = time.perf_counter()
    if stats is not None:
        stats.update(
            normalize_exact_s=t1 - t0,
            url_s=t2 - t1,
            signatures_s=t3 - t2,
            lsh_s=t4 - t3,
            verify_s=t5 - t4,
            union_s=t6 - t5,
            representatives=len(reps),
            candidates=n_candidates,
            verified=int(pairs.shape[0]),
            exact_links=exact_links,
            url_links=url_links,
            near_links=near_links,
            clusters=len(clusters),
        )
    return clusters
