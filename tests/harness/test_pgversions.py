"""--pg: which PostgreSQL versions a run asks for, and the clear refusal of any other."""

import pytest

from conformance.cli import main
from harness import pgversions


def test_versions_are_taken_in_the_given_order_without_repeats() -> None:
    assert pgversions.parse("18,14,18") == ["18", "14"]
    assert pgversions.parse("system,14") == ["system", "14"]
    assert pgversions.parse("all") == ["14", "15", "16", "17", "18"]


@pytest.mark.parametrize(("spec", "message"), [("13", "'13' is not a supported"), (" , ", "names no version")])
def test_an_unsupported_version_is_refused_naming_it(spec: str, message: str) -> None:
    with pytest.raises(pgversions.VersionError, match=message):
        pgversions.parse(spec)


def test_the_cli_refuses_a_version_before_doing_anything(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--pg", "12", "--no-bootstrap"]) == 2
    assert "'12' is not a supported PostgreSQL version; choose from 14, 15, 16, 17, 18, all, or system" in (
        capsys.readouterr().err
    )


def test_other_versions_need_the_local_backend(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--pg", "14", "--backend", "url", "--no-bootstrap"]) == 2
    assert "--pg needs the local backend" in capsys.readouterr().err
