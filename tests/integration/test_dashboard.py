"""The web dashboard in a real headless Chromium (Debian's, driven by Playwright) against a
real PostgreSQL, on Que 0.x (v3) and Que 2 (v7) tables: each view and action is clicked
through and the database checked after it; a job whose args and error hold markup shows it
as text and runs no script; a change without the CSRF token, without credentials or in
read-only mode changes nothing. Screenshots go to results/dashboard/."""

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import que
from harness.lab import wait_until
from que import web
from tests.integration.test_hooks import url as url

playwright = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright (pip)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(__file__).resolve().parents[2] / "results" / "dashboard"
TOKEN = "s3cret-token"
HOSTILE_ARGS = ["<script>window.pwned = 1</script>", {"html": "<img src=x onerror='window.pwned=2'>"}]
HOSTILE_ERROR = "RuntimeError: <script>window.pwned=3</script> & <b>bold</b>"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed (the bootstrap installs Debian's chromium for make test)")
    with playwright.sync_playwright() as p:
        found = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield found
        found.close()


class Served:
    def __init__(self, client: que.Client, **options: Any) -> None:
        self.server = web.serve(web.Dashboard(client, **options), "127.0.0.1", 0)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site(url: str) -> Iterator[tuple[que.Client, Served]]:
    with que.Client(url) as client:
        served = Served(client, token=TOKEN)
        try:
            yield client, served
        finally:
            served.close()


def fill(client: que.Client, url: str) -> dict[str, int]:
    """Jobs in every state: ready, scheduled, failing (one hostile), dead or expired."""
    v7 = client.dialect().name == "2"
    ids = {
        "ready": client.enqueue("Mail::Send", "ann@example.com", queue="mail").job_id,
        "scheduled": client.enqueue("Report", 1, run_at=_later(url)).job_id,
        "failing": client.enqueue("Charge", 12, queue="billing").job_id,
        "hostile": client.enqueue("Hostile", *HOSTILE_ARGS, queue="billing").job_id,
        "dead": client.enqueue("Gone", queue="billing").job_id,
    }
    key, error = ("id", "last_error_message") if v7 else ("job_id", "last_error")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"UPDATE que_jobs SET error_count = 2, run_at = now() + interval '1 hour', {error} = %s WHERE {key} = %s",
            ["RuntimeError: card declined\nbilling.py:12", ids["failing"]],
        )
        conn.execute(
            f"UPDATE que_jobs SET error_count = 1, {error} = %s WHERE {key} = %s", [HOSTILE_ERROR, ids["hostile"]]
        )
        if v7:
            conn.execute("UPDATE que_jobs SET error_count = 16, expired_at = now() WHERE id = %s", [ids["dead"]])
        else:
            conn.execute("UPDATE que_jobs SET error_count = 9, run_at = '9999-12-31' WHERE job_id = %s", [ids["dead"]])
    return ids


def enqueued_by_other_languages(url: str, v7: bool) -> tuple[dict[str, int], list[str]]:
    """Jobs the real que-go and Ruby Que enqueue on this table (Go speaks Que 0.x only): row
    name -> job id, and why a row could not take part."""
    from harness import implementations, results
    from harness.testee import Testee, Unavailable

    with psycopg.connect(url, autocommit=True) as conn:
        results.create(conn)
    found, missing = {}, []
    for name in ["ruby-2.4.1"] if v7 else ["go", "ruby"]:
        impl = implementations.builtin(name, build=True)
        if impl.unavailable is not None:
            missing.append(f"{name}: {impl.unavailable}")
            continue
        testee = Testee(impl.command, cwd=impl.cwd, env=impl.env)
        try:
            testee.start(url, results.TABLE, dialect="2" if v7 else "0.14")
            job_class = f"From::{name.split('-')[0].capitalize()}"
            testee.enqueue(job_class, json.dumps([f"enqueued by {name}"]))  # que-go does not say the id
            with que.Client(url) as client:
                [job] = client.jobs(job_class)
            found[name] = job.job_id
        except Unavailable as why:
            missing.append(f"{name}: {why}")
        finally:
            testee.stop()
    return found, missing


def _later(url: str) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT now() + interval '1 day'").fetchone()
        assert row is not None
        return row[0]


