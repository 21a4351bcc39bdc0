"""The package's folders form layers: no folder imports one that imports it back (issue 13 part 3).

Every module under ``src/solarfleet`` is parsed (imports at any depth, inside functions too) and
each import is reduced to the pair (importing folder, imported folder); a top-level module is its
own "folder" (``db``, ``errors`` …). The graph of those pairs must have no cycle, and the generic
layers below the domains must import no domain.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = "solarfleet"
ROOT = Path(__file__).resolve().parent.parent / "src" / PACKAGE

DOMAINS = {"fleet", "parameters", "telemetry", "migration", "rollouts", "console"}
# Below every domain: may import each other, never a domain.
GENERIC = {"api", "auth", "db", "errors", "schema", "settings", "timeparse", "types"}
# The top: assembles everything, so may import anything; nothing below imports it.
TOP = {"app", "cli", "demo", "resources", "models", "migrations"}


def _unit(module: str) -> str | None:
    """``solarfleet.api.crud`` → ``api``; ``solarfleet.db`` → ``db``; ``solarfleet`` → None."""
    parts = module.split(".")
    if parts[0] != PACKAGE or len(parts) < 2:
        return None
    return parts[1]


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str | None = None) -> list[tuple[str, int]]:
    """Every module ``path`` (module ``name``) imports (absolute name) with its line number."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = name or _module_name(path)
    is_package = path.name == "__init__.py"
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None or not target.startswith(PACKAGE + "."):
                # ``from solarfleet import api`` / ``from . import x``: the names are modules
                found.extend((f"{target}.{alias.name}", node.lineno) for alias in node.names)
            else:
                found.append((target, node.lineno))
    return found


def folder_edges() -> dict[tuple[str, str], list[str]]:
    """(importer folder, imported folder) → the imports that make the edge, as 'file:line name'."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(ROOT.rglob("*.py")):
        source = _unit(_module_name(path))
        if source is None:
            continue
        for target_module, line in _imports(path):
            target = _unit(target_module)
            if target is None or target == source or target.startswith("__"):  # __version__
                continue
            where = f"{path.relative_to(ROOT.parent)}:{line} imports {target_module}"
            edges[(source, target)].append(where)
    return edges


def _cycle(edges: dict[tuple[str, str], list[str]]) -> list[str] | None:
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_app_registry_is_assembled_from_every_domain_in_a_fixed_order():
    from solarfleet.api import registry
    from solarfleet.resources import REGISTRY

    assert registry.REGISTRY is REGISTRY  # what the API layer and the domains read
    assert [s.name for s in REGISTRY.specs] == [
        "entities",
        "product_types",
        "products",
        "product_entity_linker",
        "part_types",
        "parts",
        "part_product_linker",
        "parameter_types",
        "product_parameters",
        "part_parameters",
        "product_migration_history",
        "users",
        "parameter_rollouts",
    ]


def test_an_empty_registry_refuses_rather_than_scoping_nothing():
    from solarfleet.api.spec import Registry
    from solarfleet.auth.principal import SYSTEM_PRINCIPAL
    from solarfleet.fleet.models import Product

    empty = Registry([])
    with pytest.raises(RuntimeError, match="registry is empty"):
        empty.scope(Product, SYSTEM_PRINCIPAL)
    with pytest.raises(RuntimeError, match="registry is empty"):
        empty.catalog(SYSTEM_PRINCIPAL)


def test_the_parser_sees_imports_inside_functions_and_relative_ones(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from solarfleet.fleet.models import Entity\n"
        "from ..fleet import scope\nfrom .registry import REGISTRY\n"
    )
    assert sorted(_imports(module, "solarfleet.api.m")) == [
        ("solarfleet.api.registry", 4),
        ("solarfleet.fleet", 3),
        ("solarfleet.fleet.models", 2),
    ]


def test_the_cycle_finder_finds_a_circle():
    assert _cycle({("a", "b"): [], ("b", "c"): [], ("c", "a"): []}) == ["a", "b", "c", "a"]
    assert _cycle({("a", "b"): [], ("a", "c"): [], ("b", "c"): []}) is None


def test_every_folder_is_known():
    units = {_unit(_module_name(p)) for p in ROOT.rglob("*.py")} - {None}
    assert units <= DOMAINS | GENERIC | TOP, sorted(units - DOMAINS - GENERIC - TOP)


def test_folders_depend_on_each_other_in_no_circle():
    edges = folder_edges()
    cycle = _cycle(edges)
    if cycle:
        lines = [
            f"{a} -> {b}:\n    " + "\n    ".join(edges[(a, b)])
            for a, b in zip(cycle, cycle[1:], strict=False)
        ]
        raise AssertionError("folders import each other in a circle:\n" + "\n".join(lines))


def test_the_generic_layers_import_no_domain():
    wrong = [
        where
        for (source, target), wheres in sorted(folder_edges().items())
        if source in GENERIC and target in DOMAINS
        for where in wheres
    ]
    assert not wrong, "generic layers import a domain:\n" + "\n".join(wrong)


def test_nothing_below_the_top_imports_it():
    wrong = [
        where
        for (source, target), wheres in sorted(folder_edges().items())
        if source not in TOP and target in TOP
        for where in wheres
    ]
    assert not wrong, "a lower layer imports the top:\n" + "\n".join(wrong)
