"""How que reads rows: json as its exact text, timestamptz exact even when Python can't.

The `args` column is read as text so the bytes another implementation wrote reach the
job untouched (and are decoded by que's one JSON rule). run_at must round-trip to the
microsecond because every job statement matches on it; values outside Python's
datetime range ('infinity', year 10000, BC) are kept as their text.
"""

from typing import Any

import psycopg
from psycopg.abc import AdaptContext
from psycopg.adapt import Loader
from psycopg.rows import dict_row
from psycopg.types.datetime import TimestamptzLoader


class _TextLoader(Loader):
    def load(self, data: Any) -> str:
        return bytes(data).decode("utf-8")


class _RunAtLoader(TimestamptzLoader):
    def load(self, data: Any) -> Any:
        try:
            return super().load(data)
        except psycopg.DataError:
            return bytes(data).decode("utf-8")


def register(context: AdaptContext) -> None:
    """Install que's loaders on a connection or a cursor."""
    context.adapters.register_loader("json", _TextLoader)
    context.adapters.register_loader("timestamptz", _RunAtLoader)


def cursor(conn: psycopg.Connection[Any]) -> psycopg.Cursor[dict[str, Any]]:
    """A dict-row cursor with que's loaders, on any connection (the caller's too)."""
    cur = conn.cursor(row_factory=dict_row)
    register(cur)
    return cur
