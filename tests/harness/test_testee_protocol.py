"""The protocol client turns every testee failure into a clear exception, never a hang."""

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.testee import (
    NotApplicable,
    Testee,
    TesteeCrashed,
    TesteeError,
    TesteeProtocolError,
    TesteeSchemaError,
    TesteeTimeout,
    Unavailable,
    url_for_testee,
)

FAKE = str(Path(__file__).with_name("fake_testee.py"))


def fake(mode: str) -> Testee:
    return Testee([sys.executable, FAKE, mode], label=f"fake-{mode}")


def started(mode: str) -> Testee:
    testee = fake(mode)
    testee.start("postgresql://unused", "results")
    return testee


def test_handshake_and_requests() -> None:
    testee = started("good")
    assert testee.info is not None and testee.info.name == "fake" and testee.info.can("lock")
    assert testee.enqueue("J", "[1]") == 5
    testee.stop()
    assert not testee.alive()


def test_crash_is_reported_with_exit_code_and_stderr() -> None:
    testee = started("crash-on-enqueue")
    with pytest.raises(TesteeCrashed, match=r"exited with code 7 while answering enqueue(.|\n)*about to crash"):
        testee.enqueue("J")


def test_hang_is_killed_at_the_deadline() -> None:
    testee = started("hang-on-enqueue")
    began = time.monotonic()
    with pytest.raises(TesteeTimeout, match="no response to enqueue within 1s; killed it"):
        testee.request("enqueue", timeout=1, job_class="J")
    assert time.monotonic() - began < 10
    assert not testee.alive()


def test_garbage_is_a_protocol_error() -> None:
    testee = started("garbage-on-enqueue")
    with pytest.raises(TesteeProtocolError, match="not JSON: 'this is not json"):
        testee.enqueue("J")
    assert not testee.alive()


def test_wrong_id_is_a_protocol_error() -> None:
    testee = started("wrong-id")
    with pytest.raises(TesteeProtocolError, match='needs "id": 2'):
        testee.enqueue("J")


def test_error_response_is_raised_with_type_and_message() -> None:
    testee = started("error-on-enqueue")
    with pytest.raises(TesteeError, match="enqueue failed in the testee: ValueError: bad job"):
        testee.enqueue("J")
    assert testee.alive()
    testee.stop()


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("unavailable", "no library here"),
        ("old-protocol", "speaks testee protocol 0"),
        ("exit-at-once", "exited with code 3"),
    ],
)
def test_start_failures_make_the_implementation_unavailable(mode: str, message: str) -> None:
    with pytest.raises(Unavailable, match=message):
        fake(mode).start("postgresql://unused", "results")


def test_missing_program_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="cannot run"):
        Testee(["/no/such/testee"])


@pytest.mark.parametrize(
    ("mode", "call", "message"),
    [
        ("string-job-id", lambda t: t.enqueue("J"), r"enqueue .*field job_id: '5' is not of type 'integer'"),
        ("lock-without-job-id", lambda t: t.lock(), r"lock .*field job\.job_id: 'job_id' is a required property"),
        ("error-without-message", lambda t: t.enqueue("J"), r"enqueue .*field error\.message: 'message' is a required"),
    ],
)
def test_a_response_that_breaks_the_schema_names_the_op_and_the_field(mode: str, call: Any, message: str) -> None:
    testee = started(mode)
    with pytest.raises(TesteeSchemaError, match=message):
        call(testee)
    testee.stop()


def test_an_unknown_capability_fails_the_start_instead_of_making_the_testee_unavailable() -> None:
    testee = fake("unknown-capability")
    with pytest.raises(TesteeSchemaError, match=r"start .*field capabilities\.crash_job: Additional properties"):
        testee.start("postgresql://unused", "results")
    assert not testee.alive()


def test_the_harness_refuses_to_send_a_request_the_schema_does_not_allow() -> None:
    testee = started("good")
    with pytest.raises(ValueError, match=r"enqueue request .*field priority: 'high' is not of type 'integer'"):
        testee.request("enqueue", job_class="J", priority="high")
    testee.stop()


def test_the_database_url_says_sslmode_disable_unless_it_says_otherwise() -> None:
    testee = started("good")
    assert testee.info is not None and testee.info.version == "postgresql://unused?sslmode=disable"
    testee.stop()
    assert (
        url_for_testee("postgresql://h/db?application_name=x") == "postgresql://h/db?application_name=x&sslmode=disable"
    )
    assert url_for_testee("postgresql://h/db?sslmode=require") == "postgresql://h/db?sslmode=require"


def test_an_enqueue_only_testee_is_never_sent_a_worker_op() -> None:
    testee = started("enqueue-only")
    assert testee.enqueue("J") == 5
    for op in ("work_one", "lock"):
        with pytest.raises(NotApplicable, match=f"fake-enqueue-only declares enqueue_only: it does not answer {op}"):
            testee.request(op)
    assert testee.alive()
    testee.stop()


def test_failures_name_the_row_the_harness_gave_not_the_testees_own_name() -> None:
    testee = started("crash-on-enqueue")
    assert testee.info is not None and testee.info.name == "fake"
    with pytest.raises(TesteeCrashed, match=r"^fake-crash-on-enqueue "):
        testee.enqueue("J")
