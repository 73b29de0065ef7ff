"""The Astro project files work without the local stack: checked without Docker, as files.

What ``astro dev start`` reads: ``docker-compose.override.yml`` (merged into the Astro CLI's compose project,
whose services share the network ``airflow``), ``.env`` (from ``.env.example``), ``airflow_settings.yaml``,
``requirements.txt`` and ``packages.txt`` (the image's ONBUILD steps), ``.dockerignore`` and the ``Dockerfile``.
What cannot be checked here (the image builds, the containers start) is listed in docs/deploy.md.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from dev import stack

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.override.yml"
ENV_EXAMPLE = ROOT / ".env.example"
#: The Astro CLI's own services (astro-cli airflow/include/airflow3/composeyml.go.tmpl).
ASTRO_SERVICES = {"postgres", "db-migration", "scheduler", "dag-processor", "api-server", "triggerer"}
#: Where the code that runs in Airflow lives: every environment variable read there is a setting.
CODE_DIRS = ("plugins", "dags", "include")
#: The image's Python (Astro Runtime 3.3's default), which requirements-image.lock is resolved for.
IMAGE_PYTHON = "3.12"
#: Hosts of the simulator's, Slack's and the sources' connections in .env.example.
SIM_URL = "http://simulator:8765"


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _env_lines(text: str | None = None) -> Iterator[tuple[str, str, bool]]:
    """``(name, value, active)`` for each ``NAME=value`` line of .env.example (``# NAME=value``: inactive)."""
    for line in (ENV_EXAMPLE.read_text() if text is None else text).splitlines():
        m = re.match(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$", line)
        if m:
            value = m.group(3)
            if len(value) >= 2 and value[0] == value[-1] == "'":
                value = value[1:-1]
            yield m.group(2), value, m.group(1) is None


def _env() -> dict[str, str]:
    """The active settings of .env.example."""
    return {name: value for name, value, active in _env_lines() if active}


def _env_connections() -> dict[str, dict[str, Any]]:
    return {
        name.removeprefix("AIRFLOW_CONN_").lower(): json.loads(value)
        for name, value in _env().items()
        if name.startswith("AIRFLOW_CONN_")
    }


def _settings_connections() -> dict[str, dict[str, Any]]:
    settings = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())["airflow"]
    return {c["conn_id"]: c for c in settings["connections"]}


def _container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(p).rsplit(":", 1)[1]) for p in service.get("ports", [])}


def _script(service: dict[str, Any]) -> str:
    """A service's entrypoint and command as one text (compose's ``$$`` is a literal ``$``)."""
    parts = [service.get("entrypoint", []), service.get("command", [])]
    return "\n".join(p if isinstance(p, str) else "\n".join(map(str, p)) for p in parts).replace("$$", "$")


# ------------------------------------------------------------------------------------- compose override


def test_compose_override_adds_services_on_the_airflow_network() -> None:
    services = _services()
    assert {"warehouse", "s3", "simulator", "slack", "webhook"} <= set(services)
    for name, service in services.items():
        assert "airflow" in service.get("networks", []), f"{name}: not on the network `airflow`"


def test_compose_ports_are_published_on_loopback_only() -> None:
    for name, service in _services().items():
        for port in service.get("ports", []):
            assert re.fullmatch(r"127\.0\.0\.1:\d+:\d+", str(port)), (
                f"{name}: port {port!r} is not on 127.0.0.1"
            )


def test_compose_images_are_pinned() -> None:
    for name, service in _services().items():
        if "build" in service:
            # the project's own image: its Dockerfile's FROM is checked below
            assert service["build"] == ".", f"{name}: builds something else than the project's Dockerfile"
            assert service.get("pull_policy") == "build", f"{name}: would try to pull its image"
            continue
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and re.fullmatch(r"\d+(\.\d+)+(-[a-z0-9.]+)?", tag), (
            f"{name}: image {image!r} is not pinned"
        )


