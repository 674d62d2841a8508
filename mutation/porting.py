"""The second mutation family: porting mistakes, made at the testee's boundary.

mutation/mutants.py changes que's own terms, which finds what a port gets wrong in Ruby's
statements and formulas. It cannot find the mistakes Python's standard library never makes
but another language's libraries and habits make by default: a JSON writer that escapes
every non-ASCII character, sorts keys or drops nulls; a string cut by bytes or by UTF-16
units; a trim that takes Unicode spaces; a class lookup that ignores case or trims; a worker
loop that ends on the first error; a time sent without its microseconds. Each mistake here
is one such habit, applied to the Python testee (que and testees.python) as a small source
change, and is a mutant like the others: `python -m mutation.testee porting.NAME`, run
through the suite by `make mutate`, killed by a cell or listed in equivalent_mutants.json
with the reason.
"""

import ast
from dataclasses import dataclass

from mutation.ast_points import function_source, install_tree


@dataclass(frozen=True)
class Mistake:
    """One porting habit: in the function `function` (module.qualname), `old` becomes `new`
    (or, for an `attribute` path, the module attribute becomes the expression `new`)."""

    name: str
    term: str
    habit: str
    function: str
    old: str
    new: str
    dialect: str = "0.14"


MISTAKES: tuple[Mistake, ...] = (
    Mistake(
        "json-ascii-escape",
        "args.json_dump",
        "a JSON writer's default escaping of every non-ASCII character as \\uXXXX (Python's json, Jackson)",
        "attribute:que.core.encoding._escape_str",
        "",
        "json.encoder.encode_basestring_ascii",
    ),
    Mistake(
        "json-html-escape",
        "args.json_dump",
        "Go encoding/json's default escaping of <, > and & as \\u003c, \\u003e, \\u0026",
        "attribute:que.core.encoding._escape_str",
        "",
        "lambda s: json.encoder.encode_basestring(s).replace('<', '\\\\u003c').replace('>', '\\\\u003e')"
        ".replace('&', '\\\\u0026')",
    ),
    Mistake(
        "json-sorted-keys",
        "args.json_dump",
        "an object's keys written in sorted order (Go maps, sort_keys=True)",
        "que.core.encoding._encode",
        "enumerate(value.items())",
        "enumerate(sorted(value.items(), key=lambda pair: str(pair[0])))",
    ),
    Mistake(
        "json-drop-nulls",
        "args.json_dump",
        "members whose value is null left out (serde's skip_serializing_if, Jackson's NON_NULL)",
        "que.core.encoding._encode",
        "enumerate(value.items())",
        "enumerate([(k, v) for k, v in value.items() if v is not None])",
    ),
    Mistake(
        "json-integral-float",
        "args.json_dump",
        "a float with no fraction written as an integer (JavaScript's JSON.stringify(1.0) is 1)",
        "que.core.encoding._float_text",
        "    if value == 0.0:",
        "    if value.is_integer() and abs(value) < 1e15:\n        return str(int(value))\n    if value == 0.0:",
    ),
    Mistake(
        "error-cut-utf8-bytes",
        "last_error.cut",
        "the message cut at 500 bytes of UTF-8 (Go's s[:500]) instead of 500 characters",
        "que.core.errors.error_parts",
        "return head[:MESSAGE_LIMIT],",
        "return head.encode()[:MESSAGE_LIMIT].decode(errors='ignore'),",
    ),
    Mistake(
        "error-cut-utf16",
        "last_error.cut",
        "the message cut at 500 UTF-16 code units (JavaScript's and Java's substring)",
        "que.core.errors.error_parts",
        "return head[:MESSAGE_LIMIT],",
        "return head.encode('utf-16-le')[: 2 * MESSAGE_LIMIT].decode('utf-16-le', errors='ignore'),",
    ),
    Mistake(
        "error-trimmed-message",
        "last_error.blank",
        "the message trimmed before it is written (a habit of form input and log lines)",
        "que.core.errors.error_parts",
        'head = f"{head}: {message}"',
        'head = f"{head}: {message.strip()}"',
    ),
    Mistake(
        "error-unicode-blank",
        "last_error.blank",
        "a blank message decided by a Unicode trim (Python's str.strip, Go's TrimSpace, JavaScript's trim)",
        "que.core.errors.error_parts",
        "message.strip(RUBY_WHITESPACE)",
        "message.strip()",
    ),
    Mistake(
        "class-case-insensitive",
        "work.unknown_class",
        "job classes looked up ignoring case (a registry keyed by lower-cased names)",
        "que.core.handlers.find",
        "handlers.get(job.job_class)",
        "{k.lower(): v for k, v in handlers.items()}.get(job.job_class.lower())",
    ),
    Mistake(
        "class-trimmed",
        "work.unknown_class",
        "the job class name trimmed before the lookup",
        "que.core.handlers.find",
        "handlers.get(job.job_class)",
        "handlers.get(job.job_class.strip())",
    ),
    Mistake(
        "class-last-segment",
        "work.unknown_class",
        "a job class found by its last '::' segment (a port without Ruby's module paths)",
        "que.core.handlers.find",
        "handlers.get(job.job_class)",
        "{k.rsplit('::', 1)[-1]: v for k, v in handlers.items()}.get(job.job_class.rsplit('::', 1)[-1])",
    ),
    Mistake(
        "loop-ends-on-failure",
        "work.order",
        "a worker loop that ends at the first failed job (Go's `if err != nil { return err }`)",
        "que.shells.runner.Runner._work",
        "        locker.done(held, self.priority, outcome)",
        "        locker.done(held, self.priority, outcome)\n        if failure is not None:\n            return",
    ),
    Mistake(
        "run-at-seconds",
        "insert_job.run_at",
        "run_at sent to the second (a time library or format without fractions)",
        "testees.python.common.enqueue_call",
        'req["run_at"].replace("Z", "+00:00"))',
        'req["run_at"].replace("Z", "+00:00")).replace(microsecond=0)',
    ),
    Mistake(
        "run-at-milliseconds",
        "insert_job.run_at",
        "run_at sent to the millisecond (JavaScript's Date, Java's Date)",
        "testees.python.common.enqueue_call",
        'req["run_at"].replace("Z", "+00:00"))',
        'req["run_at"].replace("Z", "+00:00"))\n        options["run_at"] = options["run_at"].replace('
        "microsecond=options['run_at'].microsecond // 1000 * 1000)",
    ),
    Mistake(
        "run-at-seconds-que2",
        "que2.insert_job.run_at",
        "run_at sent to the second, to a Que 2 table",
        "testees.python.common.enqueue_call",
        'req["run_at"].replace("Z", "+00:00"))',
        'req["run_at"].replace("Z", "+00:00")).replace(microsecond=0)',
        dialect="2",
    ),
    Mistake(
        "error-unicode-blank-que2",
        "que2.set_error.message",
        "a blank message written as the class alone, decided by a Unicode trim, to a Que 2 table",
        "que.core.errors.error_parts",
        "if message.strip(RUBY_WHITESPACE) or not blank_is_none:",
        "if message.strip():",
        dialect="2",
    ),
)


