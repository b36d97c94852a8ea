"""The typed stub of `ferrotel._native` must describe the real module: same public names,
and functions stubbed as functions."""

import ast
import inspect
from pathlib import Path

import ferrotel._native as native

STUB = Path(native.__file__).with_name("_native.pyi")


def stub_names():
    tree = ast.parse(STUB.read_text())
    functions, values = set(), set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            functions.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            values.add(node.target.id)
    return functions, values


def test_stub_matches_the_extension():
    functions, values = stub_names()
    public = {name for name in dir(native) if not name.startswith("_")} | {"__version__"}
    assert functions | values == public
    for name in functions:
        assert inspect.isbuiltin(getattr(native, name)), name
