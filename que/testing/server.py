"""A throwaway PostgreSQL for a user's test session: initdb in a temp folder, a server on a
free port of 127.0.0.1 with trust auth, removed at the end. Needs PostgreSQL's server
programs (initdb, pg_ctl): on PATH, at `pg_config --bindir`, or in Debian's
/usr/lib/postgresql/<version>/bin. Run as root, the server runs as the `postgres` user, as
initdb refuses root. (The conformance harness keeps a server of its own: the suite and
the library share no code.)"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any


class NoServer(RuntimeError):
    """No PostgreSQL server programs here, or the server would not start."""


def server_programs() -> Path:
    found = [Path(p).parent for p in (shutil.which("initdb"), shutil.which("pg_ctl")) if p]
    if len(found) == 2 and found[0] == found[1]:
        return found[0]
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    for folder in [*debian]:
        if Path(folder, "initdb").exists() and Path(folder, "pg_ctl").exists():
            return Path(folder)
    raise NoServer(
        "no initdb and pg_ctl (PATH or /usr/lib/postgresql/*/bin): install PostgreSQL's server, or give "
        "--que-database-url / QUE_TEST_DATABASE_URL"
    )


class TemporaryServer:
    def __init__(self) -> None:
        self.bin = server_programs()
        self.root = Path(tempfile.mkdtemp(prefix="que-test-pg-"))
        self.user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        extra: dict[str, Any] = {}
        if self.user is not None:
            extra = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"LC_ALL": "C"}
        done = subprocess.run(args, capture_output=True, text=True, env=env, **extra)
        if done.returncode != 0:
            raise NoServer(f"{Path(args[0]).name} failed: {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> "TemporaryServer":
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        data = str(self.root / "data")
        self._run(str(self.bin / "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "server.log")
        self._run(str(self.bin / "pg_ctl"), "-D", data, "-l", log, "-w", "-t", "60", "-o", options, "start")
        return self

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
