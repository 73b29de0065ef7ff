"""The declarative source configuration (``include/sources.yaml``), read at task run time and validated.

Each source's parser module defines ``parse_config(entry, where)`` returning its typed settings; the helpers
here give every source the same error messages, which name the bad entry (``x.queries[2]: ...``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "include" / "sources.yaml"
NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")


class ConfigError(ValueError):
    """The sources file has a bad entry; the message names it."""


def sources_file() -> Path:
    return Path(os.environ.get("PULSE_SOURCES_FILE", DEFAULT_FILE))


def load_all(path: Path | None = None) -> dict[str, Any]:
    """The raw mapping of the sources file."""
    import yaml

    path = path or sources_file()
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of source name to settings")
    return data


def load_source_config(source: str, path: Path | None = None) -> Any:
    """Return the validated settings of ``source`` from the sources file.

    A source without an entry uses its spec's ``default_config`` when it declares one (a source declared
    outside this repository's sources file); otherwise the entry is required.
    """
    from pulse.sources.base import get_source

    spec = get_source(source)
    data = load_all(path)
    if source in data:
        entry = data[source]
    elif spec.default_config is not None:
        entry = dict(spec.default_config)
    else:
        raise ConfigError(f"{path or sources_file()}: no entry for source {source!r}")
    if isinstance(entry, dict) and "schedule" in entry:
        raise ConfigError(
            f"{source}.schedule: the schedule is declared by the source's spec (pulse.sources.{source}.SPEC), "
            "not in the sources file"
        )
    return spec.parser_module().parse_config(entry, source)


# ---------------------------------------------------------------------------------------------- helpers


def mapping(entry: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    """Check that ``entry`` is a mapping with only ``allowed`` keys."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping")
    unknown = set(entry) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    return entry


def str_list(
    entry: dict[str, Any],
    key: str,
    where: str,
    *,
    pattern: re.Pattern[str] | None = NAME,
    choices: set[str] | None = None,
    required: bool = True,
    default: list[str] | None = None,
) -> tuple[str, ...]:
    """A non-empty list of strings, each matching ``pattern`` or one of ``choices``."""
    value = entry.get(key, default)
    if value is None and not required:
        return ()
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}.{key}: expected a non-empty list")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ConfigError(f"{where}.{key}[{i}]: {item!r} is not text")
        if choices is not None and item not in choices:
            raise ConfigError(f"{where}.{key}[{i}]: {item!r} is not one of {', '.join(sorted(choices))}")
        if choices is None and pattern is not None and not pattern.match(item):
            raise ConfigError(f"{where}.{key}[{i}]: {item!r} is not a valid name")
    return tuple(value)


def int_in(entry: dict[str, Any], key: str, where: str, low: int, high: int, default: int) -> int:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{where}.{key}: {value!r} must be an integer from {low} to {high}")
    return value
