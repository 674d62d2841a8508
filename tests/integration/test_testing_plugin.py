"""que.testing, the helpers and pytest plugin for users' own tests, run the way a user runs
them: a test file in a fresh pytest process that loads the plugin from the installed
package's entry point, on a given PostgreSQL URL and on the throwaway server it starts."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

USER_TESTS = """
import pytest
import que
from que.testing import assert_enqueued

handlers = que.Registry()
sent = []


@handlers.handler("SendEmail")
def send_email(to, template="welcome"):
    sent.append((to, template))


def signup(client, email):
    client.enqueue("SendEmail", email, queue="mail", priority=10)


def test_signup_enqueues_and_the_job_runs(que_client, que_drain):
    signup(que_client, "ann@example.com")
    [job] = assert_enqueued(que_client, "SendEmail", args=["ann@example.com"], queue="mail", count=1)
    assert job.priority == 10
    assert que_drain(handlers, queue="mail") == 1
    assert sent == [("ann@example.com", "welcome")]
    assert que_client.jobs() == []


def test_each_test_starts_with_no_job(que_client):
    assert que_client.jobs() == []


def test_a_missing_job_fails_with_what_is_there(que_client):
    que_client.enqueue("Other", 1, queue="mail")
    with pytest.raises(AssertionError) as failed:
        assert_enqueued(que_client, "SendEmail", queue="mail")
    assert "found 0" in str(failed.value) and "Other args=[1]" in str(failed.value)
"""


def run_user_tests(folder: Path, *options: str) -> subprocess.CompletedProcess[str]:
    (folder / "test_user.py").write_text(textwrap.dedent(USER_TESTS))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "test_user.py"), *options],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("schema", ["3", "7"])
def test_users_tests_on_a_given_database(tmp_path: Path, database_url: str, schema: str) -> None:
    from tests.conftest import fresh_database

    url = fresh_database(database_url, f"user_tests_v{schema}")
    done = run_user_tests(tmp_path, "--que-database-url", url, "--que-schema-version", schema)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout


def test_users_tests_on_a_throwaway_server(tmp_path: Path) -> None:
    done = run_user_tests(tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout
