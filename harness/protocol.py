"""The testee protocol's shapes, checked against conformance/protocol.schema.json.

The schema is the one statement of what each request and result looks like; PROTOCOL.md
explains it and this module enforces it, so a port author hears "lock: field job.job_id:
'3' is not of type 'integer'" at the first bad line instead of a confusing cell later.
"""

import functools
import json
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

SCHEMA_NAME = "conformance/protocol.schema.json"

# The protocol version this harness speaks, sent in every `start`. A change that would break
# a testee written from an earlier text of conformance/PROTOCOL.md bumps it, and gets a line
# in the document's changelog and, where the harness can still read the older answers, an
# entry in RENAMED: a testee that answers an older version keeps working, with a one-line
# notice of what to change. tests/harness/frozen/ holds testees written at each version.
VERSION = 2
ACCEPTED = (1, 2)

# What a start result of an older version says differently: version -> [(the path of a
# value in the result, {old value: the value now})].
RENAMED: dict[int, list[tuple[tuple[str, ...], dict[str, str]]]] = {
    1: [(("capabilities", "args_encoding"), {"js-json-stringify": "javascript-json"})],
}


@functools.cache
def schema() -> dict[str, Any]:
    text = resources.files("conformance").joinpath("protocol.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@functools.cache
def _validator(pointer: str) -> jsonschema.Draft202012Validator:
    # A root that only points into the schema's $defs, so every local $ref still resolves.
    return jsonschema.Draft202012Validator({"$ref": pointer, "$defs": schema()["$defs"]})


def upgrade(result: dict[str, Any]) -> list[str]:
    """Bring a `start` result of an accepted older version to this one, in place; one notice
    per value read under its new name. A version the harness does not accept is left as it
    is (the start then fails, naming both versions)."""
    notices = []
    version = result.get("protocol")
    if version == VERSION or version not in ACCEPTED:
        return notices
    for path, renamed in RENAMED.get(version, []):
        holder: Any = result
        for key in path[:-1]:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if not isinstance(holder, dict) or holder.get(path[-1]) not in renamed:
            continue
        old = holder[path[-1]]
        holder[path[-1]] = renamed[old]
        notices.append(
            f"{'.'.join(path)} {old!r} is {renamed[old]!r} since testee protocol {version + 1} "
            f"(conformance/PROTOCOL.md, Changelog): read as such; answer protocol {VERSION} with the new name"
        )
    return notices


def ops() -> list[str]:
    return list(schema()["$defs"]["op"]["enum"])


def capabilities() -> list[str]:
    return list(schema()["$defs"]["capabilities"]["properties"])


def _field(error: ValidationError) -> str:
    path = [str(part) for part in error.absolute_path]
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        path.append(missing[0] if missing else "?")
    elif error.validator == "additionalProperties":
        allowed = error.schema.get("properties", {})
        extra = sorted(name for name in error.instance if name not in allowed)
        path.append(extra[0] if extra else "?")
    return ".".join(path) or "(the whole result)"


def _problem(pointer: str, instance: Any) -> str | None:
    error = best_match(_validator(pointer).iter_errors(instance))
    if error is None:
        return None
    # Inside a oneOf (lock's job or jobs) the closest branch's own error says more.
    while error.context:
        inner = best_match(error.context)
        if inner is None:
            break
        error = inner
    return f"field {_field(error)}: {error.message}"


def request_problem(message: dict[str, Any]) -> str | None:
    """What is wrong with a request line, or None when it fits the schema."""
    return _problem("#/$defs/request", message)


def response_problem(op: str, response: dict[str, Any]) -> str | None:
    """What is wrong with the response to `op` (its envelope, then its result), or None."""
    if op not in ops():
        return f"{op!r} is not an op of the protocol (one of {', '.join(ops())})"
    wrong = _problem("#/$defs/response", response)
    if wrong is None and response.get("ok") is True:
        wrong = _problem(f"#/$defs/results/{op}", response.get("result", {}))
    return wrong
