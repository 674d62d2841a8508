"""tools/async_to_sync.py: the sync shells are what their asyncio sources give, and the
transformation does what its docstring says."""

import subprocess
import sys
from pathlib import Path

from tools import async_to_sync

ROOT = Path(__file__).resolve().parents[2]


def test_every_generated_shell_is_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, "tools/async_to_sync.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_async_and_await_go_and_names_are_renamed_in_code_and_docstrings_only() -> None:
    source = '''"""AsyncClient's module."""


async def go(client: AsyncClient) -> None:
    """Uses an AsyncClient."""
    async with client.connection() as conn:
        await conn.execute("SELECT 'AsyncClient'")
'''
    assert (
        async_to_sync.unasync(source)
        == '''"""Client's module."""


def go(client: Client) -> None:
    """Uses an Client."""
    with client.connection() as conn:
        conn.execute("SELECT 'AsyncClient'")
'''
    )


def test_an_async_block_keeps_its_else_branch_in_the_sync_form() -> None:
    source = """def f() -> int:
    if True:  # ASYNC
        value = 1
    else:
        value = 2
    return value
"""
    assert async_to_sync.unasync(source) == "def f() -> int:\n    value = 2\n    return value\n"


def test_a_sync_doc_replaces_the_module_docstring() -> None:
    source = '"""Async words."""\n# sync-doc: Sync words.\n\nX = 1\n'
    assert async_to_sync.unasync(source) == '"""Sync words.\n"""\n\nX = 1\n'
