"""The type stubs of the compiled module stay in step with the module."""

from __future__ import annotations

import ast
from pathlib import Path

import easfast._core as core

STUB = Path(core.__file__).with_name("_core.pyi")


def stub_names() -> set[str]:
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def public_names() -> set[str]:
    names = set()
    for name in dir(core):
        value = getattr(core, name)
        if name.startswith("_") or isinstance(value, type(core)):
            continue
        # Exceptions are imported from easfast.exceptions, not defined here.
        if isinstance(value, type) and issubclass(value, BaseException):
            continue
        names.add(name)
    return names


def test_stub_is_shipped_beside_module():
    assert STUB.is_file()


def test_every_public_name_has_a_stub():
    missing = public_names() - stub_names()
    assert not missing, f"add these names to {STUB.name}: {sorted(missing)}"


def test_every_stub_name_exists():
    extra = {n for n in stub_names() if not n.startswith("_")} - set(dir(core))
    assert not extra, f"{STUB.name} declares names the module lacks: {sorted(extra)}"
