"""One declaration per source (:class:`SourceSpec`) and the registry that finds them.

Each parser module ``pulse.sources.<name>`` ends with ``SPEC = SourceSpec(...)``: hook, parser, connection,
schedule and window, pool, budgets, the tables it writes and how fresh they must stay. Everything else that
lists sources is derived from these specs (the registry, DAG tags and pools, default budgets, the stack's and
the tests' connections, the ingest DAGs themselves, ``python -m pulse.sources.settings``) or checked against
them by ``tests/dags/test_sources_declared.py`` (``airflow_settings.yaml``, ``include/quality/checks.yaml``).
docs/adding-a-source.md walks through a new source.

This module is imported when DAG files are parsed: standard library only, and the hook and parser are named
by dotted path and imported lazily (a hook imports its parser, and hook clients are heavy).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

__all__ = ["SOURCES", "Freshness", "SourceSpec", "all_sources", "get_source", "register"]

#: Modules of the ``pulse.sources`` package that are not sources.
_NOT_SOURCES = frozenset({"base", "spec", "settings"})


@dataclass(frozen=True)
class Freshness:
    """The freshness check a source needs (``include/quality/checks.yaml``, type ``freshness``)."""

    table: str  # "schema.table" holding the source's rows, judged by ``loaded_at``
    max_age_minutes: int
    severity: str = "warning"  # warning | critical


@dataclass(frozen=True)
class SourceSpec:
    """Everything about one source; the generic operators, the DAG factory and the settings read it.

    Fields left empty get the house conventions (see ``__post_init__``): parser ``pulse.sources.<name>``,
    connection ``<name>_default`` of type ``pulse_<name>``, pool ``<name>_api``.
    """

    name: str
    #: Human name of the API, as the pool's description and the docs show it ("Reddit API").
    title: str
    #: ``"module:Class"`` of the hook, imported only by :meth:`hook_class` (at task run time).
    hook: str
    #: When the ingest DAG runs: a cron expression read in UTC, and the window each run loads (ending at its tick).
    schedule: str
    default_window: timedelta
    #: Calls in flight (the pool) and per period (``((period_s, calls), ...)`` in ``ops.api_budget``).
    pool_slots: int
    budgets: tuple[tuple[int, int], ...]
    #: The plan behind the budgets, in words ("100 requests/day on the Developer plan").
    budget_note: str
    #: The core tables the load writes ("core.documents"); the load's outlets are their assets.
    tables: tuple[str, ...]
    freshness: Freshness
    #: The Astro user's connection without its secrets (``host``, ``login``, ``extra``): airflow_settings.yaml.
    conn_defaults: Mapping[str, Any] = field(default_factory=dict, hash=False)
    #: The local stack's connection fields besides host and type: the simulator's credentials.
    local_conn: Mapping[str, Any] = field(default_factory=dict, hash=False)
    max_active_runs: int = 2
    #: The run's Deadline Alert: done within this long after it was queued.
    deadline: timedelta = timedelta(minutes=45)
    start_date: datetime = datetime(2026, 11, 1, tzinfo=UTC)
    extra_tags: tuple[str, ...] = ()
    #: The source's settings when the sources file has no entry for it (a source declared outside
    #: ``include/sources.yaml``, such as the toy source in the tests); ``None``: the entry is required.
    default_config: Mapping[str, Any] | None = field(default=None, hash=False)
    parser: str = ""  # module with parse_config(entry, where), plan_streams(config, window), parse_page(...)
    default_conn_id: str = ""
    conn_type: str = ""
    pool: str = ""

    def __post_init__(self) -> None:
        defaults = {
            "parser": f"pulse.sources.{self.name}",
            "default_conn_id": f"{self.name}_default",
            "conn_type": f"pulse_{self.name}",
            "pool": f"{self.name}_api",
        }
        for attr, value in defaults.items():
            if not getattr(self, attr):
                object.__setattr__(self, attr, value)
        for attr in ("conn_defaults", "local_conn"):
            object.__setattr__(self, attr, MappingProxyType(dict(getattr(self, attr))))
        if len(self.schedule.split()) != 5:
            raise ValueError(f"{self.name}: schedule {self.schedule!r} is not a five-field cron expression")
        if not self.budgets or not all(p > 0 and c > 0 for p, c in self.budgets):
            raise ValueError(f"{self.name}: budgets must be ((period_s, calls), ...) of positive integers")
        if self.freshness.table not in self.tables:
            raise ValueError(f"{self.name}: freshness judges {self.freshness.table}, not a table it writes")

    # -- what the operators use (imported lazily, never at DAG parse time)

    def hook_class(self) -> type:
        module, _, cls = self.hook.partition(":")
        return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]

    def parser_module(self) -> Any:
        return importlib.import_module(self.parser)

    # -- derived

    @property
    def dag_id(self) -> str:
        return f"ingest_{self.name}"

    @property
    def tags(self) -> tuple[str, ...]:
        return ("ingest", self.name, *self.extra_tags)

    @property
    def pool_description(self) -> str:
        return f"{self.title} ({self.budget_note})"

    @property
    def outlet_names(self) -> tuple[str, ...]:
        """Names of the assets the load updates (``pulse.assets``): ``core.documents`` -> ``core_documents``."""
        return tuple(table.replace(".", "_") for table in self.tables)


# ------------------------------------------------------------------------------------------------
# registry
# ------------------------------------------------------------------------------------------------

_REGISTERED: dict[str, SourceSpec] = {}
_DISCOVERED: dict[str, SourceSpec] | None = None


def _discover() -> dict[str, SourceSpec]:
    """The ``SPEC`` of every module of the ``pulse.sources`` package (imported once, on first use)."""
    global _DISCOVERED
    if _DISCOVERED is None:
        import pulse.sources as package

        found: dict[str, SourceSpec] = {}
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            if info.name in _NOT_SOURCES or info.name.startswith("_"):
                continue
            spec = getattr(importlib.import_module(f"{package.__name__}.{info.name}"), "SPEC", None)
            if isinstance(spec, SourceSpec):
                if spec.name != info.name:
                    raise ValueError(f"pulse.sources.{info.name} declares source {spec.name!r}")
                found[spec.name] = spec
        _DISCOVERED = found
    return _DISCOVERED


def register(spec: SourceSpec) -> SourceSpec:
    """Add a source declared outside the ``pulse.sources`` package (returns it, for ``SPEC = register(...)``)."""
    known = _discover().get(spec.name) or _REGISTERED.get(spec.name)
    if known is not None and known != spec:
        raise ValueError(f"source {spec.name!r} is already declared differently")
    _REGISTERED[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Forget a source added with :func:`register` (tests)."""
    _REGISTERED.pop(name, None)


def all_sources() -> tuple[SourceSpec, ...]:
    """Every declared source, by name."""
    merged = {**_discover(), **_REGISTERED}
    return tuple(merged[name] for name in sorted(merged))


def get_source(name: str) -> SourceSpec:
    spec = _REGISTERED.get(name) or _discover().get(name)
    if spec is None:
        known = ", ".join(s.name for s in all_sources())
        raise KeyError(f"unknown source {name!r}; known: {known}")
    return spec


class _Sources(Mapping[str, SourceSpec]):
    """Read-only view of the registry by name (``SOURCES["reddit"]``, ``sorted(SOURCES)``), always current."""

    def __getitem__(self, name: str) -> SourceSpec:
        try:
            return get_source(name)
        except KeyError:
            raise KeyError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter([s.name for s in all_sources()])

    def __len__(self) -> int:
        return len(all_sources())

    def __repr__(self) -> str:
        return f"SOURCES({', '.join(self)})"


#: Every source by name (the specs of the ``pulse.sources`` modules plus any :func:`register`-ed).
SOURCES: Mapping[str, SourceSpec] = _Sources()
