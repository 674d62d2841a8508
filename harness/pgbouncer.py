"""A throwaway pgbouncer in transaction-pooling mode in front of a PostgreSQL server.

Que's job locks are session-level advisory locks, which a transaction pooler cannot keep;
tests and chaos use this to show that que refuses such a connection for its workers.
"""

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from harness.postgres import free_port, server_user, wait_until_ready


def find() -> str | None:
    found = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    return found if Path(found).exists() else None


@contextlib.contextmanager
def transaction_pooler(server_url: str) -> Iterator[str]:
    """Run pgbouncer (pool_mode = transaction, trust auth) in front of `server_url`; yield its URL."""
    binary = find()
    if binary is None:
        raise FileNotFoundError("pgbouncer is not installed (Debian package pgbouncer)")
    target = conninfo_to_dict(server_url)
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="que-pgbouncer-"))
    (work / "users.txt").write_text(f'"{target.get("user", "postgres")}" ""\n')
    (work / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"{target.get('dbname', 'postgres')} = host={target.get('host', '127.0.0.1')} "
        f"port={target.get('port', 5432)} dbname={target.get('dbname', 'postgres')}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nauth_type = trust\n"
        f"auth_file = {work / 'users.txt'}\npool_mode = transaction\nunix_socket_dir =\n"
        f"logfile = {work / 'pgbouncer.log'}\npidfile = {work / 'pgbouncer.pid'}\n"
        "ignore_startup_parameters = extra_float_digits,application_name,client_encoding\n"
    )
    user = server_user()
    run_as: dict[str, Any] = {}
    if user is not None:
        for path in (work, *work.iterdir()):
            os.chown(path, user.pw_uid, user.pw_gid)
        run_as = {"user": user.pw_uid, "group": user.pw_gid}
    proc = subprocess.Popen(
        [binary, str(work / "pgbouncer.ini")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **run_as
    )
    url = f"postgresql://{target.get('user', 'postgres')}@127.0.0.1:{port}/{target.get('dbname', 'postgres')}"
    try:
        wait_until_ready(url, timeout=15)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
