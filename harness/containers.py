"""The container path: PostgreSQL and the testees as containers on one Docker network.

PostgreSQL runs as testcontainers' PostgresContainer on a network of its own; each testee
row runs as `docker run -i` on that network, so the harness speaks the same stdin/stdout
protocol to a container as to a local process. The images come from harness.image_build;
PostgreSQL's container is harness.postgres's.

Every container and network carries the label que-interop.run=<run id>, and
remove_leftovers() removes those of the run: testcontainers' Ryuk reaper is not needed,
and is switched off where its image cannot be pulled.
"""

import contextlib
import os
import uuid

DB_ALIAS = "que-postgres"
RUN_LABEL = "que-interop.run"
# One id per harness run, shared with the suite's process through the environment.
RUN_ID_VARIABLE = "QUE_INTEROP_RUN_ID"


def run_id() -> str:
    if not os.environ.get(RUN_ID_VARIABLE):
        os.environ[RUN_ID_VARIABLE] = uuid.uuid4().hex[:12]
    return os.environ[RUN_ID_VARIABLE]


def labels() -> dict[str, str]:
    return {RUN_LABEL: run_id()}


def docker_unavailable_reason(host: str | None = None) -> str | None:
    """None when a Docker engine answers (at `host`, else DOCKER_HOST or the default), else why not."""
    try:
        import docker
    except ImportError as error:
        return f"the docker SDK is not installed: {error}"
    try:
        client = docker.DockerClient(base_url=host, timeout=5) if host else docker.from_env(timeout=5)
        client.ping()
        client.close()
    except Exception as error:  # the SDK raises several unrelated types here
        return f"no Docker engine answers: {error}"
    return None


def run_command(
    tag: str, program: tuple[str, ...], network: str, name: str, env: tuple[str, ...] = (), docker: str = "docker"
) -> list[str]:
    """`docker run -i` for a testee: stdin/stdout attached, named (so a kill can remove it),
    labelled with the run, removed on exit; `env` names variables passed on from the
    caller's environment."""
    command = [docker, "run", "-i", "--rm", "--name", name, "--network", network]
    for key, value in labels().items():
        command += ["--label", f"{key}={value}"]
    for variable in env:
        command += ["-e", variable]
    return [*command, tag, *program]


def container_url(user: str, password: str, database: str, alias: str = DB_ALIAS, port: int = 5432) -> str:
    """The database URL as seen from a container on the database's network."""
    return f"postgresql://{user}:{password}@{alias}:{port}/{database}"


def remove_container(name: str) -> None:
    """Remove a testee's container: killing `docker run` does not stop what it started."""
    import docker

    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        docker.from_env().containers.get(name).remove(force=True)


def remove_leftovers() -> list[str]:
    """Remove this run's containers, then its networks; returns what was removed."""
    import docker

    client = docker.from_env()
    selector = {"label": f"{RUN_LABEL}={run_id()}"}
    removed = []
    for container in client.containers.list(all=True, filters=selector):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            container.remove(force=True)
            removed.append(f"container {container.name}")
    for network in client.networks.list(filters=selector):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            network.remove()
            removed.append(f"network {network.name}")
    return removed
