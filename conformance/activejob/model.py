"""What the ActiveJob cells expect, from Rails' own behaviour and not from que: what an
argument becomes through a Rails 6.1 envelope (fixtures/activejob_6_1.json holds what the
real ActiveJob writes and receives), how two readers' views of one value are compared, and
the argument trees Hypothesis draws, as SPECs (conformance/PROTOCOL.md, "ActiveJob")."""

import json
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
from hypothesis import strategies as st

from conformance.fleet import DIALECT
from conformance.support import fixture
from harness.testee import Info, Testee

AJ_ECHO = "QueConformance::AjEcho"
AJ_FAIL = "QueConformance::AjFail"
AJ_MISSING = "QueConformance::AjMissing"  # no testee defines it
WRAPPER = "ActiveJob::QueueAdapters::QueAdapter::JobWrapper"
# The Rails 6.1 envelope: its keys in the order ActiveJob::Core#serialize writes them.
ENVELOPE_KEYS = (
    "job_class",
    "job_id",
    "provider_job_id",
    "queue_name",
    "priority",
    "arguments",
    "executions",
    "exception_executions",
    "locale",
    "timezone",
    "enqueued_at",
)
QUEUE = "default"  # ActiveJob's default queue_name
# On Que 1.x/2.x tables args are jsonb, which keeps an object's keys in its own order.
JSONB = DIALECT in ("1", "2")


def cases() -> list[dict[str, Any]]:
    """The recorded cases: arguments (SPEC), written (Rails' JSON), received (Rails' SPEC)."""
    return list(fixture("activejob_6_1.json")["cases"])


def bigdecimal_text(text: str) -> str:
    """BigDecimal#to_s, which Rails 6.1 writes for a BigDecimal argument (it has no
    serializer before 7.1, so the job receives this String): 1.5 -> "0.15e1"."""
    value = Decimal(text)
    if value.is_zero():
        return "-0.0" if value.is_signed() else "0.0"
    sign, digits, exponent = value.normalize().as_tuple()
    assert isinstance(exponent, int)
    shown = "".join(str(d) for d in digits)
    return f"{'-' if sign else ''}0.{shown}e{len(digits) + exponent}"


def crossed(spec: list[Any]) -> list[Any]:
    """What a job receives for an argument sent as `spec` through a Rails 6.1 envelope."""
    kind = spec[0]
    if kind == "decimal":
        return ["str", bigdecimal_text(spec[1])]
    if kind == "array":
        return ["array", [crossed(item) for item in spec[1]]]
    if kind == "hash":
        return ["hash", spec[1], [[key, crossed(value)] for key, value in spec[2]]]
    if kind == "duration":
        return ["duration", crossed(spec[1]), crossed(spec[2])]
    return spec


def comparable(spec: Any) -> Any:
    """A SPEC as two correct readers agree on it. A TimeWithZone crosses a 6.1 envelope as an
    instant with an offset and no zone name: Rails reads it into its app's Time.zone, another
    reader may keep the offset, so only its class and instant are compared. On a jsonb
    table each hash's pairs come back in jsonb's key order."""
    if not isinstance(spec, list) or not spec:
        return spec
    if spec[0] == "time" and spec[1] == "ActiveSupport::TimeWithZone":
        return spec[:3]
    if spec[0] == "hash":
        pairs = [[key, comparable(value)] for key, value in spec[2]]
        return ["hash", spec[1], sorted(pairs, key=json.dumps) if JSONB else pairs]
    return [comparable(item) if isinstance(item, list) else item for item in spec]


