"""que's exceptions, under the public name their last_error text has always carried
(`que.errors.UnknownJobClass: ...`): they live in que.core.errors."""

from que.core.errors import (
    JobFinishedError,
    QueError,
    TransactionPoolingError,
    UnknownJobClass,
    UnsupportedByDialect,
    last_error_text,
)

__all__ = [
    "JobFinishedError",
    "QueError",
    "TransactionPoolingError",
    "UnknownJobClass",
    "UnsupportedByDialect",
    "last_error_text",
]
