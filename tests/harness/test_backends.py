"""PostgreSQL backends: selection, the throwaway cluster's life cycle, URL and docker."""

import os
from pathlib import Path

import psycopg
import pytest

from harness import postgres
from harness.postgres import LocalCluster, PostgresUnavailable, choose_backend, database


@pytest.mark.parametrize(
    ("requested", "url", "chosen"),
    [
        ("auto", None, "local"),
        ("auto", "postgresql://x", "url"),
        ("local", "postgresql://x", "local"),
        ("url", None, "url"),
        ("docker", None, "docker"),
    ],
)
def test_backend_choice(requested: str, url: str | None, chosen: str) -> None:
    assert choose_backend(requested, url) == chosen


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="backend must be one of auto, local, url, docker, got 'cloud'"):
        choose_backend("cloud", None)


def test_local_cluster_runs_and_is_removed() -> None:
    cluster = LocalCluster()
    root = cluster.root
    with cluster:
        with psycopg.connect(cluster.url) as conn:
            row = conn.execute("SELECT current_setting('fsync'), current_user").fetchone()
        assert row == ("off", "postgres")
        if os.geteuid() == 0:
            assert root.stat().st_uid != 0, "the server must not run as root"
    assert not root.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster.url, connect_timeout=2)


def test_url_backend_uses_the_given_server(database_url: str) -> None:
    with database("url", database_url) as db:
        assert db.backend == "url" and db.url == database_url
        assert db.version.split()[0][0].isdigit()


def test_url_backend_without_url_explains(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(PostgresUnavailable, match="needs QUE_DATABASE_URL"), database("url"):
        pass


def test_docker_backend_without_engine_explains() -> None:
    from harness.containers import docker_unavailable_reason

    reason = docker_unavailable_reason()
    if reason is None:
        pytest.skip("a Docker engine answers here; this test covers machines without one")
    with pytest.raises(PostgresUnavailable, match="backend 'docker': no Docker engine answers"), database("docker"):
        pass


def test_bindir_is_found() -> None:
    bindir = postgres.find_bindir()
    assert bindir is not None and Path(bindir, "initdb").exists() and Path(bindir, "pg_ctl").exists()


def test_local_cluster_restarts_in_place() -> None:
    with LocalCluster() as cluster:
        with psycopg.connect(cluster.url) as conn:
            before = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
        cluster.restart()
        with psycopg.connect(cluster.url) as conn:
            after = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
        assert before is not None and after is not None and after[0] > before[0]
