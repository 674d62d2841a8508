"""PostgreSQL's binary format for the few types que's statements send and read.

que reads and writes job rows in the binary format because it does not depend on the
session: a timestamptz is microseconds since 2000-01-01 UTC whatever DateStyle or
TimeZone say, so run_at (which every job statement matches on) round-trips exactly, and
'infinity' or a BC date is just a number. Text is in the connection's client encoding.
"""

import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

# Type OIDs of the parameters que sends.
TEXT: Final = 25
INT2: Final = 21
INT4: Final = 23
INT8: Final = 20
TIMESTAMPTZ: Final = 1184
BOOL: Final = 16
FLOAT8: Final = 701
# Array types.
TEXT_ARRAY: Final = 1009
INT2_ARRAY: Final = 1005
INT4_ARRAY: Final = 1007
INT8_ARRAY: Final = 1016
TIMESTAMPTZ_ARRAY: Final = 1185

PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
INFINITY_US: Final = 2**63 - 1
MINUS_INFINITY_US: Final = -(2**63)

I2: Final = struct.Struct(">h")
I4: Final = struct.Struct(">i")
I8: Final = struct.Struct(">q")
_F8 = struct.Struct(">d")
_MIN_US = (datetime.min.replace(tzinfo=UTC) - PG_EPOCH) // timedelta(microseconds=1)
_MAX_US = (datetime.max.replace(tzinfo=UTC) - PG_EPOCH) // timedelta(microseconds=1)


def int2(value: int) -> bytes:
    return I2.pack(value)


def int4(value: int) -> bytes:
    return I4.pack(value)


def int8(value: int) -> bytes:
    return I8.pack(value)


def float8(value: float) -> bytes:
    return _F8.pack(value)


def boolean(value: bool) -> bytes:
    return b"\x01" if value else b"\x00"


def text(value: str) -> bytes:
    """Text for a que-owned session, whose client encoding is UTF-8."""
    return value.encode("utf-8")


def int4_array(values: Sequence[int | None]) -> bytes:
    return array(INT4, [None if v is None else int4(v) for v in values])


def int8_array(values: Sequence[int]) -> bytes:
    return array(INT8, [int8(v) for v in values])


def text_array(values: Sequence[str]) -> bytes:
    return array(TEXT, [text(v) for v in values])


def read_int(data: bytes) -> int:
    """An int2, int4 or int8 in binary format (the length tells which)."""
    size = len(data)
    if size == 8:
        return int(I8.unpack(data)[0])
    if size == 4:
        return int(I4.unpack(data)[0])
    return int(I2.unpack(data)[0])


def timestamp_us(value: datetime) -> int:
    """An aware datetime as PostgreSQL's timestamptz: exact microseconds since 2000 (UTC)."""
    return (value - PG_EPOCH) // timedelta(microseconds=1)


def timestamp(us: int) -> datetime:
    """A timestamptz as a UTC datetime. Beyond Python's range ('infinity', BC dates, years
    past 9999) it is datetime.max or datetime.min; the exact value stays in Job.run_at_us."""
    if us > _MAX_US:
        return datetime.max.replace(tzinfo=UTC)
    if us < _MIN_US:
        return datetime.min.replace(tzinfo=UTC)
    return PG_EPOCH + timedelta(microseconds=us)


# The parameters of one statement, in binary format (None for NULL).
Params = Sequence[bytes | None]

_ARRAY_HEADER = struct.Struct(">iiIii")
_LENGTH = struct.Struct(">i")


_NULL = _LENGTH.pack(-1)


def array(oid: int, elements: Sequence[bytes | None]) -> bytes:
    """A one-dimensional array of binary values (None for NULL), in PostgreSQL's binary format."""
    has_null = None in elements
    out = [_ARRAY_HEADER.pack(1, int(has_null), oid, len(elements), 1)]
    for element in elements:
        if element is None:
            out.append(_NULL)
        else:
            out.append(_LENGTH.pack(len(element)))
            out.append(element)
    return b"".join(out)


# PostgreSQL's server encodings and the Python codecs that write them; None where Python
# has none (or where the server stores bytes as given, SQL_ASCII). A text que writes must
# be representable in the database's encoding.
_SERVER_CODECS: Final = {
    "UTF8": "utf-8",
    "SQL_ASCII": None,
    "LATIN1": "iso8859-1",
    "LATIN2": "iso8859-2",
    "LATIN3": "iso8859-3",
    "LATIN4": "iso8859-4",
    "LATIN5": "iso8859-9",
    "LATIN6": "iso8859-10",
    "LATIN7": "iso8859-13",
    "LATIN8": "iso8859-14",
    "LATIN9": "iso8859-15",
    "LATIN10": "iso8859-16",
    "ISO_8859_5": "iso8859-5",
    "ISO_8859_6": "iso8859-6",
    "ISO_8859_7": "iso8859-7",
    "ISO_8859_8": "iso8859-8",
    "KOI8R": "koi8-r",
    "KOI8U": "koi8-u",
    "WIN866": "cp866",
    "WIN874": "cp874",
    "WIN1250": "cp1250",
    "WIN1251": "cp1251",
    "WIN1252": "cp1252",
    "WIN1253": "cp1253",
    "WIN1254": "cp1254",
    "WIN1255": "cp1255",
    "WIN1256": "cp1256",
    "WIN1257": "cp1257",
    "WIN1258": "cp1258",
    "EUC_CN": "gb2312",
    "EUC_JP": "euc_jp",
    "EUC_JIS_2004": "euc_jis_2004",
    "EUC_KR": "euc_kr",
}


def server_codec(encoding: bytes | None) -> str | None:
    """The Python codec for a database encoding name (`server_encoding`), if there is one."""
    return _SERVER_CODECS.get((encoding or b"UTF8").decode("ascii", "replace").upper())


def check_representable(fields: dict[str, str], codec: str | None, encoding: str) -> None:
    """Refuse text the database cannot hold, naming the field, before anything is written."""
    if codec is None or codec == "utf-8":
        return
    for name, value in fields.items():
        try:
            value.encode(codec)
        except UnicodeEncodeError as failure:
            bad = value[failure.start : failure.end]
            raise ValueError(
                f"{name} {value[:60]!r} holds {bad!r}, which this database's encoding {encoding} cannot store"
            ) from None
