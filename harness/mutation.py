"""Mutants of the Python testee: broken ports made by changing one term of que at a time.

Each term of Ruby Que 0.14.3 that fixtures/catalogue.json lists lives somewhere in que: in a
statement of que._protocol (as que.sql writes it), in an admin query of que.sql, in a
migration of que.schema, or in a function that computes a value (the backoff, last_error,
the JSON text). SITES says where; the operators below change that one place the way a port
author could get it wrong, and each change is a mutant: `python -m harness.testees.python
--mutant ID` is que with that change. `make mutate` (harness/mutate.py) runs every mutant
through the suite; each must fail a cell, or be listed in EQUIVALENT with the reason it
cannot be told apart from que by any observer.

Operators:
- SQL terms: drop a WHERE term (it becomes `true`), negate it, flip its comparison, fold
  case or trim spaces on both sides of a text comparison, shift now() by a second either
  way, drop, reverse or swap a column of an ORDER BY, shift an integer constant by one, and
  the alternatives a site lists (another column, another interval, another key).
- Python functions: every integer constant shifted by one, every string constant emptied
  (or filled), every comparison, arithmetic and boolean operator replaced by its neighbour,
  every `not` dropped (harness.mutation.ast_points).
"""

import ast
import hashlib
import importlib
import inspect
import json
import re
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EQUIVALENT_FILE = Path(__file__).resolve().parent / "equivalent_mutants.json"


@dataclass(frozen=True)
class Site:
    """Where a catalogue term lives in que, and how to change it.

    `where` is one of: `statement:NAME[,NAME...]` (que._protocol statements, rebuilt from
    their que.sql source), `sql:NAME` (a que.sql string read at call time), `schema:up:N` or
    `schema:down:N` (que.schema's migrations), `function:module.qualname` (AST operators),
    `constant:module.NAME` (an integer constant shifted by one)."""

    term: str
    where: str
    fragment: str = ""
    operators: tuple[str, ...] = ()
    replacements: tuple[str, ...] = ()


@dataclass(frozen=True)
class Mutant:
    id: str
    term: str
    where: str
    description: str
    # For text sites: the fragment and what it becomes; for AST sites: the point's index.
    fragment: str = ""
    replacement: str = ""
    point: int = -1


WALKS = "statement:CLAIM_JOBS,CLAIM_JOBS_AVOIDING"
ORDER = "ORDER BY priority, run_at, job_id"

