"""`que-conformance`: run the conformance suite over every available implementation.

It installs missing system packages when it can (harness/bootstrap.sh), builds the Go
testee, starts PostgreSQL, runs conformance/ with pytest, writes JUnit XML, results.json
and matrix.md into the results folder, and prints the matrices and the summary line
`N passed, N failed, N unavailable, ...`. The exit code is non-zero on any unexpected
result: a failure, or a listed divergence that now passes (stale).
"""

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from harness import implementations, signals
from harness.postgres import BACKENDS

ROOT = Path(__file__).resolve().parent.parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="que-conformance",
        description="Check that Que 0.x implementations agree on the protocol, against one PostgreSQL.",
        epilog="Arguments after -- go to pytest (e.g. -- -k ordering -x).",
    )
    parser.add_argument(
        "--impl",
        default=",".join(implementations.BUILTINS),
        metavar="NAMES",
        help=f"built-in implementations to run, comma-separated (default: {','.join(implementations.BUILTINS)})",
    )
    parser.add_argument(
        "--testee",
        action="append",
        default=[],
        metavar="CMD",
        help="an outside implementation's testee command line (repeatable); it speaks conformance/PROTOCOL.md",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=os.environ.get("QUE_PG_BACKEND", "auto"),
        help="PostgreSQL: a throwaway local cluster, a server by URL, or a Docker container (default: auto = url "
        "when a URL is set, else local)",
    )
    parser.add_argument("--database-url", metavar="URL", help="server for --backend url (default: $QUE_DATABASE_URL)")
    parser.add_argument(
        "--containers",
        action="store_true",
        help="with --backend docker, also run the Ruby and Go testees as containers built from their Dockerfiles",
    )
    parser.add_argument(
        "--results",
        default=str(ROOT / "results" / "conformance"),
        metavar="DIR",
        help="where junit.xml, results.json and matrix.md go (default: results/conformance)",
    )
    parser.add_argument(
        "--profile",
        choices=["ci", "deep"],
        default=os.environ.get("HYPOTHESIS_PROFILE", "ci"),
        help="Hypothesis profile: ci (derandomized, bounded) or deep (more examples) (default: ci)",
    )
    parser.add_argument(
        "--fix", action="store_true", help="rewrite conformance/expectations/*.json from this run's outcomes"
    )
    parser.add_argument("--no-build", action="store_true", help="do not run go build (use go/bin/que-testee)")
    parser.add_argument("--no-bootstrap", action="store_true", help="do not try to install missing system packages")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, extra = args[:cut], args[cut + 1 :]
    options = _parser().parse_args(args)
    names = [n.strip() for n in options.impl.split(",") if n.strip()]
    unknown = implementations.unknown(names)
    if unknown:
        print(
            f"que-conformance: error: unknown implementation(s) {unknown}: built-ins are "
            f"{', '.join(implementations.BUILTINS)}",
            file=sys.stderr,
        )
        return 2

    if not options.no_bootstrap:
        subprocess.run([str(ROOT / "harness" / "bootstrap.sh")], check=False)
    if set(names) & set(implementations.GO_PROGRAMS) and not options.no_build:
        print("building the Go testees (go build in go/) ...", flush=True)
        reason = implementations.build_go()
        print(f"  go testees: {'built' if reason is None else 'unavailable: ' + reason}", flush=True)

    results = Path(options.results)
    results.mkdir(parents=True, exist_ok=True)
    env = {
        "QUE_CONFORMANCE_IMPLS": ",".join(names),
        "QUE_CONFORMANCE_TESTEES": json.dumps(options.testee),
        "QUE_CONFORMANCE_RESULTS": str(results),
        "QUE_PG_BACKEND": options.backend,
        "HYPOTHESIS_PROFILE": options.profile,
        # Built once above; the suite must not build again.
        "QUE_CONFORMANCE_NO_BUILD": "1",
    }
    if options.containers:
        env["QUE_CONFORMANCE_CONTAINERS"] = "1"
    if options.database_url:
        env["QUE_DATABASE_URL"] = options.database_url
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(ROOT / "conformance"),
        "-p",
        "no:cacheprovider",
        f"--junitxml={results / 'junit.xml'}",
        "-o",
        "junit_family=xunit2",
        "-rfEX",
        *(["--fix"] if options.fix else []),
        *extra,
    ]
    # A signal (CI timeout, Ctrl-C) goes on to pytest, whose fixtures then stop the cluster.
    return signals.run_forwarding(command, cwd=ROOT, env={**os.environ, **env})


if __name__ == "__main__":
    sys.exit(main())
