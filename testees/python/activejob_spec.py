"""The ActiveJob part of the protocol for the Python testees: SPECs (conformance/PROTOCOL.md,
"ActiveJob") to the Python values que.activejob enqueues, and the values a handler received
back to SPECs. The SPEC says a value's Ruby type, so it crosses the protocol's JSON intact."""

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from que.activejob import Duration, GlobalID, IndifferentDict, RubyModule, RubyTime, Symbol


def _key(spec: list[str]) -> str:
    kind, name = spec
    return Symbol(name) if kind == "sym" else name


def _time(ruby_class: str, utc_text: str, offset: int, zone: str | None) -> RubyTime:
    whole, _, rest = utc_text.removesuffix("Z").partition(".")
    nanosecond = int((rest or "0").ljust(9, "0"))
    moment = datetime.fromisoformat(whole).replace(tzinfo=UTC, microsecond=nanosecond // 1000)
    if ruby_class == "ActiveSupport::TimeWithZone":
        return RubyTime(moment.astimezone(ZoneInfo(zone or "UTC")), ruby_class, nanosecond, zone or "UTC")
    local = moment.astimezone(timezone(timedelta(seconds=offset)))
    if ruby_class == "Time":  # a Ruby Time says itself whether it is UTC ("Z") or +00:00
        return RubyTime(local, ruby_class, nanosecond, utc_text=zone == "UTC" and offset == 0)
    return RubyTime(local, ruby_class, nanosecond)  # a DateTime as a user makes one


def build(spec: list[Any]) -> Any:
    """The Python value a SPEC describes."""
    kind, *rest = spec
    if kind in ("nil", "true", "false"):
        return {"nil": None, "true": True, "false": False}[kind]
    if kind == "int":
        return int(rest[0])
    if kind == "float":
        return float(rest[0])
    if kind == "str":
        return str(rest[0])
    if kind == "sym":
        return Symbol(rest[0])
    if kind == "decimal":
        return Decimal(rest[0])
    if kind == "array":
        return [build(item) for item in rest[0]]
    if kind == "hash":
        pairs = {_key(key): build(value) for key, value in rest[1]}
        return IndifferentDict(pairs) if rest[0] == "indifferent" else pairs
    if kind == "time":
        return _time(*rest)
    if kind == "date":
        return date.fromisoformat(rest[0])
    if kind == "duration":
        value, parts = build(rest[0]), {str(name): number for name, number in build(rest[1]).items()}
        if parts == {"seconds": value} and isinstance(value, int):
            return timedelta(seconds=value)  # what a Python user passes for 300.seconds
        return Duration(value, parts)
    if kind == "gid":
        return GlobalID(rest[0])
    if kind == "module":
        return RubyModule(rest[0])
    raise ValueError(f"no Python value for the SPEC {spec!r}")


def build_call(spec: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """(args, kwargs) of a job's arguments SPEC: a last "kwargs" hash is the keywords."""
    if spec[0] != "array":
        raise ValueError(f"a job's arguments are an array SPEC, not {spec!r}")
    items = list(spec[1])
    kwargs: dict[str, Any] = {}
    if items and items[-1][0] == "hash" and items[-1][1] == "kwargs":
        kwargs = {name: build(value) for (_, name), value in items.pop()[2]}
    return [build(item) for item in items], kwargs


def _utc_text(moment: RubyTime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{moment.nanosecond:09d}Z"


def _pairs(value: dict[Any, Any]) -> list[Any]:
    return [[["sym" if isinstance(k, Symbol) else "str", str(k)], describe(v)] for k, v in value.items()]


def describe(value: Any) -> list[Any]:
    """The SPEC of a value as a handler received it from que.activejob."""
    if value is None or isinstance(value, bool):
        return ["nil"] if value is None else ["true" if value else "false"]
    if isinstance(value, Symbol):
        return ["sym", str(value)]
    if isinstance(value, str):
        return ["str", value]
    if isinstance(value, int):
        return ["int", str(value)]
    if isinstance(value, float):
        return ["float", value]
    if isinstance(value, Decimal):
        return ["decimal", format(value, "f")]
    if isinstance(value, list):
        return ["array", [describe(item) for item in value]]
    if isinstance(value, IndifferentDict):
        return ["hash", "indifferent", _pairs(value)]
    if isinstance(value, dict):
        return ["hash", "plain", _pairs(value)]
    if isinstance(value, RubyTime):
        offset = int(value.utcoffset().total_seconds())  # type: ignore[union-attr]
        zone = value.zone_name if value.ruby_class == "ActiveSupport::TimeWithZone" else None
        if value.ruby_class == "Time" and value.utc_text:
            zone = "UTC"
        return ["time", value.ruby_class, _utc_text(value), offset, zone]
    if isinstance(value, date) and not isinstance(value, datetime):
        return ["date", value.isoformat()]
    if isinstance(value, Duration):
        parts = [[["sym", k], describe(v)] for k, v in value.parts.items()]
        return ["duration", describe(value.value), ["hash", "plain", parts]]
    if isinstance(value, GlobalID):
        return ["gid", value.uri]
    if isinstance(value, RubyModule):
        return ["module", value.name]
    return ["unknown", type(value).__name__, repr(value)]


def describe_call(args: list[Any], kwargs: dict[str, Any]) -> list[Any]:
    items = [describe(arg) for arg in args]
    if kwargs:
        items.append(["hash", "kwargs", [[["sym", k], describe(v)] for k, v in kwargs.items()]])
    return ["array", items]
