"""The declarative source configuration (``include/sources.yaml``), read at task run time and validated.

Each source's parser module defines ``parse_config(entry, where)`` returning its typed settings; the helpers
here give every source the same error messages, which name the bad entry (``x.queries[2]: ...``).
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
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
    """Return the validated settings of ``source`` from the sources file."""
    from pulse.sources.base import get_source

    data = load_all(path)
    if source not in data:
        raise ConfigError(f"{path or sources_file()}: no entry for source {source!r}")
    entry = data[source]
    if isinstance(entry, dict):
        entry = {k: v for k, v in entry.items() if k != "schedule"}  # for the DAG file, see schedule_of()
    return get_source(source).parser_module().parse_config(entry, source)


_DURATION = re.compile(r"^(\d+)([mhd])$")


def schedule_of(source: str, path: Path | None = None) -> tuple[str, timedelta]:
    """The ``schedule: {cron, window}`` a source declares (the DAG file must state the same)."""
    entry = load_all(path).get(source) or {}
    sched = entry.get("schedule") if isinstance(entry, dict) else None
    where = f"{source}.schedule"
    if not isinstance(sched, dict) or set(sched) != {"cron", "window"}:
        raise ConfigError(f"{where}: expected {{cron: '<cron>', window: <N>m|h|d}}")
    match = _DURATION.match(str(sched["window"]))
    if not isinstance(sched["cron"], str) or len(sched["cron"].split()) != 5 or not match:
        raise ConfigError(f"{where}: bad cron {sched['cron']!r} or window {sched['window']!r}")
    unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return sched["cron"], timedelta(**{unit: int(match.group(1))})


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
