"""The container path, for machines with a Docker engine.

PostgreSQL runs as testcontainers' PostgresContainer on a network of its own; the Ruby
and Go testee images are built from ruby/Dockerfile and go/Dockerfile with the docker
SDK and run as `docker run -i` on that network, so the harness speaks the same
stdin/stdout protocol to a container as to a local process. The pieces that need no
daemon (image specs, tags, run commands) are plain functions, tested without Docker.
"""

import contextlib
import hashlib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.paths import GO_DIR, RUBY_DIR

POSTGRES_IMAGE = "postgres:15"
DB_ALIAS = "que-postgres"


@dataclass(frozen=True)
class ImageSpec:
    """How to build one testee image."""

    image: str
    context: Path
    files: tuple[str, ...]
    # The program to run in the container (None: the image's entrypoint).
    program: str | None = None

    @property
    def repository(self) -> str:
        return f"que-interop-{self.image}-testee"

    def content_hash(self) -> str:
        """A digest of the build inputs: the tag changes exactly when they do."""
        digest = hashlib.sha256()
        for name in self.files:
            digest.update(name.encode())
            digest.update(b"\0")
            digest.update((self.context / name).read_bytes())
            digest.update(b"\0")
        return digest.hexdigest()[:16]

    @property
    def tag(self) -> str:
        return f"{self.repository}:{self.content_hash()}"


# Every Go source the Dockerfile copies (testee/ and cmd/), found rather than listed, so a new
# file changes the image tag too.
_GO_FILES = ("Dockerfile", "go.mod", "go.sum", *sorted(str(p.relative_to(GO_DIR)) for p in GO_DIR.glob("*/**/*.go")))
IMAGES: Mapping[str, ImageSpec] = {
    "ruby": ImageSpec("ruby", RUBY_DIR, ("Dockerfile", "Gemfile", "Gemfile.lock", "testee.rb")),
    "go": ImageSpec("go", GO_DIR, _GO_FILES, program="/usr/local/bin/que-go-testee"),
    "gue": ImageSpec("go", GO_DIR, _GO_FILES, program="/usr/local/bin/gue-testee"),
}


def docker_unavailable_reason() -> str | None:
    """None when a Docker engine answers, else why not."""
    try:
        import docker
    except ImportError as error:
        return f"the docker SDK is not installed: {error}"
    try:
        client = docker.from_env(timeout=5)
        client.ping()
    except Exception as error:  # the SDK raises several unrelated types here
        return f"no Docker engine answers: {error}"
    return None


def container_url(user: str, password: str, database: str, alias: str = DB_ALIAS, port: int = 5432) -> str:
    """The database URL as seen from a container on the database's network."""
    return f"postgresql://{user}:{password}@{alias}:{port}/{database}"


def run_command(
    spec: ImageSpec, network: str, env: Mapping[str, str] | None = None, docker: str = "docker"
) -> list[str]:
    """`docker run -i` for a testee: stdin/stdout attached, removed on exit."""
    command = [docker, "run", "-i", "--rm", "--network", network, "--label", "que-interop=testee"]
    for key, value in sorted((env or {}).items()):
        command += ["-e", f"{key}={value}"]
    command.append(spec.tag)
    if spec.program:
        command.append(spec.program)
    return command


def build_image(spec: ImageSpec) -> str:
    """Build (or reuse) the image for `spec` with the docker SDK; returns its tag."""
    import docker

    client = docker.from_env()
    try:
        client.images.get(spec.tag)
        return spec.tag
    except docker.errors.ImageNotFound:
        pass
    client.images.build(path=str(spec.context), tag=spec.tag, rm=True, pull=True)
    return spec.tag


@dataclass
class ContainerDatabase:
    host_url: str
    container_url: str
    network: str


@contextlib.contextmanager
def postgres_network() -> Iterator[ContainerDatabase]:
    """PostgreSQL in a container on a fresh network; removed afterwards."""
    import docker
    from testcontainers.postgres import PostgresContainer

    client = docker.from_env()
    network = client.networks.create(f"que-interop-{uuid.uuid4().hex[:8]}")
    container = PostgresContainer(POSTGRES_IMAGE, username="que", password="que", dbname="que", driver=None)
    container.with_kwargs(network=network.name)
    try:
        with container:
            network.disconnect(container.get_wrapped_container())
            network.connect(container.get_wrapped_container(), aliases=[DB_ALIAS])
            yield ContainerDatabase(
                host_url=container.get_connection_url(),
                container_url=container_url("que", "que", "que"),
                network=network.name,
            )
    finally:
        network.remove()


@contextlib.contextmanager
def postgres_container() -> Iterator[str]:
    """Just the host URL of a containerized PostgreSQL (for harness.postgres)."""
    with postgres_network() as db:
        yield db.host_url
