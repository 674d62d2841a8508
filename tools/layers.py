"""The layers of the repository, and its import graph read from the code (ast), for the
test that keeps them (tests/tools/test_layers.py) and the picture of them
(tools/architecture.py, docs/architecture.png). One list of layers, here.

que/, bottom up: core (the vocabulary: jobs, errors, JSON, backoff, handlers) -> engine
(sans-I/O sessions, wire format, a locker's books) -> dialects | drivers (the two seams:
what a protocol says, how to wait) -> shells (Client, Worker, WorkerPool ..., asyncio source
and generated sync twin) -> the public facades, the cli and contrib. The suite: testees and
harness (run things) -> conformance (the judge) -> mutation, bench, chaos.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# que's layers: a module may import from its own layer or a lower one.
QUE_LAYERS = [
    ("que.core", 0),
    ("que.engine", 1),
    ("que.dialects", 2),
    ("que.drivers", 2),
    ("que.shells", 3),
    ("que.cli", 4),
    ("que.contrib", 4),
    ("que.ops", 4),
    ("que.testing", 4),
    ("que.web", 4),
    ("que.aio", 4),
    ("que.activejob", 4),
    ("que.errors", 4),
    ("que", 4),
]
# Two seams of one rank: neither may import the other.
SIBLINGS = {("que.dialects", "que.drivers"), ("que.drivers", "que.dialects")}
SUITE_LAYERS = [("testees", 1), ("harness", 1), ("conformance", 2), ("mutation", 3), ("bench", 3), ("chaos", 3)]


def modules(package: str) -> Iterator[tuple[str, Path]]:
    base = ROOT / package
    for path in sorted(base.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def imports(path: Path, name: str, known: set[str] | None = None) -> set[str]:
    """The modules `path` imports at any level (functions included), absolute names. With
    `known`, `from package import module` is the module alone, not the package's __init__."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            submodules = {f"{module}.{alias.name}" for alias in node.names}
            if known is not None and submodules <= known:
                found.update(submodules)
            else:
                found.add(module)
    return found


def layer_of(module: str, layers: list[tuple[str, int]]) -> tuple[str, int] | None:
    for prefix, rank in layers:
        if module == prefix or module.startswith(prefix + "."):
            return prefix, rank
    return None


def graph(packages: list[str]) -> dict[str, set[str]]:
    known = {name: path for package in packages for name, path in modules(package)}
    return {
        name: {target for target in imports(path, name, set(known)) if target in known and target != name}
        for name, path in known.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found
