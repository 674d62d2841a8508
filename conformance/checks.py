"""Checks that say which rule broke: every failing check quotes its rule from
fixtures/rules.json and names the implementation, the job, what was expected and what
was seen, so a port author reads the failure and knows what to fix."""

from collections.abc import Callable
from typing import Any

from conformance.support import fixture
from harness.lab import wait_until

RULES: dict[str, dict[str, str]] = fixture("rules.json")["rules"]


class RuleBroken(AssertionError):
    """A conformance rule does not hold."""


# The rules the running cell has checked, in order, with whether each held: the report
# lists them for every cell, passed or not. conftest empties it before each cell.
RECORDED: list[tuple[str, bool]] = []


def _show(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def message(
    rule: str,
    *,
    impl: str | None = None,
    job: Any = None,
    expected: Any = None,
    seen: Any = None,
    detail: str | None = None,
) -> str:
    """The failure text: the rule, then what is known of the case."""
    lines = [f"rule {rule}: {RULES[rule]['rule']}"]
    if impl is not None:
        lines.append(f"  implementation: {impl}")
    if job is not None:
        lines.append(f"  job: {job}")
    if detail is not None:
        lines.append(f"  {detail}")
    if expected is not None or seen is not None:
        lines.append(f"  expected: {_show(expected)}")
        lines.append(f"  seen: {_show(seen)}")
    return "\n".join(lines)


def check(ok: bool, rule: str, **case: Any) -> None:
    """Raise RuleBroken naming `rule` unless `ok`."""
    if rule not in RULES:
        raise KeyError(f"unknown rule {rule!r}: add it to fixtures/rules.json")
    RECORDED.append((rule, bool(ok)))
    if not ok:
        raise RuleBroken(message(rule, **case))


def check_equal(seen: Any, expected: Any, rule: str, **case: Any) -> None:
    check(seen == expected, rule, expected=expected, seen=seen, **case)


def within(seconds: float, condition: Callable[[], object]) -> bool:
    """Whether `condition` holds within `seconds` (polled, never a fixed sleep)."""
    try:
        wait_until(condition, seconds, "a condition")
    except AssertionError:
        return False
    return True
