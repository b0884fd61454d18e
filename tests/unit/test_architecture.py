"""The package's shape, checked: rooms whose arrows point one way, no import circle (every import statement
counted, ``TYPE_CHECKING`` and function-level ones too), at most 8 top-level modules, none over 400 lines,
and provider info derived from the public faces."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_provider_schneider"
NAME = "airflow_provider_schneider"
#: Which rooms each room may import (the leaves at the top of the package are open to every room).
ALLOWED = {
    "hooks": {"tokens", "client", "config", "get_provider_info"},
    "operators": {"hooks", "pulls", "outputs", "client", "config"},
    "sensors": {"hooks", "pulls", "triggers", "config"},
    "triggers": {"hooks", "pulls", "config"},
    "pulls": {"client", "outputs"},
    "tokens": {"client", "config"},
    "client": {"config"},
    "outputs": set(),
    "config": set(),
    "emulator": set(),
}
LEAVES = {"exceptions", "resources", "redaction", "metrics", "assets", "lineage", "sinks", "process", "(package)"}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = {name: set() for name in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            for target in targets:
                parts = target.split(".")
                while parts and ".".join(parts) not in mods:
                    parts.pop()
                found = ".".join(parts)
                if found and found != name and found.startswith(NAME):
                    graph[name].add(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(package)"


def test_no_module_imports_itself_back_through_others():
    assert cycles(import_graph()) == []


def test_a_cycle_would_be_found():
    """The checker itself: a circle of three is reported."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_rooms_import_only_the_rooms_below_them():
    wrong = sorted(
        f"{a} -> {b}"
        for a, targets in import_graph().items()
        for b in targets
        if room(a) in ALLOWED and room(b) != room(a) and room(b) not in ALLOWED[room(a)] | LEAVES
    )
    assert wrong == []


def test_every_name_imported_from_the_package_exists():
    """mypy cannot see this one: the faces' lazy ``__getattr__`` makes any name look importable from them, so a
    moved module imported inside a function (``from ..operators import watermark``) type-checks and fails
    only when a DAG runs that code path."""
    import importlib

    mods = modules()
    missing = []
    for name, path in sorted(mods.items()):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and (node.module or "").startswith(NAME) and not node.level):
                continue
            assert node.module is not None
            for alias in node.names:
                if f"{node.module}.{alias.name}" in mods:
                    continue
                target = importlib.import_module(node.module)
                lazy = getattr(target, "_WHERE", {})
                if alias.name not in lazy and not hasattr(target, alias.name):
                    missing.append(f"{name}:{node.lineno} from {node.module} import {alias.name}")
    assert missing == []


def test_at_most_eight_modules_at_the_top_of_the_package():
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "get_provider_info"))
    assert len(top) <= 8, top


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_over_400_lines(path):
    assert len(path.read_text().splitlines()) <= 400


def test_provider_info_lists_every_public_face():
    from airflow_provider_schneider import hooks, operators, sensors, triggers
    from airflow_provider_schneider.get_provider_info import get_provider_info

    info = get_provider_info()
    for face, key in ((operators, "operators"), (hooks, "hooks"), (sensors, "sensors"), (triggers, "triggers")):
        listed = {m for entry in info[key] for m in entry["python-modules"]}
        homes = set()
        for name in face.__all__:
            if name.endswith("BaseOperator") or name.isupper():
                continue
            module = getattr(face, name).__module__
            assert module in listed, f"{name} lives in {module}, which the provider info does not list"
            homes.add(module)
        assert listed == homes, f"the provider info lists {sorted(listed - homes)}, which hold no public {key}"
    classes = {e["hook-class-name"] for e in info["connection-types"]}
    assert classes == {"airflow_provider_schneider.hooks.schneider.SchneiderHook"}
