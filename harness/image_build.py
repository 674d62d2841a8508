"""Images for the container path: the base, and an image per testee and for the server.

Every Dockerfile takes its base as a build argument:
- where Docker Hub answers, the official images: debian:bookworm-slim under the testees,
  postgres:15 for the server;
- where it does not, a Debian base the harness makes once from Debian's packages
  (debootstrap, then `docker import`) and keeps, and PostgreSQL 15 from Debian on it
  (harness/images/postgres).
Each build gets a fresh context folder holding exactly its inputs (the Python wheel, the Go
testees built static, the Ruby testee and, where RubyGems does not answer, the Que lib/ of
QUE_RUBY_LIB), and the image tag is a digest of those inputs and the base, so an image is
rebuilt exactly when what goes into it changes.
"""

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness import gobuild, manifests, paths
from harness.paths import HARNESS

OFFICIAL_BASE = "debian:bookworm-slim"
OFFICIAL_POSTGRES = "postgres:15"
LOCAL_BASE = "que-interop/debian:bookworm"
DEBIAN_SUITE = "bookworm"
IMAGES_DIR = HARNESS / "images"


def _answers(url: str, timeout: float = 5.0) -> bool:
    """Whether an HTTPS service answers at all (an HTTP error status is an answer)."""
    try:
        urllib.request.urlopen(url, timeout=timeout).close()
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False
    return True


def registry_answers() -> bool:
    """Whether Docker Hub serves images here. QUE_DOCKER_REGISTRY=0 or 1 decides instead."""
    forced = os.environ.get("QUE_DOCKER_REGISTRY")
    if forced in ("0", "1"):
        return forced == "1"
    return _answers("https://registry-1.docker.io/v2/")


def rubygems_answers() -> bool:
    forced = os.environ.get("QUE_RUBYGEMS")
    if forced in ("0", "1"):
        return forced == "1"
    return _answers("https://rubygems.org/api/v1/versions/que.json")


def debian_mirror(sources: list[Path] | None = None) -> str:
    """The Debian mirror apt already uses here (debootstrap fetches from it): the first
    `URIs:` of a deb822 file or `deb` line ending in /debian, comments skipped."""
    if sources is None:
        sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    pattern = re.compile(r"^\s*(?:URIs:|deb(?:\s+\[[^]]*\])?)\s+(https?://\S+/debian)/?(?:\s|$)", re.MULTILINE)
    for source in sources:
        with contextlib.suppress(OSError):
            found = pattern.search(source.read_text())
            if found:
                return found.group(1)
    return "http://deb.debian.org/debian"


@dataclass(frozen=True)
class Bases:
    """The images everything else is built on, and where they came from."""

    base: str
    postgres: str
    source: str


def _log(message: str) -> None:
    print(f"containers: {message}", file=sys.stderr, flush=True)


def make_local_base(client: "docker.DockerClient") -> str:  # type: ignore[name-defined]  # noqa: F821
    """The Debian base image, made once from Debian's packages (debootstrap, docker import)."""
    import docker

    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(LOCAL_BASE)
        return LOCAL_BASE
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).exists():
        raise RuntimeError("no registry answers and debootstrap is not installed (harness/bootstrap.sh --docker)")
    mirror = debian_mirror()
    with tempfile.TemporaryDirectory(prefix="que-interop-rootfs-") as rootfs:
        _log(f"making {LOCAL_BASE} from {mirror} (debootstrap --variant=minbase {DEBIAN_SUITE}; once) ...")
        done = subprocess.run(
            [debootstrap, "--variant=minbase", DEBIAN_SUITE, rootfs, mirror], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"debootstrap failed: {(done.stderr or done.stdout)[-2000:]}")
        # The image's / is this folder: a temporary folder's 0700 would lock out every user but root.
        os.chmod(rootfs, 0o755)
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        docker_cli = shutil.which("docker")
        if docker_cli is not None:
            imported = subprocess.run([docker_cli, "import", "-", LOCAL_BASE], stdin=tar.stdout, capture_output=True)
            failed = imported.returncode != 0
            detail = imported.stderr.decode(errors="replace")
        else:
            assert tar.stdout is not None
            client.images.import_image(src=tar.stdout, repository=LOCAL_BASE)  # streams the archive
            failed, detail = False, ""
        tar.wait()
        if failed or tar.returncode != 0:
            raise RuntimeError(f"docker import of the Debian root failed: {detail[-2000:]}")
    return LOCAL_BASE


def _image_id(client: "docker.DockerClient", name: str) -> str:  # type: ignore[name-defined]  # noqa: F821
    return str(client.images.get(name).id)


_chosen: list[Bases] = []


