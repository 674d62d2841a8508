"""The one JSON rule: job arguments are written as Ruby's `JSON.dump` writes them.

The `args` column is `json`, not `jsonb`, so the bytes a writer sends are the bytes
every reader gets back. Writing exactly what Ruby Que writes for the same values means
a job enqueued from Python is indistinguishable from one enqueued from Ruby:

- compact separators, no spaces;
- strings as raw UTF-8; only `"`, `\\` and control characters below U+0020 escaped
  (`\\b \\f \\n \\r \\t` short, others as lowercase `\\u00XX`);
- integers in full, at any size;
- floats as Ruby's `Float#to_s`: shortest round-trip digits, fixed notation for
  1e-4 <= |x| < 1e15 (and for 17-digit values below 1e16), otherwise `d.ddde+XX`
  (`1.0e+15`, `1.0e-05`), always with a fractional part (`100.0`, `-0.0`).

Only values both languages read back as the same value are accepted: None, bool, int,
float (finite), str, list/tuple and dict with str keys (or int keys, which Ruby also
writes as their decimal text), nested at most 100 deep counting the args array itself
(Ruby's JSON.parse, which Que workers use, refuses deeper nesting), with integers of at
most 4300 digits (Python's limit for reading them back). Anything else is rejected before
any SQL runs, with the path of the offending value, because a job Ruby or Go would decode
differently is a bug that surfaces only in another process, much later.
"""

import json
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final

from que.core.errors import QueError

_escape_str = json.encoder.encode_basestring

# Ruby's JSON.parse default max_nesting: a Que 0.14 worker cannot read deeper args.
MAX_NESTING: Final = 100


class ArgumentEncodingError(QueError, ValueError):
    """A job argument that cannot be written as portable Que JSON.

    Subclasses ValueError for bad values; `TypeError` is raised directly for values
    of an unsupported type, as the standard library does.
    """


# Where a value sits, for error messages: the argument name, then list indexes (int) and
# object keys (1-tuples). Built into text only when an error names it.
Path = list[object]


def _path(parts: Path) -> str:
    out = []
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif isinstance(part, tuple):
            out.append(f"[{part[0]!r}]")
        else:
            out.append(str(part))
    return "".join(out)


def _float_text(value: float, parts: Path) -> str:
    if math.isnan(value) or math.isinf(value):
        raise ArgumentEncodingError(
            f"{_path(parts)} is {value!r}: NaN and Infinity are not JSON and PostgreSQL's json type rejects them"
        )
    if value == 0.0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    # value == 0.<digits> * 10**point
    point = len(whole) + (int(exponent) if exponent else 0)
    significant = digits.lstrip("0")
    point -= len(digits) - len(significant)
    significant = significant.rstrip("0") or "0"
    # Ruby's flo_to_s: fixed when the point falls inside the digits, or when it is at
    # most 15 places right of them (padding with zeros), or at most 3 places left.
    if -3 <= point <= 15 or 0 < point < len(significant):
        if point <= 0:
            return f"{sign}0.{'0' * -point}{significant}"
        integer = significant[:point].ljust(point, "0")
        return f"{sign}{integer}.{significant[point:] or '0'}"
    exp = point - 1
    return f"{sign}{significant[0]}.{significant[1:] or '0'}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"


def _check_str(value: str, parts: Path, suffix: str = "") -> None:
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ArgumentEncodingError(
            f"{_path(parts)}{suffix} contains an unpaired surrogate at index {error.start}: "
            "it cannot be written as UTF-8"
        ) from None


def _int_text(value: int, parts: Path, suffix: str = "") -> str:
    try:
        return int.__repr__(value)
    except ValueError:
        limit = sys.get_int_max_str_digits()
        raise ArgumentEncodingError(
            f"{_path(parts)}{suffix} is an integer of more than {limit} digits, which Python cannot read back "
            "(sys.get_int_max_str_digits)"
        ) from None


def _enter(value: Any, parts: Path, active: list[int]) -> None:
    """Before writing a list or dict: refuse cycles and nesting Ruby cannot read."""
    if id(value) in active:
        raise ArgumentEncodingError(
            f"{_path(parts)} refers to itself (it contains itself, directly or through other values): "
            "a value that contains itself cannot be written as JSON"
        )
    if len(active) >= MAX_NESTING:
        raise ArgumentEncodingError(
            f"{_path(parts)} is nested {len(active) + 1} deep, counting the args array itself: Ruby's "
            f"JSON.parse, which Que 0.14 workers use, refuses nesting deeper than {MAX_NESTING}"
        )
    active.append(id(value))


def _encode(value: Any, parts: Path, out: list[str], active: list[int]) -> None:
    # bool before int: bool is an int subclass.
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        _check_str(value, parts)
        out.append(_escape_str(value))
    elif isinstance(value, int):
        out.append(_int_text(value, parts))
    elif isinstance(value, float):
        out.append(_float_text(value, parts))
    elif isinstance(value, list | tuple):
        _enter(value, parts, active)
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            parts.append(index)
            _encode(item, parts, out, active)
            parts.pop()
        out.append("]")
        active.pop()
    elif isinstance(value, Mapping):
        _enter(value, parts, active)
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if isinstance(key, str):
                _check_str(key, parts, f" key {key!r}")
                text = key
            elif isinstance(key, int) and not isinstance(key, bool):
                text = _int_text(key, parts, " key")
            else:
                raise TypeError(
                    f"{_path(parts)} has key {key!r} of type {type(key).__name__}: "
                    "object keys must be str (or int), because Ruby and Python write "
                    "other keys differently"
                )
            if index:
                out.append(",")
            out.append(_escape_str(text))
            out.append(":")
            parts.append((text,))
            _encode(item, parts, out, active)
            parts.pop()
        out.append("}")
        active.pop()
    else:
        raise TypeError(
            f"{_path(parts)} is {value!r} of type {type(value).__name__}: job arguments "
            "must be None, bool, int, float, str, list, tuple or dict"
        )


def dumps(value: Any, name: str = "args") -> str:
    """JSON text for `value`, byte for byte as Ruby's `JSON.dump` writes it.

    `name` starts the path in error messages, e.g. `args[2]['when']`.
    """
    out: list[str] = []
    _encode(value, [name], out, [])
    return "".join(out)


def encode_args(args: Sequence[Any]) -> str:
    """The `args` column text for a job's positional arguments."""
    items = list(args)
    return _flat(items) or dumps(items, "args")


def _flat(items: list[Any]) -> str | None:
    """The same text as dumps() for the common case, a flat list of None, bools, ints
    and ASCII strings, written without dumps()'s per-value bookkeeping; None otherwise."""
    out = []
    for value in items:
        kind = type(value)
        if kind is int:
            if value.bit_length() > 4000:  # long enough to meet the digit limit: dumps() says why
                return None
            out.append(int.__repr__(value))
        elif kind is str and value.isascii():
            out.append(_escape_str(value))
        elif value is None:
            out.append("null")
        elif value is True:
            out.append("true")
        elif value is False:
            out.append("false")
        else:
            return None
    return "[" + ",".join(out) + "]"


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not valid JSON")


_decoder = json.JSONDecoder(parse_constant=_refuse)


def loads(text: str) -> Any:
    """Decode an `args` column as Ruby's `JSON.parse` would: ints stay exact, the last
    of duplicate keys wins, and `NaN`/`Infinity` (never valid in a json column) are
    refused rather than turned into floats. Every failure is a ValueError."""
    try:
        return _decoder.decode(text)
    except RecursionError:
        raise ValueError("the JSON text is nested too deep for Python to read") from None
