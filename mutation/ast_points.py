"""The Python-function operators of mutation.mutants: the mutation points of a function's
syntax tree, and how to find a function by its dotted path and install a changed copy."""

import ast
import importlib
import inspect
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_AST_SWAPS: dict[type, list[type]] = {
    ast.Lt: [ast.LtE],
    ast.LtE: [ast.Lt],
    ast.Gt: [ast.GtE],
    ast.GtE: [ast.Gt],
    ast.Eq: [ast.NotEq],
    ast.NotEq: [ast.Eq],
    ast.Is: [ast.IsNot],
    ast.IsNot: [ast.Is],
    ast.In: [ast.NotIn],
    ast.NotIn: [ast.In],
    ast.Add: [ast.Sub],
    ast.Sub: [ast.Add],
    ast.Mult: [ast.Add],
    ast.Pow: [ast.Mult],
    ast.FloorDiv: [ast.Mult],
    ast.Mod: [ast.FloorDiv],
    ast.And: [ast.Or],
    ast.Or: [ast.And],
}


@dataclass
class Point:
    node: ast.AST
    field: str
    index: int | None
    new: Any
    label: str


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _annotations(tree: ast.AST) -> set[int]:
    """Nodes inside type annotations: they change no behaviour."""
    found: set[int] = set()
    for node in ast.walk(tree):
        notes: list[ast.AST | None] = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            notes.append(node.returns)
            every = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs, node.args.vararg, node.args.kwarg]
            notes += [arg.annotation for arg in every if arg is not None]
        elif isinstance(node, ast.AnnAssign):
            notes.append(node.annotation)
        for note in notes:
            if note is not None:
                found |= {id(inner) for inner in ast.walk(note)}
    return found


def _refusals(tree: ast.AST) -> set[int]:
    """Nodes inside `raise` statements: the wording of an error que raises for input the
    protocol never sends is no behaviour a port shares."""
    return {id(inner) for node in ast.walk(tree) if isinstance(node, ast.Raise) for inner in ast.walk(node)}


def ast_points(tree: ast.AST) -> list[Point]:
    """Every mutation point of a function's tree, in a stable order."""
    skip = _docstrings(tree) | _refusals(tree) | _annotations(tree)
    points: list[Point] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or value is None:
                continue
            if isinstance(value, int):
                for shifted in (value + 1, value - 1):
                    points.append(Point(node, "value", None, shifted, f"{value!r} to {shifted!r}"))
            elif isinstance(value, str):
                points.append(
                    Point(node, "value", None, "" if value else "X", f"{value!r} to {'' if value else 'X'!r}")
                )
        elif isinstance(node, ast.Compare):
            for index, op in enumerate(node.ops):
                for new in _AST_SWAPS.get(type(op), []):
                    points.append(Point(node, "ops", index, new(), f"{type(op).__name__} to {new.__name__}"))
        elif isinstance(node, ast.BinOp | ast.BoolOp):
            for new in _AST_SWAPS.get(type(node.op), []):
                points.append(Point(node, "op", None, new(), f"{type(node.op).__name__} to {new.__name__}"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
            points.append(Point(node, "drop_unary", None, None, f"drop {type(node.op).__name__}"))
    return points


class DropUnary(ast.NodeTransformer):
    def __init__(self, target: ast.AST) -> None:
        self.target = target

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        return node.operand if node is self.target else node


def function_source(path: str) -> tuple[Any, str, Callable[[Any], None]]:
    """The function a `module.qualname` path names, its dedented source, and how to install
    a replacement (in its module or class, and wherever que imported it by name)."""
    module_name, _, qualname = path.rpartition(".")
    owner: Any = None
    while module_name:
        try:
            owner = importlib.import_module(module_name)
            break
        except ModuleNotFoundError:
            module_name, _, parent = module_name.rpartition(".")
            qualname = f"{parent}.{qualname}"
    parts = qualname.split(".")
    for part in parts[:-1]:
        owner = getattr(owner, part)
    name = parts[-1]
    original = inspect.getattr_static(owner, name)
    function = original.__func__ if isinstance(original, classmethod | staticmethod) else original
    source = textwrap.dedent(inspect.getsource(function))

    def install(new: Any) -> None:
        setattr(owner, name, new)
        if inspect.ismodule(owner):
            # Wherever que or the Python testees imported it by name.
            for module in list(sys.modules.values()):
                if (
                    getattr(module, "__name__", "").startswith(("que", "testees"))
                    and getattr(module, name, None) is function
                ):
                    setattr(module, name, new)

    return function, source, install


def install_tree(path: str, tree: ast.Module) -> None:
    """Compile `tree` (the changed source of the function `path` names) in that function's
    own module globals, and put it wherever the function is used."""
    function, _, install = function_source(path)
    ast.fix_missing_locations(tree)
    namespace: dict[str, Any] = {}
    exec(compile(tree, inspect.getsourcefile(function) or "<mutant>", "exec"), function.__globals__, namespace)
    install(next(iter(namespace.values())))


def function_points(path: str) -> list[Point]:
    _, source, _ = function_source(path)
    return ast_points(ast.parse(source))
