"""A source is one declaration (``SPEC`` in ``pulse.sources.<source>``): every other list of sources is derived
from the specs or agrees with them, checked here in one place.

Derived (nothing to check but that the derivation holds): the registry, the ingest DAGs (``pulse.ingest_dag``),
``dag_defaults.SOURCE_TAGS``/``POOLS``, the default budgets, the stack's and the tests' connections.
Checked against the specs: ``airflow_settings.yaml`` (the Astro user's file, rewritten by
``python -m pulse.sources.settings``), ``include/quality/checks.yaml``, both sources files, the hooks.
"""

from __future__ import annotations

import ast
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from pulse.sources.spec import SOURCES, Freshness, SourceSpec, all_sources, get_source

ROOT = Path(__file__).resolve().parents[2]
SPECS = all_sources()
NAMES = [spec.name for spec in SPECS]
SOURCES_FILES = [ROOT / "include" / "sources.yaml", ROOT / "tests" / "data" / "sources.yaml"]
#: Sections of a sources file that are not a source.
NOT_SOURCES = {"budgets", "circuit_breaker"}


def _settings() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())["airflow"]


# ------------------------------------------------------------------------------------------------ registry


def test_every_source_module_declares_its_spec() -> None:
    modules = sorted(
        p.stem
        for p in (ROOT / "plugins" / "pulse" / "sources").glob("*.py")
        if p.stem not in {"__init__", "base", "spec", "settings"}
    )
    assert modules == NAMES
    assert NAMES == ["alphavantage", "github", "newsapi", "openweathermap", "reddit", "x"]
    assert sorted(SOURCES) == NAMES
    for name in NAMES:
        assert SOURCES[name] is get_source(name)
    with pytest.raises(KeyError, match="unknown source 'twitter'; known: alphavantage, github"):
        get_source("twitter")


def test_the_old_registry_names_still_work() -> None:
    from pulse.sources import base

    assert base.SOURCES is SOURCES and base.get_source is get_source and base.SourceSpec is SourceSpec


@pytest.mark.parametrize("spec", SPECS, ids=NAMES)
def test_spec_names_a_hook_and_parser_that_fit(spec: SourceSpec) -> None:
    hook = spec.hook_class()
    assert hook.default_conn_name == spec.default_conn_id
    assert hook.conn_type == spec.conn_type, f"{spec.name}: the hook registers {hook.conn_type!r}"
    parser = spec.parser_module()
    for function in ("parse_config", "plan_streams", "parse_page"):
        assert callable(getattr(parser, function, None)), f"{spec.parser}.{function}"
    assert parser.SPEC is spec
    assert spec.default_window in (timedelta(hours=1), timedelta(days=1))
    assert spec.freshness.table in spec.tables and spec.freshness.severity in ("warning", "critical")


def test_a_spec_checks_itself() -> None:
    base = {
        "name": "demo",
        "title": "Demo API",
        "hook": "demo:Hook",
        "schedule": "0 * * * *",
        "default_window": timedelta(hours=1),
        "pool_slots": 1,
        "budgets": ((60, 10),),
        "budget_note": "10 calls/min",
        "tables": ("core.documents",),
        "freshness": Freshness("core.documents", 60),
    }
    spec = SourceSpec(**base)
    assert hash(spec) == hash(SourceSpec(**base)) and spec == SourceSpec(**base)
    assert (spec.parser, spec.default_conn_id, spec.conn_type, spec.pool) == (
        "pulse.sources.demo",
        "demo_default",
        "pulse_demo",
        "demo_api",
    )
    assert spec.pool_description == "Demo API (10 calls/min)" and spec.outlet_names == ("core_documents",)
    with pytest.raises(ValueError, match="cron"):
        SourceSpec(**{**base, "schedule": "hourly"})
    with pytest.raises(ValueError, match="budgets"):
        SourceSpec(**{**base, "budgets": ((60, 0),)})
    with pytest.raises(ValueError, match="not a table it writes"):
        SourceSpec(**{**base, "freshness": Freshness("core.market_bars", 60)})


# ------------------------------------------------------------------------------------------------ the DAGs


def test_each_spec_has_its_ingest_dag_and_nothing_else_ingests(dagbag: Any) -> None:
    ingest = {d for d in dagbag.dag_ids if d.startswith("ingest_")}
    assert ingest == {spec.dag_id for spec in SPECS}


