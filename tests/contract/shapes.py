"""Shape checks shared by the contract tests: does a simulated response have the keys and JSON types of the real
recorded ones?

:func:`shape_of` learns, from one or more real bodies, which types and object keys occur at each position (and how
often); :func:`conformance_problems` lists what a simulated body lacks: keys present in every real instance at that
position, and types the real data never shows there (null is compatible with anything; int and float are one
"number"; bool is not a number).
"""

from __future__ import annotations

from collections.abc import Callable
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


@dataclass
class Shape:
    """What the real data shows at one position: types seen, object keys (and how often), list elements."""

    types: set[str] = field(default_factory=set)
    objects: int = 0
    key_counts: dict[str, int] = field(default_factory=dict)
    keys: dict[str, Shape] = field(default_factory=dict)
    elements: Shape | None = None

    def learn(self, value: Any) -> Shape:
        kind = json_type(value)
        self.types.add(kind)
        if kind == "object":
            self.objects += 1
            for key, sub in value.items():
                self.key_counts[key] = self.key_counts.get(key, 0) + 1
                self.keys.setdefault(key, Shape()).learn(sub)
        elif kind == "array":
            for element in value:
                self.elements = (self.elements or Shape()).learn(element)
        return self


def shape_of(*values: Any) -> Shape:
    shape = Shape()
    for value in values:
        shape.learn(value)
    return shape


#: ``optional(path, key)`` says a key the real data always shows may still be absent (a conditional field).
Optional = Callable[[str, str], bool]


def conformance_problems(
    real: Shape, value: Any, path: str = "$", optional: Optional | None = None
) -> list[str]:
    """Missing keys and incompatible types of ``value`` against the real shape (sorted, de-duplicated)."""
    problems: set[str] = set()
    _check(real, value, path, problems, optional or (lambda p, k: False))
    return sorted(problems)


def _check(real: Shape, value: Any, path: str, problems: set[str], optional: Optional) -> None:
    kind = json_type(value)
    allowed = real.types - {"null"}
    if kind != "null" and allowed and kind not in allowed:
        problems.add(f"{path}: type {kind}, real data has {sorted(real.types)}")
        return
    if kind == "object" and real.objects:
        for name, sub in real.keys.items():
            if name not in value:
                if real.key_counts[name] == real.objects and not optional(path, name):
                    problems.add(f"{path}.{name}: missing")
                continue
            _check(sub, value[name], f"{path}.{name}", problems, optional)
    elif kind == "array" and real.elements is not None:
        for element in value:
            _check(real.elements, element, f"{path}[*]", problems, optional)
