"""PostgreSQL for tests, the conformance suite and benchmarks.

Three backends, chosen with `--backend` / QUE_PG_BACKEND:
- `local`: a throwaway cluster made with the server's own `initdb`/`pg_ctl` in a temp
  dir on a free 127.0.0.1 port, stopped and removed afterwards. PostgreSQL refuses to
  run as root, so under root the cluster belongs to an unprivileged user and every
  server command runs as that user. (pytest-postgresql's executor was the first
  choice, but it has no way to run the server as another user.)
- `url`: an existing server from QUE_DATABASE_URL or DATABASE_URL (or --database-url).
- `docker`: testcontainers' PostgresContainer, when a Docker engine answers.
`auto` picks url when a URL is set, else local.
"""

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness import containers, image_build

BACKENDS = ("auto", "local", "url", "docker")
# The settings of every server the harness starts (a local cluster or a container): room for
# the benchmarks' pools (at 128 workers every implementation's pool is open at once, and a
# Go testee keeps up to 140 sessions), and no durability a throwaway server does not need.
SERVER_SETTINGS = {
    "max_connections": "1000",
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
    "shared_buffers": "256MB",
}


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL could be started or reached; the message says why."""


@dataclass
class Database:
    """A running server: its URL, what it is, and how to stop it."""

    url: str
    backend: str
    version: str = ""
    bindir: str | None = None
    # With the docker backend: the URL as containers on `network` see the server.
    container_url: str | None = None
    network: str | None = None
    # With the docker backend: the server's image and where the images came from.
    image: str | None = None
    images_from: str | None = None
    # What the runner learned about this server (e.g. why a setting could not be made).
    notes: dict[str, str | None] = field(default_factory=dict)
    _stop: list[object] = field(default_factory=list, repr=False)


def _version_dir_key(path: str) -> float:
    try:
        return float(Path(path).parent.name)
    except ValueError:
        return 0.0


def find_bindir() -> str | None:
    """Where initdb and pg_ctl live: QUE_PG_BINDIR (set by `que-conformance --pg`), PATH,
    then pg_config --bindir, then Debian's dirs."""
    chosen = os.environ.get("QUE_PG_BINDIR")
    if chosen:
        if not (Path(chosen, "initdb").exists() and Path(chosen, "pg_ctl").exists()):
            raise PostgresUnavailable(f"QUE_PG_BINDIR={chosen} holds no initdb and pg_ctl")
        return chosen
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return str(Path(initdb).resolve().parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
            if Path(out, "initdb").exists() and Path(out, "pg_ctl").exists():
                return out
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_dir_key, reverse=True)
    for candidate in candidates:
        if Path(candidate, "initdb").exists() and Path(candidate, "pg_ctl").exists():
            return candidate
    return None


def install_postgres() -> None:
    """apt-get install postgresql, when running as root on Debian; else explain."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise PostgresUnavailable(
            "no initdb/pg_ctl found (PATH, pg_config --bindir, /usr/lib/postgresql/*/bin) "
            "and not root on a Debian system to install them: install PostgreSQL or "
            "set QUE_DATABASE_URL"
        )
    print("installing PostgreSQL with apt-get ...", file=sys.stderr, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "postgresql", "postgresql-contrib"],
        check=True,
        env=env,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_user() -> pwd.struct_passwd | None:
    """The unprivileged account the server runs as when we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresUnavailable("running as root and found neither a 'postgres' nor a 'nobody' user")


def _run_as(
    user: pwd.struct_passwd | None, args: list[str], env_extra: dict[str, str] | None = None, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    extra: dict[str, object] = {}
    if user is not None:
        extra = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env.update(env_extra or {})
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        args, capture_output=True, text=True, env=env, **extra, **kwargs
    )