def test_dockerfile_pins_the_runtime_and_packages_txt_exists() -> None:
    froms = re.findall(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert froms and all(
        re.fullmatch(r"astrocrpublic\.azurecr\.io/runtime:\d+\.\d+-\d+", f) for f in froms
    ), froms
    # The image's ONBUILD steps copy packages.txt: without it the build fails. Only comments or package names.
    for line in (ROOT / "packages.txt").read_text().splitlines():
        assert (
            not line.strip() or line.startswith("#") or re.fullmatch(r"[a-z0-9][a-z0-9+.\-]+", line.strip())
        )


def test_compose_reads_settings_from_env_files_not_from_the_shell() -> None:
    text = COMPOSE.read_text()
    assert not re.search(r"(?<!\$)\$\{", text), (
        "compose takes ${...} from the shell, not from .env: use $${...}"
    )
    env = _env()
    for name, service in _services().items():
        used = set(re.findall(r"\bPULSE_[A-Z0-9_]+", _script(service)))
        if used:
            assert service.get("env_file") == ".env", f"{name}: reads {sorted(used)} without env_file .env"
        for var in used:
            assert var in env, f"{name}: {var} is not set in .env.example"


def test_warehouse_init_creates_what_the_connections_use() -> None:
    script = _script(_services()["warehouse"])
    role = re.search(r"-v role=(\w+)", script).group(1)
    db = re.search(r"-v db=(\w+)", script).group(1)
    for sql in (
        'CREATE ROLE :"role" LOGIN PASSWORD',
        "CREATE ROLE analyst NOLOGIN",
        'CREATE DATABASE :"db" OWNER',
    ):
        assert sql in script
    settings = _settings_connections()["warehouse_default"]
    env = _env_connections()["warehouse_default"]
    assert (settings["conn_login"], settings["conn_schema"]) == (role, db) == (env["login"], env["schema"])
    assert settings["conn_host"] == env["host"] == "warehouse"
    assert settings["conn_port"] == env["port"] in _container_ports(_services()["warehouse"])


# ------------------------------------------------------------------------------------------- .env.example


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT / "plugins" if path.is_relative_to(ROOT / "plugins") else ROOT)
    parts = list(rel.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _code_files() -> Iterator[Path]:
    for folder in CODE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "__pycache__" not in path.parts:
                yield path


def _is_environ(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name)
    ) or (isinstance(node, ast.Name) and node.id == "environ")


def _env_key_nodes(tree: ast.AST) -> Iterator[tuple[ast.AST, ast.expr]]:
    """``(node, key expression)`` of every read of the environment: ``os.environ.get(k)``, ``os.getenv(k)``,
    ``os.environ[k]``, ``k in os.environ``. (``setdefault`` is a write: it sets a library's variable.)"""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            f = node.func
            if (f.attr == "get" and _is_environ(f.value)) or (
                f.attr == "getenv" and isinstance(f.value, ast.Name) and f.value.id == "os"
            ):
                yield node, node.args[0]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getenv":
            yield node, node.args[0]
        elif isinstance(node, ast.Subscript) and _is_environ(node.value) and isinstance(node.ctx, ast.Load):
            yield node, node.slice
        elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
            yield node, node.left