def choose_bases(client: "docker.DockerClient") -> Bases:  # type: ignore[name-defined]  # noqa: F821
    """The official images where Docker Hub answers; else the local Debian base and a
    PostgreSQL image built on it. Decided once per process."""
    if not _chosen:
        _chosen.append(_choose_bases(client))
    return _chosen[0]


def _choose_bases(client: "docker.DockerClient") -> Bases:  # type: ignore[name-defined]  # noqa: F821
    if registry_answers():
        for image in (OFFICIAL_BASE, OFFICIAL_POSTGRES):
            with contextlib.suppress(Exception):
                client.images.get(image)
                continue
            _log(f"pulling {image} ...")
            client.images.pull(image)
        return Bases(OFFICIAL_BASE, OFFICIAL_POSTGRES, "official images from Docker Hub")
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    base = make_local_base(client)
    postgres = build(POSTGRES, Bases(base, "", ""), client)
    return Bases(base, postgres, "a local Debian base (debootstrap + docker import); no registry answers")


@dataclass(frozen=True)
class ImageSpec:
    """How to build one image: its Dockerfile folder, what goes into the build context,
    the build target, and the program a row runs in it."""

    image: str
    dockerfile_dir: Path
    # (path in the context, producer): a producer writes that file or folder.
    inputs: tuple[tuple[str, Callable[[Path], None]], ...]
    program: tuple[str, ...] = ()
    target: Callable[[], str | None] = lambda: None
    # What the report says about where the image's implementation came from.
    note: Callable[[], str] = lambda: ""

    @property
    def repository(self) -> str:
        return f"que-interop-{self.image}"

    def context(self, folder: Path) -> None:
        """Write the build context into `folder`."""
        shutil.copy2(self.dockerfile_dir / "Dockerfile", folder / "Dockerfile")
        for name, produce in self.inputs:
            produce(folder / name)


def _copy(source: Path) -> Callable[[Path], None]:
    def produce(destination: Path) -> None:
        if source.is_dir():
            shutil.copytree(source, destination, ignore=shutil.ignore_patterns("*.gem", ".git"))
        else:
            shutil.copy2(source, destination)

    return produce


