"""The suite as a port author gets it: a wheel, a fresh venv, a folder far from the checkout.

Builds the wheel (and checks the build prints no setuptools deprecation), installs it with
the conformance extra into a new virtualenv, and from a temporary folder runs the smoke test
and the suite on an outside testee. The Go testees are built into the user cache on first
use; Ruby Que is not installed there, so the ruby row is unavailable with the reason.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.harness.test_protocol_doc import minimal_testee

ROOT = Path(__file__).resolve().parents[2]


def _run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=900, **kwargs)


# Building and installing from PyPI takes a minute or more on a fresh machine.
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("wheel")
    built = _run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", str(ROOT), "-w", str(base / "dist")])
    assert built.returncode == 0, built.stderr[-3000:]
    assert "Deprecat" not in built.stdout + built.stderr, "the build printed a setuptools deprecation"
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    wheel = next((base / "dist").glob("que_interop-*.whl"))
    venv = base / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)])
    assert made.returncode == 0, made.stderr
    pip = _run([str(venv / "bin" / "pip"), "install", "-q", f"{wheel}[conformance]"])
    assert pip.returncode == 0, pip.stderr[-3000:]
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    return {"venv": venv, "cwd": elsewhere, "cache": base / "cache"}


def _env(installed: dict[str, Path], database_url: str) -> dict[str, str]:
    go_env = {}
    if shutil.which("go") or Path("/usr/local/go/bin/go").exists():
        go = shutil.which("go") or "/usr/local/go/bin/go"
        # The user cache is new; the Go build and module caches are the machine's, for speed.
        found = _run([go, "env", "-json", "GOCACHE", "GOMODCACHE"])
        go_env = json.loads(found.stdout) if found.returncode == 0 else {}
    unset = ("QUE_RUBY_LIB", "QUE2_RUBY_LIB", "PYTHONPATH", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    return {**env, **go_env, "XDG_CACHE_HOME": str(installed["cache"]), "QUE_DATABASE_URL": database_url}


def test_the_installed_suite_runs_an_outside_testee_from_any_folder(
    installed: dict[str, Path], database_url: str
) -> None:
    testee = f"{installed['venv'] / 'bin' / 'python'} {minimal_testee(installed['cwd'])}"
    cli = str(installed["venv"] / "bin" / "que-conformance")
    env = _env(installed, database_url)

    smoke = _run([cli, "--smoke", f"--testee={testee}"], cwd=installed["cwd"], env=env)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert smoke.stdout.startswith("smoke test of testee1") and "smoke: testee1 passed" in smoke.stdout

    select = "test_enqueue or test_cross_language"
    done = _run(
        [cli, "--impl", "python,go,ruby", "--no-bootstrap", f"--testee={testee}", "--", "-q", "-k", select],
        cwd=installed["cwd"],
        env=env,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert output.startswith("smoke test of testee1"), "the smoke verdict must come before anything else"
    results = json.loads((installed["cwd"] / "results" / "conformance" / "results.json").read_text())
    assert (installed["cwd"] / "results" / "conformance" / "report.html").is_file()
    impls = results["implementations"]
    assert impls["testee1"]["available"] and impls["python"]["available"]
    passed = {c["cell"] for c in results["cells"] if c["outcome"] == "passed"}
    assert any("testee1->python" in cell for cell in passed) and any("python->testee1" in cell for cell in passed)
    ruby = impls["ruby"]
    if ruby["available"]:
        pytest.fail("Ruby Que loaded although no gem is installed and QUE_RUBY_LIB is unset")
    reason = ruby["unavailable_reason"] or ""
    assert "gem install que -v 0.14.3" in reason and "QUE_RUBY_LIB" in reason, reason
    if shutil.which("go") or Path("/usr/local/go/bin/go").exists():
        assert impls["go"]["available"], impls["go"]
        built = list((installed["cache"] / "que-interop").glob("go-testees-*/que-go-testee"))
        assert built, "the Go testee was not built into the user cache"
    else:
        assert "Go toolchain" in (impls["go"]["unavailable_reason"] or "")


def test_the_installed_suite_checks_the_que_2_dialect(installed: dict[str, Path], database_url: str) -> None:
    cli = str(installed["venv"] / "bin" / "que-conformance")
    done = _run(
        [cli, "--dialect", "2", "--impl", "python,ruby-2.4.1", "--no-bootstrap", "--", "-q", "-k", "enqueue"],
        cwd=installed["cwd"],
        env=_env(installed, database_url),
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    results = json.loads((installed["cwd"] / "results" / "conformance" / "que2" / "results.json").read_text())
    impls = results["implementations"]
    assert impls["python"]["available"]
    assert {c["outcome"] for c in results["cells"] if c["impls"] == ["python"]} == {"passed"}
    reason = impls["ruby-2.4.1"]["unavailable_reason"] or ""
    assert "gem install que -v 2.4.1" in reason and "QUE2_RUBY_LIB" in reason, reason


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (["-k", "no_such_cell_anywhere"], "no cell was collected"),
        (["no_such_file.py"], "pytest exited with status 4"),
    ],
)
def test_a_run_that_checks_nothing_is_not_a_success(
    installed: dict[str, Path], database_url: str, extra: list[str], why: str
) -> None:
    cli = str(installed["venv"] / "bin" / "que-conformance")
    done = _run(
        [cli, "--impl", "python", "--no-bootstrap", "--", "-q", *extra],
        cwd=installed["cwd"],
        env=_env(installed, database_url),
    )
    assert done.returncode != 0, done.stdout[-2000:]
    assert why in done.stderr, done.stderr[-2000:]
