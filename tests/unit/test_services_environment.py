"""Every environment variable a service reads goes through a ``contract.environment.Variable``, and the
variables each service reads are exactly those ``contract.environment.SERVICE_VARIABLES`` lists for it.

The services' code is read, not run (``ast``): each module is cut into nodes (one per top-level function or
class, one for the module's own statements), and a service reads every Variable referenced by a node reachable
from its package, plus those of ``common.gunicorn_config`` (the process every service runs in).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from contract import environment
from contract.environment import Variable
from contract.services import SERVICE_NAMES

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"
READERS = frozenset({"env_str", "env_int", "env_float", "env_bool"})
MODULE_LEVEL = "<module>"
#: The only module that touches os.environ to read it (the env readers themselves).
READER_MODULE = "common.config"

Node = tuple[str, str]  # (module, top-level name or MODULE_LEVEL)


@dataclass
class Module:
    """What one module's nodes reference: Variables, and names that may be nodes of other modules."""

    name: str
    tree: ast.Module
    imports: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    """local name -> (module, attribute) for ``from m import a``; (module, None) when the name is a module."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(SERVICES_DIR).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    """True when ``name`` (``common.metrics``, ``contract.environment``) is a module rather than a name in one."""
    path = name.replace(".", "/")
    return name == "contract.environment" or (SERVICES_DIR / path).is_dir() or (SERVICES_DIR / f"{path}.py").exists()


def _modules() -> dict[str, Module]:
    modules = {}
    for path in sorted(SERVICES_DIR.rglob("*.py")):
        module = Module(_module_name(path), ast.parse(path.read_text(), filename=str(path)))
        for statement in ast.walk(module.tree):
            if isinstance(statement, ast.ImportFrom) and statement.module:
                for alias in statement.names:
                    full = f"{statement.module}.{alias.name}"
                    target = (full, None) if _is_module(full) else (statement.module, alias.name)
                    module.imports[alias.asname or alias.name] = target
        modules[module.name] = module
    return modules


def _top_level(module: Module) -> Iterator[tuple[str, list[ast.AST]]]:
    own: list[ast.AST] = []
    for statement in module.tree.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield statement.name, [statement]
        elif not isinstance(statement, ast.Import | ast.ImportFrom):
            own.append(statement)
    yield MODULE_LEVEL, own


def _variables(value: object) -> set[str]:
    """Names of the Variables ``value`` is or holds (a Variable, or a tuple/dict of them)."""
    if isinstance(value, Variable):
        return {value.name}
    if isinstance(value, dict):
        value = tuple(value.values())
    if isinstance(value, tuple):
        return {item.name for item in value if isinstance(item, Variable)}
    return set()


@dataclass
class Graph:
    """Nodes of every module under services/, with the Variables each references and the nodes it uses."""

    reads: dict[Node, set[str]] = field(default_factory=dict)
    uses: dict[Node, set[Node]] = field(default_factory=dict)
    literal_calls: list[str] = field(default_factory=list)
    environ_reads: list[str] = field(default_factory=list)


def _graph(modules: dict[str, Module]) -> Graph:
    graph = Graph()
    for module in modules.values():
        names = {name for name, _ in _top_level(module)}
        for name, statements in _top_level(module):
            node = (module.name, name)
            reads, uses = graph.reads.setdefault(node, set()), graph.uses.setdefault(node, set())
            uses.add((module.name, MODULE_LEVEL))
            for statement in statements:
                for item in ast.walk(statement):
                    _inspect(item, module, names, reads, uses, graph, modules)
    return graph


def _inspect(item, module, names, reads, uses, graph, modules) -> None:
    """Record what one AST node of ``module`` reads (Variables), uses (other nodes) or does wrong."""
    where = f"{module.name}:{getattr(item, 'lineno', '?')}"
    if isinstance(item, ast.Call):
        func = item.func
        called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if called in READERS and item.args and isinstance(item.args[0], ast.Constant | ast.JoinedStr):
            graph.literal_calls.append(f"{where} {called}({ast.unparse(item.args[0])})")
        if called == "getenv" or (called == "get" and "environ" in ast.unparse(func)):
            if module.name != READER_MODULE:
                graph.environ_reads.append(f"{where} {ast.unparse(item)}")
    if isinstance(item, ast.Subscript) and isinstance(item.ctx, ast.Load) and ast.unparse(item.value) == "os.environ":
        graph.environ_reads.append(f"{where} {ast.unparse(item)}")
    if isinstance(item, ast.Attribute) and isinstance(item.value, ast.Name):
        target = module.imports.get(item.value.id)
        if target == ("contract.environment", None):
            reads |= _variables(getattr(environment, item.attr, None))
        elif target and target[1] is None and target[0] in modules:
            uses.update({(target[0], item.attr), (target[0], MODULE_LEVEL)})
    if isinstance(item, ast.Name):
        target = module.imports.get(item.id)
        if target and target[0] == "contract.environment" and target[1]:
            reads |= _variables(getattr(environment, target[1], None))
        elif target and target[1] and target[0] in modules:
            uses.update({(target[0], target[1]), (target[0], MODULE_LEVEL)})
        elif item.id in names:
            uses.add((module.name, item.id))


GRAPH = _graph(_modules())


def _read_by(service: str) -> set[str]:
    roots = [node for node in GRAPH.reads if node[0] == service or node[0].startswith(f"{service}.")]
    roots += [node for node in GRAPH.reads if node[0] == "common.gunicorn_config"]
    seen: set[Node] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node in seen or node not in GRAPH.reads:
            continue
        seen.add(node)
        stack.extend(GRAPH.uses[node])
    return set().union(*(GRAPH.reads[node] for node in seen))


def test_env_readers_are_never_called_with_a_string():
    """env_str("NAME", ...) would write a name and a default a second time: pass the contract's Variable."""
    assert GRAPH.literal_calls == []


def test_only_the_env_readers_touch_os_environ():
    """Reading os.environ directly would bypass the contract (its default and its documentation)."""
    assert GRAPH.environ_reads == []


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_each_service_reads_exactly_the_variables_the_contract_lists(service):
    """What the code reads and what SERVICE_VARIABLES (hence the READMEs, Compose, the stacks) says agree."""
    read = _read_by(service)
    listed = set(environment.names_of(service))
    assert (sorted(read - listed), sorted(listed - read)) == ([], [])


def test_the_scan_sees_service_specific_reads():
    """Guard against a scan that finds nothing: each service's characteristic variables are found."""
    assert {"DATABASE_USER", "PORT"} <= _read_by("inventory")
    assert {"AUTH_ISSUER", "RABBITMQ_USER", "BILLING_QUEUE"} <= _read_by("gateway")
    assert "DATABASE_USER" not in _read_by("gateway")
    assert {"BILLING_PREFETCH", "DATABASE_USER", "RABBITMQ_USER"} <= _read_by("billing")