def row(url: str, job_id: int) -> dict[str, Any] | None:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        key = "id" if conn.execute("SELECT to_regclass('que_lockers')").fetchone() != (None,) else "job_id"
        cur.execute(f"SELECT *, run_at <= now() AS due FROM que_jobs WHERE {key} = %s", [job_id])
        return cur.fetchone()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_every_view_and_action_in_a_browser(browser: Any, site: tuple[que.Client, Served], url: str) -> None:
    client, served = site
    v7 = client.dialect().name == "2"
    tag = "que2" if v7 else "que0"
    ids = fill(client, url)
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    # No credentials: nothing is shown.
    assert page.goto(served.base + "/").status == 401
    assert "needs credentials" in page.inner_text("main")
    assert page.goto(served.base + "/login?token=wrong").status == 401

    # The overview: one row per queue with its counts.
    page.goto(served.base + f"/login?token={TOKEN}")
    shot(page, f"overview-{tag}")
    billing = page.locator('tr[data-queue="billing"]')
    assert billing.locator('td[data-state="failing"]').inner_text() == "2"
    assert billing.locator('td[data-state="dead"]').inner_text() == "1"
    assert page.locator('tr[data-queue="mail"] td[data-state="ready"]').inner_text() == "1"

    # Failing jobs, from the overview's count: the hostile one shows its markup as text.
    billing.locator('td[data-state="failing"] a').click()
    shot(page, f"failing-{tag}")
    listed = page.locator("#jobs tr[data-job]")
    assert sorted(int(listed.nth(i).get_attribute("data-job")) for i in range(listed.count())) == sorted(
        [ids["failing"], ids["hostile"]]
    )
    hostile_row = page.locator(f'tr[data-job="{ids["hostile"]}"] td.error')
    assert hostile_row.inner_text() == HOSTILE_ERROR
    page.click(f'tr[data-job="{ids["hostile"]}"] a')
    shot(page, f"hostile-{tag}")
    assert json.loads(page.inner_text("#args")) == HOSTILE_ARGS
    assert page.inner_text("#error") == HOSTILE_ERROR
    assert page.evaluate("typeof window.pwned") == "undefined" and dialogs == []
    assert page.locator("script").count() == 0

    # Jobs the real Go and Ruby enqueued (where they can run here) list and show as Python's.
    others, missing = enqueued_by_other_languages(url, v7)
    if not v7:
        assert "go" in others, f"que-go must run here: {missing}"
    for name, job_id in others.items():
        page.goto(served.base + f"/jobs/{job_id}")
        assert json.loads(page.inner_text("#args")) == [f"enqueued by {name}"]
    print(f"jobs enqueued by {sorted(others)}; not here: {missing}")

    # Filter by error text.
    page.goto(served.base + "/jobs")
    page.fill('input[name="q"]', "card declined")
    page.click("#filters button")
    assert page.locator("#jobs tr[data-job]").count() == 1

    # Retry one job now: it is due.
    page.goto(served.base + "/jobs?state=failing")
    page.click(f'tr[data-job="{ids["failing"]}"] button[name="retry"]')
    assert page.inner_text("#note") == "retry: 1 of 1 job"
    found = row(url, ids["failing"])
    assert found is not None and found["due"] and found["error_count"] == 2

    # Delete in bulk: the checked jobs go.
    page.goto(served.base + "/jobs")
    page.check(f'input[name="job_id"][value="{ids["ready"]}"]')
    page.check(f'input[name="job_id"][value="{ids["scheduled"]}"]')
    page.click('#bulk button[value="delete"]')
    assert page.inner_text("#note") == "delete: 2 of 2 jobs"
    assert row(url, ids["ready"]) is None and row(url, ids["scheduled"]) is None

    if v7:  # expire one job (Que 2)
        page.goto(served.base + f"/jobs/{ids['hostile']}")
        page.click('button[name="expire"]')
        found = row(url, ids["hostile"])
        assert found is not None and found["expired_at"] is not None

    # Retry every dead job from the overview.
    page.goto(served.base + "/")
    page.click('button[name="retry-dead"]')
    assert "retried 1 dead job" in page.inner_text("#note") or "retried 2 dead jobs" in page.inner_text("#note")
    found = row(url, ids["dead"])
    assert found is not None and found["due"]

    # The lockers: a session holding a job's lock (Que 0.x), or a registered locker (Que 2).
    with que.Client(url) as other:
        pool = que.WorkerPool(other, {}, queue="empty", count=1).start() if v7 else None
        try:
            with psycopg.connect(url, autocommit=True) as holder:
                if v7:  # the pool's locker registers once its session is up
                    registered = "SELECT count(*) FROM que_lockers"
                    wait_until(lambda: holder.execute(registered).fetchone() == (1,), 20, "the locker's row")
                else:
                    holder.execute("SELECT pg_advisory_lock(%s)", [ids["failing"]])
                page.goto(served.base + "/lockers")
                shot(page, f"lockers-{tag}")
                assert page.locator("#lockers tr").count() == 2
        finally:
            if pool is not None:
                assert pool.shutdown(10)
    page.close()