def unordered(value: Any) -> Any:
    """JSON with each object's keys sorted, for comparing what a jsonb table gives back."""
    if isinstance(value, dict):
        return {key: unordered(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [unordered(item) for item in value]
    return value


def drain(testee: Testee, info: Info, queue: str = QUEUE, most: int = 50) -> None:
    """Work every due job of `queue`: one at a time where Que 0.14 can, else Que 1.x/2.x's pool."""
    if JSONB:
        testee.request("work", queue=queue, workers=1, deadline_ms=30_000)
        return
    for _ in range(most):
        if not testee.work_one(queue)["worked"]:
            return


def envelopes(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """The wrapper rows' envelopes, oldest first, parsed from the stored text."""
    rows = conn.execute("SELECT args::text FROM que_jobs ORDER BY run_at, 1").fetchall()
    return [json.loads(text)[0] for (text,) in rows]


# -- the trees Hypothesis draws ------------------------------------------------------------------

_TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12)
_KEYS = _TEXT.filter(lambda key: not key.startswith("_aj_"))
_NANOS = st.integers(0, 999_999_999).map(lambda n: f"{n:09d}")
_INSTANTS = st.builds(
    lambda day, seconds, nanos: (
        f"{day.isoformat()}T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{nanos}Z"
    ),
    st.dates(date(1970, 1, 2), date(2099, 12, 31)),
    st.integers(0, 86_399),
    _NANOS,
)
_OFFSETS = st.sampled_from([0, 19_800, -28_800, 3_600])
_TIMES = st.one_of(
    st.builds(lambda at, offset: ["time", "Time", at, offset, "UTC" if offset == 0 else None], _INSTANTS, _OFFSETS),
    st.builds(lambda at, offset: ["time", "DateTime", at, offset, None], _INSTANTS, _OFFSETS),
    st.builds(
        lambda at, zone: ["time", "ActiveSupport::TimeWithZone", at, 0, zone],
        _INSTANTS,
        st.sampled_from(["Etc/UTC", "Europe/Berlin", "Asia/Tokyo"]),
    ),
)
SCALARS = st.one_of(
    st.just(["nil"]),
    st.sampled_from([["true"], ["false"]]),
    st.integers(-(2**80), 2**80).map(lambda n: ["int", str(n)]),
    # Below 1e15 and not tiny: Ruby writes other floats with an exponent, which jsonb turns
    # into another text (the 0.x argument cells cover that).
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e14, max_value=1e14)
    .filter(lambda f: (f == 0.0 and str(f) == "0.0") or abs(f) >= 1e-4)
    .map(lambda f: ["float", f]),
    _TEXT.map(lambda s: ["str", s]),
    _TEXT.filter(bool).map(lambda s: ["sym", s]),
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-(10**6), max_value=10**6).map(
        lambda d: ["decimal", format(d, "f")]
    ),
    _TIMES,
    st.dates().map(lambda d: ["date", d.isoformat()]),
    st.integers(0, 10**7).map(
        lambda s: ["duration", ["int", str(s)], ["hash", "plain", [[["sym", "seconds"], ["int", str(s)]]]]]
    ),
    st.integers(1, 10**6).map(lambda n: ["gid", f"gid://que-conformance/QueConformance::Thing/{n}"]),
    st.just(["module", "QueConformance::Thing"]),
)


def _unique(pairs: list[list[Any]]) -> bool:
    """A str key and a Symbol key of one name are two keys in Ruby, one in most languages."""
    names = [key[1] for key, _ in pairs]
    return len(names) == len(set(names))


def _hashes(inner: Any) -> Any:
    key = st.one_of(_KEYS.map(lambda k: ["str", k]), _KEYS.filter(bool).map(lambda k: ["sym", k]))
    plain = st.lists(st.tuples(key, inner).map(list), max_size=4).filter(_unique).map(lambda p: ["hash", "plain", p])
    # Scalars only: with_indifferent_access makes nested hashes indifferent too.
    indifferent = st.lists(st.tuples(_KEYS.map(lambda k: ["str", k]), SCALARS).map(list), max_size=3)
    return st.one_of(plain, indifferent.filter(_unique).map(lambda p: ["hash", "indifferent", p]))


VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4).map(lambda items: ["array", items]), _hashes(inner)),
    max_leaves=8,
)
_KWARGS = st.lists(
    st.tuples(st.from_regex(r"\A[a-z][a-z0-9_]{0,8}\Z").map(lambda k: ["sym", k]), VALUES).map(list), max_size=3
).filter(_unique)
CALLS = st.builds(
    lambda args, kwargs: ["array", [*args, *([["hash", "kwargs", kwargs]] if kwargs else [])]],
    st.lists(VALUES, max_size=4),
    _KWARGS,
)
