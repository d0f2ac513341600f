"""The dependency rule, read from the source: imports point down the layers, no module takes
part in an import circle, and runtime code never imports ``django.test`` or ``tests``.

Layers, lowest first (docs/architecture.md, "Rooms"):

    config                      plumbing: settings, Celery, logging, the integration layer
    orders                      the core domain (orders, catalogue, audit, incidents, validation)
    channels | fulfillment      siblings: each may import orders and config, never each other
    reviews | reconciliation    the human layer: may read everything below, not each other
    demo                        the demo: may import every app

A lower app that must trigger a higher one does it by Celery task name or through a registry
the lower app offers (``orders.validation.register``, ``orders.hooks``), never by import.

Every import counts, also one inside a function (a lazy import that hides a circle is still
a circle); only imports under ``if TYPE_CHECKING:`` are left out of the circle check, since
they never run. Migrations are generated and refer to other apps by string; they are skipped.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LAYERS: dict[str, int] = {
    "config": 0,
    "orders": 1,
    "channels": 2,
    "fulfillment": 2,
    "reviews": 3,
    "reconciliation": 3,
    "demo": 4,
}
RUNTIME_ROOTS = (*LAYERS, "bench")
TEST_ONLY = ("django.test", "tests")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module, dotted (resolved to a project module where one exists)
    line: int
    type_checking: bool


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files(root: Path, tops: tuple[str, ...]) -> Iterator[Path]:
    for top in tops:
        base = root / top
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.py")):
            if "migrations" in path.relative_to(root).parts:
                continue
            yield path


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, root: Path, known: set[str]) -> Iterator[Import]:
    """Every import in one file, with relative imports resolved and ``from a import b`` read as
    the submodule ``a.b`` when that is a module of the project."""
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def visit(node: ast.AST, type_checking: bool) -> Iterator[Import]:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from visit(child, True)
            for child in node.orelse:
                yield from visit(child, type_checking)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno, type_checking)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield Import(module, sub if sub in known else base, node.lineno, type_checking)
        for child in ast.iter_child_nodes(node):
            yield from visit(child, type_checking)

    yield from visit(tree, False)


def project_imports(root: Path, tops: tuple[str, ...]) -> list[Import]:
    files = list(source_files(root, tops))
    known = {module_name(path, root) for path in files}
    return [imp for path in files for imp in imports_of(path, root, known)]


def upward_imports(imports: list[Import]) -> list[str]:
    """Imports from an app to an app in the same or a higher layer (other than itself)."""
    found = []
    for imp in imports:
        source, target = imp.module.split(".")[0], imp.target.split(".")[0]
        if source not in LAYERS or target not in LAYERS or source == target:
            continue
        if LAYERS[target] >= LAYERS[source]:
            found.append(f"{imp.module}:{imp.line} imports {imp.target}")
    return sorted(found)


def imports_of_test_code(imports: list[Import]) -> list[str]:
    found = []
    for imp in imports:
        if imp.module.split(".")[0] == "tests":
            continue
        if any(imp.target == t or imp.target.startswith(t + ".") for t in TEST_ONLY):
            found.append(f"{imp.module}:{imp.line} imports {imp.target}")
    return sorted(found)


def import_circles(imports: list[Import]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), over runtime imports
    between project modules. Importing ``a.b.c`` also runs ``a`` and ``a.b``: only the
    named module is an edge here, since a package ``__init__`` that imports its own modules
    is the normal way to build one."""
    modules = {imp.module for imp in imports}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for imp in imports:
        if not imp.type_checking and imp.target in modules and imp.target != imp.module:
            graph[imp.module].add(imp.target)

    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = 0

    def strongconnect(node: str) -> None:
        nonlocal counter
        # Iterative Tarjan: the graph is a few hundred modules, but recursion depth is not ours
        # to spend.
        work = [(node, iter(sorted(graph[node])))]
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        while work:
            current, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[current] = min(low[current], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[current])
            if low[current] == index[current]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == current:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            strongconnect(node)
    return sorted(circles)


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return project_imports(ROOT, RUNTIME_ROOTS)


def test_every_app_is_in_a_layer():
    apps = {p.parent.name for p in ROOT.glob("*/apps.py")}
    assert apps <= set(LAYERS), f"apps without a layer: {sorted(apps - set(LAYERS))}"


def test_no_app_imports_an_app_of_its_own_or_a_higher_layer(imports):
    assert upward_imports(imports) == []


def test_no_import_circles(imports):
    assert import_circles(imports) == []


def test_runtime_code_never_imports_django_test_or_the_test_suite(imports):
    assert imports_of_test_code(imports) == []


# The checker itself, on a small tree of its own: each rule must be able to fail.


def _tree(tmp_path: Path, files: dict[str, str]) -> list[Import]:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return project_imports(tmp_path, (*LAYERS, "bench", "tests"))


def test_checker_finds_an_upward_and_a_sideways_import_even_inside_a_function(tmp_path):
    imports = _tree(
        tmp_path,
        {
            "orders/__init__.py": "",
            "orders/models.py": "def f():\n    from fulfillment.models import Shipment\n",
            "fulfillment/__init__.py": "",
            "fulfillment/models.py": "from channels.models import Product\n",
            "channels/__init__.py": "",
            "channels/models.py": "from orders import models\n",
            "config/__init__.py": "",
            "config/api.py": "from ..orders.models import Order\n",
        },
    )

    assert upward_imports(imports) == [
        "config.api:1 imports orders.models",
        "fulfillment.models:1 imports channels.models",
        "orders.models:2 imports fulfillment.models",
    ]


def test_checker_finds_a_circle_hidden_by_a_lazy_import_but_not_one_under_type_checking(
    tmp_path,
):
    imports = _tree(
        tmp_path,
        {
            "orders/__init__.py": "",
            "orders/a.py": "from orders import b\n",
            "orders/b.py": "def f():\n    from orders.a import x\n",
            "orders/c.py": "from orders.d import y\n",
            "orders/d.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from orders.c import z\n"
            ),
        },
    )

    assert import_circles(imports) == [["orders.a", "orders.b"]]


def test_checker_finds_runtime_code_importing_test_helpers(tmp_path):
    imports = _tree(
        tmp_path,
        {
            "channels/__init__.py": "",
            "channels/demo.py": "from django.test import Client\n",
            "bench/run.py": "import tests.factories\n",
            "tests/__init__.py": "",
            "tests/test_x.py": "from django.test import Client\n",
        },
    )

    assert imports_of_test_code(imports) == [
        "bench.run:1 imports tests.factories",
        "channels.demo:1 imports django.test",
    ]