def test_pagination_walks_every_job_once(browser: Any, site: tuple[que.Client, Served], url: str) -> None:
    client, served = site
    client.enqueue_many([que.NewJob("Page", [n], queue="many") for n in range(120)])
    page = browser.new_page()
    page.goto(served.base + f"/login?token={TOKEN}")
    page.goto(served.base + "/jobs?queue=many")
    seen: list[int] = []
    while True:
        rows = page.locator("#jobs tr[data-job]")
        seen += [int(rows.nth(i).get_attribute("data-job")) for i in range(rows.count())]
        if page.locator("#next").count() == 0:
            break
        page.click("#next")
    assert len(seen) == 120 and seen == sorted(seen, reverse=True)
    page.close()


def test_changes_need_the_csrf_token_credentials_and_a_writable_dashboard(
    browser: Any, site: tuple[que.Client, Served], url: str
) -> None:
    client, served = site
    job_id = client.enqueue("Keep", 1).job_id
    context = browser.new_context()
    page = context.new_page()
    form = {"action": "delete", "job_id": str(job_id), "next": "/jobs"}
    assert context.request.post(served.base + "/jobs/action", form=form).status == 401, "no credentials"
    page.goto(served.base + f"/login?token={TOKEN}")
    refused = context.request.post(served.base + "/jobs/action", form={**form, "csrf": "forged"})
    assert refused.status == 403 and row(url, job_id) is not None
    with que.Client(url) as other:
        read_only = Served(other, read_only=True)
        try:
            page.goto(read_only.base + "/jobs")
            assert page.locator("button").count() == 1, "only the filter button"
            shot(page, "read-only")
            token = web.Dashboard(other).csrf_token()
            refused = context.request.post(read_only.base + "/jobs/action", form={**form, "csrf": token})
            assert refused.status == 403 and row(url, job_id) is not None
        finally:
            read_only.close()
    context.close()


def test_beyond_localhost_the_server_needs_credentials(url: str) -> None:
    with que.Client(url) as client, pytest.raises(ValueError, match="--token or --basic-auth"):
        web.serve(web.Dashboard(client), "0.0.0.0", 0)


def test_the_asgi_app_mounted_in_starlette_under_uvicorn(browser: Any, url: str) -> None:
    """The ASGI form as a Starlette (FastAPI) app mounts it, at /que, in a real ASGI server
    (uvicorn): links and actions stay under the mount point."""
    import socket

    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Mount

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with que.Client(url) as client:
        job_id = fill(client, url)["failing"]
        app = Starlette(routes=[Mount("/que", app=web.asgi_app(web.Dashboard(client, token=TOKEN)))])
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            wait_until(lambda: server.started, 20, "uvicorn to start")
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/que/login?token={TOKEN}")
            assert page.url.endswith("/que/")
            page.locator('tr[data-queue="billing"] td[data-state="failing"] a').click()
            assert "/que/jobs?" in page.url
            page.click(f'tr[data-job="{job_id}"] button[name="retry"]')
            assert page.inner_text("#note") == "retry: 1 of 1 job" and "/que/jobs" in page.url
            found = row(url, job_id)
            assert found is not None and found["due"]
            page.close()
        finally:
            server.should_exit = True
            thread.join(10)
