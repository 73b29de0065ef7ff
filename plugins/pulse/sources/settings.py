"""The sources' part of ``airflow_settings.yaml`` (Astro), written from the source specs.

``airflow_settings.yaml`` stays the Astro user's file: its comments and every entry that is not a source's
(warehouse, Slack, pseudonym key, webhook connections; variables) are kept as they are. Only each source's
connection (``<source>_default``: type, host, login, empty password, extras from ``SourceSpec.conn_defaults``)
and pool (``<source>_api``: slots, description) are rewritten in place; a new source's entries are added after
the last source entry of their list. ``tests/dags/test_sources_declared.py`` fails when the file and the specs
disagree.

    python -m pulse.sources.settings            # rewrite airflow_settings.yaml (make settings)
    python -m pulse.sources.settings --check    # exit 1 and show the difference when it is out of date
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path
from typing import Any

from pulse.sources.spec import SourceSpec, all_sources

SETTINGS_FILE = Path(__file__).resolve().parents[3] / "airflow_settings.yaml"

_PLAIN = re.compile(r"^[A-Za-z0-9_./(][A-Za-z0-9_./:,() \-]*$")


def _scalar(value: Any) -> str:
    """A YAML scalar: plain when that reads back as the same string, JSON-quoted otherwise."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    plain = _PLAIN.match(text) and ": " not in text and not text.endswith(":")
    if plain and text.lower() not in {"true", "false", "null", "yes", "no", "on", "off", "~"}:
        try:
            float(text)
        except ValueError:
            return text
    return json.dumps(text)


def connection_entry(spec: SourceSpec) -> dict[str, Any]:
    """The source's connection as airflow_settings.yaml declares it (no secret)."""
    fields = dict(spec.conn_defaults)
    entry: dict[str, Any] = {"conn_id": spec.default_conn_id, "conn_type": spec.conn_type}
    entry["conn_host"] = fields.pop("host", "")
    if "login" in fields:
        entry["conn_login"] = fields.pop("login")
    entry["conn_password"] = ""
    extra = fields.pop("extra", None)
    if extra:
        entry["conn_extra"] = dict(extra)
    for key, value in fields.items():  # schema, port
        entry[f"conn_{key}"] = value
    return entry


def pool_entry(spec: SourceSpec) -> dict[str, Any]:
    return {"pool_name": spec.pool, "pool_slot": spec.pool_slots, "pool_description": spec.pool_description}


def _block(entry: dict[str, Any]) -> list[str]:
    lines = []
    for i, (key, value) in enumerate(entry.items()):
        lead = "    - " if i == 0 else "      "
        if isinstance(value, dict):
            lines.append(f"{lead}{key}:")
            lines += [
                f"        {k}: {json.dumps(v) if isinstance(v, str) else _scalar(v)}"
                for k, v in value.items()
            ]
        else:
            lines.append(f"{lead}{key}: {_scalar(value)}")
    return lines


def _sections(lines: list[str]) -> dict[str, tuple[int, int]]:
    """``{section: (first item line, end)}`` of the two-space sections under ``airflow:``."""
    heads = [(i, m.group(1)) for i, line in enumerate(lines) if (m := re.match(r"^  (\w+):", line))]
    out = {}
    for n, (i, name) in enumerate(heads):
        end = heads[n + 1][0] if n + 1 < len(heads) else len(lines)
        while end > i + 1 and not lines[end - 1].strip():
            end -= 1
        out[name] = (i + 1, end)
    return out


def _replace_items(lines: list[str], section: str, key: str, entries: list[dict[str, Any]]) -> list[str]:
    start, end = _sections(lines)[section]
    starts = [i for i in range(start, end) if lines[i].startswith("    - ")]
    blocks = [(s, (starts[n + 1] if n + 1 < len(starts) else end)) for n, s in enumerate(starts)]
    wanted = {entry[key]: _block(entry) for entry in entries}
    out = lines[:start]
    last_source = None
    for s, e in blocks:
        match = re.match(rf"^    - {key}: (\S+)", lines[s])
        name = match.group(1) if match else None
        if name in wanted:
            out += wanted.pop(name)
            last_source = len(out)
        else:
            out += lines[s:e]
    if wanted:  # new sources: after the last source entry (or at the end of the list)
        at = last_source if last_source is not None else len(out)
        out[at:at] = [line for block in wanted.values() for line in block]
    if not blocks and not wanted and start < end:
        out += lines[start:end]
    return out + lines[end:]


def render(text: str, specs: tuple[SourceSpec, ...] | None = None) -> str:
    """``text`` (an airflow_settings.yaml) with the sources' connections and pools written from ``specs``."""
    specs = all_sources() if specs is None else specs
    lines = text.splitlines()
    lines = _replace_items(lines, "connections", "conn_id", [connection_entry(s) for s in specs])
    lines = _replace_items(lines, "pools", "pool_name", [pool_entry(s) for s in specs])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only say whether the file is up to date")
    parser.add_argument("--file", type=Path, default=SETTINGS_FILE)
    args = parser.parse_args(argv)
    old = args.file.read_text()
    new = render(old)
    if new == old:
        print(f"{args.file}: the sources' connections and pools match their specs")
        return 0
    if args.check:
        sys.stdout.writelines(
            difflib.unified_diff(old.splitlines(True), new.splitlines(True), "file", "specs")
        )
        print(f"{args.file} is out of date: run python -m pulse.sources.settings")
        return 1
    args.file.write_text(new)
    print(f"{args.file}: rewrote the sources' connections and pools from their specs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
