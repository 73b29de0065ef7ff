"""The JSON shape checker of the contract tests: does a simulated response have the keys and JSON types of the real
recorded ones?

:func:`shape_of` learns, from one or more real bodies, which types and object keys occur at each position (and how
often); :func:`conformance_problems` lists what a simulated body lacks: keys present in every real instance at that
position, and types the real data never shows there (null is compatible with anything; int and float are one
"number"; bool is not a number). :func:`missing_types` goes the other way: types the real data shows that the
simulator never produces.

What differs between APIs is said by :class:`Rules`, given to both functions:

- ``optional(path, key)``: a key the real data always shows may still be absent (a conditional field);
- ``unions``: a key documented as a union of types (Reddit's ``edited``: false or a timestamp) accepts the other
  branch too, whichever one the recording happens to show;
- ``kind_of(value)``: the "things" of an API that wraps items as ``{"kind": ..., "data": ...}`` (Reddit). A
  thing found as a list element (or as the body itself) is learned into one shape per kind, merged wherever it
  sits; a simulated thing is checked against its kind's shape, wherever it sits (a kind the real data never
  shows is a problem);
- ``keyed(path)``: whether an object at ``path`` is compared key by key; otherwise only its type is checked
  (Reddit: the body, each thing and each thing's ``data`` are; deeper objects such as ``gildings`` hold values).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _never(path: str, key: str) -> bool:
    return False


def _no_kind(value: Any) -> str | None:
    return None


def _always(path: str) -> bool:
    return True


@dataclass(frozen=True)
class Rules:
    """How one API's recordings are read; the defaults compare every object key by key, at every depth."""

    optional: Callable[[str, str], bool] = _never
    unions: Mapping[str, frozenset[str]] = field(default_factory=dict)
    kind_of: Callable[[Any], str | None] = _no_kind
    keyed: Callable[[str], bool] = _always


PLAIN = Rules()


@dataclass
class Shape:
    """What the real data shows at one position: types seen, object keys (and how often), list elements.

    ``things`` (on the shape :func:`shape_of` returns) holds the merged shape of each thing kind, see :class:`Rules`.
    """

    types: set[str] = field(default_factory=set)
    objects: int = 0
    key_counts: dict[str, int] = field(default_factory=dict)
    keys: dict[str, Shape] = field(default_factory=dict)
    elements: Shape | None = None
    things: dict[str, Shape] = field(default_factory=dict, repr=False, compare=False)

    def learn(self, value: Any, rules: Rules = PLAIN, things: dict[str, Shape] | None = None) -> Shape:
        things = self.things if things is None else things
        kind = json_type(value)
        self.types.add(kind)
        if kind == "object":
            self.objects += 1
            for key, sub in value.items():
                self.key_counts[key] = self.key_counts.get(key, 0) + 1
                self.keys.setdefault(key, Shape()).learn(sub, rules, things)
        elif kind == "array":
            for element in value:
                thing = rules.kind_of(element)
                if thing is not None:
                    things.setdefault(thing, Shape()).learn(element, rules, things)
                else:
                    self.elements = (self.elements or Shape()).learn(element, rules, things)
        return self


def shape_of(*values: Any, rules: Rules = PLAIN) -> Shape:
    """The merged shape of ``values`` (a body that is itself a thing is its kind's shape)."""
    things: dict[str, Shape] = {}
    root = Shape()
    kinds = {rules.kind_of(value) for value in values}
    for value in values:
        kind = rules.kind_of(value)
        (root if kind is None else things.setdefault(kind, Shape())).learn(value, rules, things)
    if values and None not in kinds and len(kinds) == 1:
        root = things[kinds.pop()]  # type: ignore[index]
    root.things = things
    return root


def conformance_problems(real: Shape, value: Any, path: str = "$", rules: Rules = PLAIN) -> list[str]:
    """Missing keys and incompatible types of ``value`` against the real shape (sorted, de-duplicated)."""
    problems: set[str] = set()
    _check(real, value, path, None, problems, rules, real.things)
    return sorted(problems)


def _check(
    real: Shape,
    value: Any,
    path: str,
    key: str | None,
    problems: set[str],
    rules: Rules,
    things: dict[str, Shape],
) -> None:
    thing = rules.kind_of(value)
    if thing is not None:
        if thing not in things:
            problems.add(f"{path}: kind {thing!r} not in real data {sorted(things)}")
            return
        real, path = things[thing], f"{path}<{thing}>"
    kind = json_type(value)
    allowed = real.types - {"null"}
    if allowed:
        allowed |= rules.unions.get(key or "", frozenset())
    if kind != "null" and allowed and kind not in allowed:
        problems.add(f"{path}: type {kind}, real data has {sorted(real.types)}")
        return
    if kind == "object" and real.objects and rules.keyed(path):
        for name, sub in real.keys.items():
            if name not in value:
                if real.key_counts[name] == real.objects and not rules.optional(path, name):
                    problems.add(f"{path}.{name}: missing")
                continue
            _check(sub, value[name], f"{path}.{name}", name, problems, rules, things)
    elif kind == "array":
        for element in value:
            if rules.kind_of(element) is not None:
                _check(real, element, f"{path}[*]", None, problems, rules, things)
            elif real.elements is not None:
                _check(real.elements, element, f"{path}[*]", None, problems, rules, things)


def missing_types(real: Shape, sim: Shape, path: str = "$") -> list[str]:
    """Types a real field shows that the simulator never produces there (nulls included)."""
    out = [f"{path}: never {t}" for t in sorted(real.types - sim.types)]
    for name, sub in real.keys.items():
        if name in sim.keys:
            out += missing_types(sub, sim.keys[name], f"{path}.{name}")
    if real.elements is not None and sim.elements is not None:
        out += missing_types(real.elements, sim.elements, f"{path}[*]")
    return out
