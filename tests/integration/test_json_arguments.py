"""The JSON rule: bytes as Ruby's JSON.dump writes them, and clear refusals."""

import json
import math
import shutil
import subprocess
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

import que
from que.core.encoding import dumps

# Recorded from Ruby 3.1.2 / json 2.6.1 `JSON.dump([value])`.
RUBY_WRITES = [
    (1.0, "[1.0]"),
    (1e15, "[1.0e+15]"),
    (1e16, "[1.0e+16]"),
    (1.5e20, "[1.5e+20]"),
    (1e-4, "[0.0001]"),
    (1e-5, "[1.0e-05]"),
    (9.999e-5, "[9.999e-05]"),
    (123456789.123, "[123456789.123]"),
    (-0.0, "[-0.0]"),
    (2.5e-300, "[2.5e-300]"),
    (1.7976931348623157e308, "[1.7976931348623157e+308]"),
    (5e-324, "[5.0e-324]"),
    (100.0, "[100.0]"),
    (1e14, "[100000000000000.0]"),
    (999999999999999.9, "[999999999999999.9]"),
    (1626983080611305.8, "[1626983080611305.8]"),
    (1234567890123456.0, "[1.234567890123456e+15]"),
    (12345678901234567.0, "[1.2345678901234568e+16]"),
    (9007199254740993, "[9007199254740993]"),
    (2**64, "[18446744073709551616]"),
    (-(2**63), "[-9223372036854775808]"),
    (
        'a\x00b\x1f\x7f\t\n\r\b\f"\\/ é 😀 \u2028 </script>',
        '["a\\u0000b\\u001f\x7f\\t\\n\\r\\b\\f\\"\\\\/ é 😀 \u2028 </script>"]',
    ),
    ({"a": 1, "b": {}}, '[{"a":1,"b":{}}]'),
    ({1: "x"}, '[{"1":"x"}]'),
    ([], "[[]]"),
    (None, "[null]"),
    (True, "[true]"),
    (False, "[false]"),
]


@pytest.mark.parametrize(("value", "expected"), RUBY_WRITES)
def test_bytes_match_ruby_json_dump(value: Any, expected: str) -> None:
    assert dumps([value]) == expected


def test_tuples_are_arrays_and_key_order_is_kept() -> None:
    assert dumps([(1, 2), {"z": 1, "a": 2}]) == '[[1,2],{"z":1,"a":2}]'


@pytest.mark.parametrize(
    ("args", "kind", "path"),
    [
        ([math.nan], ValueError, "args[0]"),
        ([1, [math.inf]], ValueError, "args[1][0]"),
        ([{"a": -math.inf}], ValueError, "args[0]['a']"),
        ([1, 2, {"when": datetime(2020, 1, 1, tzinfo=UTC)}], TypeError, "args[2]['when']"),
        ([{1.5: 1}], TypeError, "args[0]"),
        ([{None: 1}], TypeError, "args[0]"),
        ([{True: 1}], TypeError, "args[0]"),
        ([{(1, 2): 1}], TypeError, "args[0]"),
        ([{1, 2}], TypeError, "args[0]"),
        ([b"bytes"], TypeError, "args[0]"),
        ([Decimal("1.5")], TypeError, "args[0]"),
        ([object()], TypeError, "args[0]"),
        (["\ud800"], ValueError, "args[0]"),
        ([{"\udfff": 1}], ValueError, "args[0]"),
    ],
)
def test_refusals_name_the_path_and_rule(args: list[Any], kind: type[Exception], path: str) -> None:
    with pytest.raises(kind) as raised:
        que.encode_args(args)
    assert str(raised.value).startswith(path + " ")


def test_loads_refuses_nan_and_keeps_big_ints_exact() -> None:
    assert que.loads("[18446744073709551616, 1.0, 1e3]") == [2**64, 1.0, 1000.0]
    assert que.loads('{"a":1,"a":2}') == {"a": 2}
    with pytest.raises(ValueError, match="NaN"):
        que.loads("[NaN]")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"]), max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)


@given(value=json_values)
def test_encoded_text_is_json_that_decodes_to_the_value(value: Any) -> None:
    text = dumps([value])
    assert json.loads(text) == [value]
    assert que.loads(text) == [value]


@given(value=json_values)
def test_round_trip_through_postgres_json_is_byte_exact(database_url: str, value: Any) -> None:
    text = dumps([value])
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT %s::json::text", [text]).fetchone()
    assert row == (text,)
    assert que.loads(row[0]) == [value]


RUBY = shutil.which("ruby")


@pytest.mark.skipif(RUBY is None, reason="ruby is not installed (make test installs it)")
@given(values=st.lists(json_values, min_size=1, max_size=40))
def test_bytes_equal_real_ruby_json_dump(values: list[Any]) -> None:
    # Ruby reads each value from Python's json text (exact for these types) and
    # writes it back with JSON.dump; our bytes must be the same.
    lines = "\n".join(json.dumps([v], ensure_ascii=True) for v in values)
    assert RUBY is not None
    ruby = subprocess.run(
        [RUBY, "-rjson", "-e", "STDIN.each_line { |l| puts JSON.dump(JSON.parse(l)) }"],
        input=lines,
        capture_output=True,
        text=True,
        check=True,
    )
    # split on \n only: str.splitlines would also split on U+0085 and U+2028.
    assert ruby.stdout.split("\n")[:-1] == [dumps([v]) for v in values]