def _wheel(destination: Path) -> None:
    """que-interop's wheel, built from this checkout."""
    root = paths.CHECKOUT
    if root is None:
        raise RuntimeError("the python image is built from a checkout of que-interop (pyproject.toml)")
    destination.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(destination), str(root)],
        capture_output=True,
        text=True,
        # The same checkout gives the same wheel bytes, so the image is not rebuilt.
        env={**os.environ, "SOURCE_DATE_EPOCH": "315532800"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip wheel failed: {(done.stderr or done.stdout)[-2000:]}")
    # The wheel's name carries no digest: only the file's bytes should count.
    for wheel in destination.glob("*.whl"):
        wheel.rename(destination.parent / wheel.name)
    destination.rmdir()


def _go_static(program: str) -> Callable[[Path], None]:
    def produce(destination: Path) -> None:
        failed = gobuild.build(static=True, only=program, into=destination)
        if failed:
            raise RuntimeError(failed)

    return produce


# CA certificates the host's administrator added: images that fetch over TLS trust them too.
LOCAL_CA = Path("/usr/local/share/ca-certificates")


def _local_ca(destination: Path) -> None:
    destination.mkdir()
    for certificate in sorted(LOCAL_CA.glob("*.crt")) if LOCAL_CA.is_dir() else []:
        shutil.copy2(certificate, destination / certificate.name)


def _que_lib(destination: Path) -> None:
    if ruby_target() != "que-lib":
        destination.mkdir()  # the rubygems target does not read it
        return
    source = Path(os.environ["QUE_RUBY_LIB"])
    if not (source / "que.rb").is_file():
        raise RuntimeError(f"QUE_RUBY_LIB={source} holds no que.rb (it must be the lib/ of que v0.14.3)")
    _copy(source)(destination)


def ruby_target() -> str:
    """`rubygems` where RubyGems answers, else `que-lib` (QUE_RUBY_LIB copied in)."""
    if rubygems_answers():
        return "rubygems"
    if not os.environ.get("QUE_RUBY_LIB"):
        raise RuntimeError(
            "RubyGems does not answer and QUE_RUBY_LIB is not set: the Ruby image needs Que 0.14.3 "
            "from one of them (set QUE_RUBY_LIB to the lib/ of a que v0.14.3 source tree)"
        )
    return "que-lib"


def _ruby_note() -> str:
    if ruby_target() == "rubygems":
        return "Que 0.14.3 from RubyGems (Gemfile.lock)"
    return f"Que from QUE_RUBY_LIB={os.environ['QUE_RUBY_LIB']}, copied into the image"


POSTGRES = ImageSpec(
    "postgres", IMAGES_DIR / "postgres", (("entrypoint.sh", _copy(IMAGES_DIR / "postgres" / "entrypoint.sh")),)
)

# What produces each input of an image's build context, by the kind its manifest names:
# "wheel", "local-ca", "que-lib", "go:<program>" (built static) or "file:<path in the folder>".
_PRODUCERS: Mapping[str, Callable[[Path], None]] = {"wheel": _wheel, "local-ca": _local_ca, "que-lib": _que_lib}
# Build targets and report notes an image's rows may ask for (manifest: image.target).
_TARGETS: Mapping[str, tuple[Callable[[], str | None], Callable[[], str]]] = {"ruby": (ruby_target, _ruby_note)}


def _producer(folder: Path, kind: str) -> Callable[[Path], None]:
    if kind.startswith("go:"):
        return _go_static(kind.removeprefix("go:"))
    if kind.startswith("file:"):
        return _copy(folder / kind.removeprefix("file:"))
    if kind not in _PRODUCERS:
        raise manifests.ManifestError(f"{folder}/manifest.json: no input kind {kind!r}")
    return _PRODUCERS[kind]


def _images() -> dict[str, ImageSpec]:
    """The image of every row that has one, from the testees' manifests."""
    found: dict[str, ImageSpec] = {}
    for manifest in manifests.manifests():
        for row in manifest.rows:
            if row.image is None:
                continue
            inputs = manifest.images.get(row.image, {}).get("inputs", {})
            produced = tuple((path, _producer(manifest.folder, kind)) for path, kind in inputs.items())
            target, note = _TARGETS.get(row.target or "", (lambda: None, lambda: ""))
            found[row.name] = ImageSpec(row.image, manifest.folder, produced, row.program, target, note)
    return found


IMAGES: Mapping[str, ImageSpec] = _images()


def digest(folder: Path, *extra: str) -> str:
    """A digest of every file under `folder` (names and bytes) and `extra`: the image tag."""
    hashed = hashlib.sha256()
    for part in extra:
        hashed.update(part.encode() + b"\0")
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            hashed.update(str(path.relative_to(folder)).encode() + b"\0")
            hashed.update(path.read_bytes() + b"\0")
    return hashed.hexdigest()[:16]


def build(spec: ImageSpec, bases: Bases, client: "docker.DockerClient") -> str:  # type: ignore[name-defined]  # noqa: F821
    """Build (or reuse) the image of `spec` on `bases.base`; returns its tag."""
    import docker

    target = spec.target()
    with tempfile.TemporaryDirectory(prefix=f"que-interop-{spec.image}-") as folder:
        context = Path(folder)
        spec.context(context)
        tag = f"{spec.repository}:{digest(context, _image_id(client, bases.base), target or '')}"
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.get(tag)
            return tag
        _log(f"building {tag} on {bases.base}{f' (target {target})' if target else ''} ...")
        try:
            client.images.build(
                path=str(context),
                tag=tag,
                buildargs={"BASE": bases.base},
                target=target,
                network_mode="host",
                rm=True,
                forcerm=True,
                pull=False,
            )
        except docker.errors.BuildError as error:
            log = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in error.build_log)
            raise RuntimeError(f"docker build of {tag} failed: {error}\n{log[-3000:]}") from None
    _prune(client, spec.repository, keep=tag)
    return tag


def _prune(client: "docker.DockerClient", repository: str, keep: str) -> None:  # type: ignore[name-defined]  # noqa: F821
    """Remove the older builds of `repository`: vfs storage copies every layer whole, so
    stale images fill a disk quickly."""
    import docker

    for image in client.images.list(name=repository):
        if keep not in image.tags:
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(image.id, force=True)
    with contextlib.suppress(docker.errors.APIError):
        client.images.prune(filters={"dangling": True})


def prepare(names: list[str]) -> dict[str, str]:
    """Build, before the suite starts (so their progress shows), the images the rows
    `names` run and the server's; returns row -> tag, or row -> why it cannot be built."""
    import time

    import docker

    client = docker.from_env()
    started = time.monotonic()
    try:
        bases = choose_bases(client)
    except docker.errors.DockerException as error:
        raise RuntimeError(f"the base images: {error}") from None
    _log(f"images from {bases.source}; server image {bases.postgres}")
    built: dict[str, str] = {}
    for name in names:
        spec = IMAGES.get(name)
        if spec is None:
            continue
        try:
            built[name] = build(spec, bases, client)
        except (RuntimeError, docker.errors.DockerException) as error:
            built[name] = f"unavailable: {error}"
    _log(f"images ready in {time.monotonic() - started:.0f}s")
    return built