SITES: tuple[Site, ...] = (
    # lock_job's walk, in que's claim
    Site(
        "lock_job.lock",
        WALKS,
        "pg_try_advisory_lock((j).job_id)",
        replacements=(
            "pg_try_advisory_lock((j).job_id + 1)",
            "pg_try_advisory_lock(0, (j).job_id::int)",
            "pg_try_advisory_xact_lock((j).job_id)",
        ),
    ),
    Site("lock_job.queue", WALKS, "queue = %(queue)s::text", ("drop", "negate", "case", "trim")),
    Site("lock_job.due", WALKS, "run_at <= now()", ("drop", "flip", "shift_now")),
    Site("lock_job.order", WALKS, ORDER, ("order",)),
    Site("lock_job.first", WALKS, "LIMIT 1\n  ) AS t1\n  UNION ALL", ("const",)),
    Site(
        "lock_job.next",
        WALKS,
        "(priority, run_at, job_id) > (jobs.priority, jobs.run_at, jobs.job_id)",
        ("drop", "flip"),
    ),
    Site("lock_job.step", WALKS, "      LIMIT 1\n    ) AS t1\n  )", ("const",)),
    Site("lock_job.end", WALKS, "WHERE jobs.job_id IS NOT NULL", replacements=("WHERE jobs.job_id IS NULL",)),
    Site(
        "lock_job.columns",
        WALKS,
        "SELECT queue, priority, run_at, job_id, job_class, args, error_count, n",
        replacements=("SELECT job_class AS queue, priority, run_at, job_id, queue AS job_class, args, error_count, n",),
    ),
    Site("lock_job.locked", WALKS, "  WHERE locked\n", replacements=("  WHERE NOT locked\n",)),
    Site("lock_job.one", WALKS, "LIMIT %(count)s::int", replacements=("LIMIT %(count)s::int + 1",)),
    # check_job
    Site("check_job.queue", "statement:CHECK_CLAIMED", "j.queue = k.queue", ("drop",)),
    Site("check_job.priority", "statement:CHECK_CLAIMED", "j.priority = k.priority", ("drop",)),
    Site("check_job.run_at", "statement:CHECK_CLAIMED", "j.run_at = k.run_at", ("drop",)),
    Site("check_job.job_id", "statement:CHECK_CLAIMED", "j.job_id = k.job_id", ("drop",)),
    # set_error
    Site(
        "set_error.count",
        "statement:SET_ERROR",
        "error_count = error_count + 1",
        ("const",),
        ("error_count = 1", "error_count = error_count"),
    ),
    Site(
        "set_error.run_at",
        "statement:SET_ERROR",
        "run_at      = now() + %(delay)s::bigint * '1 second'::interval",
        replacements=(
            "run_at      = run_at + %(delay)s::bigint * '1 second'::interval",
            "run_at      = now() + %(delay)s::bigint * '1 minute'::interval",
            "run_at      = now() + (%(delay)s::bigint + 1) * '1 second'::interval",
            "run_at      = now()",
        ),
    ),
    Site(
        "set_error.last_error",
        "statement:SET_ERROR",
        "last_error  = %(message)s::text",
        replacements=(
            "last_error  = NULL",
            "last_error  = left(%(message)s::text, 100)",
            "last_error  = %(message)s::text, args = '[]'",
            "last_error  = %(message)s::text, job_class = 'QueConformance::Echo'",
        ),
    ),
    Site("set_error.queue", "statement:SET_ERROR", "queue    = %(queue)s::text", ("drop",)),
    Site("set_error.priority", "statement:SET_ERROR", "priority = %(priority)s::smallint", ("drop",)),
    Site("set_error.key_run_at", "statement:SET_ERROR", "run_at   = %(run_at)s::timestamptz", ("drop",)),
    Site("set_error.job_id", "statement:SET_ERROR", "job_id   = %(job_id)s::bigint", ("drop",)),
    # destroy_job
    Site("destroy_job.queue", "statement:DESTROY_JOB", "queue    = %(queue)s::text", ("drop",)),
    Site("destroy_job.priority", "statement:DESTROY_JOB", "priority = %(priority)s::smallint", ("drop",)),
    Site("destroy_job.run_at", "statement:DESTROY_JOB", "run_at   = %(run_at)s::timestamptz", ("drop",)),
    Site("destroy_job.job_id", "statement:DESTROY_JOB", "job_id   = %(job_id)s::bigint", ("drop",)),
    # insert_job
    Site(
        "insert_job.queue",
        "statement:INSERT_JOB",
        "coalesce(%(queue)s, '')::text",
        replacements=("coalesce(%(queue)s, 'default')::text", "lower(coalesce(%(queue)s, ''))::text"),
    ),
    Site(
        "insert_job.priority",
        "statement:INSERT_JOB",
        "coalesce(%(priority)s, 100)::smallint",
        ("const",),
        ("(coalesce(%(priority)s, 100) + 1)::smallint",),
    ),
    Site(
        "insert_job.run_at",
        "statement:INSERT_JOB",
        "coalesce(%(run_at)s, now())::timestamptz",
        replacements=(
            "coalesce(%(run_at)s, now() + interval '1 minute')::timestamptz",
            "date_trunc('second', coalesce(%(run_at)s, now()))::timestamptz",
            "(coalesce(%(run_at)s, now()) + interval '1 microsecond')::timestamptz",
        ),
    ),
    Site(
        "insert_job.job_class",
        "statement:INSERT_JOB",
        "%(job_class)s::text",
        replacements=("lower(%(job_class)s)::text",),
    ),
    Site(
        "insert_job.args",
        "statement:INSERT_JOB",
        "coalesce(%(args)s, '[]')::json",
        replacements=("coalesce(%(args)s, '[]')::jsonb::json", "coalesce(%(args)s, '{}')::json"),
    ),
    Site(
        "insert_job.returning",
        "statement:INSERT_JOB",
        "RETURNING *",
        replacements=("RETURNING *, job_id + 1 AS job_id",),
    ),
    # the unlock, wherever que releases a job
    Site(
        "unlock.key",
        "statement:UNLOCK_JOB",
        "pg_advisory_unlock(%(job_id)s::bigint)",
        replacements=("pg_advisory_unlock(%(job_id)s::bigint + 1)",),
    ),
    Site(
        "unlock.key",
        "statement:RELEASE_JOBS,CLAIM_JOBS,CLAIM_JOBS_AVOIDING",
        "pg_advisory_unlock(k.job_id)",
        replacements=("pg_advisory_unlock(k.job_id + 1)", "k.job_id"),
    ),
    Site("unlock.key", "statement:UNLOCK_JOBS", "pg_advisory_unlock(id)", replacements=("pg_advisory_unlock(id + 1)",)),
    # computed values
    Site("backoff.formula", "function:que.retry.retry_delay", operators=("ast",)),
    Site("backoff.count", "function:que._protocol.Finish.failure", operators=("ast",)),
    Site("last_error.cut", "constant:que.errors.MESSAGE_LIMIT", operators=("const",)),
    Site("last_error.class", "function:que.errors._class_name", operators=("ast",)),
    Site("last_error.join", "function:que.errors.last_error_text", operators=("ast",)),
    Site("args.json_dump", "function:que.encoding._float_text", operators=("ast",)),
    Site("args.json_dump", "function:que.encoding._encode", operators=("ast",)),
    Site("args.json_dump", "function:que.encoding._flat", operators=("ast",)),
    Site("args.json_dump", "function:que.encoding.encode_args", operators=("ast",)),
    Site(
        "args.json_dump",
        "attribute:que.encoding._escape_str",
        replacements=("json.encoder.encode_basestring_ascii",),
    ),
    Site("args.time", "function:que._wire.timestamp_us", operators=("ast",)),
    # job_stats and worker_states
    Site(
        "job_stats.counts",
        "sql:JOB_STATS",
        "count(locks.job_id) AS count_working",
        replacements=("count(*) AS count_working",),
    ),
    Site(
        "job_stats.counts",
        "sql:JOB_STATS",
        "sum((error_count > 0)::int) AS count_errored",
        replacements=("sum((error_count >= 0)::int) AS count_errored",),
    ),
    Site(
        "job_stats.counts",
        "sql:JOB_STATS",
        "max(error_count) AS highest_error_count",
        replacements=("min(error_count) AS highest_error_count",),
    ),
    Site(
        "job_stats.counts",
        "sql:JOB_STATS",
        "min(run_at) AS oldest_run_at",
        replacements=("max(run_at) AS oldest_run_at",),
    ),
    Site(
        "job_stats.locks",
        "sql:JOB_STATS",
        "(classid::bigint << 32) + objid::bigint",
        replacements=("objid::bigint + 1",),
    ),
    Site("job_stats.group", "sql:JOB_STATS", "ORDER BY count(*) DESC", replacements=("ORDER BY count(*)",)),
    Site(
        "worker_states.join",
        "sql:WORKER_STATES",
        "(classid::bigint << 32) + objid::bigint",
        replacements=("objid::bigint + 1",),
    ),
    Site(
        "worker_states.join",
        "sql:WORKER_STATES",
        "pg.pid AS pg_backend_pid",
        replacements=("pg_backend_pid() AS pg_backend_pid",),
    ),
    # migrations and the version
    Site("migration.1", "schema:up:1", "priority    integer     NOT NULL DEFAULT 1", ("const",)),
    Site("migration.1", "schema:up:1", "args        json", replacements=("args        jsonb",)),
    Site(
        "migration.1",
        "schema:up:1",
        "PRIMARY KEY (priority, run_at, job_id)",
        replacements=("PRIMARY KEY (priority, job_id, run_at)",),
    ),
    Site("migration.2", "schema:up:2", "SET DEFAULT 100", ("const",)),
    Site(
        "migration.3",
        "schema:up:3",
        "ALTER COLUMN priority TYPE smallint",
        replacements=("ALTER COLUMN priority TYPE integer",),
    ),
    Site(
        "migration.3",
        "schema:up:3",
        "ADD COLUMN queue TEXT NOT NULL DEFAULT ''",
        replacements=("ADD COLUMN queue TEXT NOT NULL DEFAULT 'default'",),
    ),
    Site(
        "migration.3",
        "schema:up:3",
        "PRIMARY KEY (queue, priority, run_at, job_id)",
        replacements=("PRIMARY KEY (priority, queue, run_at, job_id)",),
    ),
    Site("migration.down", "schema:down:2", "SET DEFAULT 1", ("const",)),
    Site(
        "migration.down",
        "schema:down:3",
        "ALTER COLUMN priority TYPE integer",
        replacements=("ALTER COLUMN priority TYPE bigint",),
    ),
    Site("migration.version", "function:que.schema.steps", operators=("ast",)),
    Site("db_version.read", "function:que.schema.version_of", operators=("ast",)),
)


