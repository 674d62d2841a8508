"""The container path's pieces that need no Docker engine: image specs, tags, commands."""

import shutil
from pathlib import Path

from harness import containers
from harness.containers import IMAGES, ImageSpec


def test_images_are_built_from_the_repository_dockerfiles() -> None:
    for spec in IMAGES.values():
        assert (spec.context / "Dockerfile").exists()
        assert all((spec.context / f).exists() for f in spec.files)
        assert spec.repository == f"que-interop-{spec.image}-testee"
    assert IMAGES["go"].tag == IMAGES["gue"].tag, "one Go image holds both Go testees"
    go_dockerfile = (IMAGES["go"].context / "Dockerfile").read_text()
    for name in ("go", "gue"):
        program = IMAGES[name].program
        assert program is not None and program.rsplit("/", 1)[-1] in go_dockerfile
    ruby = (IMAGES["ruby"].context / "Dockerfile").read_text()
    go = (IMAGES["go"].context / "Dockerfile").read_text()
    assert ruby.startswith("#") and "FROM ruby:" in ruby and "bundle install" in ruby
    assert "FROM golang:" in go and "go mod download" in go


def test_tag_follows_the_build_inputs(tmp_path: Path) -> None:
    for name in ("Dockerfile", "main.go"):
        (tmp_path / name).write_text(f"{name} v1")
    spec = ImageSpec("x", tmp_path, ("Dockerfile", "main.go"))
    first = spec.tag
    assert first == spec.tag and first.startswith("que-interop-x-testee:")
    (tmp_path / "main.go").write_text("main.go v2")
    assert spec.tag != first


def test_run_command_attaches_stdin_on_the_database_network() -> None:
    spec = IMAGES["go"]
    command = containers.run_command(spec, "net1", {"B": "2", "A": "1"})
    assert command == [
        "docker",
        "run",
        "-i",
        "--rm",
        "--network",
        "net1",
        "--label",
        "que-interop=testee",
        "-e",
        "A=1",
        "-e",
        "B=2",
        spec.tag,
        "/usr/local/bin/que-go-testee",
    ]


def test_container_url_uses_the_network_alias() -> None:
    assert containers.container_url("u", "p", "d") == "postgresql://u:p@que-postgres:5432/d"


def test_without_engine_the_reason_is_given() -> None:
    reason = containers.docker_unavailable_reason()
    if shutil.which("dockerd") is None and reason is not None:
        assert reason.startswith(("no Docker engine answers", "the docker SDK is not installed"))
