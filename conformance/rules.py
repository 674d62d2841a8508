"""The recorded rules for what each kind of implementation writes and receives.

A testee declares at `start` which rules it follows (`args_encoding`, `number_model`,
`last_error_format`); the suite computes the expected bytes and values from these
functions and the fixtures, and compares them with what the database holds. The rules
are described in fixtures/README.md so a port author can apply them without Python.

- args_encoding "ruby-json-dump": Ruby's JSON.dump (que.core.encoding is its one
  implementation here).
- args_encoding "go-encoding-json": Go's encoding/json Marshal of the value decoded into
  interface{}: every number a float64, object keys sorted, `<>&` and U+2028/U+2029
  escaped, floats in strconv's shortest form ('e' below 1e-6 and from 1e21).
- args_encoding "javascript-json": JavaScript's JSON.stringify of the value JSON.parse reads:
  every number a double written by Number::toString ("0" for -0, fixed notation for
  exponents -6 to 20), array-index keys first, U+2028 and non-ASCII raw.
- number_model "exact": integers of any size and floats are kept and told apart.
- number_model "float64": every number becomes the nearest float64.
- number_model "javascript": float64, and the handler's re-serialized `received` (by
  JSON.stringify) shows neither key order nor the sign of zero.
"""

import json
import math
from typing import Any

from conformance.model import ruby_json_dump


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


def _js_number(value: float) -> str:
    """ECMAScript's Number::toString, which JSON.stringify writes numbers with: the
    shortest round-trip digits, fixed notation for exponents from -6 to 20, "0" for -0."""
    if value == 0:
        return "0"
    sign, digits, point = _digits(value)
    k = len(digits)
    if k <= point <= 21:
        return sign + digits + "0" * (point - k)
    if 0 < point <= 21:
        return f"{sign}{digits[:point]}.{digits[point:]}"
    if -6 < point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    exponent = point - 1
    mantissa = digits[0] + (f".{digits[1:]}" if k > 1 else "")
    return f"{sign}{mantissa}e{'+' if exponent > 0 else '-'}{abs(exponent)}"


_JS_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _js_string(value: str) -> str:
    out = ['"']
    for char in value:
        if char in _JS_ESCAPES:
            out.append(_JS_ESCAPES[char])
        elif ord(char) < 0x20 or 0xD800 <= ord(char) <= 0xDFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _array_index(key: str) -> bool:
    """Whether a JavaScript object orders `key` as an array index (before other keys)."""
    return key.isdigit() and str(int(key)) == key and int(key) < 2**32 - 1


def parse_javascript(text: str) -> Any:
    """JSON as JavaScript's JSON.parse reads it: every number a double; an object's keys in
    JavaScript's order (array indexes ascending, then the others as first met), a duplicate
    key keeping its first place and its last value."""

    def ordered(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in pairs:
            found[key] = value
        indexes = sorted((k for k in found if _array_index(k)), key=int)
        return {k: found[k] for k in [*indexes, *(k for k in found if not _array_index(k))]}

    return json.loads(text, parse_int=float, object_pairs_hook=ordered)


def js_stringify(value: Any) -> str:
    """JavaScript's JSON.stringify of a value read by JSON.parse (parse_javascript)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return _js_number(float(value))
    if isinstance(value, str):
        return _js_string(value)
    if isinstance(value, list):
        return "[" + ",".join(js_stringify(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_js_string(k)}:{js_stringify(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"not a JSON value: {value!r}")


# The rule every writer is held to; the others are known ports' rules, named so a failure
# can say which one a port follows.
RUBY_ENCODING = "ruby-json-dump"

ENCODINGS = {
    RUBY_ENCODING: lambda text: ruby_json_dump(parse_exact(text)),
    "go-encoding-json": lambda text: go_marshal(parse_float64(text)),
    "javascript-json": lambda text: js_stringify(parse_javascript(text)),
}

MODELS = {
    "exact": parse_exact,
    "float64": parse_float64,
    "javascript": parse_javascript,
}

# Whether a reader following the model can observe object key order, and the sign of a
# zero (JavaScript's JSON.stringify writes -0 as 0, so a JavaScript handler's `received`
# cannot show it).
ORDERED = {"exact": True, "float64": False, "javascript": False}
SIGNED_ZERO = {"exact": True, "float64": True, "javascript": False}


def stored_text(args_json: str, encoding: str) -> str | None:
    """The args column a writer following `encoding` stores for input `args_json`."""
    rule = ENCODINGS.get(encoding)
    return rule(args_json) if rule else None


def received_value(stored: str, model: str) -> Any:
    """What a handler following `model` receives for the stored args text."""
    return MODELS[model](stored)


def same_json(a: Any, b: Any, ordered: bool = True, signed_zero: bool = True) -> bool:
    """Equality that tells 1 from 1.0 and True from 1, as the exact model requires.

    `ordered` also compares object key order, which Ruby and Python readers observe and
    a Go map does not; `signed_zero` tells -0.0 from 0.0.
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y, ordered, signed_zero) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        keys_match = list(a) == list(b) if ordered else set(a) == set(b)
        return keys_match and all(same_json(a[k], b[k], ordered, signed_zero) for k in a)
    if isinstance(a, float):
        return a == b and (not signed_zero or math.copysign(1.0, a) == math.copysign(1.0, b))
    return bool(a == b)


def received_matches(model: str, received_text: str, stored: str) -> bool:
    """Whether a handler's re-serialized arguments equal what `model` makes of `stored`.

    Both sides are read with the model's own parser, so a float64 reader's `-0` or `1`
    is compared as the float64 it stands for.
    """
    parse = MODELS[model]
    return same_json(parse(received_text), parse(stored), ORDERED[model], SIGNED_ZERO[model])
