"""The typed stub of `ferrotel._native` must describe the real module: the same names,
functions stubbed as functions and classes as classes with the same public methods."""

import ast
import inspect
from pathlib import Path

import ferrotel._native as native

STUB = Path(native.__file__).with_name("_native.pyi")
# Names the stub declares for typing only.
TYPING_ONLY = {"Plan", "EntryPointSpec", "_Level"}


def stub_definitions():
    tree = ast.parse(STUB.read_text())
    functions, classes, values = set(), {}, set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            functions.add(node.name)
        elif isinstance(node, ast.ClassDef):
            members = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
            members |= {n.target.id for n in node.body if isinstance(n, ast.AnnAssign)}
            classes[node.name] = members
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            values.add(node.target.id)
        elif isinstance(node, ast.Assign):
            values.update(t.id for t in node.targets if isinstance(t, ast.Name))
    classes = {k: v for k, v in classes.items() if k not in TYPING_ONLY}
    return functions, classes, values - TYPING_ONLY


def test_stub_matches_the_extension():
    functions, classes, values = stub_definitions()
    real = {name for name in dir(native) if not (name.startswith("__") and name.endswith("__"))} | {"__version__"}
    assert functions | set(classes) | values == real
    for name in functions:
        assert inspect.isbuiltin(getattr(native, name)), name
    for name, members in classes.items():
        cls = getattr(native, name)
        assert inspect.isclass(cls), name
        public = {m for m in dir(cls) if not m.startswith("__")} | {m for m in members if m.startswith("__")}
        declared = {m for m in members if m != "__init__"}
        assert declared == public - {"__init__"}, (name, declared ^ public)
