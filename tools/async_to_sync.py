"""Write que's sync shells from their asyncio sources, as psycopg writes its sync API.

The public shells (Client, LockedJob, Worker, the locker and its runners, WorkerPool) are
written once, for asyncio, in que/shells/*_async.py. Their sync twins, que/shells/<name>.py,
are generated from them by this script and checked in; nobody edits them by hand, so the
two cannot drift. The transformation works on tokens, so comments and layout survive:

- `async def`, `async with`, `async for` lose `async`; `await x` becomes `x`;
- names are renamed by RENAMES (AsyncClient -> Client, AsyncConnection -> Connection,
  the asyncio driver que.drivers.aio -> the thread driver que.drivers.threads, ...), in code,
  docstrings and comments (not in other strings: a message may name both forms);
- `if True:  # ASYNC` keeps its body in the asyncio source only: the sync file gets the body
  of its `else:` (or nothing when there is none). That is where the two styles really
  differ (a task's cancellation, the event loop's signal handlers), and it shows;
- a line ending in `# sync: CODE` becomes CODE in the sync file;
- the module's docstring is replaced by the text of the `# sync-doc:` comment lines that
  follow it (each line's text after the marker, taken as written, not renamed), where the
  two forms need their own words.

The result is sorted, cleaned of imports it no longer uses and formatted by ruff.

    python tools/async_to_sync.py           # write every sync twin
    python tools/async_to_sync.py --check   # exit 1, naming them, if any is stale (make lint)
"""

import argparse
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHELLS = ROOT / "que" / "shells"

# Names whose sync twin is another name. Applied to whole NAME tokens, and to whole words in
# strings and comments.
RENAMES = {
    "AsyncClient": "Client",
    "AsyncLockedJob": "LockedJob",
    "AsyncWorker": "Worker",
    "AsyncWorkerConnection": "WorkerConnection",
    "AsyncWorkerPool": "WorkerPool",
    "AsyncLocker": "Locker",
    "AsyncRunner": "Runner",
    "AsyncAdmin": "Admin",
    "AsyncCallers": "Callers",
    "AsyncConnection": "Connection",
    "AsyncConnectionPool": "ConnectionPool",
    "AsyncCursor": "Cursor",
    "AsyncTransaction": "Transaction",
    "AsyncIterator": "Iterator",
    "AsyncIterable": "Iterable",
    "AsyncGenerator": "Generator",
    "asynccontextmanager": "contextmanager",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "aclose": "close",
    "aio": "threads",
    "client_async": "client",
    "lock_async": "lock",
    "worker_async": "worker",
    "worker_connection_async": "worker_connection",
    "sessions_async": "sessions",
    "locker_async": "locker",
    "runner_async": "runner",
    "admin_async": "admin",
    "AbstractAsyncContextManager": "AbstractContextManager",
    "pool_async": "pool",
    "callers_async": "callers",
    "migrate_async": "migrate",
    "db_version_async": "db_version",
}
HEADER = (
    "# This file is generated from que/shells/{source} by tools/async_to_sync.py: do not edit it.\n"
    "# Edit the asyncio source and run `make generate` (make lint checks that the two agree).\n"
)

_ASYNC_IF = re.compile(r"^(?P<indent>[ ]*)if True:\s+# ASYNC\s*$")
_SYNC_LINE = re.compile(r"^(?P<indent>[ ]*)(?P<code>.*?)\s+# sync: (?P<sync>.*)$")


def choose_branches(source: str) -> str:
    """Replace each `if True:  # ASYNC` block by its `else:` body, dedented; apply the
    `# sync:` lines."""
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        match = _ASYNC_IF.match(line)
        if match is None:
            sync = _SYNC_LINE.match(line.rstrip("\n"))
            out.append(f"{sync['indent']}{sync['sync']}\n" if sync else line)
            index += 1
            continue
        indent = match["indent"]
        index = _skip_block(lines, index + 1, indent)
        if index < len(lines) and lines[index].rstrip() == f"{indent}else:":
            end = _skip_block(lines, index + 1, indent)
            for body in lines[index + 1 : end]:
                out.append(body[4:] if body.startswith(indent + "    ") else body)
            index = end
    return "".join(out)


def _skip_block(lines: list[str], index: int, indent: str) -> int:
    """The index of the first line after the block that starts at `index` (deeper than `indent`)."""
    while index < len(lines):
        line = lines[index]
        if line.strip() and not line.startswith(indent + " "):
            return index
        index += 1
    return index


