"""The container path's pieces that need no Docker engine: Dockerfiles, build contexts,
tags, commands, the mirror debootstrap uses. tests/harness/test_containers_run.py runs it for real."""

import re
from pathlib import Path

import pytest

from harness import containers, image_build
from harness.image_build import IMAGES, ImageSpec


def test_every_dockerfile_takes_its_base_as_a_build_argument_defaulting_to_an_official_image() -> None:
    for spec in {*IMAGES.values(), image_build.POSTGRES}:
        text = (spec.dockerfile_dir / "Dockerfile").read_text()
        assert text.startswith("#"), f"{spec.image}: the Dockerfile says what it builds first"
        assert f"ARG BASE={image_build.OFFICIAL_BASE}" in text, spec.image
        froms = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
        assert froms and froms[0] == "${BASE}", (spec.image, froms)
        assert all(f == "${BASE}" or not f.startswith(("golang", "ruby:", "python:")) for f in froms), froms


def test_one_image_per_language_and_a_program_per_row() -> None:
    assert {spec.repository for spec in IMAGES.values()} == {
        "que-interop-python",
        "que-interop-go",
        "que-interop-ruby",
    }
    assert IMAGES["go"].program == ("/usr/local/bin/que-go-testee",)
    assert IMAGES["gue"].program == ("/usr/local/bin/gue-testee",)
    assert IMAGES["python-batch"].program[-2:] == ("--batch", "10")
    go_dockerfile = (IMAGES["go"].dockerfile_dir / "Dockerfile").read_text()
    assert "COPY que-go-testee gue-testee /usr/local/bin/" in go_dockerfile


def test_the_ruby_image_has_a_target_for_rubygems_and_one_for_que_lib_before_it() -> None:
    text = (IMAGES["ruby"].dockerfile_dir / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\S+)", text, re.MULTILINE)
    # The classic builder builds every stage before the target: que-lib must not need RubyGems.
    assert stages == ["ruby", "que-lib", "rubygems"]
    assert "bundle install" in text.split("AS rubygems")[1]
    assert "bundle" not in text.split("AS que-lib")[1].split("AS rubygems")[0]


def test_the_ruby_target_follows_rubygems_then_que_ruby_lib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUE_RUBYGEMS", "1")
    assert image_build.ruby_target() == "rubygems"
    monkeypatch.setenv("QUE_RUBYGEMS", "0")
    monkeypatch.setenv("QUE_RUBY_LIB", "/somewhere/lib")
    assert image_build.ruby_target() == "que-lib"
    assert "QUE_RUBY_LIB=/somewhere/lib" in IMAGES["ruby"].note()
    monkeypatch.delenv("QUE_RUBY_LIB")
    with pytest.raises(RuntimeError, match="RubyGems does not answer and QUE_RUBY_LIB is not set"):
        image_build.ruby_target()


def test_a_ruby_context_holds_que_lib_only_when_it_is_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = tmp_path / "lib"
    (lib / "que").mkdir(parents=True)
    (lib / "que.rb").write_text("module Que; end\n")
    (lib / "que" / "version.rb").write_text("VERSION = '0.14.3'\n")
    monkeypatch.setenv("QUE_RUBYGEMS", "0")
    monkeypatch.setenv("QUE_RUBY_LIB", str(lib))
    context = tmp_path / "context"
    context.mkdir()
    IMAGES["ruby"].context(context)
    assert (context / "que-lib" / "que" / "version.rb").read_text() == "VERSION = '0.14.3'\n"
    assert {p.name for p in context.iterdir()} == {
        "Dockerfile",
        "testee.rb",
        "serve.rb",
        "Gemfile",
        "Gemfile.lock",
        "que-lib",
        "local-ca",
    }
    monkeypatch.setenv("QUE_RUBY_LIB", str(tmp_path / "nothing-here"))
    with pytest.raises(RuntimeError, match=r"holds no que\.rb"):
        (tmp_path / "again").mkdir()
        IMAGES["ruby"].context(tmp_path / "again")


def test_the_tag_follows_every_input_and_the_base(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "main.go").write_text("v1")
    first = image_build.digest(tmp_path, "base-id-1")
    assert first == image_build.digest(tmp_path, "base-id-1")
    assert first != image_build.digest(tmp_path, "base-id-2")
    (tmp_path / "sub" / "main.go").write_text("v2")
    assert image_build.digest(tmp_path, "base-id-1") != first


def test_a_spec_writes_its_dockerfile_and_inputs(tmp_path: Path) -> None:
    source = tmp_path / "image"
    source.mkdir()
    (source / "Dockerfile").write_text("# x\nARG BASE=debian:bookworm-slim\nFROM ${BASE}\n")
    spec = ImageSpec("x", source, (("data.txt", lambda path: path.write_text("made")),))
    context = tmp_path / "context"
    context.mkdir()
    spec.context(context)
    assert sorted(p.name for p in context.iterdir()) == ["Dockerfile", "data.txt"]
    assert spec.repository == "que-interop-x"


def test_run_command_attaches_stdin_names_and_labels_the_container(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(containers.RUN_ID_VARIABLE, "run42")
    command = containers.run_command("img:1", ("/bin/t", "--x"), "net1", "que-interop-run42-go", env=("TZ",))
    assert command == [
        "docker",
        "run",
        "-i",
        "--rm",
        "--name",
        "que-interop-run42-go",
        "--network",
        "net1",
        "--label",
        "que-interop.run=run42",
        "-e",
        "TZ",
        "img:1",
        "/bin/t",
        "--x",
    ]


def test_container_url_uses_the_network_alias() -> None:
    assert containers.container_url("u", "p", "d") == "postgresql://u:p@que-postgres:5432/d"


@pytest.mark.parametrize(
    ("text", "mirror"),
    [
        (
            "Types: deb\n# http://snapshot.debian.org/archive/debian/2025\nURIs: http://mirror.example/debian\n",
            "http://mirror.example/debian",
        ),
        (
            "# deb http://old.example/debian bookworm main\ndeb [arch=amd64] https://m.example/debian bookworm main\n",
            "https://m.example/debian",
        ),
        ("URIs: http://deb.debian.org/debian-security\n", "http://deb.debian.org/debian"),
    ],
)
def test_the_debian_mirror_is_the_one_apt_uses(tmp_path: Path, text: str, mirror: str) -> None:
    source = tmp_path / "debian.sources"
    source.write_text(text)
    assert image_build.debian_mirror([source]) == mirror


def test_registry_and_rubygems_checks_can_be_decided_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUE_DOCKER_REGISTRY", "0")
    monkeypatch.setenv("QUE_RUBYGEMS", "1")
    assert image_build.registry_answers() is False
    assert image_build.rubygems_answers() is True
