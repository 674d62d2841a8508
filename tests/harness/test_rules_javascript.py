"""The javascript-json writer rule and javascript reader model (conformance/rules.py) agree
with the real JavaScript: Node's JSON.parse and JSON.stringify, byte for byte, on the
fixture vectors and on generated JSON."""

import json
import shutil
import subprocess
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance import rules
from conformance.support import fixture

NODE = shutil.which("node")
ROUND_TRIP = (
    "const texts = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
    "process.stdout.write(JSON.stringify(texts.map((t) => JSON.stringify(JSON.parse(t)))));"
)


def node_stringify(texts: list[str]) -> list[str]:
    if NODE is None:
        pytest.fail("node is not installed: the machine this project runs on has Node.js 20")
    done = subprocess.run([NODE, "-e", ROUND_TRIP], input=json.dumps(texts), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_fixture_vectors_match_node() -> None:
    texts = [vector["args_json"] for vector in fixture("args_vectors.json")["vectors"]]
    assert [rules.stored_text(text, "javascript-json") for text in texts] == node_stringify(texts)


EDGE_TEXTS = [
    "[-0, -0.0, 0.0, 1e21, 1e20, 1e-6, 1e-7, 123456789012345678901234567890, 9007199254740993]",
    '[{"b": 1, "2": 2, "a": 3, "1": 4, "01": 5, "-1": 6, "4294967295": 7, "4294967294": 8}]',
    '[{"a": 1, "b": 2, "a": 3}]',
    '["\\u2028\\u2029\\u007f\\u0001\\u001f<>&\\ud800\\udc00 \\ud834\\udd1e é"]',
    "[1.5e300, 5e-324, 2.2250738585072014e-308, 0.1, 100, 1.0]",
]


def test_edge_cases_match_node() -> None:
    assert [rules.stored_text(text, "javascript-json") for text in EDGE_TEXTS] == node_stringify(EDGE_TEXTS)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4),
)


@settings(max_examples=1, deadline=None)
@given(st.lists(st.lists(values, max_size=4), min_size=200, max_size=200))
def test_generated_json_matches_node(batch: list[Any]) -> None:
    texts = [json.dumps(value) for value in batch]
    assert [rules.stored_text(text, "javascript-json") for text in texts] == node_stringify(texts)
