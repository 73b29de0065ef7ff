"""Hand-made hostile items: tamper with the items a source serves, or plant an item into a page.

A per-source fault (cleared by ``reset()``, like ``drift``), set with
``sim.configure({"<source>": {"hostile": {"tamper": [...], "plant": [...]}}})`` or ``POST /_sim/config``:

* ``tamper``: ``{"where": {"<path>": value, ...}, "set": {"<path>": value, ...}, "limit": n}``. Every JSON
  object of a successful response in which each ``where`` path holds its value gets each ``set`` path
  overwritten (paths are dotted: ``data.created_utc``; an object must already hold the parent of a ``set``
  path). ``limit`` (optional) is how many objects in all, over the responses that follow, e.g. 1 for "the first
  post served". ``{"where": {"kind": "t3"}, "set": {"data.created_utc": NaN}, "limit": 1}`` gives the first
  Reddit post a NaN creation time. With ``"per_response": true`` the limit counts per response instead: the
  first post of *every* page is damaged, so a retry meets the same damaged item again, as with a real API.
* ``plant``: ``{"into": "<path of a list>", "item": {...}, "endpoint": "<substring of the path>", "index": i,
  "limit": n}``. Inserts a copy of ``item`` into the list at ``into`` (``""``: the body is the list) of the next
  ``limit`` (default 1) successful responses whose path contains ``endpoint``, at position ``index`` (default
  0), e.g. an article re-delivered with another ``publishedAt`` into ``articles`` of ``/v2/everything``.

Values may be anything JSON can carry, including what only a hostile API sends: NaN and infinities are written
as the bare tokens ``NaN`` / ``Infinity`` (as Python's encoder does), a lone surrogate as its ``\\udXXX`` escape.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

_MISSING = object()


def check(value: Any, where: str) -> dict[str, list[dict[str, Any]]]:
    """Validate a ``hostile`` setting: null (clear), or ``{"tamper": [rule], "plant": [rule]}``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or set(value) - {"tamper", "plant"}:
        raise ValueError(f"{where}: expected {{'tamper': [...], 'plant': [...]}}")
    out: dict[str, list[dict[str, Any]]] = {"tamper": [], "plant": []}
    for i, rule in enumerate(value.get("tamper") or []):
        at = f"{where}.tamper[{i}]"
        if not isinstance(rule, Mapping) or set(rule) - {"where", "set", "limit", "per_response"}:
            raise ValueError(
                f"{at}: expected {{'where': {{path: value}}, 'set': {{path: value}}, 'limit': n}}"
            )
        if not isinstance(rule.get("where", {}), Mapping) or not isinstance(rule.get("set"), Mapping):
            raise ValueError(f"{at}: 'where' and 'set' must be objects of dotted paths")
        limit = _limit(rule, at, None)
        per_response = bool(rule.get("per_response", False))
        if per_response and limit is None:
            raise ValueError(f"{at}: per_response needs a limit")
        out["tamper"].append(
            {
                "where": dict(rule.get("where") or {}),
                "set": dict(rule["set"]),
                "left": limit,
                "per_response": limit if per_response else None,
            }
        )
    for i, rule in enumerate(value.get("plant") or []):
        at = f"{where}.plant[{i}]"
        if not isinstance(rule, Mapping) or set(rule) - {"into", "item", "endpoint", "index", "limit"}:
            raise ValueError(f"{at}: expected {{'into', 'item', 'endpoint', 'index', 'limit'}}")
        if not isinstance(rule.get("into", ""), str) or "item" not in rule:
            raise ValueError(f"{at}: 'into' (a dotted path) and 'item' are required")
        index = rule.get("index", 0)
        if isinstance(index, bool) or not isinstance(index, int):
            raise ValueError(f"{at}.index: expected an integer")
        out["plant"].append(
            {
                "into": rule.get("into", ""),
                "item": copy.deepcopy(rule["item"]),
                "endpoint": str(rule.get("endpoint", "")),
                "index": index,
                "left": _limit(rule, at, 1),
            }
        )
    return out


def _limit(rule: Mapping[str, Any], where: str, default: int | None) -> int | None:
    limit = rule.get("limit", default)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"{where}.limit: expected a positive integer or null")
    return limit


def _get(node: Any, path: str) -> Any:
    for part in path.split(".") if path else []:
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def apply(body: bytes, path: str, rules: Mapping[str, list[dict[str, Any]]] | None) -> bytes:
    """``body`` with the rules applied (consuming their limits); unchanged when nothing applies."""
    if not rules or not (rules.get("tamper") or rules.get("plant")):
        return body
    try:
        doc = json.loads(body)
    except ValueError:
        return body
    changed = False
    for rule in rules.get("plant", []):
        if rule["left"] == 0 or rule["endpoint"] not in path:
            continue
        target = _get(doc, rule["into"])
        if isinstance(target, list):
            target.insert(rule["index"], copy.deepcopy(rule["item"]))
            rule["left"] -= 1
            changed = True
    for rule in rules.get("tamper", []):
        if rule["per_response"] is not None:
            rule["left"] = rule["per_response"]
        changed |= _tamper(doc, rule)
    if not changed:
        return body
    text = json.dumps(doc, ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: sent as its JSON escape, as a broken API would
        return json.dumps(doc).encode("ascii")


def _tamper(node: Any, rule: dict[str, Any]) -> bool:
    """Apply one tamper rule to every matching object under ``node`` (depth first, in document order)."""
    changed = False
    stack = [node]
    while stack:
        current = stack.pop()
        if rule["left"] == 0:
            break
        if isinstance(current, dict):
            if all(_same(_get(current, p), v) for p, v in rule["where"].items()) and all(
                isinstance(_get(current, p.rpartition(".")[0]), dict) for p in rule["set"]
            ):
                for p, v in rule["set"].items():
                    parent = _get(current, p.rpartition(".")[0])
                    parent[p.rpartition(".")[2]] = copy.deepcopy(v)
                changed = True
                if rule["left"] is not None:
                    rule["left"] -= 1
                continue  # never tamper inside what was just tampered
            stack.extend(reversed(list(current.values())))
        elif isinstance(current, list):
            stack.extend(reversed(current))
    return changed
