"""Exceptions raised by que, the `last_error` text written for a failed job, and what que
does to every message it prints or logs: passwords redacted, control characters escaped."""

import logging
import re
import threading
import traceback
import urllib.parse
from collections.abc import Iterable
from typing import Final

# Ruby Que 0.14.3 cuts "<Class>: <message>" to this many characters (not bytes).
MESSAGE_LIMIT: Final = 500
# What Ruby's String#strip takes for whitespace when it decides a message is blank: ASCII
# whitespace and NUL only (Python's str.strip also takes Unicode spaces and separators, and
# keeps NUL).
RUBY_WHITESPACE: Final = " \t\n\v\f\r\x00"


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


class UnsupportedByDialect(QueError, ValueError):
    """A call that the table's dialect has no such thing for (que.dialects): the message
    names the dialect, what was asked, and what to use instead."""

    def __init__(self, dialect: str, title: str, what: str, instead: str) -> None:
        super().__init__(f"que_jobs speaks dialect {dialect} ({title}), which has no {what}: {instead}")
        self.dialect = dialect
        self.what = what
        self.instead = instead


# The public module of que's exceptions (que/errors.py): their class names, in last_error
# texts and tracebacks, stay `que.errors.<Name>` wherever the code lives.
for _public in (QueError, UnknownJobClass, TransactionPoolingError, JobFinishedError, UnsupportedByDialect):
    _public.__module__ = "que.errors"


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
    head, backtrace = error_parts(error)
    return storable("\n".join([head, *backtrace]))


def error_parts(error: BaseException, *, blank_is_none: bool = True) -> tuple[str, list[str]]:
    """`"<Class>: <message>"` cut to 500 characters, and one `path:line:in 'function'` line
    per traceback frame: Que 0.x stores them joined in last_error, Que 2.x apart in
    last_error_message and last_error_backtrace. Que 0.14 writes the class alone for a
    blank message (`blank_is_none`, Ruby's `message.strip.empty?`); Que 1.x/2.x always
    write "<Class>: " and the message as it is."""
    message = error_message(error)
    head = _class_name(error)
    if message.strip(RUBY_WHITESPACE) or not blank_is_none:
        head = f"{head}: {message}"
    frames = traceback.extract_tb(error.__traceback__)
    return head[:MESSAGE_LIMIT], [f"{f.filename}:{f.lineno}:in '{f.name}'" for f in frames]


# -- what que prints and logs ----------------------------------------------------------------


def printable(text: str) -> str:
    """One line: control characters (a newline in a job class, say) written as escapes, so
    nobody can forge a log line or a table row."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


_URL_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)@")
_URL_PASSWORD_PARAM = re.compile(r"[?&]password=([^&#]*)")
_KEYWORD_PASSWORD = re.compile(r"(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'?|\S+)")

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def passwords_in(conninfo: str) -> set[str]:
    """The passwords a connection string holds, as written and percent-decoded, also when
    libpq cannot parse the string (which is when its error message quotes it)."""
    found: set[str] = set()
    userinfo = _URL_USERINFO.match(conninfo)
    if userinfo and ":" in userinfo.group(1):
        found.add(userinfo.group(1).split(":", 1)[1])
    found.update(_URL_PASSWORD_PARAM.findall(conninfo))
    for value in _KEYWORD_PASSWORD.findall(conninfo):
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value.strip("'"))
        found.add(value)
    decoded = {urllib.parse.unquote(value) for value in found}
    return {value for value in found | decoded if value}


def remember_secrets(conninfo: str) -> None:
    """Note the passwords of a connection string que was given: redact() removes them from
    every message que prints or logs from now on."""
    with _secrets_lock:
        _secrets.update(passwords_in(conninfo))


def redact(text: str) -> str:
    """`text` with every password que was given replaced by ***, longest first."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


def redacted(error: BaseException) -> BaseException:
    """The same kind of error with its message redacted (or `error` itself when nothing in
    it is secret); for errors raised while connecting, which libpq words with the DSN."""
    message = str(error)
    clean = redact(message)
    if clean == message:
        return error
    try:
        return type(error)(clean)
    except Exception:
        return RuntimeError(clean)


class _Redacting(logging.Filter):
    """On the "que" logger: each record's message is redacted and put on one line (any
    traceback stays as the formatter writes it, redacted)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = printable(redact(record.getMessage()))
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def install_log_filter(names: Iterable[str] = ("que",)) -> None:
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Redacting) for f in logger.filters):
            logger.addFilter(_Redacting())
