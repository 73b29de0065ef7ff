"""The declarative source configuration (``include/sources.yaml``), read at task run time and validated."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "include" / "sources.yaml"
_NAME = re.compile(r"^[A-Za-z0-9_]{2,50}$")


class ConfigError(ValueError):
    """The sources file has a bad entry; the message names it."""


@dataclass(frozen=True)
class RedditConfig:
    conn_id: str
    subreddits: tuple[str, ...]
    listings: tuple[str, ...]
    page_size: int


def sources_file() -> Path:
    return Path(os.environ.get("PULSE_SOURCES_FILE", DEFAULT_FILE))


def _load(path: Path | None = None) -> dict[str, Any]:
    import yaml

    path = path or sources_file()
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of source name to settings")
    return data


def _reddit(entry: Any, where: str) -> RedditConfig:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping")
    unknown = set(entry) - {"conn_id", "subreddits", "listings", "page_size"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    subs = entry.get("subreddits")
    if not isinstance(subs, list) or not subs:
        raise ConfigError(f"{where}.subreddits: expected a non-empty list")
    for i, sub in enumerate(subs):
        if not isinstance(sub, str) or not _NAME.match(sub):
            raise ConfigError(f"{where}.subreddits[{i}]: {sub!r} is not a subreddit name")
    listings = entry.get("listings", ["new"])
    for i, listing in enumerate(listings):
        if listing not in ("new", "comments"):
            raise ConfigError(f"{where}.listings[{i}]: {listing!r} is not one of new, comments")
    page_size = entry.get("page_size", 100)
    if not isinstance(page_size, int) or not 1 <= page_size <= 100:
        raise ConfigError(f"{where}.page_size: {page_size!r} must be an integer from 1 to 100")
    return RedditConfig(
        conn_id=str(entry.get("conn_id", "reddit_default")),
        subreddits=tuple(subs),
        listings=tuple(listings),
        page_size=page_size,
    )


_PARSERS = {"reddit": _reddit}


def load_source_config(source: str, path: Path | None = None) -> Any:
    """Return the validated settings of ``source`` from the sources file."""
    data = _load(path)
    if source not in data:
        raise ConfigError(f"{path or sources_file()}: no entry for source {source!r}")
    return _PARSERS[source](data[source], f"{source}")