class _Module:
    """One scanned module: its string constants, what it imports, and which node is in which function."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = _module_name(path)
        self.tree = ast.parse(path.read_text(), str(path))
        self.constants: dict[str, str] = {}
        self.imports: dict[str, tuple[str, str]] = {}
        for node in self.tree.body:
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            value = getattr(node, "value", None)
            for t in targets:
                if (
                    isinstance(t, ast.Name)
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, str)
                ):
                    self.constants[t.id] = value.value
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = (node.module, alias.name)
        self.parent: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parent[child] = node

    def function_of(self, node: ast.AST) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        while node in self.parent:
            node = self.parent[node]
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                return node
        return None


def env_settings_read() -> tuple[dict[str, set[str]], list[str]]:
    """Every environment variable the code in ``CODE_DIRS`` reads: ``({name: {where}}, [unresolved reads])``.

    A key is a string, a module constant (also one imported from another scanned module) or a parameter of
    the enclosing function, in which case every call of that function is resolved the same way.
    """
    modules = {m.name: m for m in map(_Module, _code_files())}
    found: dict[str, set[str]] = {}
    unresolved: list[str] = []

    def resolve(mod: _Module, expr: ast.expr, where: str, depth: int = 0) -> None:
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            found.setdefault(expr.value, set()).add(where)
            return
        if isinstance(expr, ast.Name):
            if expr.id in mod.constants:
                found.setdefault(mod.constants[expr.id], set()).add(where)
                return
            source = mod.imports.get(expr.id)
            if source and source[0] in modules and source[1] in modules[source[0]].constants:
                found.setdefault(modules[source[0]].constants[source[1]], set()).add(where)
                return
            func = mod.function_of(expr)
            params = [a.arg for a in func.args.args] if func else []
            if func and expr.id in params and depth < 3:
                callers = 0
                for other in modules.values():
                    for call in ast.walk(other.tree):
                        if not isinstance(call, ast.Call):
                            continue
                        callee = (
                            call.func.attr
                            if isinstance(call.func, ast.Attribute)
                            else getattr(call.func, "id", None)
                        )
                        if callee != func.name:
                            continue
                        index = params.index(expr.id)
                        arg = next((k.value for k in call.keywords if k.arg == expr.id), None)
                        if arg is None and index < len(call.args):
                            arg = call.args[index]
                        if arg is not None:
                            callers += 1
                            resolve(other, arg, f"{other.path.relative_to(ROOT)}:{call.lineno}", depth + 1)
                if callers:
                    return
        unresolved.append(f"{where}: {ast.unparse(expr)}")

    for mod in modules.values():
        for node, key in _env_key_nodes(mod.tree):
            resolve(mod, key, f"{mod.path.relative_to(ROOT)}:{node.lineno}")
    return found, unresolved


def test_the_scan_finds_the_reads_it_must() -> None:
    """The scan itself: direct names, module constants and names passed through ``root_from_env``."""
    found, unresolved = env_settings_read()
    assert not unresolved, (
        f"environment reads the scan cannot name (use a string or a constant): {unresolved}"
    )
    for name in (
        "PULSE_PSEUDONYM_KEY",
        "PULSE_ALERT_DEDUP_MINUTES",
        "PULSE_ARCHIVE_URL",
        "PULSE_EXPORT_CONN_ID",
    ):
        assert name in found, name


def test_env_example_names_every_setting_the_code_reads() -> None:
    found, _ = env_settings_read()
    named = {name for name, _, _ in _env_lines()}
    missing = {name: sorted(where) for name, where in found.items() if name not in named}
    assert not missing, (
        f"settings read by the code but not in .env.example (add a line, # NAME= if optional): {missing}"
    )


def test_env_example_connections_are_the_settings_ones_pointing_at_services() -> None:
    services = _services()
    settings = _settings_connections()
    for conn_id, conn in _env_connections().items():
        assert conn_id in settings, (
            f"AIRFLOW_CONN_{conn_id.upper()}: no such connection in airflow_settings.yaml"
        )
        assert conn["conn_type"] == settings[conn_id]["conn_type"], conn_id
        for url in (conn.get("host", ""), (conn.get("extra") or {}).get("endpoint_url", "")):
            if not url:
                continue
            parts = urlsplit(url if "://" in url else f"//{url}")
            assert parts.hostname in services, f"{conn_id}: {parts.hostname!r} is not a compose service"
            port = parts.port or conn.get("port")
            assert port in _container_ports(services[parts.hostname]), (
                f"{conn_id}: {parts.hostname} has no port {port}"
            )


def test_env_example_sources_point_at_the_simulator_as_the_stack_does() -> None:
    conns = _env_connections()
    expected = stack.source_connections(SIM_URL)
    assert {cid: conns.get(cid) for cid in expected} == expected


def test_env_example_secrets_are_placeholders_that_agree() -> None:
    env = _env()
    conns = _env_connections()
    assert conns["warehouse_default"]["password"] == env["PULSE_WAREHOUSE_PASSWORD"]
    assert conns["webhook_local"]["password"] == env["PULSE_WEBHOOK_SECRET"]
    for name, value in env.items():
        if re.search(r"PASSWORD|SECRET|_KEY$", name):
            assert value.startswith("change-me"), f"{name}: use a change-me placeholder, never a real secret"
    fakes = {c.get("password") for c in stack.source_connections(SIM_URL).values()}
    for conn_id, conn in conns.items():
        password = conn.get("password", "")
        assert password in fakes or password.startswith(("change-me", "T000/B000/")), (
            f"{conn_id}: {password!r}"
        )


def test_env_file_stays_out_of_git() -> None:
    assert ".env" in (ROOT / ".gitignore").read_text().split()


# -------------------------------------------------------------------------------------- .dockerignore


def _dockerignored(path: str) -> bool:
    ignored = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        hit = fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern + "/*")
        if pattern.startswith("**/"):
            hit = hit or fnmatch.fnmatch(path.rsplit("/", 1)[-1], pattern[3:])
        if hit:
            ignored = not negate
    return ignored


@pytest.mark.parametrize(
    "path", [".env", "airflow_settings.yaml", ".venv/bin/python", ".local/secrets.json", ".git/HEAD"]
)
def test_dockerignore_keeps_secrets_and_state_out_of_the_image(path: str) -> None:
    assert _dockerignored(path)


@pytest.mark.parametrize(
    "path",
    [
        "dags/ingest_reddit.py",
        "plugins/pulse/__init__.py",
        "include/sources.yaml",
        "dev/simulator/__main__.py",
        "requirements.txt",
        "packages.txt",
        "pyproject.toml",
        ".env.example",
    ],
)
def test_dockerignore_keeps_what_the_image_needs(path: str) -> None:
    assert not _dockerignored(path)


# -------------------------------------------------------------------------------------- requirements


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            (spec,) = req.specifier
            pins[canonicalize_name(req.name)] = spec.version
    return pins


def test_requirements_txt_pins_every_line_exactly() -> None:
    names = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"not an exact pin: {line!r}"
        assert not req.marker and not req.url, line
        names.append(canonicalize_name(req.name))
    assert len(names) == len(set(names)), "a package is listed twice"
    # the image's Airflow wins: never install another one on top
    assert not {"apache-airflow", "apache-airflow-core", "apache-airflow-task-sdk"} & set(names)


def test_requirements_txt_is_the_tested_set() -> None:
    lock = _pins(ROOT / "requirements.lock")
    pins = _pins(ROOT / "requirements.txt")
    differ = {name: (version, lock.get(name)) for name, version in pins.items() if lock.get(name) != version}
    assert not differ, f"requirements.txt vs requirements.lock: {differ}"
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text().splitlines()


def _image_set() -> dict[str, str]:
    """The image's own Airflow and providers, as the Makefile's IMAGE_SET names them."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    line = re.search(r"^IMAGE_SET\s*:?=\s*(.+)$", text, re.M).group(1)
    return {canonicalize_name(n): v for n, v in (item.split("==") for item in line.split())}