_SYNC_DOC = re.compile(r"^# sync-doc: ?(.*)$")


def sync_doc(source: str) -> str:
    """The module docstring replaced by the `# sync-doc:` lines after it, which go."""
    lines = source.splitlines(keepends=True)
    doc = [_SYNC_DOC.match(line.rstrip("\n")) for line in lines]
    marked = [index for index, match in enumerate(doc) if match]
    if not marked:
        return source
    text = "".join(f"{doc[i][1]}\n" for i in marked if doc[i] is not None)  # type: ignore[index]
    kept = [line for index, line in enumerate(lines) if index not in set(marked)]
    body = "".join(kept)
    start = body.index('"""')
    end = body.index('"""', start + 3) + 3
    return body[:start] + '"""' + text.rstrip("\n") + '\n"""' + body[end:]


def _words(text: str) -> str:
    table = RENAMES
    pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(k) for k in sorted(table, key=len, reverse=True)) + r")\b")
    text = pattern.sub(lambda m: table[m.group(1)], text)
    # "async with" / "await x" quoted in prose
    return re.sub(r"\basync (def|with|for)\b", r"\1", text).replace("`await ", "`")


def unasync(source: str) -> str:
    """The sync twin of an asyncio source, before formatting."""
    # The `# sync-doc:` text is written in the sync file's own words: it is not renamed.
    written = sync_doc(source) != source
    source = choose_branches(sync_doc(source))
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def offset(position: tuple[int, int]) -> int:
        return starts[position[0] - 1] + position[1]

    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    edits: list[tuple[int, int, str]] = []
    for index, token in enumerate(tokens):
        start, end = offset(token.start), offset(token.end)
        if token.type == tokenize.NAME and token.string in ("async", "await"):
            following = tokens[index + 1]
            if token.string == "async" and following.string not in ("def", "with", "for"):
                continue
            edits.append((start, offset(following.start), ""))
        elif token.type == tokenize.NAME and token.string in RENAMES:
            edits.append((start, end, RENAMES[token.string]))
        elif token.type == tokenize.COMMENT or (token.type == tokenize.STRING and _is_docstring(tokens, index)):
            if written and token.type == tokenize.STRING and not any(t.type == tokenize.STRING for t in tokens[:index]):
                continue  # the module docstring, from `# sync-doc:`
            changed = _words(token.string)
            if changed != token.string:
                edits.append((start, end, changed))
    for start, end, text in reversed(edits):
        source = source[:start] + text + source[end:]
    return source


def _is_docstring(tokens: list[tokenize.TokenInfo], index: int) -> bool:
    """A string that stands alone as a statement (a docstring); other strings are values,
    whose text (a message naming both forms, say) is the same in both."""
    before = next((t for t in reversed(tokens[:index]) if t.type not in (tokenize.NL, tokenize.COMMENT)), None)
    return before is None or before.type in (tokenize.INDENT, tokenize.DEDENT, tokenize.NEWLINE)


def _ruff(args: list[str], text: str, name: str) -> str:
    ruff = Path(sys.executable).with_name("ruff")
    command = [str(ruff) if ruff.exists() else "ruff", *args, "--stdin-filename", name, "-"]
    done = subprocess.run(command, input=text, capture_output=True, text=True, cwd=ROOT)
    if done.returncode not in (0, 1) or not done.stdout:
        raise SystemExit(f"ruff {' '.join(args)} failed on {name}: {done.stderr.strip()}")
    return done.stdout


def generate(source: Path) -> tuple[Path, str]:
    """The sync file for `source` and its text."""
    target = source.with_name(source.name.replace("_async.py", ".py"))
    name = str(target.relative_to(ROOT))
    text = HEADER.format(source=source.name) + unasync(source.read_text())
    text = _ruff(["check", "--fix", "--select", "I,F401", "--exit-zero", "--quiet"], text, name)
    text = _ruff(["format", "--quiet"], text, name)
    return target, text


def sources() -> list[Path]:
    return sorted(SHELLS.glob("*_async.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated file is stale; write nothing")
    options = parser.parse_args(argv)
    stale = []
    for source in sources():
        target, text = generate(source)
        if target.exists() and target.read_text() == text:
            continue
        stale.append(target)
        if not options.check:
            target.write_text(text)
            print(f"wrote {target.relative_to(ROOT)} from {source.relative_to(ROOT)}")
    if options.check and stale:
        names = ", ".join(str(t.relative_to(ROOT)) for t in stale)
        print(f"stale: {names}: run `make generate` (python tools/async_to_sync.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
