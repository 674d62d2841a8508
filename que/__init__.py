"""que: a Python client and worker for the Que job queue protocols.

Jobs live in the `que_jobs` table that Ruby Que 0.x and que-go use (or, at schema version
7, Ruby Que 1.x/2.x's); Python, Ruby and Go processes can enqueue and work the same jobs
side by side.
"""

from que.client import Client
from que.core import errors
from que.core.encoding import ArgumentEncodingError, dumps, encode_args, loads
from que.core.errors import (
    JobFinishedError,
    QueError,
    TransactionPoolingError,
    UnknownJobClass,
    last_error_text,
)
from que.core.handlers import Registry, current_job, expire, finish
from que.core.job import Job
from que.core.retry import retry_delay
from que.core.validate import NewJob
from que.dialects.schema import CURRENT_VERSION, db_version, migrate
from que.drivers.connecting import database_url
from que.lock import LockedJob
from que.pool import WorkerPool
from que.worker import Worker

# Every message que logs is redacted (passwords it was given) and kept on one line.
errors.install_log_filter()

__version__ = "0.2.0"

__all__ = [
    "CURRENT_VERSION",
    "ArgumentEncodingError",
    "Client",
    "Job",
    "JobFinishedError",
    "LockedJob",
    "NewJob",
    "QueError",
    "Registry",
    "TransactionPoolingError",
    "UnknownJobClass",
    "Worker",
    "WorkerPool",
    "current_job",
    "database_url",
    "db_version",
    "dumps",
    "encode_args",
    "expire",
    "finish",
    "last_error_text",
    "loads",
    "migrate",
    "retry_delay",
]
