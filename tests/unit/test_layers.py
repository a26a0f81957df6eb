"""Layers point one way (docs/design.md): base/ imports nothing of ours; models/ only base/;
states/ only base/ and models/; process/ and reports/ read states/ and models/;
notifications/ below the doors; nothing imports the doors."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
OURS = {
    "base", "models", "states", "notifications", "flows", "api", "cli", "templates", "process",
    "reports",
}  # fmt: skip
VIEWS = {"process", "reports"}  # read-only views of the casework, for the doors
ALLOWED = {
    "base": set(),
    "models": {"base"},
    "states": {"base", "models"},
    "notifications": {"base", "models", "states", "templates"},
    "process": {"base", "models", "states"},
    "reports": {"base", "models", "states"},
    "flows": {"base", "models", "states", "notifications"},
    "api": {"base", "models", "states", "notifications", "flows", "templates", "api", *VIEWS},
    "cli": {"base", "models", "states", "notifications", "flows", "api", "cli", *VIEWS},
}


def imports_of(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
    return out & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imports_of(path) - ALLOWED[package] - {package})
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    }
    assert {k: v for k, v in wrong.items() if v} == {}
