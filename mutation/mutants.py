"""Mutants of the Python testee: broken ports made by changing one term of que at a time.

Each term of Ruby Que 0.14.3 that fixtures/catalogue.json lists lives somewhere in que: in a
statement of que.dialects.que0.statements (as its sql module writes it), in an admin query of
que.dialects.que0.sql, in a migration of que.dialects.schema, or in a function that computes
a value (the backoff, last_error, the JSON text). SITES says where; the operators below change
that one place the way a port author could get it wrong, and each change is a mutant:
`python -m mutation.testee ID` is the python testee over que with that change. `make mutate`
(mutation/run.py) runs every mutant through the suite; each must fail a cell, or be listed
in EQUIVALENT with the reason it cannot be told apart from que by any observer.

Operators:
- SQL terms: drop a WHERE term (it becomes `true`), negate it, flip its comparison, fold
  case or trim spaces on both sides of a text comparison, shift now() by a second either
  way, drop, reverse or swap a column of an ORDER BY, shift an integer constant by one, and
  the alternatives a site lists (another column, another interval, another key).
- Python functions: every integer constant shifted by one, every string constant emptied
  (or filled), every comparison, arithmetic and boolean operator replaced by its neighbour,
  every `not` dropped (mutation.ast_points.ast_points).

The sites are in mutation/sites.py. A second family, porting mistakes (mutation/porting.py:
what other languages' libraries and habits do by default, made at the testee's boundary),
joins the list as `porting.NAME` mutants and is judged the same way.
"""

import ast
import hashlib
import importlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mutation import porting
from mutation.ast_points import DropUnary, ast_points, function_points, function_source, install_tree
from mutation.sites import SITES, Site