def find_libfaketime() -> str | None:
    """Debian's libfaketime (package faketime), which shifts a process's clock."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1")) + sorted(
        glob.glob("/usr/lib/faketime/libfaketime.so.1")
    )
    return found[0] if found else None


class LocalCluster:
    """A throwaway PostgreSQL cluster; use as a context manager.

    `clock` (libfaketime's FAKETIME) runs the server on another wall clock: shifted ("-2h")
    or frozen at one instant ("2031-01-02 03:04:05"), for now(), clock_timestamp() and
    everything else the server computes from it, while clients keep the real time. The
    server's monotonic clock stays real, so its timeouts and sleeps still end. `settings`
    are added to (or override) SERVER_SETTINGS.
    """

    def __init__(
        self,
        bindir: str | None = None,
        port: int | None = None,
        clock: str | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.bindir = bindir or find_bindir()
        if self.bindir is None:
            install_postgres()
            self.bindir = find_bindir()
            if self.bindir is None:
                raise PostgresUnavailable("PostgreSQL was installed but initdb is still missing")
        self.port = port or free_port()
        self.user = server_user()
        self.root = Path(tempfile.mkdtemp(prefix="que-pg-"))
        self.data = self.root / "data"
        self.logfile = self.root / "server.log"
        self.started = False
        self.settings = {**SERVER_SETTINGS, **(settings or {})}
        self.clock_env: dict[str, str] = {}
        if clock is not None:
            library = find_libfaketime()
            if library is None:
                self.remove()
                raise PostgresUnavailable(
                    "libfaketime is not installed (Debian package faketime), so the server's clock cannot be shifted"
                )
            self.clock_env = {"LD_PRELOAD": library, "FAKETIME": clock, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _bin(self, name: str) -> str:
        assert self.bindir is not None
        return str(Path(self.bindir, name))

    def start(self) -> "LocalCluster":
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        init = _run_as(
            self.user,
            [
                self._bin("initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
        )
        if init.returncode != 0:
            self.remove()
            raise PostgresUnavailable(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {self.root}",
                "-c listen_addresses=127.0.0.1",
                *(f"-c {name}={value}" for name, value in self.settings.items()),
            ]
        )
        start = self._pg_ctl("-o", options, "start")
        if start.returncode != 0:
            log = self.logfile.read_text(errors="replace") if self.logfile.exists() else ""
            self.remove()
            raise PostgresUnavailable(f"pg_ctl start failed:\n{start.stdout}\n{start.stderr}\n{log}")
        self.started = True
        return self

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """pg_ctl on this cluster, waiting up to 60 s, under the shifted clock if any. -l: the
        postmaster writes to the log file, not to our captured pipes (which would keep the
        call waiting for their end forever)."""
        command = [self._bin("pg_ctl"), "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "60", *args]
        return _run_as(self.user, env_extra=self.clock_env, args=command)

    def restart(self) -> None:
        """Restart the server in place (same port and data), for fault tests."""
        result = self._pg_ctl("-m", "fast", "restart")
        if result.returncode != 0:
            raise PostgresUnavailable(f"pg_ctl restart failed:\n{result.stderr}")

    def stop(self) -> None:
        """Stop the server (also one whose start was interrupted) and remove the cluster."""
        if self.started or (self.data / "postmaster.pid").exists():
            _run_as(
                self.user,
                [self._bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
            )
            self.started = False
        self.remove()

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "LocalCluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def server_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else ""


def wait_until_ready(url: str, timeout: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def env_url() -> str | None:
    return os.environ.get("QUE_DATABASE_URL") or os.environ.get("DATABASE_URL") or None


def choose_backend(requested: str, url: str | None) -> str:
    if requested not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {requested!r}")
    if requested != "auto":
        return requested
    return "url" if url else "local"


@contextlib.contextmanager
def database(backend: str = "auto", url: str | None = None, bindir: str | None = None) -> Iterator[Database]:
    """A PostgreSQL server for the duration of the block (`bindir`: the local server build)."""
    url = url or env_url()
    chosen = choose_backend(backend, url)
    if chosen == "url":
        if not url:
            raise PostgresUnavailable("backend 'url' needs QUE_DATABASE_URL, DATABASE_URL or --database-url")
        wait_until_ready(url)
        yield Database(url=url, backend="url", version=server_version(url))
    elif chosen == "local":
        with LocalCluster(bindir=bindir) as cluster:
            yield Database(
                url=cluster.url,
                backend="local",
                version=server_version(cluster.url),
                bindir=cluster.bindir,
                _stop=[cluster],
            )
    else:
        reason = containers.docker_unavailable_reason()
        if reason:
            raise PostgresUnavailable(f"backend 'docker': {reason}")
        with postgres_network() as db:
            yield Database(
                url=db.host_url,
                backend="docker",
                version=server_version(db.host_url),
                container_url=db.container_url,
                network=db.network,
                image=db.bases.postgres,
                images_from=db.bases.source,
            )


@dataclass
class ContainerDatabase:
    host_url: str
    container_url: str
    network: str
    bases: image_build.Bases


@contextlib.contextmanager
def postgres_network() -> Iterator[ContainerDatabase]:
    """PostgreSQL in a container on a fresh network; both removed afterwards."""
    import docker

    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # testcontainers before 4.13 (the module moved, the class did not)
        from testcontainers.postgres import PostgresContainer

    client = docker.from_env()
    bases = image_build.choose_bases(client)
    network = client.networks.create(f"que-interop-{uuid.uuid4().hex[:8]}", labels=containers.labels())
    container = PostgresContainer(bases.postgres, username="que", password="que", dbname="que", driver=None)
    settings = [f"-c {name}={value}" for name, value in SERVER_SETTINGS.items()]
    container.with_command(" ".join(settings)).with_kwargs(
        network=network.name, labels=containers.labels(), shm_size="512m"
    )
    try:
        with container:
            network.disconnect(container.get_wrapped_container())
            network.connect(container.get_wrapped_container(), aliases=[containers.DB_ALIAS])
            yield ContainerDatabase(
                host_url=container.get_connection_url(),
                container_url=containers.container_url("que", "que", "que"),
                network=network.name,
                bases=bases,
            )
    finally:
        containers.remove_leftovers()
