"""Talking to an implementation under test: one process, JSON lines both ways.

The harness knows commands, not languages. A testee is any program that reads one JSON
request per line on stdin and writes one JSON response per line on stdout
(conformance/PROTOCOL.md). Whatever goes wrong on its side becomes a clear exception
here, never a hung suite: a crash (TesteeCrashed), a missed deadline (TesteeTimeout,
after which the process is killed), a line that is not a response (TesteeProtocolError),
a response whose shape breaks conformance/protocol.schema.json (TesteeSchemaError, naming
the op and the field), or an error response (TesteeError).
"""

import collections
import contextlib
import itertools
import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import protocol
from harness.failures import (
    WORKER_OPS,
    NotApplicable,
    NotSpoken,
    TesteeCrashed,
    TesteeError,
    TesteeFailure,
    TesteeProtocolError,
    TesteeSchemaError,
    TesteeTimeout,
    Unavailable,
)

__all__ = [
    "WORKER_OPS",
    "Info",
    "NotApplicable",
    "NotSpoken",
    "Testee",
    "TesteeCrashed",
    "TesteeError",
    "TesteeFailure",
    "TesteeProtocolError",
    "TesteeSchemaError",
    "TesteeTimeout",
    "Unavailable",
    "url_for_testee",
]

PROTOCOL_VERSION = protocol.VERSION

# The deadlines the harness gives a testee, in seconds (conformance/PROTOCOL.md). The
# harness owns them: a request that misses its deadline kills the testee's process group,
# and the testee is started again before the next cell that needs it. pytest's own timeout
# for a cell (conformance/pytest.ini, CELL_TIMEOUT) sits above any cell's sum of them.
DEFAULT_TIMEOUT = 30.0
START_TIMEOUT = 60.0
# `work` gets its own deadline_ms plus this long to shut its pool down and answer.
WORK_GRACE = 30.0
_EOF = object()


def url_for_testee(url: str) -> str:
    """The database URL a testee is given: with sslmode=disable unless the URL says
    otherwise, since the harness's servers speak no SSL and some drivers (Go's lib/pq)
    insist on it by default."""
    if "sslmode=" in url:
        return url
    return url + ("&" if "?" in url else "?") + "sslmode=disable"


@dataclass
class Info:
    """What a testee says about itself at `start`."""

    name: str
    version: str
    language: str
    protocol: int
    capabilities: dict[str, Any] = field(default_factory=dict)

    def can(self, capability: str) -> bool:
        return bool(self.capabilities.get(capability, False))

    # The rules a testee follows; a testee that declares none follows Ruby Que's, and any
    # difference from them is a failure (or a divergence listed in conformance/expectations).
    @property
    def args_encoding(self) -> str:
        return str(self.capabilities.get("args_encoding", "ruby-json-dump"))

    @property
    def number_model(self) -> str:
        return str(self.capabilities.get("number_model", "exact"))

    @property
    def last_error_format(self) -> str:
        return str(self.capabilities.get("last_error_format", "ruby"))


