"""Exceptions raised by que, and the `last_error` text written for a failed job."""

import traceback
from typing import Final

# Ruby Que 0.14.3 cuts "<Class>: <message>" to this many characters (not bytes).
MESSAGE_LIMIT: Final = 500


class QueError(Exception):
    """Base class for errors raised by que itself."""


class UnknownJobClass(QueError, LookupError):
    """A locked job names a job class no handler is registered for.

    Recorded as the job's error with the usual backoff, as Ruby Que records its
    NameError: the job stays until a worker that knows the class picks it up.
    """

    def __init__(self, job_class: str) -> None:
        super().__init__(f"no handler is registered for job class {job_class!r}")
        self.job_class = job_class


class TransactionPoolingError(QueError):
    """The connection's server session changed between statements.

    Que's job locks are session-level advisory locks; behind a transaction-pooling
    proxy each statement may run in a different session, so a lock taken by one
    statement is not held by the next. Working jobs there would run them twice.
    """


class JobFinishedError(QueError):
    """An operation on a locked job that was already released."""


def _class_name(error: BaseException) -> str:
    cls = type(error)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def storable(text: str, codec: str | None = "utf-8") -> str:
    """Text PostgreSQL can store: no NUL, no unpaired surrogates, and only characters the
    database's encoding (`codec`) holds; anything else is kept visible as an escape."""
    text = text.replace("\x00", "\\u0000")
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if codec is not None and codec != "utf-8":
        text = text.encode(codec, "backslashreplace").decode(codec)
    return text


def error_message(error: BaseException) -> str:
    """str(error), even for an exception whose __str__ itself raises."""
    try:
        return str(error)
    except Exception:
        return f"<unprintable {_class_name(error)} object>"


def short_message(error: BaseException) -> str:
    """The error's message cut for a log line, as last_error cuts it."""
    message = error_message(error)
    return message if len(message) <= MESSAGE_LIMIT else message[:MESSAGE_LIMIT] + "..."


def last_error_text(error: BaseException) -> str:
    """The `last_error` for a job that raised `error`, in Ruby Que 0.14.3's shape.

    `"<Class>: <message>"` (only the class when the message is blank), cut to 500
    characters, then one line per traceback frame as `path:line:in 'function'`, so
    tools that read Ruby workers' errors read these too.
    """
    message = error_message(error)
    head = _class_name(error)
    if message.strip():
        head = f"{head}: {message}"
    head = head[:MESSAGE_LIMIT]
    frames = traceback.extract_tb(error.__traceback__)
    lines = [head, *(f"{f.filename}:{f.lineno}:in '{f.name}'" for f in frames)]
    return storable("\n".join(lines))
