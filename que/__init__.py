"""que: a Python client and worker for the Que job queue protocols.

Jobs live in the `que_jobs` table that Ruby Que 0.x and que-go use (or, at schema version
5 or 7, Ruby Que 1.x's or 2.x's); Python, Ruby and Go processes can enqueue and work the
same jobs side by side. The asyncio forms of the classes are in que.aio.
"""

from importlib import metadata

from que import errors
from que.core.encoding import ArgumentEncodingError, dumps, encode_args, loads
from que.core.errors import (
    JobFinishedError,
    QueError,
    TransactionPoolingError,
    UnknownJobClass,
    UnsupportedByDialect,
    install_log_filter,
    last_error_text,
)
from que.core.handlers import JobType, Registry, current_job, expire, finish
from que.core.hooks import Hook, JobEnd, add_hook, hooked, remove_hook
from que.core.job import Job
from que.core.retry import retry_delay
from que.core.validate import NewJob
from que.dialects.schema import CURRENT_VERSION, db_version, migrate
from que.drivers.connecting import database_url
from que.shells.client import Client
from que.shells.lock import LockedJob
from que.shells.pool import WorkerPool
from que.shells.worker import Worker

# Every message que logs is redacted (passwords it was given) and kept on one line.
install_log_filter()

# One version, the package's own (pyproject.toml).
try:
    __version__ = metadata.version("que-interop")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "CURRENT_VERSION",
    "ArgumentEncodingError",
    "Client",
    "Hook",
    "Job",
    "JobEnd",
    "JobFinishedError",
    "JobType",
    "LockedJob",
    "NewJob",
    "QueError",
    "Registry",
    "TransactionPoolingError",
    "UnknownJobClass",
    "UnsupportedByDialect",
    "Worker",
    "WorkerPool",
    "add_hook",
    "current_job",
    "database_url",
    "db_version",
    "dumps",
    "encode_args",
    "errors",
    "expire",
    "finish",
    "hooked",
    "last_error_text",
    "loads",
    "migrate",
    "remove_hook",
    "retry_delay",
]
