"""How que's admin queries (job_stats, worker_states, dead jobs) read rows through psycopg.

They ask for binary results, and these loaders keep the rules of que.engine.wire: json as its
exact text (decoded by que's one JSON rule when needed), and a timestamptz Python cannot
hold ('infinity', which que-interop 0.2 gave jobs set aside by the retry limit) as datetime.max or .min rather
than an error.
"""

from datetime import datetime
from typing import Any

from psycopg.abc import AdaptContext
from psycopg.adapt import Loader
from psycopg.pq import Format

from que.engine import wire as _wire


class _JsonText(Loader):
    format = Format.BINARY

    def load(self, data: Any) -> str:
        return bytes(data).decode(self.connection.info.encoding if self.connection else "utf-8")


class _Timestamptz(Loader):
    format = Format.BINARY

    def load(self, data: Any) -> datetime:
        return _wire.timestamp(_wire.read_int(bytes(data)))


def register(context: AdaptContext) -> None:
    context.adapters.register_loader("json", _JsonText)
    context.adapters.register_loader("timestamptz", _Timestamptz)
