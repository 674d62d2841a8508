"""ActiveJob's argument format (activejob/lib/active_job/arguments.rb and serializers/), both
ways, without I/O: Python values to the JSON a Rails job's `arguments` holds, and back.

Two formats, by the Rails that reads them (que.activejob.envelope.FORMATS): "6.1" (Rails
6.1 and 7.0) and "7.1" (7.1.3 on, 7.2, 8.0), which adds the BigDecimal serializer and a
TimeWithZone's zone name. Whatever ActiveJob itself could not serialize is refused with
ArgumentError naming the value and the rule, before anything is written.
"""

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

from que.activejob.types import Duration, GlobalID, IndifferentDict, RubyModule, RubyTime, Symbol

GLOBALID_KEY: Final = "_aj_globalid"
SYMBOL_KEYS_KEY: Final = "_aj_symbol_keys"
RUBY2_KEYWORDS_KEY: Final = "_aj_ruby2_keywords"
WITH_INDIFFERENT_ACCESS_KEY: Final = "_aj_hash_with_indifferent_access"
OBJECT_SERIALIZER_KEY: Final = "_aj_serialized"
RESERVED_KEYS: Final = frozenset(
    {GLOBALID_KEY, SYMBOL_KEYS_KEY, RUBY2_KEYWORDS_KEY, WITH_INDIFFERENT_ACCESS_KEY, OBJECT_SERIALIZER_KEY}
)
# ActiveJob::Serializers::<name>, by the Ruby class a time value came from.
_TIME_SERIALIZERS: Final = {
    "Time": "ActiveJob::Serializers::TimeSerializer",
    "ActiveSupport::TimeWithZone": "ActiveJob::Serializers::TimeWithZoneSerializer",
    "DateTime": "ActiveJob::Serializers::DateTimeSerializer",
}
_SERIALIZER = "ActiveJob::Serializers::"
_TIME_TEXT: Final = re.compile(r"\A(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)\Z")


class SerializationError(ValueError):
    """A value ActiveJob cannot carry (ActiveJob::SerializationError)."""


def serialize(args: Sequence[Any], kwargs: Mapping[str, Any], rails: str) -> list[Any]:
    """The `arguments` of a Rails job called as perform(*args, **kwargs): keyword arguments
    become a last hash marked `_aj_ruby2_keywords`, as Ruby 2.7+ passes them."""
    out = [_value(arg, rails, f"argument {index}") for index, arg in enumerate(args)]
    if kwargs:
        out.append(_hash(kwargs, rails, "keyword arguments", RUBY2_KEYWORDS_KEY, all_symbols=True))
    return out


def deserialize(arguments: Sequence[Any]) -> tuple[list[Any], dict[str, Any]]:
    """(args, kwargs) for a Python handler: a last hash marked `_aj_ruby2_keywords` is the
    keyword arguments, as Ruby's perform(*arguments) receives them."""
    if not isinstance(arguments, list):
        raise SerializationError(f"a job's arguments are a JSON array, not {type(arguments).__name__}")
    values = list(arguments)
    kwargs: dict[str, Any] = {}
    if values and isinstance(values[-1], dict) and RUBY2_KEYWORDS_KEY in values[-1]:
        last = _read(values.pop(), "the keyword arguments")
        kwargs = {str(key): value for key, value in last.items()}
    return [_read(value, f"argument {index}") for index, value in enumerate(values)], kwargs


# -- writing ---------------------------------------------------------------------------------


