"""The extension crate's files depend one way (crates/ferrotel-python/src/lib.rs draws the
layers): instrumentation -> signals -> export / boundary -> runtime, and no two files depend
on each other, directly or through others. Read from the `crate::` and `super::` paths each
file names."""

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "crates" / "ferrotel-python" / "src"

# Lower layers never name higher ones.
LAYERS = {
    "runtime": 0,
    "boundary": 1,
    "export": 1,
    "trace": 2,
    "logs": 2,
    "metrics": 2,
    "propagation": 2,
    "instrumentation": 3,
}


def module_of(path):
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts.pop()
    return tuple(parts)


def modules():
    return {module_of(p): p for p in SRC.rglob("*.rs")}


def resolve(path, known):
    """The longest known module `path` starts with."""
    for end in range(len(path), 0, -1):
        if tuple(path[:end]) in known:
            return tuple(path[:end])
    return None


def dependencies(module, path, known):
    # Comments mention paths that are not dependencies.
    code = re.sub(r"//[^\n]*", "", path.read_text())
    found = set()
    for prefix, rest in re.findall(r"\b(crate|super)::((?:\w+::)*\w+)", code):
        parts = rest.split("::")
        base = list(module) if path.name in ("mod.rs", "lib.rs") else list(module[:-1])
        if prefix == "super":
            base = base[:-1] if path.name in ("mod.rs", "lib.rs") else base
        target = resolve(parts if prefix == "crate" else base + parts, known)
        if target is not None and target != module:
            found.add(target)
    # A `use` group names several modules: `use super::{a, b}` / `use crate::x::{y::Z, w}`.
    for prefix, head, group in re.findall(r"\buse (crate|super)((?:::\w+)*)::\{([^}]*)\}", code):
        base = list(module) if path.name in ("mod.rs", "lib.rs") else list(module[:-1])
        if prefix == "super" and path.name in ("mod.rs", "lib.rs"):
            base = base[:-1]
        head_parts = [p for p in head.split("::") if p]
        root = head_parts if prefix == "crate" else base + head_parts
        for item in group.split(","):
            item_path = [p for p in item.strip().split("::") if p and p != "self"]
            target = resolve(root + item_path, known)
            if target is not None and target != module:
                found.add(target)
    return found


def graph():
    known = modules()
    return {module: dependencies(module, path, known) for module, path in known.items()}


def test_layers_point_one_way():
    wrong = []
    for module, targets in graph().items():
        if not module:
            continue  # lib.rs registers everything
        for target in targets:
            if LAYERS[target[0]] > LAYERS[module[0]]:
                wrong.append(f"{'::'.join(module)} -> {'::'.join(target)}")
    assert not wrong, wrong


def test_no_file_depends_on_itself_through_others():
    edges = {m: {t for t in targets if t} for m, targets in graph().items() if m}
    state = {}
    cycles = []

    def visit(node, trail):
        state[node] = "open"
        for target in edges.get(node, ()):
            if state.get(target) == "open":
                cycles.append(" -> ".join("::".join(m) for m in trail[trail.index(target) :] + [target]))
            elif target not in state:
                visit(target, trail + [target])
        state[node] = "done"

    for node in edges:
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_the_check_sees_dependencies():
    g = graph()
    assert ("trace", "core") in g[("trace", "span")]
    assert ("export",) in g[("trace", "core")]
    assert ("trace", "context") in g[("instrumentation", "server")]
