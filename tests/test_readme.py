"""The README's Python quickstart runs as written (only the URL is swapped)."""

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import reset_schema

README = Path(__file__).resolve().parent.parent / "README.md"


def test_quickstart_runs(database_url: str) -> None:
    reset_schema(database_url)
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert code is not None
    source = code.group(1).replace('"postgresql://postgres@127.0.0.1:5432/postgres"', repr(database_url))
    result = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "sending welcome to ann@example.com" in result.stdout
