"""What can go wrong with a testee, as exceptions the harness and the cells tell apart: a
crash, a missed deadline, a line that is not a response or breaks the schema, an error
answer, a request the testee declared it cannot do (not applicable), a testee that cannot
run here (unavailable) or does not speak the dialect asked (not spoken). harness.testee
raises them and re-exports them under the names its callers know."""

from collections.abc import Mapping, Sequence
from typing import Any


class TesteeFailure(Exception):
    """Base: the testee did not do what was asked."""

    __test__ = False  # not a pytest test class, despite the name


class TesteeCrashed(TesteeFailure):
    """The process exited (or closed stdout) while a response was due."""


class TesteeTimeout(TesteeFailure):
    """No response before the deadline; the process was killed."""


class TesteeProtocolError(TesteeFailure):
    """The testee wrote something that is not a protocol response."""


class TesteeSchemaError(TesteeProtocolError):
    """A well-framed response whose result breaks the protocol schema."""


class TesteeError(TesteeFailure):
    """The testee answered `ok: false`."""

    def __init__(self, op: str, error: Mapping[str, Any]) -> None:
        self.type = str(error.get("type", "Error"))
        self.detail = str(error.get("message", ""))
        # The dialects a testee that answers Unavailable to a start does speak, if it says.
        self.dialects: list[str] | None = error.get("dialects")
        super().__init__(f"{op} failed in the testee: {self.type}: {self.detail}")


class NotApplicable(TesteeFailure):
    """The request needs what the testee declared it does not do (enqueue_only): its cell
    is reported not applicable, with that reason."""


# The ops an enqueue-only library cannot answer.
WORKER_OPS = frozenset({"work_one", "work", "lock", "release"})


class Unavailable(TesteeFailure):
    """The implementation cannot run here (its `start` said so, or it could not start)."""


class NotSpoken(Unavailable):
    """The testee does not speak the dialect asked for, and said which ones it speaks (its
    Unavailable answer's `dialects`, or its start result's): its cells of that dialect are
    not applicable, not unavailable."""

    def __init__(self, name: str, asked: str, spoken: Sequence[str]) -> None:
        self.asked = asked
        self.spoken = list(spoken)
        plural = "s" if len(spoken) > 1 else ""
        super().__init__(f"{name} speaks the Que dialect{plural} {', '.join(spoken) or 'none'}, not {asked}")