def test_image_lock_is_the_tested_set_for_the_images_python() -> None:
    image = _pins(ROOT / "requirements-image.lock")
    header = (ROOT / "requirements-image.lock").read_text().splitlines()[1]
    assert f"--python-version {IMAGE_PYTHON}" in header and "--only-binary :all:" in header, header
    for name, version in _pins(ROOT / "requirements.txt").items():
        assert image.get(name) == version, (
            f"{name}: requirements-image.lock has {image.get(name)}, not {version}"
        )
    image_set = _image_set()
    for name, version in image_set.items():
        assert image.get(name) == version, (
            f"{name}: the image's version {version} is not in requirements-image.lock"
        )
    lock = _pins(ROOT / "requirements.lock")
    differ = {n: (lock[n], v) for n, v in image.items() if n in lock and lock[n] != v and n not in image_set}
    assert not differ, f"packages resolved to other versions for the image than tested: {differ}"


def test_project_installs_on_the_tested_and_the_images_python() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    spec = SpecifierSet(re.search(r'^requires-python\s*=\s*"([^"]+)"', text, re.M).group(1))
    assert spec.contains("3.11") and spec.contains(IMAGE_PYTHON), spec


# -------------------------------------------------------------------------------- airflow_settings.yaml


def test_settings_hosts_name_compose_services_or_real_services() -> None:
    services = _services()
    for conn_id, conn in _settings_connections().items():
        urls = [str(conn.get("conn_host") or ""), str((conn.get("conn_extra") or {}).get("endpoint_url", ""))]
        for url in filter(None, urls):
            host = urlsplit(url if "://" in url else f"//{url}").hostname or ""
            public = "." in host and host not in {"127.0.0.1"} and not host.endswith(".local")
            assert host in services or public, (
                f"{conn_id}: host {host!r} is neither a compose service nor public"
            )
        # Sources' hooks default to their real API; a generic or aws connection needs no host.
        if (
            not urls[0]
            and not conn["conn_type"].startswith("pulse_")
            and conn["conn_type"] not in {"generic", "aws"}
        ):
            pytest.fail(f"{conn_id}: empty host")