class Testee:
    """A running implementation. Use `request()` or the op helpers."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        command: Sequence[str] | str,
        *,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        label: str | None = None,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.argv:
            raise ValueError("a testee command must not be empty")
        # The row name the harness gave (testee1, go ...): what every failure names. The
        # name the testee reports at start is kept in `info.name`.
        self.label = label or Path(self.argv[0]).name
        # What must happen once the process is gone (a container outlives `docker run`).
        self._on_exit = on_exit
        self._labelled = label is not None
        self._ids = itertools.count(1)
        self._lines: queue.Queue[object] = queue.Queue()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=60)
        self.info: Info | None = None
        # What the harness read in today's terms from an older protocol version's start.
        self.notices: list[str] = []
        # Set while a request waits for its response: an interrupted request leaves the
        # conversation out of step, and such a testee is killed rather than asked to stop.
        self.busy = False
        self.last_op: str | None = None
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
                cwd=cwd,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        except OSError as error:
            raise Unavailable(f"cannot run {shlex.join(self.argv)}: {error}") from None
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def __repr__(self) -> str:
        return f"<Testee {self.label} pid={self.proc.pid}>"

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(_EOF)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_tail.append(line.rstrip("\n"))

    def _stderr_text(self) -> str:
        tail = "\n".join(self.stderr_tail)
        return f"\n--- stderr of {self.label} (last lines) ---\n{tail}" if tail else ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, op: str, timeout: float = DEFAULT_TIMEOUT, **fields: Any) -> dict[str, Any]:
        """Send one request and return its `result`; raise on anything else."""
        if op in WORKER_OPS and self.info is not None and self.info.can("enqueue_only"):
            raise NotApplicable(f"{self.label} declares enqueue_only: it does not answer {op}")
        request_id = next(self._ids)
        message = {"id": request_id, "op": op, **fields}
        wrong = protocol.request_problem(message)
        if wrong is not None:
            raise ValueError(f"the harness built a {op} request that breaks {protocol.SCHEMA_NAME}: {wrong}")
        line = json.dumps(message, ensure_ascii=False)
        assert self.proc.stdin is not None
        self.busy = True
        self.last_op = op
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise TesteeCrashed(
                f"{self.label} is gone (exit code {self.proc.poll()}) before {op}{self._stderr_text()}"
            ) from None
        try:
            raw = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise TesteeTimeout(
                f"{self.label} gave no response to {op} within {timeout:g}s; killed it{self._stderr_text()}"
            ) from None
        if raw is _EOF:
            code = self.proc.wait(5)
            raise TesteeCrashed(f"{self.label} exited with code {code} while answering {op}{self._stderr_text()}")
        assert isinstance(raw, str)
        try:
            response = json.loads(raw)
        except ValueError:
            self.kill()
            raise TesteeProtocolError(
                f"{self.label} answered {op} with a line that is not JSON: {raw[:200]!r}{self._stderr_text()}"
            ) from None
        if not isinstance(response, dict) or response.get("id") != request_id or "ok" not in response:
            self.kill()
            raise TesteeProtocolError(
                f"{self.label} answered {op} (id {request_id}) with {raw[:200]!r}: a response needs "
                f'"id": {request_id} and "ok"'
            )
        self.busy = False
        if op == "start" and response.get("ok") is True and isinstance(response.get("result"), dict):
            # An older protocol version's start, read in today's terms (harness.protocol).
            for notice in protocol.upgrade(response["result"]):
                self.notices.append(notice)
                print(f"que-conformance: {self.label} speaks an older testee protocol: {notice}", file=sys.stderr)
        wrong = protocol.response_problem(op, response)
        if wrong is not None:
            raise TesteeSchemaError(
                f"{self.label} answered {op} with a response that breaks {protocol.SCHEMA_NAME}: {wrong}; "
                f"the line was {raw.strip()[:300]!r}"
            )
        if response["ok"] is not True:
            raise TesteeError(op, response["error"])
        result: dict[str, Any] = response.get("result", {})
        return result

    def start(
        self, database_url: str, results_table: str, timeout: float = START_TIMEOUT, dialect: str = "0.14"
    ) -> Info:
        """The handshake: the testee connects and says what it is and can do. `dialect`
        "2" asks for the Que 2 dialect (sent only then, so a 0.x testee sees what it always did)."""
        fields = {"dialect": dialect} if dialect != "0.14" else {}
        try:
            result = self.request(
                "start",
                timeout=timeout,
                database_url=url_for_testee(database_url),
                results_table=results_table,
                protocol=PROTOCOL_VERSION,
                **fields,
            )
        except TesteeError as error:
            self.stop()
            if error.type == "Unavailable" and error.dialects is not None and dialect not in error.dialects:
                raise NotSpoken(self.label, dialect, error.dialects) from None
            if error.type == "Unavailable":
                raise Unavailable(error.detail) from None
            raise
        except TesteeSchemaError:
            # Not "unavailable": the testee runs but breaks the protocol, and its cells say so.
            self.kill()
            raise
        except (TesteeCrashed, TesteeTimeout, TesteeProtocolError) as error:
            self.kill()
            raise Unavailable(str(error)) from None
        info = Info(
            name=result["name"],
            version=result.get("version", ""),
            language=result.get("language", ""),
            protocol=result["protocol"],
            capabilities=result.get("capabilities", {}),
        )
        if info.protocol not in protocol.ACCEPTED:
            self.stop()
            raise Unavailable(
                f"{info.name} speaks testee protocol {info.protocol}; this harness speaks "
                f"{', '.join(map(str, protocol.ACCEPTED))}"
            )
        declared = result.get("dialects")
        if declared is not None and dialect not in declared:
            self.stop()
            raise NotSpoken(self.label, dialect, declared)
        spoken = result.get("dialect", "0.14")
        if spoken != dialect:
            self.stop()
            raise Unavailable(f"{info.name} speaks the Que {spoken} dialect, not {dialect}")
        self.info = info
        if not self._labelled:
            self.label = info.name
        return info

    # -- the ops, typed -------------------------------------------------------------

    def enqueue(
        self,
        job_class: str,
        args_json: str | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        run_at: str | None = None,
        kwargs_json: str | None = None,
        tags: list[str] | None = None,
    ) -> int | None:
        fields: dict[str, Any] = {"job_class": job_class}
        if args_json is not None:
            fields["args_json"] = args_json
        if queue is not None:
            fields["queue"] = queue
        if priority is not None:
            fields["priority"] = priority
        if run_at is not None:
            fields["run_at"] = run_at
        if kwargs_json is not None:
            fields["kwargs_json"] = kwargs_json
        if tags is not None:
            fields["tags"] = tags
        job_id = self.request("enqueue", **fields).get("job_id")
        return int(job_id) if job_id is not None else None

    def work_one(self, queue: str = "", timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        return self.request("work_one", queue=queue, timeout=timeout)

    def work(self, queue: str = "", workers: int = 1, deadline_ms: int = 60_000) -> dict[str, Any]:
        return self.request(
            "work", queue=queue, workers=workers, deadline_ms=deadline_ms, timeout=deadline_ms / 1000 + WORK_GRACE
        )

    def lock(self, queue: str = "") -> dict[str, Any] | None:
        job = self.request("lock", queue=queue).get("job")
        return job if isinstance(job, dict) else None

    def lock_batch(self, count: int, queue: str = "") -> list[dict[str, Any]]:
        """Lock up to `count` jobs in one claim (capability lock_batch) and keep them."""
        jobs = self.request("lock", queue=queue, count=count).get("jobs")
        if not isinstance(jobs, list):
            raise TesteeProtocolError(f"{self.label}: lock with count answered {jobs!r}, not a list of jobs")
        return jobs

    def release(self, job_id: int) -> None:
        self.request("release", job_id=job_id)

    def migrate(self, version: int) -> None:
        self.request("migrate", version=version)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the testee to exit; kill it if it does not (or if it never answered the
        last request, so it cannot take another)."""
        if self.busy:
            self.kill()
        if self.alive():
            with contextlib.suppress(TesteeFailure):
                self.request("stop", timeout=timeout)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_pipes()
        self._exited()

    def kill(self) -> None:
        """SIGKILL the testee's whole process group."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._close_pipes()
        self._exited()

    def _exited(self) -> None:
        if self._on_exit is not None:
            self._on_exit()

    def _close_pipes(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