def find(name: str) -> Mistake:
    for mistake in MISTAKES:
        if mistake.name == name:
            return mistake
    raise SystemExit(f"no porting mistake {name!r}; there are {', '.join(m.name for m in MISTAKES)}")


def problem(mistake: Mistake) -> str | None:
    """Why the mistake cannot be made any more (the code it changes moved), or None."""
    if mistake.function.startswith("attribute:"):
        return None
    _, source, _ = function_source(mistake.function)
    if source.count(mistake.old) != 1:
        return f"{mistake.function} has {source.count(mistake.old)} copies of {mistake.old!r}, not one"
    return None


def apply(name: str) -> Mistake:
    """Make this process's que and Python testee make the mistake `name`."""
    import importlib
    import json

    mistake = find(name)
    wrong = problem(mistake)
    if wrong:
        raise SystemExit(f"porting mistake {name}: {wrong}")
    if mistake.function.startswith("attribute:"):
        module_name, _, attribute = mistake.function.removeprefix("attribute:").rpartition(".")
        replacement = eval(mistake.new, {"json": json})  # an expression from MISTAKES, not input
        setattr(importlib.import_module(module_name), attribute, replacement)
        return mistake
    _, source, _ = function_source(mistake.function)
    install_tree(mistake.function, ast.parse(source.replace(mistake.old, mistake.new)))
    return mistake