# -- text operators ------------------------------------------------------------------------

_COMPARISON = re.compile(r"^(?P<left>.+?)\s*(?P<op><=|>=|<>|=|<|>)\s*(?P<right>.+)$", re.S)
_FLIPS = {"=": ["<>"], "<>": ["="], "<=": ["<", ">="], ">=": [">", "<="], "<": ["<=", ">"], ">": [">=", "<"]}


def _text_replacements(site: Site) -> Iterator[tuple[str, str]]:
    """(operator, replacement) for each way the site's operators change its fragment."""
    fragment = site.fragment
    comparison = _COMPARISON.match(fragment.strip())
    for operator in site.operators:
        if operator == "drop":
            yield "drop", "true"
        elif operator == "negate":
            yield "negate", f"NOT ({fragment})"
        elif operator == "flip" and comparison:
            for op in _FLIPS[comparison["op"]]:
                yield f"flip {comparison['op']} to {op}", f"{comparison['left']} {op} {comparison['right']}"
        elif operator == "case" and comparison:
            yield "case", f"lower({comparison['left']}) {comparison['op']} lower({comparison['right']})"
        elif operator == "trim" and comparison:
            yield "trim", f"btrim({comparison['left']}) {comparison['op']} btrim({comparison['right']})"
        elif operator == "shift_now":
            for sign in ("+", "-"):
                yield f"now() {sign} 1 s", fragment.replace("now()", f"(now() {sign} interval '1 second')")
        elif operator == "order":
            head, _, columns_text = fragment.partition("ORDER BY ")
            columns = [c.strip() for c in columns_text.split(",")]
            for index, column in enumerate(columns):
                dropped = [c for i, c in enumerate(columns) if i != index]
                yield f"order drop {column}", head + "ORDER BY " + ", ".join(dropped)
                desc = [f"{c} DESC" if i == index else c for i, c in enumerate(columns)]
                yield f"order {column} DESC", head + "ORDER BY " + ", ".join(desc)
                if index + 1 < len(columns):
                    swapped = list(columns)
                    swapped[index], swapped[index + 1] = swapped[index + 1], swapped[index]
                    yield f"order swap {column}", head + "ORDER BY " + ", ".join(swapped)
        elif operator == "const":
            for match in re.finditer(r"(?<![\w$%.])(\d+)(?![\w.])", fragment):
                number = int(match[1])
                for shifted in (number + 1, number - 1):
                    if shifted >= 0:
                        text = fragment[: match.start()] + str(shifted) + fragment[match.end() :]
                        yield f"{number} to {shifted}", text
    for index, replacement in enumerate(site.replacements):
        yield f"replace {index + 1}", replacement


