"""Python values for the Ruby values ActiveJob serializes and Python has no type for: a
Symbol, a GlobalID reference, a Module, a HashWithIndifferentAccess, a Time that keeps its
Ruby class and nanoseconds, a Duration that keeps its parts. Each round-trips exactly:
what que.activejob reads from Rails it writes back the same way."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Self

# The Ruby classes a time value can come from, by their ActiveJob serializer.
TIME_CLASSES: Final = ("Time", "ActiveSupport::TimeWithZone", "DateTime")


class Symbol(str):
    """A Ruby Symbol (`:ok`): as a value it goes through ActiveJob's SymbolSerializer; as a
    hash key it is listed in `_aj_symbol_keys`. It equals the str of its name."""

    def __repr__(self) -> str:
        return f"Symbol({str(self)!r})"


@dataclass(frozen=True)
class GlobalID:
    """A reference to a record (`gid://app/User/1`), which Rails finds again when the job
    runs (GlobalID::Locator.locate); Python receives the reference, not the record."""

    uri: str

    def __post_init__(self) -> None:
        if not self.uri.startswith("gid://"):
            raise ValueError(f"a GlobalID is a gid:// URI, not {self.uri!r}")


@dataclass(frozen=True)
class RubyModule:
    """A Ruby class or module passed by name (ActiveJob's ModuleSerializer)."""

    name: str


class IndifferentDict(dict[str, Any]):
    """A HashWithIndifferentAccess: string keys, marked `_aj_hash_with_indifferent_access`."""


class RubyTime(datetime):
    """An aware datetime that remembers what Ruby sent: its class (`Time`,
    `ActiveSupport::TimeWithZone` or `DateTime`), its nanoseconds (Python keeps
    microseconds), its zone's name for a TimeWithZone, and the offset text. A plain aware
    datetime is written as a Time; make one of these to write another class."""

    ruby_class: str
    nanosecond: int
    zone_name: str | None
    utc_text: bool

    def __new__(
        cls,
        value: datetime | int,
        ruby_class: Any = "Time",
        nanosecond: Any = None,
        zone_name: Any = None,
        utc_text: Any = None,
        *rest: Any,
        **fields: Any,
    ) -> Self:
        if isinstance(value, int):
            # datetime's own methods (astimezone, replace, + timedelta) build their result
            # with datetime's arguments: a plain Ruby Time of that instant.
            plain = datetime(value, ruby_class, nanosecond, zone_name, utc_text, *rest, **fields)
            return cls(plain)
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"a Ruby time needs a zone: {value!r} is naive")
        if ruby_class not in TIME_CLASSES:
            raise ValueError(f"ruby_class must be one of {TIME_CLASSES}, not {ruby_class!r}")
        if nanosecond is not None and not (0 <= nanosecond < 10**9 and value.microsecond in (0, nanosecond // 1000)):
            raise ValueError(f"nanosecond {nanosecond} does not fall in microsecond {value.microsecond} of its second")
        microsecond = value.microsecond if nanosecond is None else nanosecond // 1000
        made = super().__new__(
            cls,
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            microsecond,
            value.tzinfo,
            fold=value.fold,
        )
        made.ruby_class = ruby_class
        made.nanosecond = microsecond * 1000 if nanosecond is None else nanosecond
        made.zone_name = zone_name
        made.utc_text = value.utcoffset() == timedelta(0) if utc_text is None else utc_text
        return made

    def __repr__(self) -> str:
        return f"RubyTime({datetime.isoformat(self)!r}, {self.ruby_class!r}, nanosecond={self.nanosecond})"

    def __reduce__(self) -> Any:
        plain = datetime(*self.timetuple()[:6], self.microsecond, self.tzinfo, fold=self.fold)
        return (RubyTime, (plain, self.ruby_class, self.nanosecond, self.zone_name, self.utc_text))


class Duration(timedelta):
    """An ActiveSupport::Duration: its length in seconds, and the parts it was built from
    (`{"months": 1}`), which Ruby needs to add it to a date the way it was meant."""

    parts: dict[str, int | float]
    value: int | float

    def __new__(cls, value: int | float, parts: dict[str, int | float] | None = None) -> Self:
        made = super().__new__(cls, seconds=value)
        made.value = value
        made.parts = dict(parts) if parts is not None else {"seconds": value}
        return made

    def __repr__(self) -> str:
        return f"Duration({self.value!r}, {self.parts!r})"

    def __reduce__(self) -> Any:
        return (Duration, (self.value, self.parts))
