"""Record fixtures/activejob_6_1.json from the real ActiveJob: for each argument list below
(a SPEC, conformance/PROTOCOL.md "ActiveJob"), what Rails 6.1 writes in a job's `arguments`
(ActiveJob::Arguments.serialize) and what its job receives back. The ActiveJob cells hold
every writer and reader to these, so a port is checked against Rails even where no Rails
runs. Needs Debian's ruby-activejob and a Ruby Que (QUE_RUBY_LIB); run `make fixtures-activejob`.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.postgres import database

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "activejob_6_1.json"


def t(ruby_class: str, utc: str, offset: int, zone: str | None) -> list[Any]:
    return ["time", ruby_class, utc, offset, zone]


def h(kind: str, *pairs: tuple[str, str, list[Any]]) -> list[Any]:
    return ["hash", kind, [[[key_kind, key], value] for key_kind, key, value in pairs]]


# One case per serializer and marker, and the combinations a port gets wrong.
CASES: list[list[Any]] = [
    ["array", []],
    ["array", [["nil"], ["true"], ["false"], ["int", "0"], ["int", "-12"], ["int", "1208925819614629174706176"]]],
    ["array", [["float", 1.5], ["float", -0.25], ["float", 0.0], ["float", 123456789.125], ["float", 1e-4]]],
    ["array", [["str", ""], ["str", "ann@example.com"], ["str", 'ü ∑ 😀 "q" \\ \n'], ["str", "_aj_symbol_keys"]]],
    ["array", [["sym", "ok"], ["sym", "with space"], ["sym", "ü"]]],
    [
        "array",
        [["decimal", "1.5"], ["decimal", "0"], ["decimal", "-0.001"], ["decimal", "123000"], ["decimal", "3.14159"]],
    ],
    ["array", [["decimal", "10"], ["decimal", "2.0"], ["decimal", "-7.50"]]],
    ["array", [["array", [["array", []], ["int", "1"], ["array", [["str", "x"]]]]]]],
    ["array", [h("plain", ("str", "a", ["int", "1"]), ("str", "b", ["str", "two"]))]],
    ["array", [h("plain", ("sym", "a", ["int", "1"]), ("str", "b", ["int", "2"]), ("sym", "c", h("plain")))]],
    ["array", [h("plain")]],
    ["array", [h("indifferent", ("str", "a", ["int", "1"]), ("str", "b", ["sym", "x"]))]],
    ["array", [["int", "1"], h("kwargs", ("sym", "to", ["str", "ann"]), ("sym", "n", ["float", 1.5]))]],
    ["array", [h("kwargs", ("sym", "opts", h("plain", ("sym", "deep", ["true"]))))]],
    [
        "array",
        [
            t("Time", "2026-01-02T03:04:05.000000000Z", 0, "UTC"),
            t("Time", "2026-01-02T03:04:05.123456789Z", 19800, None),
            t("Time", "1970-01-02T00:00:00.000001000Z", -28800, None),
            t("Time", "2026-01-02T03:04:05.500000000Z", 0, None),
            t("Time", "2026-01-02T03:04:05.250000000Z", 36000, None),
            t("Time", "2026-01-02T03:04:05.750000000Z", -36000, None),
        ],
    ],
    [
        "array",
        [
            t("ActiveSupport::TimeWithZone", "2026-01-02T03:04:05.123456789Z", 0, "Etc/UTC"),
            t("ActiveSupport::TimeWithZone", "2026-07-02T03:04:05.000000001Z", 7200, "Europe/Berlin"),
            t("ActiveSupport::TimeWithZone", "2026-01-02T03:04:05.000000000Z", 32400, "Asia/Tokyo"),
            t("ActiveSupport::TimeWithZone", "2026-01-02T03:04:05.000000000Z", 46800, "Pacific/Auckland"),
        ],
    ],
    [
        "array",
        [
            t("DateTime", "2026-01-02T03:04:05.000000000Z", 0, None),
            t("DateTime", "2026-01-02T03:04:05.123456789Z", 19800, None),
            t("DateTime", "2026-01-02T03:04:05.000000000Z", -39600, None),
        ],
    ],
    ["array", [["date", "2026-01-02"], ["date", "0001-01-01"], ["date", "9999-12-31"]]],
    [
        "array",
        [
            ["duration", ["int", "300"], h("plain", ("sym", "seconds", ["int", "300"]))],
            ["duration", ["int", "2629746"], h("plain", ("sym", "months", ["int", "1"]))],
            [
                "duration",
                ["int", "90061"],
                h(
                    "plain",
                    ("sym", "days", ["int", "1"]),
                    ("sym", "hours", ["int", "1"]),
                    ("sym", "seconds", ["int", "61"]),
                ),
            ],
        ],
    ],
    ["array", [["gid", "gid://que-conformance/QueConformance::Thing/42"], ["module", "QueConformance::Thing"]]],
    [
        "array",
        [
            ["str", "ann@example.com"],
            h(
                "plain",
                ("sym", "template", ["sym", "welcome"]),
                (
                    "str",
                    "at",
                    t("ActiveSupport::TimeWithZone", "2026-01-02T03:04:05.000000000Z", 3600, "Europe/Berlin"),
                ),
                (
                    "sym",
                    "list",
                    ["array", [["decimal", "2.5"], ["date", "2026-01-02"], h("indifferent", ("str", "k", ["nil"]))]],
                ),
            ),
            h("kwargs", ("sym", "at", ["date", "2026-01-02"]), ("sym", "sym", ["sym", "ok"])),
        ],
    ],
]


def record() -> dict[str, Any]:
    with database(backend="local") as db:
        proc = subprocess.Popen(
            ["ruby", str(ROOT / "testees" / "rails" / "testee.rb")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        answers = []
        for request in (
            {"id": 1, "op": "start", "database_url": db.url, "results_table": "que_conformance_results", "protocol": 1},
            {"id": 2, "op": "aj_serialize", "specs": CASES},
            {"id": 3, "op": "stop"},
        ):
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            answers.append(json.loads(proc.stdout.readline()))
        proc.wait(30)
    started, serialized, _ = answers
    if not started["ok"]:
        raise SystemExit(f"the Rails row cannot start: {started['error']['message']}")
    if not serialized["ok"]:
        raise SystemExit(f"aj_serialize failed: {serialized['error']['message']}")
    return {
        "format": "que-interop/activejob-fixtures",
        "version": 1,
        "description": (
            "What the real ActiveJob writes in a job's `arguments` for each argument list (a SPEC, "
            "conformance/PROTOCOL.md) and what the job receives back (`received`, described by Rails). "
            "Recorded by tools/record_activejob_fixtures.py."
        ),
        "recorded_with": started["result"]["version"],
        "cases": serialized["result"]["cases"],
    }


def main() -> int:
    fixture = record()
    OUT.write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(fixture['cases'])} cases from {fixture['recorded_with']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