EQUIVALENT_FILE = Path(__file__).resolve().parent / "equivalent_mutants.json"


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
    dialect: str = "0.14"  # the suite dialect whose cells judge it (mutation.sites.Site)

    @property
    def family(self) -> str:
        """ "que" (a term of que changed) or "porting" (a porting habit, mutation/porting.py)."""
        return "porting" if self.where.startswith("porting:") else "que"


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
            for index, point in enumerate(function_points(path)):
                found.append(
                    Mutant(
                        f"{site.term}:{path.rsplit('.', 1)[-1]}:{index}",
                        site.term,
                        site.where,
                        f"{path}: {point.label} (line {getattr(point.node, 'lineno', '?')})",
                        point=index,
                        dialect=site.dialect,
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
                        dialect=site.dialect,
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
                        dialect=site.dialect,
                    )
                )
    for mistake in porting.MISTAKES:
        found.append(
            Mutant(
                f"porting.{mistake.name}",
                mistake.term,
                f"porting:{mistake.name}",
                f"porting: {mistake.habit}",
                dialect=mistake.dialect,
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
    raise KeyError(f"no mutant {mutant_id!r}: python -m mutation.run --list shows them")


def _statement_home(name: str) -> Any:
    """The module whose prepared statement NAME is: que.dialects.que0.statements (the worker's)
    or que.dialects.que0.inserts (the enqueue's)."""
    import que.dialects.que0.inserts
    import que.dialects.que0.statements

    for module in (que.dialects.que0.statements, que.dialects.que0.inserts):
        if hasattr(module, name):
            return module
    raise KeyError(f"no prepared statement {name} in que.dialects.que0.statements or que.dialects.que0.inserts")


def _sql_module(kind: str) -> Any:
    """que.dialects.que0.sql (the 0.x dialect's statements, `sql:` sites) or que.dialects.que2.sql
    (Que 2's, `sql2:` sites), read at call time."""
    return importlib.import_module({"sql": "que.dialects.que0.sql", "sql2": "que.dialects.que2.sql"}[kind])


def problem(mutant: Mutant) -> str | None:
    """Why `mutant` cannot be made from que as it is now (its fragment gone, say), or None."""
    import que.dialects.que0.protocol
    import que.dialects.que0.sql
    import que.dialects.schema

    kind, _, target = mutant.where.partition(":")
    if kind == "statement":
        for name in target.split(","):
            home = _statement_home(name)
            if mutant.fragment not in getattr(home, name).source:
                return f"{mutant.fragment!r} is not in {home.__name__}.{name}"
    elif kind in ("sql", "sql2") and mutant.fragment not in getattr(_sql_module(kind), target):
        return f"{mutant.fragment!r} is not in que.{kind}.{target}"
    elif kind == "schema":
        direction, _, step = target.partition(":")
        scripts = que.dialects.schema._UP if direction == "up" else que.dialects.schema._DOWN
        if mutant.fragment not in scripts[int(step)]:
            return f"{mutant.fragment!r} is not in migration {target}"
    elif kind == "function" and mutant.point >= len(function_points(target)):
        return f"{target} has no mutation point {mutant.point}"
    elif kind == "porting":
        return porting.problem(porting.find(target))
    elif kind not in ("statement", "sql", "sql2", "schema", "function", "constant", "attribute"):
        return f"unknown site {mutant.where}"
    return None


def apply(mutant_id: str) -> Mutant:
    """Make this process's que the mutant `mutant_id` (before any connection is opened)."""
    import que.dialects.que0.protocol
    import que.dialects.que0.sql
    import que.dialects.schema
    from que.engine.session import statement

    mutant = find(mutant_id)
    wrong = problem(mutant)
    if wrong:
        raise SystemExit(f"mutant {mutant.id}: {wrong}")
    kind, _, target = mutant.where.partition(":")
    if kind == "porting":
        porting.apply(target)
    elif kind == "statement":
        for name in target.split(","):
            home = _statement_home(name)
            original = getattr(home, name)
            source = original.source.replace(mutant.fragment, mutant.replacement)
            made = statement(original.name.decode() + "_mutant", source, list(original.params))
            setattr(home, name, made)
    elif kind in ("sql", "sql2"):
        module = _sql_module(kind)
        setattr(module, target, getattr(module, target).replace(mutant.fragment, mutant.replacement))
    elif kind == "schema":
        direction, _, step = target.partition(":")
        scripts = que.dialects.schema._UP if direction == "up" else que.dialects.schema._DOWN
        scripts[int(step)] = scripts[int(step)].replace(mutant.fragment, mutant.replacement)
    elif kind == "constant":
        module_name, _, name = target.rpartition(".")
        setattr(importlib.import_module(module_name), name, int(mutant.replacement))
    elif kind == "attribute":
        module_name, _, name = target.rpartition(".")
        replacement = eval(mutant.replacement, {"json": json})  # a dotted name from SITES, not input
        setattr(importlib.import_module(module_name), name, replacement)
    elif kind == "function":
        _, source, _ = function_source(target)
        tree = ast.parse(source)
        point = ast_points(tree)[mutant.point]
        if point.field == "drop_unary":
            tree = DropUnary(point.node).visit(tree)
        elif point.index is None:
            setattr(point.node, point.field, point.new)
        else:
            getattr(point.node, point.field)[point.index] = point.new
        install_tree(target, tree)
    return mutant


@dataclass(frozen=True)
class Listed:
    """A mutant mutation/equivalent_mutants.json lists, and why it survives. `kind` is
    "equivalent" (no observer can tell it from que) or "transient" (it differs from que only
    for a moment the next round trip ends, such as a lock held one round trip: a cell could
    see it only by racing the locker, so it is not killed, and the run reports it apart)."""

    kind: str
    reason: str


KINDS = ("equivalent", "transient")


def equivalents() -> dict[str, Listed]:
    """mutant id -> its listing (mutation/equivalent_mutants.json)."""
    data = json.loads(EQUIVALENT_FILE.read_text(encoding="utf-8"))
    return {entry["mutant"]: Listed(entry.get("kind", "equivalent"), entry["reason"]) for entry in data["equivalent"]}


def equivalent_problems() -> list[str]:
    """Entries of mutation/equivalent_mutants.json that name no mutant, or a mutant whose
    change is no longer the one the entry's reason is about (que's code moved)."""
    data = json.loads(EQUIVALENT_FILE.read_text(encoding="utf-8"))
    made = {mutant.id: mutant.description for mutant in mutants()}
    problems = []
    for entry in data["equivalent"]:
        mutant_id = entry["mutant"]
        if entry.get("kind", "equivalent") not in KINDS:
            problems.append(f"mutation/equivalent_mutants.json: {mutant_id} has kind {entry['kind']!r}, not {KINDS}")
        elif mutant_id not in made:
            problems.append(f"mutation/equivalent_mutants.json lists {mutant_id}, which is no mutant")
        elif made[mutant_id] != entry.get("change"):
            problems.append(
                f"mutation/equivalent_mutants.json: {mutant_id} is now {made[mutant_id]!r}, "
                f"not {entry.get('change')!r}: judge it again"
            )
    return problems
