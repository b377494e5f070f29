"""Dependencies point one way (DESIGN.md): ``core`` is the floor, ``infra`` the roof.

``schemas`` imports only ``core``; ``producers``, ``consumers`` and ``ml`` build on
``schemas`` (and ``core``) and do not import each other or ``streams``; ``streams`` builds on
``schemas`` and ``ml``; nothing imports ``infra``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {
    "core": {"core"},
    "schemas": {"core", "schemas"},
    "producers": {"core", "schemas", "producers"},
    "consumers": {"core", "schemas", "consumers"},
    "ml": {"core", "schemas", "ml"},
    "streams": {"core", "schemas", "ml", "streams"},
    "infra": {"core", "schemas", "producers", "consumers", "ml", "streams", "infra"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "heimdall" and len(parts) > 1:
                out.add(parts[1])
    return out


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_it_may(package: str) -> None:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for dep in imported_packages(path) - ALLOWED[package]:
            bad.append(f"{path.relative_to(ROOT)} imports heimdall.{dep}")
    assert not bad, "\n".join(bad)
