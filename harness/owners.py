"""Which testee a server session belongs to: the client port PostgreSQL reports for the
backend (pg_stat_activity.client_port) is a local TCP port of one of the testee's
processes. Lets the suite name the implementation that left a lock behind."""

from typing import Any

import psutil
import psycopg


def client_ports(pid: int) -> set[int]:
    """Local TCP ports of process `pid` and its children."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return set()
    ports: set[int] = set()
    for process in processes:
        try:
            connections = process.net_connections(kind="tcp")
        except psutil.Error:
            continue
        ports |= {c.laddr.port for c in connections if c.laddr}
    return ports


def backend_ports(conn: psycopg.Connection[Any], pids: list[int]) -> dict[int, int]:
    """Backend pid -> the client's port, for TCP clients."""
    rows = conn.execute(
        "SELECT pid, client_port FROM pg_stat_activity WHERE pid = ANY(%s) AND client_port > 0", [pids]
    ).fetchall()
    return {int(pid): int(port) for pid, port in rows}