def _order_term(site: Site, operator: str) -> str:
    """An ORDER BY operator belongs to the catalogue term of the column it changes."""
    for column in ("priority", "run_at", "job_id"):
        if operator.endswith(f" {column}") or f" {column} " in operator:
            return f"{site.term}.{column}"
    return site.term


# -- AST operators -------------------------------------------------------------------------

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
class _Point:
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


def ast_points(tree: ast.AST) -> list[_Point]:
    """Every mutation point of a function's tree, in a stable order."""
    skip = _docstrings(tree) | _refusals(tree) | _annotations(tree)
    points: list[_Point] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or value is None:
                continue
            if isinstance(value, int):
                for shifted in (value + 1, value - 1):
                    points.append(_Point(node, "value", None, shifted, f"{value!r} to {shifted!r}"))
            elif isinstance(value, str):
                points.append(
                    _Point(node, "value", None, "" if value else "X", f"{value!r} to {'' if value else 'X'!r}")
                )
        elif isinstance(node, ast.Compare):
            for index, op in enumerate(node.ops):
                for new in _AST_SWAPS.get(type(op), []):
                    points.append(_Point(node, "ops", index, new(), f"{type(op).__name__} to {new.__name__}"))
        elif isinstance(node, ast.BinOp | ast.BoolOp):
            for new in _AST_SWAPS.get(type(node.op), []):
                points.append(_Point(node, "op", None, new(), f"{type(node.op).__name__} to {new.__name__}"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
            points.append(_Point(node, "drop_unary", None, None, f"drop {type(node.op).__name__}"))
    return points


class _DropUnary(ast.NodeTransformer):
    def __init__(self, target: ast.AST) -> None:
        self.target = target

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        return node.operand if node is self.target else node


def _function_source(path: str) -> tuple[Any, str, Callable[[Any], None]]:
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
            for module in list(sys.modules.values()):
                if getattr(module, "__name__", "").startswith("que") and getattr(module, name, None) is function:
                    setattr(module, name, new)

    return function, source, install


def _function_points(path: str) -> list[_Point]:
    _, source, _ = _function_source(path)
    return ast_points(ast.parse(source))


# -- the mutants ---------------------------------------------------------------------------


_SYMBOLS = {
    "<=": " le ",
    ">=": " ge ",
    "<>": " ne ",
    "=": " eq ",
    "<": " lt ",
    ">": " gt ",
    "+": " plus ",
    "-": " minus ",
}


def _slug(text: str) -> str:
    """A readable id part: operators named, other punctuation folded, at most 48 characters
    and a digest of the whole when cut."""
    named = text.lower()
    for symbol, name in _SYMBOLS.items():
        named = named.replace(symbol, name)
    slug = re.sub(r"[^a-z0-9]+", "-", named).strip("-")
    if len(slug) > 48:
        slug = slug[:40].rstrip("-") + "-" + hashlib.sha1(text.encode()).hexdigest()[:6]
    return slug


def mutants() -> list[Mutant]:
    """Every mutant, in a stable order, with a stable id."""
    found: list[Mutant] = []
    for site in SITES:
        kind = site.where.split(":", 1)[0]
        if kind == "function":
            path = site.where.split(":", 1)[1]
            for index, point in enumerate(_function_points(path)):
                found.append(
                    Mutant(
                        f"{site.term}:{path.rsplit('.', 1)[-1]}:{index}",
                        site.term,
                        site.where,
                        f"{path}: {point.label} (line {getattr(point.node, 'lineno', '?')})",
                        point=index,
                    )
                )
        elif kind == "constant":
            path = site.where.split(":", 1)[1]
            module_name, _, name = path.rpartition(".")
            value = getattr(importlib.import_module(module_name), name)
            for shifted in (value + 1, value - 1):
                found.append(
                    Mutant(
                        f"{site.term}:{name}:{shifted}",
                        site.term,
                        site.where,
                        f"{path}: {value} to {shifted}",
                        replacement=str(shifted),
                    )
                )
        else:
            label = site.where.split(":", 1)[1].split(",")[0]
            for operator, replacement in _text_replacements(site):
                term = _order_term(site, operator) if "order" in site.operators else site.term
                slug = _slug(operator if not operator.startswith("replace") else replacement)
                found.append(
                    Mutant(
                        f"{term}:{label}:{slug}",
                        term,
                        site.where,
                        f"{site.where}: {site.fragment.strip()!r} to {replacement.strip()!r}",
                        fragment=site.fragment,
                        replacement=replacement,
                    )
                )
    ids = [mutant.id for mutant in found]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise AssertionError(f"mutant ids are not unique: {duplicates}")
    return found


def find(mutant_id: str) -> Mutant:
    for mutant in mutants():
        if mutant.id == mutant_id:
            return mutant
    raise KeyError(f"no mutant {mutant_id!r}: python -m harness.mutate --list shows them")


def problem(mutant: Mutant) -> str | None:
    """Why `mutant` cannot be made from que as it is now (its fragment gone, say), or None."""
    import que._protocol
    import que.schema
    import que.sql

    kind, _, target = mutant.where.partition(":")
    if kind == "statement":
        for name in target.split(","):
            if mutant.fragment not in getattr(que._protocol, name).source:
                return f"{mutant.fragment!r} is not in que._protocol.{name}"
    elif kind == "sql" and mutant.fragment not in getattr(que.sql, target):
        return f"{mutant.fragment!r} is not in que.sql.{target}"
    elif kind == "schema":
        direction, _, step = target.partition(":")
        scripts = que.schema._UP if direction == "up" else que.schema._DOWN
        if mutant.fragment not in scripts[int(step)]:
            return f"{mutant.fragment!r} is not in migration {target}"
    elif kind == "function" and mutant.point >= len(_function_points(target)):
        return f"{target} has no mutation point {mutant.point}"
    elif kind not in ("statement", "sql", "schema", "function", "constant", "attribute"):
        return f"unknown site {mutant.where}"
    return None


def apply(mutant_id: str) -> Mutant:
    """Make this process's que the mutant `mutant_id` (before any connection is opened)."""
    import que._protocol
    import que.schema
    import que.sql
    from que._session import statement

    mutant = find(mutant_id)
    wrong = problem(mutant)
    if wrong:
        raise SystemExit(f"mutant {mutant.id}: {wrong}")
    kind, _, target = mutant.where.partition(":")
    if kind == "statement":
        for name in target.split(","):
            original = getattr(que._protocol, name)
            source = original.source.replace(mutant.fragment, mutant.replacement)
            made = statement(original.name.decode() + "_mutant", source, list(original.params))
            setattr(que._protocol, name, made)
    elif kind == "sql":
        text = getattr(que.sql, target)
        setattr(que.sql, target, text.replace(mutant.fragment, mutant.replacement))
    elif kind == "schema":
        direction, _, step = target.partition(":")
        scripts = que.schema._UP if direction == "up" else que.schema._DOWN
        scripts[int(step)] = scripts[int(step)].replace(mutant.fragment, mutant.replacement)
    elif kind == "constant":
        module_name, _, name = target.rpartition(".")
        setattr(importlib.import_module(module_name), name, int(mutant.replacement))
    elif kind == "attribute":
        module_name, _, name = target.rpartition(".")
        replacement = eval(mutant.replacement, {"json": json})  # a dotted name from SITES, not input
        setattr(importlib.import_module(module_name), name, replacement)
    elif kind == "function":
        function, source, install = _function_source(target)
        tree = ast.parse(source)
        point = ast_points(tree)[mutant.point]
        if point.field == "drop_unary":
            tree = _DropUnary(point.node).visit(tree)
        elif point.index is None:
            setattr(point.node, point.field, point.new)
        else:
            getattr(point.node, point.field)[point.index] = point.new
        ast.fix_missing_locations(tree)
        namespace: dict[str, Any] = {}
        exec(compile(tree, inspect.getsourcefile(function) or "<mutant>", "exec"), function.__globals__, namespace)
        install(next(iter(namespace.values())))
    return mutant


def equivalents() -> dict[str, str]:
    """mutant id -> why no observer can tell it from que (harness/equivalent_mutants.json)."""
    data = json.loads(EQUIVALENT_FILE.read_text(encoding="utf-8"))
    return {entry["mutant"]: entry["reason"] for entry in data["equivalent"]}


def equivalent_problems() -> list[str]:
    """Entries of harness/equivalent_mutants.json that name no mutant, or a mutant whose
    change is no longer the one the entry's reason is about (que's code moved)."""
    data = json.loads(EQUIVALENT_FILE.read_text(encoding="utf-8"))
    made = {mutant.id: mutant.description for mutant in mutants()}
    problems = []
    for entry in data["equivalent"]:
        mutant_id = entry["mutant"]
        if mutant_id not in made:
            problems.append(f"harness/equivalent_mutants.json lists {mutant_id}, which is no mutant")
        elif made[mutant_id] != entry.get("change"):
            problems.append(
                f"harness/equivalent_mutants.json: {mutant_id} is now {made[mutant_id]!r}, "
                f"not {entry.get('change')!r}: judge it again"
            )
    return problems
