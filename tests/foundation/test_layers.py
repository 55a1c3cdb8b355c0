"""Every service has the same layers, and the import graph says so (docs/architecture.md,
decision 31): only adapters know HTTP, only api.py and web.py raise HTTPException, rpc.py knows
no FastAPI, and no module reaches into an adapter's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p for p in (ROOT / "services").iterdir() if (p / "service.py").exists())
HTTP_ADAPTERS = {"api.py", "web.py"}
# Modules that may import the web framework: the HTTP adapters, the spec that mounts them, and
# the bridge that builds the use cases' dependencies from the running service.
WEB_MODULES = HTTP_ADAPTERS | {"service.py", "runtime.py", "__main__.py"}


def http_adapter(path: Path) -> bool:
    """api.py, web.py, or pages split by area (`registry_web.py`, `staff_web.py`)."""
    return path.name in HTTP_ADAPTERS or path.name.endswith("_web.py")


FRAMEWORKS = ("fastapi", "starlette")


def _modules() -> list[tuple[Path, ast.Module]]:
    found = []
    for service in SERVICES:
        for path in sorted(service.rglob("*.py")):
            if "versions" in path.parts:
                continue  # migrations
            found.append((path, ast.parse(path.read_text(encoding="utf-8"))))
    return found


def _imported(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(module, names) of every import statement, at any depth."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, [a.name for a in node.names]))
    return out


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_services_are_found() -> None:
    assert {p.name for p in SERVICES} == {"identity", "notify", "scoring", "survey"}


def test_only_http_adapters_import_the_web_framework() -> None:
    wrong = [
        f"{_name(path)} imports {module}"
        for path, tree in _modules()
        if path.name not in WEB_MODULES and not http_adapter(path)
        for module, _ in _imported(tree)
        if module.split(".")[0] in FRAMEWORKS
    ]
    assert wrong == []


def test_only_api_and_web_raise_http_exceptions() -> None:
    wrong = []
    for path, tree in _modules():
        if http_adapter(path):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and node.exc is not None:
                target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                name = target.attr if isinstance(target, ast.Attribute) else None
                name = target.id if isinstance(target, ast.Name) else name
                if name == "HTTPException":
                    wrong.append(f"{_name(path)}:{node.lineno}")
    assert wrong == []


def test_no_module_uses_an_adapters_private_names() -> None:
    adapters = ("api", "web", "rpc", "cli")
    wrong = []
    for path, tree in _modules():
        for module, names in _imported(tree):
            if module.rsplit(".", 1)[-1] in adapters:
                wrong += [f"{_name(path)} imports {module}.{n}" for n in names if n[0] == "_"]
        imported_adapters = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
            if alias.name in adapters
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in imported_adapters
                and node.attr.startswith("_")
            ):
                wrong.append(f"{_name(path)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert wrong == []


def test_rules_catch_what_they_forbid() -> None:
    """The checks themselves can fail: a forbidden module is reported."""
    tree = ast.parse("from fastapi import HTTPException\nraise HTTPException(403)\n")
    assert ("fastapi", ["HTTPException"]) in _imported(tree)
    raised = [n for n in ast.walk(tree) if isinstance(n, ast.Raise)]
    assert len(raised) == 1
