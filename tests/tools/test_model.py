"""The suite's model of Ruby Que (conformance/model.py) against the real Ruby, and que
against the model.

The model is the judge's: it imports nothing from que. Here it is checked twice: against
the real Ruby's JSON.generate and Float#to_s (Debian's ruby, which make test installs), and
then que is checked against it, so that a bug in que's JSON, backoff or last_error shows as
a failure here (and as a red python row in the suite), never as a model that agrees with it.
"""

import json
import math
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance import model
from que.core import encoding, errors, handlers, retry
from que.core.job import Job

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)

# Floats at every boundary of Float#to_s's notations, and a spread of magnitudes.
BOUNDARY_FLOATS = [
    0.0,
    -0.0,
    0.5,
    1.0,
    100.0,
    1e15,
    1e16,
    9999999999999998.0,
    1234567890123456.7,
    123456789012345.67,
    999999999999999.9,
    1e-4,
    1e-5,
    0.00012345,
    1.5e300,
    2.5e-310,
    5e-324,
    1.7976931348623157e308,
    *[float(f"{m}e{e}") for m in (1, 1.5, 9.87654321) for e in range(-8, 20)],
]

RUBY = shutil.which("ruby")


def ruby_lines(script: str, values: list[object]) -> list[str]:
    """What the real Ruby prints, one line per value: `script` reads each value as a JSON
    line on stdin (json required)."""
    if RUBY is None:
        pytest.fail("ruby is not installed: make test installs Debian's ruby (harness/bootstrap.sh --test)")
    lines = "".join(json.dumps(v) + "\n" for v in values)
    done = subprocess.run(
        [RUBY, "-e", "require 'json'; " + script], input=lines, capture_output=True, text=True, check=True
    )
    return done.stdout.split("\n")[:-1]  # not splitlines(): U+0085 and U+2028 are text here


def ruby_dump(values: list[object]) -> list[str]:
    """JSON.generate of each value, by the real Ruby (each read from JSON first)."""
    return ruby_lines("$stdin.each_line { |l| puts JSON.generate(JSON.parse(l, quirks_mode: true)) }", values)


def test_the_model_writes_floats_as_rubys_float_to_s() -> None:
    assert [model.ruby_float(v) for v in BOUNDARY_FLOATS] == ruby_dump(BOUNDARY_FLOATS)


@given(st.lists(json_values, min_size=1, max_size=30))
def test_the_model_dumps_json_as_ruby_does(values: list[object]) -> None:
    assert [model.ruby_json_dump(v) for v in values] == ruby_dump(values)


def test_the_model_refuses_what_ruby_cannot_write() -> None:
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="GeneratorError"):
            model.ruby_float(value)


@given(json_values)
def test_que_writes_what_the_model_says_ruby_writes(value: object) -> None:
    assert encoding.dumps(value) == model.ruby_json_dump(value)


@pytest.mark.parametrize("value", BOUNDARY_FLOATS)
def test_que_writes_floats_as_the_model_does(value: float) -> None:
    assert encoding.dumps([value]) == f"[{model.ruby_float(value)}]"


# The most failures whose delay still fits the bigint Ruby's set_error casts it to; past it
# Ruby's statement fails, and que caps the delay instead (its own choice, checked in tests/).
BIGINT_COUNT = 55108


@given(st.integers(min_value=0, max_value=BIGINT_COUNT))
def test_que_backs_off_as_the_model_does(error_count: int) -> None:
    assert retry.retry_delay(error_count) == model.retry_delay(error_count)


@given(st.text(max_size=700))
def test_ques_last_error_is_the_models(message: str) -> None:
    try:
        raise RuntimeError(message)
    except RuntimeError as error:
        written = errors.last_error_text(error)
        frames = written.split("\n")[len(model.last_error_head("RuntimeError", message).split("\n")) :]
    assert frames, "a backtrace line per frame"
    assert written == errors.storable(model.last_error("RuntimeError", message, frames))
    assert all(":in '" in frame for frame in frames), frames


def ruby_splat(values: list[object]) -> list[object]:
    """What the real Ruby's `run(*args)` receives for each parsed args value."""
    script = "def run(*a) = a; $stdin.each_line { |l| puts JSON.generate(run(*JSON.parse(l, quirks_mode: true))) }"
    return [json.loads(line) for line in ruby_lines(script, values)]


@given(st.lists(json_values, min_size=1, max_size=30))
def test_the_model_splats_args_as_rubys_run_does(values: list[object]) -> None:
    assert [model.ruby_splat(v) for v in values] == ruby_splat(values)


@given(json_values)
def test_que_hands_a_handler_what_the_model_says_ruby_does(value: object) -> None:
    args_json = encoding.dumps(value)
    now = datetime.now(UTC)
    job = Job(queue="", priority=100, run_at=now, job_id=1, job_class="J", args_json=args_json, error_count=0)
    assert list(handlers.arguments(job)) == model.ruby_splat(encoding.loads(args_json))


# Edge cases of Ruby's String#strip, which decides a blank message: it takes only ASCII
# whitespace and NUL, where Python's str.strip also takes Unicode spaces, separators and
# the information separators \x1c-\x1f (and keeps NUL).
STRIP_EDGES = ["\u00a0", "\u2003", "\u2028", "\x1c", "\x85", "\u3000", " \x00", "\x00", "\t\v\f\r\n ", "\u00a0 ", "a"]


def ruby_heads(messages: list[str]) -> list[str]:
    """Ruby Que 0.14.3's head of last_error for RuntimeError(message), by the real Ruby."""
    script = (
        "$stdin.each_line { |l| m = JSON.parse(l); "
        "puts JSON.generate(m.strip.empty? ? 'RuntimeError' : \"RuntimeError: #{m}\") }"
    )
    return [json.loads(line) for line in ruby_lines(script, list(messages))]


def test_the_model_blanks_a_message_as_rubys_strip_does() -> None:
    assert [model.last_error_head("RuntimeError", m) for m in STRIP_EDGES] == ruby_heads(STRIP_EDGES)


@pytest.mark.parametrize("message", STRIP_EDGES, ids=[repr(m) for m in STRIP_EDGES])
def test_que_blanks_a_message_as_the_model_does(message: str) -> None:
    try:
        raise RuntimeError(message)
    except RuntimeError as error:
        head, _ = errors.error_parts(error)
    assert head == model.last_error_head("RuntimeError", message)
