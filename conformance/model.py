"""The suite's own model of what Ruby Que computes: the backoff, the JSON text of arguments,
and the last_error text. The judge must not be a contestant: nothing here comes from que, so
a bug in que shows as a red python row instead of being mirrored by the model.

Each rule is written from the catalogue's terms (fixtures/catalogue.json, catalogue2.json)
and the fixtures; tests/tools/test_model.py checks the model against the real Ruby's
JSON.generate and Float#to_s, and checks que against the model.

- backoff (catalogue: "count ** 4 + 3", "error_count + 1"): after the n-th failure the job
  is due again n**4 + 3 seconds later, n counting from 1.
- JSON.dump (catalogue: "JSON.dump(param)"): compact; strings raw UTF-8 with only `"`, `\\`
  and control characters below U+0020 escaped (\\b \\f \\n \\r \\t short, the rest
  \\u00XX in lowercase hex); integers in full; floats as Float#to_s; object keys as text.
- Float#to_s: the shortest digits that read back as the same double; fixed notation when
  the decimal point falls inside the digits, or after them at most 15 places from the
  start (`100.0`), or at most 4 zeros after the point (`0.0001`); otherwise `d.ddde+XX`
  with a two-digit exponent at least (`1.0e+15`, `1.0e-05`).
- last_error (catalogue: "error.class.to_s", "message.nil? || message.strip.empty?",
  "message << ...", "message.slice(0, 500)", the backtrace joined by newlines): the class,
  then ": message" unless the message is blank, cut to 500 characters, then one line per
  backtrace frame.
- run(*args) (catalogue: "run(*attrs[:args])"): Ruby's splat of the parsed args: an array
  gives its members, nil no argument, a Hash one [key, value] pair per member in order
  (Hash#to_a), anything else itself as the one argument.
"""

import math
from typing import Any

MESSAGE_LIMIT = 500
# Ruby's String#strip removes these (and NUL at the end) around a message.
_RUBY_WHITESPACE = " \t\n\v\f\r\x00"


def ruby_splat(args: Any) -> list[Any]:
    """The arguments Ruby's `run(*args)` hands a handler for parsed JSON `args`."""
    if isinstance(args, list):
        return args
    if args is None:
        return []
    if isinstance(args, dict):
        return [[key, value] for key, value in args.items()]
    return [args]


def retry_delay(error_count: int) -> int:
    """Seconds until a job whose error_count (after this failure) is `error_count` is due."""
    return error_count**4 + 3


def ruby_float(value: float) -> str:
    """Float#to_s for a finite double."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{value!r} has no JSON text: JSON.generate raises GeneratorError")
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    digits, point = _shortest(abs(value))
    if 0 < point <= len(digits) - 1 or (len(digits) <= point <= 15):
        whole, fraction = digits[:point], digits[point:]
        return f"{sign}{whole.ljust(point, '0')}.{fraction or '0'}"
    if -4 < point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    exponent = point - 1
    return f"{sign}{digits[0]}.{digits[1:] or '0'}e{'+' if exponent >= 0 else '-'}{abs(exponent):02d}"


def _shortest(value: float) -> tuple[str, int]:
    """(digits, point): the shortest round-trip digits of a positive double, with the value
    equal to 0.<digits> * 10**point. repr() gives the same shortest digits Ruby's dtoa does."""
    mantissa, _, exponent = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    raw = (whole + fraction).lstrip("0")
    leading = len(whole + fraction) - len(raw)
    point = len(whole) + int(exponent or 0) - leading
    return raw.rstrip("0") or "0", point


_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def ruby_string(text: str) -> str:
    out = ['"']
    for char in text:
        if char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif char < " ":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def ruby_json_dump(value: Any) -> str:
    """JSON.dump of a value read from JSON (None, bool, int, float, str, list, dict)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ruby_float(value)
    if isinstance(value, str):
        return ruby_string(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(ruby_json_dump(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{ruby_string(str(k))}:{ruby_json_dump(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"{value!r} is not a JSON value")


def last_error_head(class_name: str, message: str) -> str:
    """The first part of last_error: the class, then `: message` unless the message is blank
    (Ruby's strip), cut to 500 characters."""
    head = class_name if not message.strip(_RUBY_WHITESPACE) else f"{class_name}: {message}"
    return head[:MESSAGE_LIMIT]


def last_error(class_name: str, message: str, frames: list[str]) -> str:
    """The whole last_error text: the head, then one line per backtrace frame."""
    return "\n".join([last_error_head(class_name, message), *frames])