@pytest.mark.parametrize("spec", SPECS, ids=NAMES)
def test_ingest_dag_is_what_the_spec_says(dagbag: Any, spec: SourceSpec) -> None:
    dag = dagbag.dags[spec.dag_id]
    assert (dag.timetable.expression, dag.timetable.interval, str(dag.timetable.timezone)) == (
        spec.schedule,
        spec.default_window,
        "UTC",
    ), f"{spec.dag_id} runs {dag.timetable.expression!r} every {dag.timetable.interval}"
    assert dag.start_date == spec.start_date and dag.catchup is False
    assert dag.max_active_runs == spec.max_active_runs
    assert dag.tags == set(spec.tags)
    [alert] = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
    assert alert.interval == spec.deadline
    assert [t.task_id for t in dag.topological_sort()] == ["warehouse_ready", "extract", "load"]
    extract, load = dag.get_task("extract"), dag.get_task("load")
    assert extract.source == load.source == spec.name
    assert extract.pool == spec.pool and load.pool == "default_pool"
    assert [a.name for a in load.outlets] == list(spec.outlet_names) and not extract.outlets
    assert "**Triage**" in dag.doc_md and "**Backfill**" in dag.doc_md


@pytest.mark.parametrize("spec", SPECS, ids=NAMES)
def test_dag_file_is_its_docs_and_the_spec(spec: SourceSpec) -> None:
    """The file states nothing the spec holds: its docstring, then one call of the factory."""
    from airflow.utils.file import might_contain_dag_via_default_heuristic

    path = ROOT / "dags" / f"{spec.dag_id}.py"
    assert might_contain_dag_via_default_heuristic(str(path)), "safe-mode discovery would skip the file"
    tree = ast.parse(path.read_text())
    assert ast.get_docstring(tree)
    code = [node for node in tree.body[1:] if not isinstance(node, ast.Import | ast.ImportFrom)]
    assert len(code) == 1 and "ingest_dag(SPEC" in ast.unparse(code[0]), ast.unparse(code[0])
    imports = {(n.module, a.name) for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
    assert (f"pulse.sources.{spec.name}", "SPEC") in imports


def test_tags_and_pools_come_from_the_specs() -> None:
    from pulse.dag_defaults import POOLS, SOURCE_TAGS, TAGS

    assert {tag for spec in SPECS for tag in spec.tags} <= TAGS
    assert set(NAMES) <= SOURCE_TAGS
    assert {spec.pool for spec in SPECS} | {"default_pool"} == POOLS


# ------------------------------------------------------------------------------------------------ budgets


def test_default_budgets_are_the_specs() -> None:
    from pulse.budget import DEFAULT_BUDGETS, budgets_from_config, default_budgets

    assert default_budgets() == {spec.name: spec.budgets for spec in SPECS} == DEFAULT_BUDGETS
    assert budgets_from_config({}) == default_budgets()


# ------------------------------------------------------------------------------------------------ sources files


@pytest.mark.parametrize("path", SOURCES_FILES, ids=lambda p: p.parent.name)
def test_sources_files_configure_every_source_and_no_other(path: Path) -> None:
    from pulse.config import load_source_config

    data = yaml.safe_load(path.read_text())
    assert set(data) - NOT_SOURCES == set(NAMES)
    for spec in SPECS:
        assert "schedule" not in data[spec.name], f"{path.name}: {spec.name}'s schedule is in its spec"
        config = load_source_config(spec.name, path)
        assert config.conn_id == spec.default_conn_id


def test_a_schedule_in_the_sources_file_is_refused(tmp_path: Path) -> None:
    from pulse.config import ConfigError, load_source_config

    path = tmp_path / "sources.yaml"
    path.write_text("x: {conn_id: x_default, queries: [q], schedule: {cron: '0 * * * *', window: 1h}}\n")
    with pytest.raises(ConfigError, match=r"x\.schedule: the schedule is declared by the source's spec"):
        load_source_config("x", path)


# ------------------------------------------------------------------------------------------------ quality checks


def test_every_source_has_its_freshness_check_and_checks_name_known_sources() -> None:
    from pulse.quality.checks import load_checks

    checks = load_checks()
    unknown = {c["name"]: c["source"] for c in checks if c.get("source") and c["source"] not in NAMES}
    assert not unknown, f"checks of unknown sources: {unknown}"
    for spec in SPECS:
        fresh = [c for c in checks if c["type"] == "freshness" and c.get("source") == spec.name]
        assert [(c["table"], c["max_age_minutes"], c.get("severity", "warning")) for c in fresh] == [
            (spec.freshness.table, spec.freshness.max_age_minutes, spec.freshness.severity)
        ], f"{spec.name}: include/quality/checks.yaml needs the freshness check its spec declares"


# ------------------------------------------------------------------------------------------------ connections, pools


def test_airflow_settings_hold_what_the_specs_say() -> None:
    from pulse.sources.settings import connection_entry, pool_entry, render

    text = (ROOT / "airflow_settings.yaml").read_text()
    assert render(text) == text, "airflow_settings.yaml is out of date: run `make settings`"
    settings = _settings()
    conns = {c["conn_id"]: c for c in settings["connections"]}
    pools = {p["pool_name"]: p for p in settings["pools"]}
    for spec in SPECS:
        assert conns[spec.default_conn_id] == connection_entry(spec)
        assert conns[spec.default_conn_id]["conn_type"] == spec.conn_type
        assert pools[spec.pool] == {
            "pool_name": spec.pool,
            "pool_slot": spec.pool_slots,
            "pool_description": spec.pool_description,
        }
        assert pools[spec.pool] == pool_entry(spec)


def test_settings_generator_keeps_the_users_entries_and_adds_a_new_source() -> None:
    from pulse.sources.settings import render

    text = textwrap.dedent(
        """\
        # the user's comment
        airflow:
          connections:
            - conn_id: warehouse_default
              conn_type: postgres
            - conn_id: reddit_default
              conn_type: generic
              conn_host: stale
            - conn_id: mine
              conn_type: http
          pools:
            - pool_name: my_pool
              pool_slot: 3
          variables: []
        """
    )
    toy = SourceSpec(
        name="toy",
        title="Toy API",
        hook="t:H",
        schedule="0 * * * *",
        default_window=timedelta(hours=1),
        pool_slots=1,
        budgets=((60, 1),),
        budget_note="1 call/min",
        tables=("core.documents",),
        freshness=Freshness("core.documents", 60),
        conn_defaults={"host": "https://toy.example", "extra": {"user_agent": "a b"}},
    )
    out = render(text, (get_source("reddit"), toy))
    assert out.startswith("# the user's comment\n")
    data = yaml.safe_load(out)["airflow"]
    assert [c["conn_id"] for c in data["connections"]] == [
        "warehouse_default",
        "reddit_default",
        "toy_default",
        "mine",
    ]
    assert data["connections"][1]["conn_type"] == "pulse_reddit" and data["connections"][1]["conn_host"] == ""
    assert data["connections"][2] == {
        "conn_id": "toy_default",
        "conn_type": "pulse_toy",
        "conn_host": "https://toy.example",
        "conn_password": "",
        "conn_extra": {"user_agent": "a b"},
    }
    assert data["connections"][3] == {"conn_id": "mine", "conn_type": "http"}
    assert data["pools"] == [
        {"pool_name": "my_pool", "pool_slot": 3},
        {
            "pool_name": "reddit_api",
            "pool_slot": 2,
            "pool_description": get_source("reddit").pool_description,
        },
        {"pool_name": "toy_api", "pool_slot": 1, "pool_description": "Toy API (1 call/min)"},
    ]
    assert data["variables"] == []
    assert render(out, (get_source("reddit"), toy)) == out


def test_stack_and_test_connections_come_from_the_specs() -> None:
    from dev import stack

    local = stack.connections(stack.load_secrets())
    for spec in SPECS:
        conn = local[spec.default_conn_id]
        assert conn["conn_type"] == spec.conn_type and conn["host"].startswith("http://127.0.0.1:")
        assert {k: v for k, v in conn.items() if k not in ("conn_type", "host")} == dict(spec.local_conn)
    assert set(local) - {spec.default_conn_id for spec in SPECS} == {
        c["conn_id"] for c in _settings()["connections"] if not c["conn_id"].endswith("_default")
    } | {"warehouse_default"}


def test_provider_registers_each_sources_connection_type() -> None:
    from pulse.provider import CONNECTION_TYPES

    registered = {entry["connection-type"]: entry["hook-class-name"] for entry in CONNECTION_TYPES}
    assert registered == {spec.conn_type: spec.hook.replace(":", ".") for spec in SPECS}