def _value(value: Any, rails: str, where: str) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, Symbol):
        return _object("SymbolSerializer", value=str(value))
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SerializationError(f"{where}: {value!r} has no JSON text (ActiveJob writes finite floats only)")
        return value
    if isinstance(value, Decimal):
        return _decimal(value, rails, where)
    if isinstance(value, (list, tuple)):
        return [_value(item, rails, f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, IndifferentDict):
        result = _hash(value, rails, where, None)
        result[WITH_INDIFFERENT_ACCESS_KEY] = True
        return result
    if isinstance(value, dict):
        return _hash(value, rails, where, SYMBOL_KEYS_KEY)
    if isinstance(value, datetime):
        return _time(value, rails, where)
    if isinstance(value, date):
        return _object("DateSerializer", value=value.isoformat())
    if isinstance(value, timedelta):
        return _duration(value, rails, where)
    if isinstance(value, GlobalID):
        return {GLOBALID_KEY: value.uri}
    if isinstance(value, RubyModule):
        return _object("ModuleSerializer", value=value.name)
    raise SerializationError(
        f"{where}: ActiveJob cannot serialize {type(value).__name__} {value!r} "
        "(it takes nil, strings, numbers, booleans, arrays, hashes with string or symbol keys, "
        "times, dates, durations, symbols, modules and GlobalIDs)"
    )


def _object(serializer: str, **fields: Any) -> dict[str, Any]:
    return {OBJECT_SERIALIZER_KEY: _SERIALIZER + serializer, **fields}


def _hash(
    value: Mapping[Any, Any], rails: str, where: str, mark: str | None, all_symbols: bool = False
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    symbols: list[str] = []
    for key, item in value.items():
        if not isinstance(key, str):
            raise SerializationError(
                f"{where}: only string and symbol hash keys may be serialized as job arguments, "
                f"but {key!r} is a {type(key).__name__}"
            )
        if key in RESERVED_KEYS:
            raise SerializationError(f"{where}: can't serialize a hash with reserved key {key!r}")
        if all_symbols or isinstance(key, Symbol):
            symbols.append(str(key))
        result[str(key)] = _value(item, rails, f"{where}[{key!r}]")
    if mark is not None:
        result[mark] = symbols
    return result


def _decimal(value: Decimal, rails: str, where: str) -> Any:
    if not value.is_finite():
        raise SerializationError(f"{where}: {value!r} has no JSON text (BigDecimal writes finite values only)")
    if rails == "6.1":
        # A permitted type there: Que's JSON writes BigDecimal#to_s ("0.15e1"), and Rails
        # reads that back as a String.
        return _ruby_decimal_text(value)
    # BigDecimal#to_s as ActiveSupport makes it ("F"): no exponent, at least one decimal.
    text = format(value, "f")
    text = text.rstrip("0") if "." in text else text + "."
    text += "0" if text.endswith(".") else ""
    return _object("BigDecimalSerializer", value=text)


def _ruby_decimal_text(value: Decimal) -> str:
    """Ruby's BigDecimal#to_s: "0.<digits>e<exponent>", or "0.0" (with its sign) for zero."""
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    kept = list(digits)
    while len(kept) > 1 and kept[-1] == 0:
        kept.pop()
        exponent += 1
    prefix = "-" if sign else ""
    if kept == [0]:
        return f"{prefix}0.0"
    return f"{prefix}0.{''.join(map(str, kept))}e{len(kept) + exponent}"


def _time(value: datetime, rails: str, where: str) -> dict[str, Any]:
    offset = value.utcoffset()
    if offset is None:
        raise SerializationError(
            f"{where}: {value!r} is naive; ActiveJob writes a time with its zone (give it a tzinfo)"
        )
    ruby = value if isinstance(value, RubyTime) else RubyTime(value)
    fraction = f"{ruby.nanosecond:09d}"
    if ruby.utc_text and offset == timedelta(0) and ruby.ruby_class != "DateTime":
        zone_text = "Z"
    else:
        minutes = int(offset.total_seconds()) // 60
        sign = "-" if minutes < 0 else "+"
        zone_text = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    text = f"{value.strftime('%Y-%m-%dT%H:%M:%S')}.{fraction}{zone_text}"
    result = {OBJECT_SERIALIZER_KEY: _TIME_SERIALIZERS[ruby.ruby_class], "value": text}
    if ruby.ruby_class == "ActiveSupport::TimeWithZone" and rails != "6.1":
        result["time_zone"] = ruby.zone_name or _zone_name(value, where)
    return result


def _zone_name(value: datetime, where: str) -> str:
    if isinstance(value.tzinfo, ZoneInfo):
        return value.tzinfo.key
    if value.tzinfo is UTC:
        return "Etc/UTC"
    raise SerializationError(f"{where}: a TimeWithZone needs a named zone (a zoneinfo.ZoneInfo), not {value.tzinfo!r}")


def _duration(value: timedelta, rails: str, where: str) -> dict[str, Any]:
    if isinstance(value, Duration):
        seconds, parts = value.value, value.parts
    else:
        total = value.total_seconds()
        seconds = int(total) if total == int(total) else total
        parts = {"seconds": seconds}
    # Rails passes the parts hash to Arguments.serialize, which maps over it: an array of
    # [key, value] pairs, each key a Symbol.
    pairs = [
        [_value(Symbol(key), rails, where), _value(part, rails, f"{where} part {key}")] for key, part in parts.items()
    ]
    return _object("DurationSerializer", value=seconds, parts=pairs)


# -- reading ---------------------------------------------------------------------------------


def _read(value: Any, where: str) -> Any:
    if isinstance(value, list):
        return [_read(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and GLOBALID_KEY in value:
        return GlobalID(value[GLOBALID_KEY])
    if OBJECT_SERIALIZER_KEY in value:
        return _read_object(value, where)
    result = {key: _read(item, f"{where}[{key!r}]") for key, item in value.items()}
    if result.pop(WITH_INDIFFERENT_ACCESS_KEY, None):
        return IndifferentDict(result)
    for mark in (SYMBOL_KEYS_KEY, RUBY2_KEYWORDS_KEY):
        if mark in result:
            symbols = set(result.pop(mark))
            return {Symbol(key) if key in symbols else key: item for key, item in result.items()}
    return result


def _read_object(value: dict[str, Any], where: str) -> Any:
    serializer = str(value[OBJECT_SERIALIZER_KEY]).removeprefix(_SERIALIZER)
    if serializer == "SymbolSerializer":
        return Symbol(value["value"])
    if serializer == "ModuleSerializer":
        return RubyModule(value["value"])
    if serializer == "DateSerializer":
        return date.fromisoformat(value["value"])
    if serializer == "BigDecimalSerializer":
        return Decimal(value["value"])
    if serializer == "DurationSerializer":
        pairs = _read(value["parts"], f"{where} parts")
        return Duration(
            value["value"], {str(key): part for key, part in (pairs.items() if isinstance(pairs, dict) else pairs)}
        )
    for ruby_class, name in _TIME_SERIALIZERS.items():
        if name.removeprefix(_SERIALIZER) == serializer:
            return _read_time(value, ruby_class, where)
    raise SerializationError(f"{where}: no Python value for ActiveJob's {value[OBJECT_SERIALIZER_KEY]!r}")


def _read_time(value: dict[str, Any], ruby_class: str, where: str) -> RubyTime:
    text = str(value["value"])
    found = _TIME_TEXT.match(text)
    if not found:
        raise SerializationError(f"{where}: {text!r} is not ActiveJob's ISO 8601 time text")
    year, month, day, hour, minute, second = (int(part) for part in found.groups()[:6])
    nanosecond = int((found[7] or "").ljust(9, "0"))
    zone_text = found[8]
    if zone_text == "Z":
        zone: Any = UTC
    else:
        sign = -1 if zone_text[0] == "-" else 1
        zone = timezone(sign * timedelta(hours=int(zone_text[1:3]), minutes=int(zone_text[4:6])))
    moment = datetime(year, month, day, hour, minute, second, nanosecond // 1000, zone)
    zone_name = value.get("time_zone")
    if zone_name:
        moment = moment.astimezone(ZoneInfo(zone_name))
    return RubyTime(moment, ruby_class, nanosecond, zone_name, utc_text=zone_text == "Z")
