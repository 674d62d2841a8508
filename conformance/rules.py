"""The recorded rules for what each kind of implementation writes and receives.

A testee declares at `start` which rules it follows (`args_encoding`, `number_model`,
`last_error_format`); the suite computes the expected bytes and values from these
functions and the fixtures, and compares them with what the database holds. The rules
are described in fixtures/README.md so a port author can apply them without Python.

- args_encoding "ruby-json-dump": Ruby's JSON.dump (que.encoding is its one
  implementation here).
- args_encoding "go-encoding-json": Go's encoding/json Marshal of the value decoded into
  interface{}: every number a float64, object keys sorted, `<>&` and U+2028/U+2029
  escaped, floats in strconv's shortest form ('e' below 1e-6 and from 1e21).
- number_model "exact": integers of any size and floats are kept and told apart.
- number_model "float64": every number becomes the nearest float64.
"""

import json
import math
from typing import Any

from que.encoding import dumps as ruby_json_dump


def parse_exact(text: str) -> Any:
    """JSON as Ruby and Python read it: exact ints, floats, last duplicate key wins."""
    return json.loads(text)


def parse_float64(text: str) -> Any:
    """JSON as Go's json.Unmarshal into interface{} reads it: every number a float64."""
    return json.loads(text, parse_int=float)


def _digits(value: float) -> tuple[str, str, int]:
    """(sign, shortest round-trip digits, point) with |value| == 0.<digits> * 10**point."""
    text = repr(value)
    sign = "-" if text.startswith("-") else ""
    mantissa, _, exponent = text.lstrip("-").partition("e")
    whole, _, fraction = mantissa.partition(".")
    raw = whole + fraction
    digits = raw.lstrip("0")
    point = len(whole) + int(exponent or 0) - (len(raw) - len(digits))
    return sign, digits.rstrip("0") or "0", point


def _go_float(value: float) -> str:
    """strconv.AppendFloat(f, 'f' or 'e', -1, 64) as encoding/json's floatEncoder uses it."""
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digits, point = _digits(value)
    if 1e-6 <= abs(value) < 1e21:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return sign + digits + "0" * (point - len(digits))
        return f"{sign}{digits[:point]}.{digits[point:]}"
    exp = point - 1
    mantissa = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
    # encoding/json shortens a negative two-digit exponent with a leading zero: e-07 -> e-7.
    exponent = f"-{abs(exp)}" if -10 < exp < 0 else f"{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return f"{sign}{mantissa}e{exponent}"


_GO_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _go_string(value: str) -> str:
    out = ['"']
    for char in value:
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif ord(char) < 0x20 or char in "<>&\u2028\u2029":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def go_marshal(value: Any) -> str:
    """Go's json.Marshal of a value decoded by json.Unmarshal into interface{}."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return _go_float(float(value))
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, list):
        return "[" + ",".join(go_marshal(v) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: kv[0].encode("utf-8"))
        return "{" + ",".join(f"{_go_string(k)}:{go_marshal(v)}" for k, v in items) + "}"
    raise TypeError(f"not a JSON value: {value!r}")


ENCODINGS = {
    "ruby-json-dump": lambda text: ruby_json_dump(parse_exact(text)),
    "go-encoding-json": lambda text: go_marshal(parse_float64(text)),
}

MODELS = {
    "exact": parse_exact,
    "float64": parse_float64,
}

# Whether a reader following the model can observe object key order.
ORDERED = {"exact": True, "float64": False}


def stored_text(args_json: str, encoding: str) -> str | None:
    """The args column a writer following `encoding` stores for input `args_json`."""
    rule = ENCODINGS.get(encoding)
    return rule(args_json) if rule else None


def received_value(stored: str, model: str) -> Any:
    """What a handler following `model` receives for the stored args text."""
    return MODELS[model](stored)


def same_json(a: Any, b: Any, ordered: bool = True) -> bool:
    """Equality that tells 1 from 1.0 and True from 1, as the exact model requires.

    `ordered` also compares object key order, which Ruby and Python readers observe and
    a Go map does not.
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y, ordered) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        keys_match = list(a) == list(b) if ordered else set(a) == set(b)
        return keys_match and all(same_json(a[k], b[k], ordered) for k in a)
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return bool(a == b)


def received_matches(model: str, received_text: str, stored: str) -> bool:
    """Whether a handler's re-serialized arguments equal what `model` makes of `stored`.

    Both sides are read with the model's own parser, so a float64 reader's `-0` or `1`
    is compared as the float64 it stands for.
    """
    parse = MODELS[model]
    return same_json(parse(received_text), parse(stored), ORDERED[model])
